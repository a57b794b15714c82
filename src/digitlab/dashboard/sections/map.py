from digitlab.dashboard import views

views.map_page()
