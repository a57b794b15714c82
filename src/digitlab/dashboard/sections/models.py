from digitlab.dashboard import views

views.models_page()
