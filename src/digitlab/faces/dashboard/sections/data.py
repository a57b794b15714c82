"""Data: shapes, classes, counts, files and checksums, and what the digits look like."""

from __future__ import annotations

import streamlit as st

from digitlab.faces.dashboard.common import absent, figure, frame, opened


def data_page() -> None:
    run = frame("Data", "What the models learn from: shapes, classes, counts, files and checksums.")
    if run is None:
        return
    found = opened(run)
    data = found.data.to_json() if found.data else None
    explore = found.explore
    if data is None:
        absent("dataset description", "digitlab run")
    else:
        train, test = data["splits"]["train"], data["splits"]["test"]
        cols = st.columns(4)
        cols[0].metric("Dataset", data["dataset"])
        cols[1].metric("Training images", f"{train['x_shape'][0]:,}")
        cols[2].metric("Test images", f"{test['x_shape'][0]:,}")
        cols[3].metric("Image size", " × ".join(map(str, data["image_shape"])))
        st.subheader("Examples per class")
        st.dataframe(
            {"class": data["classes"], "train": train["per_class"], "test": test["per_class"]},
            hide_index=True,
        )
        if data.get("files"):
            st.subheader("Files and checksums")
            st.dataframe(
                [
                    {
                        "file": name,
                        "bytes": f.get("bytes"),
                        "SHA-256": f.get("sha256", "—"),
                        "verified": f.get("verified", False),
                        "source": f.get("source", ""),
                    }
                    for name, f in data["files"].items()
                ],
                hide_index=True,
            )
    if explore is None:
        absent("exploration figures", "digitlab explore")
        return
    figs = explore.figures
    st.subheader("Example images")
    figure(run, figs.get("ten_examples"))
    figure(run, figs.get("examples"))
    st.subheader("Class distribution")
    figure(run, figs.get("class_histogram"))
    figure(run, figs.get("mean_images"))
    figure(run, figs.get("pixel_histogram"))


data_page()
