"""Preprocessing: raw pixels against normalised ones, and the deskew every model applies first."""

from __future__ import annotations

import numpy as np
import streamlit as st

from digitlab.faces.dashboard.common import figure, frame_with


def preprocess_page() -> None:
    found = frame_with(
        "Preprocessing",
        "Raw pixels against normalised ones, and the deskew every model applies first.",
        "preprocess",
        "preprocessing results",
        "digitlab preprocess",
    )
    if found is None:
        return
    run, record = found
    result = record.to_json()
    st.dataframe([{"step": k, "what it does": v} for k, v in result["steps"].items()], hide_index=True)
    st.subheader("Pixel statistics")
    st.dataframe([dict(pixels=k, **v) for k, v in result["stats"].items()], hide_index=True)
    sample = result["sample"]
    st.subheader(f"A training image ({sample['labels'][0]}) scaled to [0, 1]")
    st.dataframe(np.asarray(sample["scaled_first_image"]).round(2), height=300)
    figs = result["figures"]
    figure(run, figs.get("raw_vs_scaled"), "Raw (top) and scaled (bottom).")
    figure(run, figs.get("raw_vs_deskewed"), "Raw (top) and deskewed (bottom).")
    figure(run, figs.get("value_histograms"), "Pixel values before and after standardisation.")


preprocess_page()
