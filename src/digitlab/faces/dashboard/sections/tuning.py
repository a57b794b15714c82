from digitlab.faces.dashboard import views

views.tuning_page()
