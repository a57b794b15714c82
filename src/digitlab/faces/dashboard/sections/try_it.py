from digitlab.faces.dashboard import views

views.try_it_page()
