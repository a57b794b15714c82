from digitlab.dashboard import views

views.preprocess_page()
