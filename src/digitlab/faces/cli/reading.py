"""`digitlab predict`, `explain`, `map`, `export`, `serve`, `dashboard`: reading pictures and showing models."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from digitlab import service
from digitlab.core.errors import DigitlabError
from digitlab.faces.cli.app import (
    EVIDENCE,
    DaskLocal,
    DataDir,
    Json,
    Out,
    Overwrite,
    Reporter,
    Rows,
    RunArg,
    Scheduler,
    Seed,
    app,
    emit,
    err_console,
    make_table,
)


@app.command()
def predict(
    files: Annotated[
        list[Path],
        typer.Argument(help="Pictures of digits (PNG, JPEG, BMP, GIF, TIFF or WebP), or folders of them (recursive)."),
    ],
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="A model file, a registry name for the newest saved one under --out, or best: the saved model "
            f"that reads real pictures best ({', '.join(service.settings.READERS)}, then the others) (default: best).",
        ),
    ] = "best",
    out: Out = Path("runs"),
    runtime: Annotated[
        str,
        typer.Option(
            "--runtime",
            help="auto: the cnn's ONNX copy when one is at hand (the shipped reader's or the reading cache's), "
            "else the saved model; torch: the saved model as it is; onnx: the cnn in onnxruntime (default: auto).",
        ),
    ] = "auto",
    output: Rows = None,
    dask_local: DaskLocal = None,
    scheduler: Scheduler = None,
    force: Overwrite = False,
    as_json: Json = False,
) -> None:
    """Read the digit in each picture: label, confidence and top 3."""
    if output is not None:
        request = service.batch.BatchRequest(
            tuple(files), output, model, out, runtime, dask_local, scheduler, force=force
        )
        _into_file(request, as_json, "pictures")
        return
    if dask_local is not None or scheduler is not None:
        raise DigitlabError("--dask-local and --scheduler score into a file; add --output results.csv.")
    predictor = service.exporting.load_predictor(model, out, runtime, reading=True)
    predictions = predictor.predict(list(service.batch.picture_files(files)))
    result = _answered_by(predictor, predictions=[p.to_json() for p in predictions])
    rows = []
    for p in predictions:
        if p.status in ("ok", "uncertain"):
            top = ", ".join(f"{label} {prob:.0%}" for label, prob in p.top3)
            rows.append((p.file, p.label, f"{p.confidence or 0.0:.1%}", p.status, top))
        else:
            rows.append((p.file, "", "", p.status, p.error or "no ink found"))
    emit(
        result,
        as_json,
        lambda: [
            make_table(
                f"predictions by {result['model']}", ["file", "digit", "confidence", "status", "top 3 / note"], rows
            )
        ],
        footer=f"model: {predictor.name}, {predictor.why} ({predictor.path})",
    )
    if service.exporting.should_remember(predictor):  # once a cnn: the next `predict` needs no PyTorch
        err_console.print(f"keeping an ONNX copy of {predictor.name} in the reading cache (once; answers come faster)")
        service.exporting.remember_reader(predictor)
    _fail_on_errors([p.error for p in predictions if p.status == "error"], len(predictions))


@app.command()
def read(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Pictures of one handwritten number each (a field, a meter, an amount), or folders of them."
        ),
    ],
    model: Annotated[
        str,
        typer.Option("--model", help="The digit reader: a model file, a registry name, or best (default: best)."),
    ] = "best",
    out: Out = Path("runs"),
    runtime: Annotated[
        str, typer.Option("--runtime", help="auto, torch or onnx, as for predict (default: auto).")
    ] = "auto",
    method: Annotated[
        str,
        typer.Option(
            "--method",
            help="lines: the line reader reads the whole line (touching digits too); segments: the line is cut "
            "into characters that --model reads; auto: lines where this copy ships the line reader (default).",
        ),
    ] = "auto",
    output: Rows = None,
    dask_local: DaskLocal = None,
    scheduler: Scheduler = None,
    force: Overwrite = False,
    as_json: Json = False,
) -> None:
    """Read the whole number in each picture: its text (digits, a decimal point, a leading minus), an overall
    confidence and, per character, its box, label, confidence and top 3."""
    method = service.numbers.method_for(method)
    if output is not None:
        request = service.batch.BatchRequest(
            tuple(files), output, model, out, runtime, dask_local, scheduler, force=force, task="read", method=method
        )
        _into_file(request, as_json, "numbers")
        return
    if dask_local is not None or scheduler is not None:
        raise DigitlabError("--dask-local and --scheduler read into a file; add --output numbers.csv.")
    predictor = service.exporting.load_predictor(model, out, runtime, reading=True)
    pictures = list(service.batch.picture_files(files))
    readings = service.numbers.read_numbers(predictor, pictures, method=method)
    result = _answered_by(predictor, numbers=[r.to_json() for r in readings])
    if method == "lines":  # the line reader read them; --model is the reader for --method segments
        result.update(model=service.numbers.LINE_READER, why="the line reader shipped with digitlab (--method lines)")
    result["method"] = method
    rows = []
    for r in readings:
        if r.status in ("ok", "uncertain"):
            note = "; ".join(r.reasons) or " ".join(f"{c.label} {c.confidence:.0%}" for c in r.characters)
            rows.append((r.file, r.text, f"{r.confidence:.1%}", r.status, note))
        else:
            rows.append((r.file, "", "", r.status, r.error or "no ink found"))
    emit(
        result,
        as_json,
        lambda: [
            make_table(
                f"numbers read by {result['model']}",
                ["file", "number", "confidence", "status", "characters / note"],
                rows,
            )
        ],
        footer=f"read by {result['model']}: {result['why']}" + (f" ({predictor.path})" if method == "segments" else ""),
    )
    _fail_on_errors([r.error for r in readings if r.status == "error"], len(readings))


def _into_file(request: service.batch.BatchRequest, as_json: bool, what: str) -> None:
    """`predict`/`read --output`: every picture read into the file, with a bar; the counts printed."""
    reporter = Reporter()
    with reporter.live():
        summary = service.batch.batch_predict(request, reporter).to_json()
    counts = [(k, summary[k]) for k in ("files", "ok", "uncertain", "blank", "error")]
    emit(
        summary,
        as_json,
        lambda: [make_table(f"{summary['files']:,} {what} read by {summary['model']}", ["", "pictures"], counts)],
        footer=f"{summary['images_per_s']:,.0f} pictures/s ({summary['backend']}); rows in {summary['output']}",
    )


def _answered_by(predictor: service.Predictor, **answers: Any) -> dict[str, Any]:
    """What `predict` and `read` print as JSON: the model that read, why, and the answers."""
    return {"model": predictor.name, "model_path": str(predictor.path), "why": predictor.why, **answers}


def _fail_on_errors(errors: list[str | None], pictures: int) -> None:
    """After the table: exit 1 with one line when pictures could not be read (the others were)."""
    if len(errors) == 1:
        others = " The other pictures were read." if pictures > 1 else ""
        raise DigitlabError(f"{errors[0]}{others}")
    if errors:
        raise DigitlabError(
            f"{len(errors)} of {pictures} pictures could not be read (first: {errors[0]}); the table says why for each."
        )


@app.command()
def explain(
    files: Annotated[
        list[Path], typer.Argument(help="Pictures of digits (PNG, JPEG, BMP, GIF, TIFF or WebP), or folders of them.")
    ],
    model: Annotated[
        str,
        typer.Option(
            "--model", help="A model file, or a registry name for the newest saved one under --out (default: cnn)."
        ),
    ] = "cnn",
    out: Out = Path("runs"),
    data_dir: DataDir = None,
    as_json: Json = False,
) -> None:
    """Why a model read each picture as it did: a figure and JSON per picture in <run>/explanations/.

    cnn: Integrated Gradients and occlusion (Captum) for the answer and the runner-up; lr: weight images and
    input × weights; mlp: the most active first-layer units; knn: the k training digits it compared with;
    svm: the nearest support vectors; any other model: occlusion.
    """
    reporter = Reporter()
    with reporter.live():
        result = service.explain(service.ExplainRequest(tuple(files), model, out, data_dir), reporter).to_json()
    for row in result["explanations"]:  # the maps stay in the JSON files; stdout gets the figures
        row.pop("image", None)
        row["panels"] = [{k: v for k, v in p.items() if k != "values"} for p in row["panels"]]
    rows = []
    for row in result["explanations"]:
        evidence = ", ".join(f"{n['label']} ({n['distance']:.2f})" for n in row["neighbours"])
        rows.append(
            (
                Path(row["file"]).name,
                row["label"],
                f"{row['confidence']:.1%}",
                f"{row['runner_up']} {row['runner_up_probability']:.1%}",
                evidence or EVIDENCE.get(row["kind"], row["kind"]),
                f"{row['seconds'] * 1000:.0f}",
            )
        )
    notes = sorted({note for row in result["explanations"] for note in row["notes"]})
    emit(
        result,
        as_json,
        lambda: [
            make_table(
                f"why {result['model']} answered",
                ["file", "digit", "confidence", "runner-up", "evidence", "ms"],
                rows,
            )
        ],
        footer="\n".join([*(f"note: {n}" for n in notes), f"figures and JSON in {result['folder']}"]),
    )


@app.command("map")
def map_(
    run: RunArg = None,
    out: Out = Path("runs"),
    features: Annotated[
        str,
        typer.Option(
            "--model", help="Features to map: cnn (its penultimate layer) or pca (PCA-50 of pixels) (default: cnn)."
        ),
    ] = "cnn",
    method: Annotated[str, typer.Option("--method", help="umap or tsne (default: umap).")] = "umap",
    split: Annotated[
        str, typer.Option("--split", help="test (the run's test digits) or all (training and test) (default: test).")
    ] = "test",
    seed: Seed = 0,
    data_dir: DataDir = None,
    as_json: Json = False,
) -> None:
    """A 2-D map of the test digits (UMAP or t-SNE): coloured by label, misread ones ringed; saved in the run."""
    request = service.MapRequest(run, out, features, method, split, seed, data_dir)
    reporter = Reporter()
    with reporter.live():
        result = service.digit_map(request, reporter).to_json()
    rows = [
        ("digits", f"{result['n']:,} ({result['split']})"),
        ("features", result["features"]),
        ("method", result["method"]),
        ("misread by " + str(result["reader"]), f"{result['n_misread']:,}"),
        ("features (s)", f"{result['seconds_features']:.1f}"),
        ("embedding (s)", f"{result['seconds_embedding']:.1f}"),
        ("figure", result["figure"]),
    ]
    emit(
        result,
        as_json,
        lambda: [make_table(f"map of {Path(result['run']).name}", ["", "value"], rows)],
        footer=f"points in {result['json']}; `digitlab report` adds the figure, `digitlab dashboard` shows the map",
    )


@app.command()
def dashboard(
    run: RunArg = None,
    out: Out = Path("runs"),
    port: Annotated[int, typer.Option("--port", help="Port to serve on (default: 8501).")] = 8501,
    address: Annotated[str, typer.Option("--address", help="Address to listen on (default: localhost).")] = "localhost",
    browser: Annotated[bool, typer.Option("--browser", help="Open a browser tab (default: off).")] = False,
) -> None:
    """Start the Streamlit dashboard on a run (default: the latest); it loads saved models, never retrains."""
    import subprocess

    launch = service.dashboard.dashboard_launch(service.dashboard.DashboardRequest(run, out, port, address, browser))
    err_console.print(
        f"digitlab dashboard on http://{address}:{port} (run: {launch.run or 'none yet'}); Ctrl-C stops it"
    )
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":  # the server takes this process's place, so a stop signal reaches it directly
        os.execve(sys.executable, launch.command, launch.env)
    try:
        code = subprocess.call(launch.command, env=launch.env)
    except KeyboardInterrupt:
        code = 0
    if code not in (0, -2, 130):
        raise typer.Exit(code)


@app.command()
def export(
    model: Annotated[str, typer.Argument(help="A model file, or a registry name for the newest saved one (cnn).")],
    format: Annotated[str, typer.Option("--format", help="onnx (default: onnx).")] = "onnx",
    output: Annotated[
        Path | None, typer.Option("--output", help="File to write (default: <model>.onnx beside the model).")
    ] = None,
    out: Out = Path("runs"),
    force: Overwrite = False,
    as_json: Json = False,
) -> None:
    """Export the cnn to ONNX (BatchNorm folded), checked against PyTorch before it is written."""
    result = service.export_model(service.ExportRequest(model, format, output, out, force)).to_json()
    rows = [
        ("file", result["path"]),
        ("opset", result["opset"]),
        ("size MB", f"{result['bytes'] / 1e6:.2f}"),
        ("input", f"{result['input']['name']} {result['input']['datatype']} {result['input']['shape']}"),
        ("output", f"{result['output']['name']} {result['output']['datatype']} {result['output']['shape']}"),
        ("max |Δp| vs PyTorch", f"{result['max_abs_diff_vs_torch']:.1e}"),
    ]
    emit(result, as_json, lambda: [make_table(f"{result['model']} as ONNX", ["", "value"], rows)])


@app.command()
def serve(
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            help="A model file or registry name to serve; repeat for several, the first is the default "
            "(default: best, as predict).",
        ),
    ] = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on; 0.0.0.0 for every network (default: 127.0.0.1).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on (default: 8000).")] = 8000,
    workers: Annotated[
        int, typer.Option("--workers", help="Worker processes, each with the models; at most 2 a core (default: 1).")
    ] = 1,
    runtime: Annotated[
        str,
        typer.Option(
            "--runtime",
            help="auto: the cnn's ONNX copy when one is at hand (the shipped reader's or the reading cache's), "
            "else the saved model; torch: the saved model as it is; onnx: the cnn in onnxruntime (default: auto).",
        ),
    ] = "auto",
    out: Out = Path("runs"),
    max_batch: Annotated[
        int, typer.Option("--max-batch", help="Most images in one request (default: 1024).")
    ] = service.settings.MAX_BATCH,
    max_bytes: Annotated[
        int, typer.Option("--max-bytes", help="Largest request body in bytes (default: 20 MiB).")
    ] = service.settings.MAX_PICTURE_BYTES,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds a request may take (default: 30).")] = 30.0,
    max_connections: Annotated[
        int,
        typer.Option(
            "--max-connections",
            help="Open connections per worker; past it idle ones are closed first, then 503 (default: 1000).",
        ),
    ] = service.settings.MAX_CONNECTIONS,
    header_timeout: Annotated[
        float,
        typer.Option("--header-timeout", help="Seconds a connection has to send whole request headers (default: 10)."),
    ] = service.settings.HEADER_TIMEOUT_S,
    max_in_flight: Annotated[
        int,
        typer.Option("--max-in-flight", help="Requests answered at once per worker; past it 503 (default: 64)."),
    ] = service.settings.MAX_IN_FLIGHT,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            help="Require `Authorization: Bearer <token>`, the file's first line (or set "
            f"{service.settings.TOKEN_ENV}); health routes stay open (default: no token).",
        ),
    ] = None,
    access_log: Annotated[
        Path | None,
        typer.Option(
            "--access-log", help="Append one JSON line per request to this file; - for stderr (default: none)."
        ),
    ] = None,
) -> None:
    """Serve the recogniser over HTTP: REST /predict and the Open Inference Protocol v2 (/v2).

    SIGHUP (or POST /v2/repository/models/NAME/load) reloads the models from disk without a restart;
    SIGINT and SIGTERM finish the requests in flight, then stop."""
    import signal
    import socket

    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the server handles it: a reload, never a stop
    request = service.serving.ServeRequest(
        tuple(model or ("best",)),
        host,
        port,
        workers,
        runtime,
        out,
        max_bytes,
        max_batch,
        timeout,
        max_connections,
        header_timeout,
        max_in_flight,
        token_file,
        access_log,
    )
    served = service.serving.load_served(request)  # missing, corrupt, tampered: one line, before the port is bound
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise DigitlabError(
            f"--host {host} --port {port}: cannot listen there ({exc.strerror}); pass another --port."
        ) from None
    os.environ[service.settings.SERVE_ENV] = request.to_env()
    names = ", ".join(f"{m.name} ({m.version})" for m in served)
    del served  # each worker (or the server below) loads its own; the supervisor keeps no copy
    gc.collect()
    err_console.print(
        f"digitlab serve: {names} on http://{host}:{port} (docs: http://{host}:{port}/docs); Ctrl-C stops it",
        highlight=False,
        soft_wrap=True,
    )

    def drain(signum: int, frame: Any) -> None:  # uvicorn drains in-flight requests, then hands the signal back
        del signum, frame

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, drain)
    from digitlab.faces.server import supervisor

    supervisor.run(request)
    err_console.print("digitlab serve: stopped", highlight=False)
