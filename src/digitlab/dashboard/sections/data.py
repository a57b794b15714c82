from digitlab.dashboard import views

views.data_page()
