"""The honest real-world check (issue 32): every glyph family read by a reader that never saw it.

For each family of ``strokes.FAMILIES`` (plain; school: flagged 1, hooked 7 and 9; continental: flag-and-base 1,
crossed 7, open 4, looped 2 …; rounded: closed-top 4, one-stroke 8 with a small upper loop; print: based 1,
crossed 7 without a serif, straight-tailed 9), the cnn-hands recipe is trained on full MNIST plus 10,000
pen-drawn digits whose writers never draw a glyph of that family (``strokes.holding_out``: not its own glyphs,
not the ones it shares with other families), then reads that family's check set: writers of the family's
glyphs only, with their own slants and pens, photographed under every condition of ``strokes.CONDITIONS``
(``strokes.family_check_set``, a stream of its own). The headline is the mean and the worst held-out family;
per family, per digit and per condition below. The training writers vary their glyphs as the recipe's do
(``strokes.RECIPE_VARIATION``: optional strokes left out, a stray stroke across; ``--variation none``: as
before issue 32, for comparison). The shipped reader (whose writers draw every family) is read on every family
too, and on MNIST test digits written on a larger light page, centred and anywhere (``page_check``).
MNIST test digits are never in training. Models are kept in benchmarks/runs/heldout-<family>-<seed>-<recipe>.pt.
Writes benchmarks/heldout.json and the "heldout" section of BENCHMARKS.md.
Usage: python benchmarks/heldout.py [--seed 0] [--n-per-class 10] [--families plain,school,...] [--variation none]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from _report import HERE, machine, table, update_section
from digitlab.core.files import write_json
from digitlab.data import strokes
from digitlab.data.datasets import load_dataset
from digitlab.models import cnn, shipped
from digitlab.models.store import load_model, save_model
from digitlab.training.train import model_metadata, train_and_score

RUNS = HERE / "runs"
GOALS = {"mean": 0.995, "worst": 0.99}


VARIATIONS = {"recipe": strokes.RECIPE_VARIATION, "none": strokes.NO_VARIATION}


def held_out_reader(family: str, seed: int, variation: str = "recipe") -> Any:
    """cnn-hands trained with no writer drawing a glyph of ``family`` (kept in benchmarks/runs, named by the
    recipe's writers' stream so that a changed recipe trains afresh); ``variation``: how the writers vary their
    glyphs (``recipe``: as the shipped reader's do; ``none``: copied as drawn, the recipe before issue 32)."""
    import hashlib

    with strokes.varying(VARIATIONS[variation]):
        probe, _ = strokes.synthetic_digits(2, seed=seed, progress=False)
    recipe = hashlib.sha256(probe.tobytes() + repr(sorted(cnn.HANDS.items())).encode()).hexdigest()[:8]
    path = RUNS / f"heldout-{family}-{seed}-{recipe}.pt"
    if path.is_file():
        return load_model(path)[0]
    ds = load_dataset("mnist")
    started = time.perf_counter()
    with strokes.holding_out(family), strokes.varying(VARIATIONS[variation]):
        trained = train_and_score(shipped.RECIPE, ds, seed)
    print(f"trained without {family}: MNIST {trained.metrics['accuracy']:.2%} in {time.perf_counter() - started:.0f} s")
    RUNS.mkdir(parents=True, exist_ok=True)
    save_model(path, trained.model, dict(model_metadata(trained, ds, seed), held_out=family, variation=variation))
    return trained.model


def read(model: Any, cells: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    x = np.concatenate([c[0] for c in cells.values()])
    y = np.concatenate([c[1] for c in cells.values()])
    condition = np.concatenate([[k] * len(c[1]) for k, c in cells.items()])
    right = model.predict(x) == y
    return {
        "accuracy": float(right.mean()),
        "digits": {str(d): float(right[y == d].mean()) for d in range(10)},
        "conditions": {k: float(right[condition == k].mean()) for k in cells},
        "n": len(y),
    }


PAGE_SIZES = {"large (250–450 px)": (250, 450), "small (80–160 px)": (80, 160)}


def on_a_page(digit: np.ndarray, side: int, anywhere: bool, rng: np.random.Generator) -> np.ndarray:
    """An MNIST digit (white on black) written dark on a 1200 × 900 light page, ``side`` pixels tall, in the
    middle or anywhere on it (its edge touching the page's edge at worst), lit unevenly, saved as a JPEG."""
    from PIL import Image

    page = strokes._paper(rng, (200, 250), 20)  # (900, 1200) float
    ink = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC), float) / 255.0
    h, w = page.shape
    top, left = (
        (int(rng.uniform(0, h - side)), int(rng.uniform(0, w - side)))
        if anywhere
        else ((h - side) // 2, (w - side) // 2)
    )
    region = page[top : top + side, left : left + side]
    page[top : top + side, left : left + side] = region * (1 - ink) + rng.uniform(20, 70) * ink
    return strokes._jpeg(page, 85)


def page_check(reader: Any, seed: int, n: int = 1000) -> dict[str, Any]:
    """Issue 32's item 4: MNIST **test** digits (never in training) on a larger light page, in the middle and
    anywhere, large and small, read by ``reader`` through ``to_mnist`` as `digitlab predict` reads a photo."""
    from digitlab.data.pictures import to_mnist

    ds = load_dataset("mnist")
    x, y = ds.x_test[:n].reshape(-1, 28, 28), ds.y_test[:n]
    rng = np.random.default_rng([seed, 0x9A9E])
    out: dict[str, Any] = {"n": len(y), "as given": float((reader.predict(x) == y).mean())}
    for size, (low, high) in PAGE_SIZES.items():
        for where in ("centred", "anywhere"):
            pictures = np.stack(
                [to_mnist(on_a_page(d, int(rng.uniform(low, high)), where == "anywhere", rng)) for d in x]
            )
            out[f"{size}, {where}"] = float((reader.predict(pictures) == y).mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-per-class", type=int, default=10, help="writers per family and condition (default: 10)")
    parser.add_argument("--families", default=",".join(strokes.FAMILIES))
    parser.add_argument(
        "--variation",
        choices=list(VARIATIONS),
        default="recipe",
        help="how the training writers vary their glyphs: as the recipe does (default), or none (before issue 32)",
    )
    args = parser.parse_args()
    reader = load_model(shipped.model_path())[0]
    seen_by_reader = set(strokes.FAMILY_WEIGHTS)  # the families the shipped reader's writers drew
    rows = []
    for family in args.families.split(","):
        started = time.perf_counter()
        cells = strokes.family_check_set(family, args.n_per_class, args.seed)
        print(f"{family}: {sum(len(c[1]) for c in cells.values())} pictures in {time.perf_counter() - started:.0f} s")
        held = read(held_out_reader(family, args.seed, args.variation), cells)
        own = read(reader, cells)
        row = {"family": family, "held_out": held, "shipped": own, "shipped_saw_it": family in seen_by_reader}
        rows.append(row)
        print(family, f"held out {held['accuracy']:.2%}", f"shipped {own['accuracy']:.2%}", flush=True)
    accuracies = [r["held_out"]["accuracy"] for r in rows]
    result = {
        "machine": machine(),
        "seed": args.seed,
        "n_per_family": rows[0]["held_out"]["n"] if rows else 0,
        "families": rows,
        "mean": float(np.mean(accuracies)),
        "worst": min(accuracies),
        "worst_family": rows[int(np.argmin(accuracies))]["family"],
        "goals": GOALS,
        "variation": args.variation,
        "page": page_check(reader, args.seed),
    }
    print("page:", result["page"], flush=True)
    if args.variation != "recipe":  # an experiment beside the recipe: its own file, the recipe's section untouched
        write_json(HERE / f"heldout-{args.variation}.json", result)
        return
    write_json(HERE / "heldout.json", result)
    report(result)


def report(result: dict[str, Any]) -> None:
    rows = result["families"]
    conditions = list(rows[0]["held_out"]["conditions"])

    def worst_digit(found: dict[str, float]) -> str:
        digit = min(found, key=lambda d: found[d])
        return f"{found[digit]:.1%} ({digit})"

    family_rows = [
        [
            r["family"],
            f"{r['held_out']['accuracy']:.2%}",
            worst_digit(r["held_out"]["digits"]),
            f"{min(r['held_out']['conditions'].values()):.1%}",
            f"{r['shipped']['accuracy']:.2%}" + ("" if r["shipped_saw_it"] else " (held out)"),
        ]
        for r in rows
    ]
    digit_rows = [[r["family"], *(f"{r['held_out']['digits'][str(d)]:.1%}" for d in range(10))] for r in rows]
    condition_rows = [[r["family"], *(f"{r['held_out']['conditions'][k]:.1%}" for k in conditions)] for r in rows]
    m = result["machine"]
    update_section(
        "heldout",
        "## The honest real-world check: every family held out (`benchmarks/heldout.py`)\n\n"
        f"{m['cpus']} CPUs, {m['date']}, seed {result['seed']}, {result['n_per_family']:,} photographed digits a "
        "family. Each row's reader is the cnn-hands recipe trained on full MNIST and pen-drawn digits whose "
        "writers never drew a glyph of that family (nor one it shares), varying the glyphs they copy as the "
        "recipe does (`strokes.RECIPE_VARIATION`: optional strokes left out half the time, a stray stroke across "
        "15% of digits; the last two epochs without OpenCV augmentation). **Held-out mean "
        f"{result['mean']:.2%}, worst family {result['worst']:.2%} ({result['worst_family']})** (goals: mean ≥ "
        f"{GOALS['mean']:.1%}, worst ≥ {GOALS['worst']:.1%}; before these changes: mean 96.98%, worst 91.0% "
        "(school)). The shipped reader (its writers now draw every family) reads each family at the right; those "
        "figures are not held out.\n\n"
        + table(["family", "held out", "worst digit", "worst condition", "shipped reader"], family_rows)
        + "\n\nPer digit (held out):\n\n"
        + table(["family", *map(str, range(10))], digit_rows)
        + "\n\nPer photo condition (held out):\n\n"
        + table(["family", *conditions], condition_rows)
        + page_section(result.get("page")),
    )


def page_section(page: dict[str, Any] | None) -> str:
    if not page:
        return ""
    rows = [[k, f"{v:.1%}"] for k, v in page.items() if k != "n"]
    return (
        f"\n\nOff-centre on a larger light page (issue 32, item 4): {page['n']:,} MNIST test digits written dark "
        "on a 1200 × 900 page lit unevenly, in the middle or anywhere on it, large or small, saved as JPEG, read "
        "by the shipped reader through `to_mnist` (as `digitlab predict` reads a photo):\n\n"
        + table(["digits", "read right"], rows)
    )


if __name__ == "__main__":
    main()
