"""Look inside: how long an explanation and a map take on 2 cores.

1. ``explain`` of one picture by the full-MNIST cnn, the model already loaded (goal: <= 300 ms):
   50 different test digits after one warm-up call; median, 95th percentile and worst, with the
   Integrated Gradients completeness gap of each; figure drawing timed apart.
2. The map: each configuration in a fresh process, as ``digitlab map`` runs it (imports and numba's
   compilation included), on the 10,000 test digits (goal: cnn + UMAP <= 60 s) and on all 70,000.
   Baseline in the same run: UMAP as it comes (pynndescent's approximate neighbours) on the same features.
   Quality: 5-NN accuracy of the true labels in the 2-D map (5-fold), how cleanly the map separates the digits.

Writes benchmarks/explain.json and the "explain" section of BENCHMARKS.md.
Usage: python benchmarks/explain.py [--model runs/…/cnn.pt]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import numpy as np

from _report import HERE, machine, table, update_section

CONFIGS = [  # (name, features, method, split, exact kNN)
    ("cnn + UMAP, 10,000 (digitlab)", "cnn", "umap", "test", True),
    ("cnn + UMAP, 10,000 (UMAP as it comes: pynndescent)", "cnn", "umap", "test", False),
    ("PCA-50 + UMAP, 10,000", "pca", "umap", "test", True),
    ("cnn + t-SNE, 10,000", "cnn", "tsne", "test", True),
    ("cnn + UMAP, 70,000", "cnn", "umap", "all", True),
]


def cnn_path(path: str | None) -> str:
    if path:
        return path
    saved = HERE / "runs" / "cnn.pt"
    if not saved.is_file():
        sys.exit("benchmarks/runs/cnn.pt is missing: run benchmarks/personalise.py first (it trains and saves it)")
    return str(saved)


def one_map(model: str, features: str, method: str, split: str, exact: bool) -> dict[str, float]:
    """One map, timed from the first import (run in a fresh process)."""
    start = time.perf_counter()
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    from digitlab.analysis import digitmap
    from digitlab.data.datasets import load_dataset
    from digitlab.models.store import load_model

    ds = load_dataset("mnist")
    x = ds.x_test if split == "test" else np.concatenate([ds.x_train, ds.x_test])
    y = ds.y_test if split == "test" else np.concatenate([ds.y_train, ds.y_test])
    loaded = time.perf_counter()
    cnn = load_model(model)[0] if features == "cnn" else None
    if exact:
        embedding, _ = digitmap.build(x, features, method, cnn, 0)
        xy, feat_s, embed_s = embedding.xy, embedding.seconds_features, embedding.seconds_embedding
    else:
        import umap

        t0 = time.perf_counter()
        feats = digitmap.cnn_features(cnn, x)
        t1 = time.perf_counter()
        xy = umap.UMAP(n_epochs=200, random_state=0).fit_transform(feats)
        feat_s, embed_s = t1 - t0, time.perf_counter() - t1
    total = time.perf_counter() - start
    sample = np.random.default_rng(0).choice(len(y), min(len(y), 10_000), replace=False)
    knn = float(cross_val_score(KNeighborsClassifier(5), xy[sample], y[sample], cv=5).mean())
    return {
        "n": len(y),
        "seconds": total,
        "seconds_without_data": total - (loaded - start),
        "features_s": feat_s,
        "embedding_s": embed_s,
        "knn5_accuracy_2d": knn,
    }


def explain_timing(model_path: str) -> dict[str, object]:
    from digitlab.analysis import explain, plots
    from digitlab.data.datasets import load_dataset
    from digitlab.models.store import load_model

    ds = load_dataset("mnist")
    model, _ = load_model(model_path)
    explain.explain(model, ds.x_test[0], "cnn")  # warm-up: Captum's imports, first autograd graph
    seconds, gaps, draw = [], [], []
    for i in range(1, 51):
        found = explain.explain(model, ds.x_test[i], "cnn")
        seconds.append(found.seconds)
        gaps.append(found.numbers["integrated_gradients"][found.label]["relative_error"])  # the answer's map
        t = time.perf_counter()
        fig = plots.explanation(found.image, [(p.title, p.values, p.style, p.caption) for p in found.panels], "x")
        fig.savefig(HERE / "runs" / "explain-sample.png")
        import matplotlib.pyplot as plt

        plt.close(fig)
        draw.append(time.perf_counter() - t)
    ordered = sorted(seconds)
    return {
        "n": len(seconds),
        "median_ms": statistics.median(seconds) * 1000,
        "p95_ms": ordered[int(0.95 * len(ordered)) - 1] * 1000,
        "max_ms": ordered[-1] * 1000,
        "completeness_gap_max": max(gaps),
        "completeness_gap_median": statistics.median(gaps),
        "figure_median_ms": statistics.median(draw) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", help="a full-MNIST cnn.pt (default: benchmarks/runs/cnn.pt)")
    parser.add_argument("--one", nargs=5, help=argparse.SUPPRESS)  # model features method split exact
    parser.add_argument("--explain-only", action="store_true", help="time explain again; keep the maps of explain.json")
    args = parser.parse_args()
    if args.one:
        model, features, method, split, exact = args.one
        print(json.dumps(one_map(model, features, method, split, exact == "1")))
        return
    model = cnn_path(args.model)
    timing = explain_timing(model)
    print(f"explain (cnn): median {timing['median_ms']:.0f} ms, p95 {timing['p95_ms']:.0f} ms", flush=True)
    maps = []
    if args.explain_only:
        maps = json.loads((HERE / "explain.json").read_text())["maps"]
    for name, features, method, split, exact in [] if args.explain_only else CONFIGS:
        proc = subprocess.run(
            [sys.executable, __file__, "--one", model, features, method, split, "1" if exact else "0"],
            capture_output=True,
            text=True,
            check=True,
        )
        row = dict(json.loads(proc.stdout.strip().splitlines()[-1]), name=name)
        maps.append(row)
        print(f"{name}: {row['seconds']:.1f} s, 5-NN in 2-D {row['knn5_accuracy_2d']:.2%}", flush=True)
    goal_map = maps[0]["seconds"] <= 60
    result = {
        "machine": machine(),
        "model": model,
        "explain": timing,
        "maps": maps,
        "goals": {"explain_within_300_ms": timing["median_ms"] <= 300, "map_10k_within_60_s": goal_map},
    }
    from digitlab.core.files import write_json

    write_json(HERE / "explain.json", result)
    body = [
        "## Look inside: explanations and the map (`benchmarks/explain.py`)",
        "",
        f"{result['machine']['cpus']} cores, {result['machine']['date']}; the full-MNIST cnn "
        f"(`benchmarks/runs/cnn.pt`, made by `benchmarks/personalise.py`).",
        "",
        "**`digitlab explain` with the cnn**, model loaded, one picture: Integrated Gradients (48 steps) and "
        "occlusion (4×4 patches, stride 2) for the answer and the runner-up, 50 test digits after a warm-up call; "
        "a map whose logit moves by 1 or more and misses completeness by over 5% is computed again with 96, "
        "then 192 steps.",
        "",
        table(
            [
                "median",
                "95th percentile",
                "worst",
                "IG completeness gap of the answer (median / worst)",
                "drawing the figure",
            ],
            [
                [
                    f"{timing['median_ms']:.0f} ms",
                    f"{timing['p95_ms']:.0f} ms",
                    f"{timing['max_ms']:.0f} ms",
                    f"{timing['completeness_gap_median']:.2%} / {timing['completeness_gap_max']:.2%}",
                    f"{timing['figure_median_ms']:.0f} ms",
                ]
            ],
        ),
        "",
        "**`digitlab map`**, each in a fresh process (imports and numba's compilation included, as a user runs it); "
        "quality = 5-NN accuracy of the true labels in the 2-D map (5-fold, at most 10,000 points).",
        "",
        table(
            ["map", "digits", "total", "of which features", "embedding", "5-NN accuracy in 2-D"],
            [
                [
                    m["name"],
                    f"{m['n']:,}",
                    f"{m['seconds']:.1f} s",
                    f"{m['features_s']:.1f} s",
                    f"{m['embedding_s']:.1f} s",
                    f"{m['knn5_accuracy_2d']:.2%}",
                ]
                for m in maps
            ],
        ),
        "",
        f"Goals: explain ≤ 300 ms (median {timing['median_ms']:.0f} ms: "
        f"{'met' if result['goals']['explain_within_300_ms'] else 'not met'}); the 10,000-digit map ≤ 60 s "
        f"({maps[0]['seconds']:.1f} s: {'met' if goal_map else 'not met'}). digitlab hands UMAP an exact "
        "neighbour graph from scikit-learn, which spares pynndescent's numba compilation in every fresh process.",
        "",
        "Reproduce: `python benchmarks/explain.py`.",
    ]
    update_section("explain", "\n".join(body))


if __name__ == "__main__":
    main()
