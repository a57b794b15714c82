from digitlab.faces.dashboard import views

views.preprocess_page()
