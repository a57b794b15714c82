from digitlab.faces.dashboard import views

views.map_page()
