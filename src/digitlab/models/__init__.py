"""The model zoo: every model is a scikit-learn estimator on images."""
