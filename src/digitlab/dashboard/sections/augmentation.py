from digitlab.dashboard import views

views.augmentation_page()
