"""Datasets: IDX files, verified sources and named datasets."""
