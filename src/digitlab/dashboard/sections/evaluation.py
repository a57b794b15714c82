from digitlab.dashboard import views

views.evaluation_page()
