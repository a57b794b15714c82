"""Models written from scratch in NumPy: read them line by line."""
