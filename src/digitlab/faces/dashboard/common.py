"""What every page of the dashboard shares: which run it shows (the sidebar), its frame, figures, the
models loaded once, the drawing canvas, and the training panel for a run without models."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import streamlit as st

from digitlab import service
from digitlab.core.errors import DigitlabError

RUN_ENV = service.settings.RUN_ENV  # run folder to open (set by `digitlab dashboard RUN`)


RUNS_ENV = service.settings.RUNS_ENV  # folder holding the run folders (default: runs)


CANVAS_SIZE = 280  # 10× MNIST's 28 pixels


def runs_root() -> Path:
    return Path(os.environ.get(RUNS_ENV, "runs")).resolve()


def current_run() -> Path | None:
    """The run picked in the sidebar, else ``$DIGITLAB_RUN``, else ``<runs>/latest``."""
    for candidate in (st.session_state.get("run"), os.environ.get(RUN_ENV)):
        if candidate and Path(candidate).is_dir():
            return Path(candidate).resolve()
    return service.runs.latest_run(runs_root())


def opened(run: Path) -> service.Run:
    """The run folder, read through the one run reader (each file parsed once a version)."""
    return service.Run(run)


def figure(run: Path, rel: str | None, caption: str | None = None) -> None:
    found = opened(run).figure(rel)
    if found is not None:
        st.image(str(found), caption=caption)
    elif rel:
        st.caption(f"Figure {rel} is missing from the run folder.")


def sidebar(run: Path | None) -> None:
    root = runs_root()
    with st.sidebar:
        st.markdown("### digitlab")
        folders = service.runs.list_runs(root)
        if run is not None and run not in folders:
            folders.insert(0, run)
        if folders:
            index = folders.index(run) if run in folders else 0
            picked = st.selectbox("Run", folders, index=index, format_func=lambda p: p.name, key="run_picker")
            if picked != run:
                st.session_state["run"] = str(picked)
                st.rerun()
            report = run / "report.html" if run is not None else None
            if report is not None and report.is_file():
                st.download_button(  # read on click, not at every rerun
                    "Download the HTML report", report.read_bytes, "report.html", "text/html", on_click="ignore"
                )
        st.caption(f"Runs folder: {root}")


def _header(title: str, intro: str) -> Path | None:
    """The sidebar, title and intro of a page; the run it shows (None: no run yet)."""
    run = current_run()
    sidebar(run)
    st.title(title)
    st.caption(intro)
    return run


def frame(title: str, intro: str) -> Path | None:
    """Title, sidebar and the run; with no run yet, the training panel instead (returns None)."""
    run = _header(title, intro)
    if run is None or not service.runs.run_models(run):
        training_panel(run)
        return None
    return run


def reading_frame(title: str, intro: str) -> tuple[Path | None, bool]:
    """``frame`` for the pages that read pictures: with no run yet, the reader digitlab ships reads them (the
    training panel below the page); (the run or None, whether anything can read)."""
    run = _header(title, intro)
    if run is not None and service.runs.run_models(run):
        return run, True
    if not service.predictor.shipped_reader():
        training_panel(run)
        return None, False
    st.info("No run with models yet: the reader shipped with digitlab reads your digit. Train models to compare.")
    return None, True


def frame_with(title: str, intro: str, step: str, what: str, command: str) -> tuple[Path, Any] | None:
    """``frame`` plus the run's record of ``step``; without it, says which command makes it (returns None)."""
    run = frame(title, intro)
    if run is None:
        return None
    result = getattr(opened(run), step)
    if result is None:
        absent(what, command)
        return None
    return run, result


def absent(what: str, command: str) -> None:
    st.info(f"This run has no {what}. `{command}` adds them.")


def training_panel(run: Path | None) -> None:
    if run is None:
        st.warning(f"No saved run under {runs_root()}. Train models here, or run `digitlab run` in a terminal.")
    else:
        st.warning(f"Run {run.name} has no saved models. Train models here, or run `digitlab run` in a terminal.")
    with st.form("train"):
        size = st.radio(
            "Data",
            ["quick", "full"],
            format_func=lambda s: {
                "quick": f"Quick: {service.settings.QUICK_TRAIN:,} / {service.settings.QUICK_TEST:,} images "
                "(about a minute)",
                "full": "Full MNIST: 60,000 / 10,000 images (about ten minutes)",
            }[s],
        )
        names = st.multiselect("Models", service.catalogue.model_names(), default=list(service.settings.DEFAULT_MODELS))
        seed = st.number_input("Seed", min_value=0, value=0, step=1)
        start = st.form_submit_button("Train")
    if not start:
        return
    if not names:
        st.error("Pick at least one model to train.")
        return
    bar = st.progress(0.0, text="starting")
    done = 0.0

    def on_progress(event: service.Event) -> None:
        nonlocal done
        if event.level == service.progress.JOB and event.total:
            done = event.done / event.total
        bar.progress(min(done, 1.0), text=event.message or event.step)

    request = service.RunRequest(
        models=tuple(names), data=service.DataRequest(seed=int(seed), quick=size == "quick"), out=runs_root()
    )
    try:  # the service removes the run folder on any failure, a Streamlit stop or rerun included
        result = service.run(request, on_progress)
    except DigitlabError as exc:
        st.error(str(exc))
        return
    st.session_state["run"] = str(result.run)
    bar.progress(1.0, text="done")
    st.success(f"Trained {', '.join(names)} into {Path(str(result.run)).name}.")
    st.rerun()


@st.cache_resource(show_spinner="Loading the saved models…", max_entries=4)
def load_predictors(
    run: str, stamp: tuple[float, ...], personal: tuple[str, ...] = ()
) -> tuple[list[service.Predictor], list[str]]:
    """Every saved 28×28 model of the run, the best reader of real pictures first, then your personal models;
    problems as one line each."""
    return service.predictor.run_predictors(Path(run) if run else None, [Path(p) for p in personal])


def loaded_models(run: Path | None) -> tuple[list[service.Predictor], list[str]]:
    """The shipped reader, the run's models (none without a run) and your newest personal ones (loaded once per
    set of files, shared by every session)."""
    models = service.runs.run_models(run) if run is not None else []
    names = {m.name for m in models}
    personal = tuple(str(m.path) for m in service.runs.personal_models(runs_root()) if m.name not in names)
    return load_predictors(str(run or ""), tuple(m.path.stat().st_mtime for m in models), personal)


def current_writer() -> str:
    """The writer picked on Your digits (shared by every page of the session); default ``me``."""
    return str(st.session_state.get("writer") or service.mine.DEFAULT_WRITER)
