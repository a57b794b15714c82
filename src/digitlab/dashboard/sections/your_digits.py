from digitlab.dashboard import views

views.your_digits_page()
