"""The dashboard's pages. Each reads the run folder the sidebar picks; nothing retrains at start.

Pages hold Streamlit calls only: they read the run's JSON and PNG files and ask
``digitlab.service`` for everything else (runs, models, predictions, training).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from digitlab import service
from digitlab.core.errors import DigitlabError
from digitlab.faces.dashboard import looking

RUN_ENV = service.settings.RUN_ENV  # run folder to open (set by `digitlab dashboard RUN`)
RUNS_ENV = service.settings.RUNS_ENV  # folder holding the run folders (default: runs)
CANVAS_SIZE = 280  # 10× MNIST's 28 pixels


# --- where the run is -----------------------------------------------------------------------


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
    if rel and (run / rel).is_file():
        st.image(str(run / rel), caption=caption)
    elif rel:
        st.caption(f"Figure {rel} is missing from the run folder.")


def _sidebar(run: Path | None) -> None:
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


def frame(title: str, intro: str) -> Path | None:
    """Title, sidebar and the run; with no run yet, the training panel instead (returns None)."""
    run = current_run()
    _sidebar(run)
    st.title(title)
    st.caption(intro)
    if run is None or not service.runs.run_models(run):
        training_panel(run)
        return None
    return run


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


# --- no run yet: train from here ----------------------------------------------------------------


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


# --- pages ----------------------------------------------------------------------------------------


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


def models_page() -> None:
    found = frame_with(
        "Models and comparison",
        "Every model trained on the same data with the same seed.",
        "compare",
        "model comparison",
        "digitlab compare",
    )
    if found is None:
        return
    run, record = found
    compare = record.to_json()
    st.caption(
        f"{compare['n_train']:,} training and {compare['n_test']:,} test images of {compare['dataset']}; "
        f"seed {compare['seed']}. Best: **{compare['best']}**."
    )
    rows = sorted(compare["models"], key=lambda m: -m["accuracy"])
    st.dataframe(
        [
            {
                "model": m["model"],
                "test accuracy": m["accuracy"] * 100,
                "macro F1": m["macro_f1"],
                "fit (s)": m["fit_s"],
                "predict (s)": m["predict_s"],
                "size (MB)": m["size_bytes"] / 1e6,
            }
            for m in rows
        ],
        hide_index=True,
        column_config={"test accuracy": st.column_config.NumberColumn(format="%.2f%%")},
    )
    looking.comparison_chart(compare["models"])
    st.subheader("Training curves")
    predictors, _ = _loaded(run)
    looking.training_curves(predictors)
    st.subheader("Aspects to consider")
    st.dataframe(service.catalogue.aspects([m["model"] for m in compare["models"]]), hide_index=True)


def _evaluated(run: Path) -> list[str]:
    evaluations = opened(run).evaluations
    return sorted(evaluations, key=lambda n: (-evaluations[n].accuracy, n))


def evaluation_page() -> None:
    run = frame("Evaluation", "Confusion matrix, per-class report, confused pairs and mistakes of one model.")
    if run is None:
        return
    names = _evaluated(run)
    if not names:
        absent("model evaluations", "digitlab compare")
        return
    name = st.selectbox("Model", names, key="eval_model")
    record = opened(run).evaluation(name)
    if record is None:
        st.error(f"evaluate-{name}.json is unreadable; run `digitlab evaluate --model {name}` again.")
        return
    ev = record.to_json()
    cols = st.columns(3)
    cols[0].metric("Test accuracy", f"{ev['accuracy']:.2%}")
    cols[1].metric("Macro F1", f"{ev['macro_f1']:.4f}")
    cols[2].metric("Errors", f"{ev['n_errors']:,} of {ev['n_test']:,}")
    class_names = [k for k, v in ev["report"].items() if isinstance(v, dict) and k not in ("macro avg", "weighted avg")]
    left, right = st.columns(2)
    with left:
        cell = looking.confusion(ev, name, class_names)
    with right:
        looking.per_class_chart(ev["report"])
        st.markdown("**Classification report**")
        st.dataframe(
            [dict(label=k, **v) for k, v in ev["report"].items() if isinstance(v, dict)],
            hide_index=True,
        )
        st.markdown("**Most confused pairs** (true → predicted)")
        st.dataframe(ev["confused_pairs"], hide_index=True)
    if cell is not None:
        looking.cell_digits(run, name, *cell, class_names)
    figure(run, ev["figures"].get("predictions"), "True / predicted on test images (mistakes in red).")
    figure(run, ev["figures"].get("misclassified"), "The most confident mistakes.")


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


# --- try it ---------------------------------------------------------------------------------------


@st.cache_resource(show_spinner="Loading the saved models…", max_entries=4)
def load_predictors(
    run: str, stamp: tuple[float, ...], personal: tuple[str, ...] = ()
) -> tuple[list[service.Predictor], list[str]]:
    """Every saved 28×28 model of the run, the best reader of real pictures first, then your personal models;
    problems as one line each."""
    return service.predictor.run_predictors(Path(run), [Path(p) for p in personal])


def _show_headline(top: service.Prediction) -> None:
    with st.container(key="prediction"):
        st.markdown(f"## Prediction: {top.label}")
        sure = f"**{top.confidence or 0.0:.1%}** sure"
        st.markdown(f"{sure}, by **{top.model}** (the best reader of real pictures saved)")
        if top.status == "uncertain":
            st.warning("Uncertain: no digit gets half the probability. Try a larger, centred digit.")


def _show_details(image: np.ndarray, rows: list[service.Prediction], below: Any = None) -> None:
    """The image the models see, the leading model's probabilities and every model's row."""
    left, right = st.columns([1, 3])
    with left:
        st.image(np.kron(image, np.ones((5, 5), dtype=np.uint8)), caption="What the models see (28 × 28)")
    with right:
        st.bar_chart({"probability": dict(rows[0].probabilities)}, height=180)
    table = [{"model": r.model, "prediction": r.label, "confidence": r.confidence, **r.probabilities} for r in rows]
    config: dict[str, Any] = {  # numbers for the ten digits, so that they all fit beside the model's name
        c: st.column_config.NumberColumn(c, format="percent", width=58) for c in rows[0].probabilities
    }
    config["confidence"] = st.column_config.ProgressColumn(
        "confidence", format="percent", min_value=0.0, max_value=1.0, width="small"
    )
    with below if below is not None else st.container(), st.container(key="all_models"):
        st.dataframe(table, hide_index=True, column_config=config)


def _loaded(run: Path) -> tuple[list[service.Predictor], list[str]]:
    """The run's models and your newest personal ones (loaded once per set of files, shared by every session)."""
    models = service.runs.run_models(run)
    names = {m.name for m in models}
    personal = tuple(str(m.path) for m in service.runs.personal_models(runs_root()) if m.name not in names)
    return load_predictors(str(run), tuple(m.path.stat().st_mtime for m in models), personal)


def _recognise(run: Path, source: Any, name: str, below: Any = None) -> None:
    """``source`` through to_mnist and every model; the table of all models goes in ``below`` when given."""
    try:
        image = service.predictor.read_picture(source, name)
    except DigitlabError as exc:
        st.error(str(exc))
        return
    if service.predictor.is_blank(image):
        st.info("No ink found: the picture is blank. Draw or upload a digit.")
        return
    predictors, _ = _loaded(run)
    if not predictors:
        return
    rows = service.predictor.predict_each(predictors[:1], image, name)
    _show_headline(rows[0])  # on screen while the other models read the digit
    rows += service.predictor.predict_each(predictors[1:], image, name)
    _show_details(image, rows, below)
    st.session_state[looking.LAST_DRAWING] = image  # placed on the Map page
    looking.explanation(image, predictors, "try")


def try_it_page() -> None:
    run = frame("Try it", "Draw a digit or upload a picture; every saved model reads it.")
    if run is None:
        return
    notes = st.container()  # filled once the models are loaded, after the page is on screen
    draw, upload = st.tabs(["Draw", "Upload"])
    with draw:
        _draw(str(run))
    with upload:
        _upload(run)
    predictors, problems = _loaded(run)  # after the page is drawn: warm before the first stroke
    with notes:
        for problem in problems:
            st.warning(problem)
        if not predictors:
            st.error("None of the saved models reads 28 × 28 digits; train one on mnist (`digitlab run`).")


def map_page() -> None:
    run = frame(
        "Map of all digits",
        "Every test digit placed by what a model sees in it (UMAP or t-SNE): hover a point for the digit, click to "
        "explain it.",
    )
    if run is None:
        return
    predictors, _ = _loaded(run)
    looking.map_section(run, predictors)


def _canvas(key: str, width: int) -> Any:
    """The drawing canvas (black pen on white, 280 × 280); None, with the reason shown, where it cannot run."""
    try:
        from streamlit_drawable_canvas import st_canvas
    except Exception as exc:  # the component registers itself only inside a Streamlit runtime
        st.error(f"The drawing canvas is unavailable here ({type(exc).__name__}); start with `digitlab dashboard`.")
        return None
    return st_canvas(
        stroke_width=width,
        stroke_color="#000000",
        background_color="#FFFFFF",
        height=CANVAS_SIZE,
        width=CANVAS_SIZE,
        drawing_mode="freedraw",
        update_streamlit=True,
        return_image_data=True,
        key=key,
    )


@st.fragment
def _draw(run: str) -> None:
    """A fragment: a stroke reruns only this, not the whole page."""
    left, right = st.columns([1, 2])
    below = st.container()  # full width, for the table of every model
    with left:
        width = st.slider("Pen width", 8, 40, 20, key="pen")
        with st.container(key="canvas"):
            result = _canvas("digit_canvas", width)
        st.caption("Draw one digit, large and centred; the bin icon clears the canvas.")
    if result is None:
        return
    with right:
        image = result.image_data
        if image is None or not (result.json_data or {}).get("objects"):
            st.info("The canvas is empty: draw a digit on it with the mouse, a pen or a finger.")
            return
        _recognise(Path(run), image, "drawing", below)
        _correction(image)


def _writer() -> str:
    """The writer picked on Your digits (shared by every page of the session); default ``me``."""
    return str(st.session_state.get("writer") or service.mine.DEFAULT_WRITER)


def _correction(image: Any) -> None:
    """ "Wrong? It was: [0–9]": saves the drawing with the right label as a correction."""
    st.markdown("**Wrong? It was:**")
    with st.container(key="correction", horizontal=True):
        pressed = [d for d in range(10) if st.button(str(d), key=f"fix_{d}")]
    if pressed:
        try:
            added = service.mine.add_pictures([image], pressed[0], _writer(), "correction", ["drawing"])[0]
        except DigitlabError as exc:
            st.error(str(exc))
            return
        what = "Saved" if added.new else "Already saved"
        st.success(f"{what} as a {added.label} in {added.writer}'s digits (id {added.id}); see the Your digits page.")


def _upload(run: Path) -> None:
    uploaded = st.file_uploader(
        "A picture of one digit (PNG, JPEG, BMP, GIF, TIFF or WebP; "
        f"at most {service.settings.MAX_PICTURE_BYTES // 2**20} MiB)",
        key="upload",
    )
    if uploaded is None:
        st.info("Upload a photo, scan or screenshot of a digit: dark ink on light paper or light on dark.")
        return
    _recognise(run, uploaded.getvalue(), uploaded.name)


# --- your digits ------------------------------------------------------------------------------------


def your_digits_page() -> None:
    _sidebar(current_run())
    st.title("Your digits")
    st.caption(
        "Teach digitlab your handwriting: draw digits and say which they are. Every saved model is then measured "
        "on them, and `Personalise` fine-tunes a copy of the cnn to your hand."
    )
    try:
        writers = service.mine.writers()
    except DigitlabError as exc:
        st.error(str(exc))
        return
    _pick_writer(writers)
    writer = _writer()
    left, right = st.columns([1, 1])
    with left:
        _collect(writer)
    with right:
        _your_counts(writer)
    st.divider()
    _your_grid(writer)
    st.divider()
    _your_scores(writer)
    st.divider()
    _personalise_panel(writer)


def _pick_writer(writers: dict[str, int]) -> None:
    names = list(writers) or [service.mine.DEFAULT_WRITER]
    current = _writer()
    if current not in names:
        names.insert(0, current)
    a, b = st.columns([1, 1])
    with a:
        picked = st.selectbox("Writer", names, index=names.index(current), key="writer_pick")
    with b:
        new = st.text_input("…or a new writer's name", key="writer_new", placeholder="e.g. ana")
    chosen = new.strip() or picked
    try:
        st.session_state["writer"] = service.mine.check_writer(chosen)
    except DigitlabError as exc:
        st.error(str(exc))


@st.fragment
def _collect(writer: str) -> None:
    """Draw (or upload), press the digit it is: saved, and the canvas clears."""
    n = int(st.session_state.get("mine_canvas", 0))
    with st.container(key="mine_canvas_box"):
        result = _canvas(f"mine_canvas_{n}", int(st.session_state.get("pen", 20)))
    if result is None:
        return
    uploaded = st.file_uploader("…or upload a picture of one digit", key=f"mine_upload_{n}")
    drawn = result.image_data is not None and (result.json_data or {}).get("objects")
    if drawn or uploaded is not None:
        try:
            seen = service.predictor.read_picture(uploaded.getvalue() if uploaded is not None else result.image_data)
        except DigitlabError as exc:
            st.error(str(exc))
            return
        with st.container(key="mine_preview"):
            st.image(np.kron(seen, np.ones((3, 3), np.uint8)), caption="What the models will see")
    st.markdown("**Which digit is it?**")
    with st.container(key="labels", horizontal=True):
        pressed = [d for d in range(10) if st.button(str(d), key=f"label_{d}")]
    if not pressed:
        return
    if uploaded is not None:
        source, name, kind = uploaded.getvalue(), uploaded.name, "upload"
    elif drawn:
        source, name, kind = result.image_data, "drawing", "canvas"
    else:
        st.warning("Draw a digit on the canvas (or upload one) first, then press its label.")
        return
    try:
        added = service.mine.add_pictures([source], pressed[0], writer, kind, [name])[0]
    except DigitlabError as exc:
        st.error(str(exc))
        return
    st.session_state["mine_canvas"] = n + 1  # a new canvas key: the canvas clears
    st.session_state["mine_saved"] = (
        f"Saved a {added.label} (id {added.id})." if added.new else f"Already saved as a {added.label} (id {added.id})."
    )
    st.rerun()


def _your_counts(writer: str) -> None:
    counts = service.mine.counts(writer)
    total = sum(counts.values())
    if "mine_saved" in st.session_state:
        st.success(st.session_state.pop("mine_saved"))
    with st.container(key="mine_total"):
        st.markdown(f"**{writer}** has **{total}** digit{'s' if total != 1 else ''} saved.")
    st.bar_chart({"digits": {str(d): n for d, n in counts.items()}}, height=200)
    fewest = min(counts.values())
    wanted = [str(d) for d, n in counts.items() if n == fewest]
    with st.container(key="mine_ask"):
        st.info(
            f"Draw {' or '.join(wanted[:3])} next: you have fewest of {'them' if len(wanted) > 1 else 'it'} ({fewest})."
        )


def _your_grid(writer: str) -> None:
    st.subheader("Your digits")
    digits = service.mine.digits(writer)
    if not digits:
        st.caption("None yet.")
        return
    shown = digits[::-1][:60]
    st.caption(f"The newest {len(shown)} of {len(digits)}, as the models see them.")
    cols = st.columns(10)
    for k, digit in enumerate(shown):
        with cols[k % 10]:
            st.image(np.kron(digit.image, np.ones((3, 3), np.uint8)), caption=f"{digit.label} · #{digit.id}")
            if st.button("Delete", key=f"rm_{digit.id}", type="tertiary"):
                service.mine.remove([digit.id])
                st.rerun()


def _your_models(run: Path | None) -> list[service.Predictor]:
    if run is not None:
        return _loaded(run)[0]
    return service.predictor.run_predictors(None, [m.path for m in service.runs.personal_models(runs_root())])[0]


def _your_scores(writer: str) -> None:
    st.subheader("How the models read your digits")
    predictors = _your_models(current_run())
    if not predictors:
        st.caption("No saved models yet: `digitlab run` trains them.")
        return
    readings = service.mine.measure(predictors, writer)
    if not readings:
        st.caption("Save some digits first.")
        return
    with st.container(key="mine_scores"):
        st.dataframe(
            [{"model": r.model, "accuracy": r.accuracy, "misread": r.n_errors} for r in readings],
            hide_index=True,
            column_config={
                "accuracy": st.column_config.ProgressColumn("accuracy", format="percent", min_value=0.0, max_value=1.0)
            },
        )
    picked = st.selectbox("Model", [r.model for r in readings], key="mine_model")
    reading = next(r for r in readings if r.model == picked)
    a, b = st.columns([1, 1])
    with a:
        st.caption("Confusion matrix (rows: what you wrote, columns: what it read)")
        st.dataframe(
            [{"wrote": str(d), **{str(c): reading.confusion[d][c] for c in range(10)}} for d in range(10)],
            hide_index=True,
        )
    with b:
        st.caption(f"Your digits {picked} misreads, most confident first")
        wrong = reading.misread[:20]
        if not wrong:
            st.success("None: it reads every one of your digits.")
        images = {d.id: d.image for d in service.mine.digits(writer)}
        cols = st.columns(5)
        for k, item in enumerate(wrong):
            with cols[k % 5]:
                st.image(
                    np.kron(images[item["id"]], np.ones((3, 3), np.uint8)),
                    caption=f"{item['true']} read as {item['predicted']} ({item['confidence']:.0%})",
                )


def _personalise_panel(writer: str) -> None:
    st.subheader("Personalise")
    st.caption(
        "Fine-tunes a copy of the saved cnn on your digits (with MNIST digits replayed so that it keeps what it knew) "
        "and scores it before and after on digits of yours it did not train on. Saved as cnn-personal."
    )
    if not st.button("Personalise the cnn to my digits", key="personalise", type="primary"):
        return
    bar = st.progress(0.0, text="starting")

    def on_progress(event: service.Event) -> None:
        fraction = event.done / event.total if event.total else 0.0
        bar.progress(min(fraction, 1.0), text=event.message or event.step)

    request = service.PersonaliseRequest(model="cnn", writer=writer, out=runs_root())
    try:
        result = service.personalise(request, on_progress).to_json()
    except DigitlabError as exc:
        st.error(str(exc))
        return
    bar.progress(1.0, text="done")
    with st.container(key="personalised"):
        st.success(f"Saved {result['model']} ({result['adapt_s']:.0f} s); use it with --model {result['model']}.")
        st.dataframe(
            [
                {
                    "scored on": f"your {result['held_out']} held-out digits",
                    "before": result["held_out_before"],
                    "after": result["held_out_after"],
                },
                {
                    "scored on": f"{result['test_dataset']} test",
                    "before": result["test_before"],
                    "after": result["test_after"],
                },
            ],
            hide_index=True,
            column_config={c: st.column_config.NumberColumn(c, format="percent") for c in ("before", "after")},
        )


# --- history ----------------------------------------------------------------------------------------


def history_page() -> None:
    _sidebar(current_run())
    st.title("History")
    st.caption("Every run under the runs folder: test accuracy per model across runs, and two runs side by side.")
    rows = service.runs.run_history(runs_root())
    if not rows:
        st.info(f"No runs under {runs_root()} yet. `digitlab run --quick` makes one.")
        return
    datasets = sorted({r.dataset for r in rows if r.dataset})
    picked = st.selectbox("Dataset", ["all", *datasets], key="history_dataset")
    shown = [r for r in rows if picked == "all" or r.dataset == picked]
    points = [
        {"run": r.id, "time": r.time, "model": model, "test accuracy": accuracy * 100}
        for r in shown
        for model, accuracy in r.models.items()
        if isinstance(accuracy, int | float)
    ]
    with st.container(key="history_chart"):
        if points:
            st.altair_chart(_accuracy_chart(points), width="stretch")
        else:
            st.info("No run here recorded a test accuracy yet.")
    st.dataframe(
        [
            {
                "run": r.id,
                "command": r.command,
                "dataset": r.dataset,
                "seed": r.seed,
                "models": ", ".join(f"{m} {a:.2%}" for m, a in r.models.items() if isinstance(a, int | float)),
                "seconds": r.seconds,
                "MiB": round(r.size_bytes / 2**20, 2),
                "state": r.problem or ("complete" if r.complete else "incomplete"),
            }
            for r in shown
        ],
        hide_index=True,
        key="history_table",
    )
    if len(shown) < 2:
        return
    st.subheader("Two runs side by side")
    ids = [r.id for r in shown]
    left, right = st.columns(2)
    a = left.selectbox("Run a", ids, index=1, key="diff_a")
    b = right.selectbox("Run b", ids, index=0, key="diff_b")
    diff = service.runs.diff_runs(str(runs_root() / a), str(runs_root() / b), runs_root())
    st.dataframe(
        [{"": r["key"], "a": _shown(r["a"]), "b": _shown(r["b"]), "b - a": r["difference"]} for r in diff],
        hide_index=True,
        key="diff_table",
    )


def _accuracy_chart(points: list[dict[str, Any]]) -> Any:
    """Test accuracy per model over time: a line per model, a point per run, a tooltip on each."""
    import altair as alt

    return (
        alt.Chart(alt.Data(values=points))
        .mark_line(point=True)
        .encode(
            x=alt.X("time:T", title="run started", axis=alt.Axis(format="%b %d %H:%M")),
            y=alt.Y("test accuracy:Q", title="test accuracy (%)", scale=alt.Scale(zero=False)),
            color=alt.Color("model:N"),
            tooltip=["run:N", "model:N", alt.Tooltip("test accuracy:Q", format=".2f")],
        )
        .properties(height=320)
        .interactive()
    )


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:,.1f}"
    return "—" if value is None else str(value)
