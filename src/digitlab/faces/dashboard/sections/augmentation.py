"""Augmentation: the same model trained with and without augmented training data."""

from __future__ import annotations

import streamlit as st

from digitlab.faces.dashboard.common import absent, figure, frame, opened


def augmentation_page() -> None:
    run = frame("Augmentation", "Training data only, with and without augmentation, same seed.")
    if run is None:
        return
    found = opened(run)
    results = [r.to_json() for r in found.augmentations.values()]
    if not results:
        absent("augmentation results", "digitlab augment --library opencv --model mlp")
        return
    st.dataframe(
        [
            {
                "model": r["model"],
                "library": r["library"],
                "without": r["without"]["accuracy"] * 100,
                "with": r["with"]["accuracy"] * 100,
                "gain (points)": r["gain_pp"],
                "robustness gain (points)": r["robustness_gain_pp"],
            }
            for r in results
        ],
        hide_index=True,
    )
    for r in results:
        figure(run, r["figures"].get("preview"), f"{r['library']}: original (left) and augmented copies")
    combined = found.augment_compare
    if combined:
        figure(run, combined.figure)


augmentation_page()
