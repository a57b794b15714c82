from digitlab.faces.dashboard import views

views.evaluation_page()
