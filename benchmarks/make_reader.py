"""Make the reader digitlab ships: `digitlab predict`, `serve` and the dashboard's Try it answer with it
right after install, with no training and no download.

One command, pinned data and seed: the cnn-hands recipe (the cnn, 12 epochs of OpenCV-augmented batches of
the 60,000 MNIST training digits plus 10,000 digits pen-drawn by random writers; ``registry`` "cnn-hands")
trained with ``--seed`` (0) on the MNIST files whose SHA-256 digitlab pins. The MNIST test split scores it
once, then its ONNX export (checked against PyTorch) is written beside it, and every file's SHA-256 goes
into the manifest the package checks before loading anything:

    src/digitlab/models/shipped/reader.pt        state_dict (loaded with weights_only=True)
    src/digitlab/models/shipped/reader.pt.json   config, classes and metadata
    src/digitlab/models/shipped/reader.onnx      the same network for onnxruntime (what `predict` loads)
    src/digitlab/models/shipped/MANIFEST.json    the recipe, the command, the data, the figures
    src/digitlab/models/shipped/pins.py          SHA-256 of each file, pinned in the code

With ``--check`` it also reads benchmarks/realworld.py's check set (kept in benchmarks/runs). That set
shares its glyph families with the reader's synthetic writers, so it says how well the reader learned those
families, not how it reads a hand it never saw (issue 32's held-out check is the next step).
Usage: python benchmarks/make_reader.py [--seed 0] [--check]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from _report import HERE, machine
from digitlab.core.files import atomic_write_bytes, library_versions, write_json
from digitlab.data.datasets import load_dataset
from digitlab.models import registry, shipped
from digitlab.models.store import save_model
from digitlab.service.exporting import PARITY_TOLERANCE, onnx_bytes, parity, session
from digitlab.training.train import model_metadata, train_and_score


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=0, help="the one seed of the recipe (default: 0)")
    parser.add_argument("--check", action="store_true", help="also read the real-world check set")
    args = parser.parse_args()
    ds = load_dataset("mnist")
    started = time.perf_counter()
    print(f"training {shipped.RECIPE} on {len(ds.y_train):,} MNIST digits, seed {args.seed} ...", flush=True)
    trained = train_and_score(shipped.RECIPE, ds, args.seed)
    fit_s = time.perf_counter() - started
    print(f"MNIST test accuracy {trained.metrics['accuracy']:.4%} ({fit_s:.0f} s)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        made = Path(tmp) / f"{shipped.NAME}.pt"
        meta = dict(model_metadata(trained, ds, args.seed), model=shipped.NAME, recipe=shipped.RECIPE)
        save_model(made, trained.model, meta)
        onnx = onnx_bytes(trained.model, made)
        sample = np.concatenate([ds.x_test[:500], np.zeros((1, 28, 28), np.uint8)])
        delta = parity(trained.model, session(onnx), sample)
        if delta > PARITY_TOLERANCE:
            raise SystemExit(f"the ONNX export differs from PyTorch by {delta:.2e}; not shipped.")
        atomic_write_bytes(Path(tmp) / f"{shipped.NAME}.onnx", onnx)
        figures: dict[str, object] = {"mnist_test_accuracy": trained.metrics["accuracy"], "onnx_max_delta": delta}
        if args.check:
            from realworld import check_set

            x, y, style, condition = check_set(10, 0)
            right = trained.model.predict(x) == y
            figures["realworld_check"] = {
                "accuracy": float(right.mean()),
                "styles": {s: float(right[style == s].mean()) for s in sorted(set(style))},
                "conditions": {k: float(right[condition == k].mean()) for k in sorted(set(condition))},
                "note": "the check set shares its glyph families with the reader's writers (not held out)",
            }
        target = shipped.FOLDER
        target.mkdir(parents=True, exist_ok=True)
        files = {}
        for name in (f"{shipped.NAME}.pt", f"{shipped.NAME}.pt.json", f"{shipped.NAME}.onnx"):
            shutil.copyfile(Path(tmp) / name, target / name)
            files[name] = sha256(target / name)
    manifest = {
        "name": shipped.NAME,
        "recipe": shipped.RECIPE,
        "description": registry.get(shipped.RECIPE).description,
        "seed": args.seed,
        "command": f"python benchmarks/make_reader.py --seed {args.seed}" + (" --check" if args.check else ""),
        "data": {"dataset": "mnist", "files": ds.provenance.get("files", {})},
        "files": files,
        "figures": figures,
        "fit_s": fit_s,
        "versions": library_versions(),
        "machine": machine(),
    }
    write_json(target / shipped.MANIFEST, manifest)
    pins = "".join(f'    "{name}": "{digest}",\n' for name, digest in files.items())
    (target / "pins.py").write_text(
        '"""SHA-256 of the shipped reader\'s files, written by benchmarks/make_reader.py (checked before loading)."""'
        f"\n\nSHA256 = {{\n{pins}}}\n"
    )
    write_json(HERE / "make_reader.json", manifest)
    print(json.dumps({k: manifest[k] for k in ("files", "figures")}, indent=2))


if __name__ == "__main__":
    main()
