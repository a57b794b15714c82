from digitlab.dashboard import views

views.history_page()
