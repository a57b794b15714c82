from digitlab.faces.dashboard import views

views.history_page()
