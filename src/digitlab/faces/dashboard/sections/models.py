from digitlab.faces.dashboard import views

views.models_page()
