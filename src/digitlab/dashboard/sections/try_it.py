from digitlab.dashboard import views

views.try_it_page()
