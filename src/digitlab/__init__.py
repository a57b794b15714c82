"""digitlab: a workbench for handwritten-digit recognition, from raw MNIST files to a tuned,
evaluated and explained model."""

__version__ = "0.1.0"
