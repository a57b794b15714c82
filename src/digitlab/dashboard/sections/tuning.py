from digitlab.dashboard import views

views.tuning_page()
