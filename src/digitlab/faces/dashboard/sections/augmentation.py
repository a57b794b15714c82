from digitlab.faces.dashboard import views

views.augmentation_page()
