"""Tuning: the cross-validated search and the refitted best scored once on the test split."""

from __future__ import annotations

import streamlit as st

from digitlab.faces.dashboard.common import figure, frame_with


def tuning_page() -> None:
    found = frame_with(
        "Tuning",
        "Cross-validated search on the training split only; the test split scores the winner once.",
        "tune",
        "tuning results",
        "digitlab tune --model svm --search halving",
    )
    if found is None:
        return
    run, record = found
    tune = record.to_json()
    cols = st.columns(3)
    cols[0].metric("Model", tune["model"])
    cols[1].metric("Best mean CV accuracy", f"{tune['best_cv_accuracy']:.2%}")
    cols[2].metric("Test accuracy (refitted best)", f"{tune['test']['accuracy']:.2%}")
    st.caption(
        f"{tune['search']} search, {tune['n_candidates']} candidates, {tune['cv']}-fold CV on "
        f"{tune['n_train_searched']:,} training images, {tune['seconds']:.0f} s on {tune['backend']}."
    )
    st.markdown("**Best parameters:** " + ", ".join(f"`{k}={v}`" for k, v in tune["best_params"].items()))
    st.dataframe(
        [
            {"rank": k, **c["params"], "mean CV accuracy": c["mean_cv_accuracy"], "std": c["std_cv_accuracy"]}
            for k, c in enumerate(tune["candidates"], 1)
        ],
        hide_index=True,
    )
    figure(run, tune["figures"].get("heatmap"))


tuning_page()
