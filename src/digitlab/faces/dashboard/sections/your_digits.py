from digitlab.faces.dashboard import views

views.your_digits_page()
