from digitlab.faces.dashboard import views

views.data_page()
