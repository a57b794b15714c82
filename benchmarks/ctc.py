"""Reading whole numbers, approach (b) of issue 33: a segmentation-free line reader (CNN + BiLSTM, CTC loss).

Trained here from scratch on synthetic lines composed (``data.number_lines``) from MNIST **training** digits and
``strokes`` writers' digits (never a test digit: the check set of benchmarks/read.py is made of MNIST test
digits), with random heights, gaps from overlaps to wide spaces, slants, decimal points and commas, minus
signs, photographed (scan, photo, blur, noise), and read back through the reading path's intake
(``ink_map``). Each line is scaled to 32 pixels high; the net reads it as a sequence of columns and CTC
decodes digits, ``.`` and ``-``. Then it reads benchmarks/read.py's check set, group by group, beside the
segmentation reader of `digitlab read`.
Writes benchmarks/ctc.json (and benchmarks/runs/ctc-<seed>.pt) and the "ctc" section of BENCHMARKS.md.
Usage: python benchmarks/ctc.py [--lines 30000] [--epochs 8] [--seed 0] [--per-group 100]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from _report import HERE, machine, table, update_section
from digitlab.core.files import write_json
from digitlab.data import strokes
from digitlab.data.datasets import load_dataset
from digitlab.data.lines import line_input
from digitlab.data.number_lines import Layout, compose, on_paper
from digitlab.models.lines import ALPHABET, HEIGHT, LineReader, build_line_net, decode, export_onnx

MAX_WIDTH = 384


def to_input(picture: Any) -> np.ndarray | None:
    """A picture of one line -> (32, w) float32 ink in [0, 1], as the reader reads it (training: at most
    ``MAX_WIDTH`` wide); None when blank."""
    line = line_input(picture, widest=MAX_WIDTH)
    return None if line is None else line.image


def random_text(rng: np.random.Generator) -> str:
    digits = "".join(str(int(d)) for d in rng.integers(0, 10, int(rng.integers(1, 10))))
    roll = rng.random()
    if roll < 0.25 and len(digits) >= 2:
        k = int(rng.integers(1, len(digits)))
        digits = digits[:k] + str(rng.choice([".", ","])) + digits[k:]
    if rng.random() < 0.15:
        digits = "-" + digits
    return digits


def random_layout(rng: np.random.Generator) -> Layout:
    low = rng.uniform(-0.15, 0.3)
    return Layout(
        height=int(rng.uniform(28, 72)),  # small pictures: the intake's cost grows with their pixels
        gap=(low, low + rng.uniform(0.02, 0.35)),
        slant=float(rng.choice([0.0, rng.uniform(-8, 25)])),
        wander=rng.uniform(0.0, 0.07),
        margin=int(rng.uniform(10, 50)),
    )


def make_lines(n: int, seed: int) -> list[tuple[np.ndarray, str]]:
    ds = load_dataset("mnist")
    x, y = ds.x_train.reshape(-1, 28, 28), ds.y_train
    drawn, drawn_y = strokes.synthetic_digits(300, seed=seed + 7, progress=False)  # 3,000 pen-drawn digits
    pools = {d: [x[y == d], drawn[drawn_y == d]] for d in range(10)}
    rng = np.random.default_rng([seed, 0xC7C])
    out = []
    started = time.perf_counter()
    while len(out) < n:
        text = random_text(rng)
        pool_k = int(rng.random() < 0.3)  # 30% of lines in pen-drawn hands
        glyphs = [pools[int(c)][pool_k][rng.integers(len(pools[int(c)][pool_k]))] for c in text if c.isdigit()]
        line, _ = compose(glyphs, text, rng, random_layout(rng))
        condition = str(rng.choice(["scan", "scan", "photo", "blur", "noise"]))
        seen = to_input(on_paper(line, rng, condition))
        if seen is not None:
            out.append((seen, text.replace(",", ".")))
        if len(out) % 5000 == 0 and out:
            print(f"  {len(out):,} lines in {time.perf_counter() - started:.0f} s", flush=True)
    return out


def batches(lines: list[tuple[np.ndarray, str]], size: int, rng: np.random.Generator) -> Any:
    order = rng.permutation(len(lines))
    for start in range(0, len(order), size):
        chunk = [lines[k] for k in order[start : start + size]]
        width = max(img.shape[1] for img, _ in chunk)
        width += (-width) % 4
        x = np.zeros((len(chunk), 1, HEIGHT, width), np.float32)
        for k, (img, _) in enumerate(chunk):
            x[k, 0, :, : img.shape[1]] = img
        targets = [torch.tensor([ALPHABET.index(c) + 1 for c in text]) for _, text in chunk]
        lengths = torch.tensor([img.shape[1] // 4 for img, _ in chunk])
        yield torch.from_numpy(x), targets, lengths


def read_lines(reader: LineReader, pictures: list[np.ndarray]) -> list[tuple[str, float]]:
    """Each picture's text and confidence as `digitlab read` gives them with this line reader."""
    out = []
    for picture in pictures:
        line = line_input(picture)
        if line is None:
            out.append(("", 0.0))
            continue
        symbols = decode(reader.read(line.image))
        out.append(("".join(s.label for s in symbols), float(np.prod([s.confidence for s in symbols]))))
    return out


def train(lines: list[tuple[np.ndarray, str]], epochs: int, seed: int) -> Any:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = build_line_net()
    steps = epochs * int(np.ceil(len(lines) / 64))
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    for epoch in range(epochs):
        net.train()
        started, total, seen = time.perf_counter(), 0.0, 0
        for x, targets, lengths in batches(lines, 64, rng):
            lp = net(x).transpose(0, 1)  # (T, B, C)
            loss = ctc(lp, torch.cat(targets), lengths, torch.tensor([len(t) for t in targets]))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(targets)
            seen += len(targets)
        print(
            f"epoch {epoch + 1}/{epochs}: loss {total / seen:.3f} ({time.perf_counter() - started:.0f} s)", flush=True
        )
    return net


def ship(pt: Path, onnx: Path, result: dict[str, Any], args: argparse.Namespace) -> None:
    """The line reader into src/digitlab/models/shipped/: its weights, its ONNX, their pins and its manifest."""
    import hashlib
    import shutil

    from digitlab.models import shipped

    target = shipped.FOLDER
    files = {"line_reader.pt": pt, "line_reader.onnx": onnx}
    for name, source in files.items():
        shutil.copyfile(source, target / name)
    pins = {name: hashlib.sha256((target / name).read_bytes()).hexdigest() for name in files}
    (target / "line_pins.py").write_text(
        '"""SHA-256 of the shipped line reader\'s files (benchmarks/ctc.py --ship), checked before loading."""'
        "\n\nSHA256 = {\n" + "".join(f'    "{n}": "{d}",\n' for n, d in pins.items()) + "}\n"
    )
    manifest = {
        "name": "line-reader",
        "what": "CNN + BiLSTM, CTC over 0-9 . -; a line 32 pixels high, a column every 4 pixels",
        "command": f"python benchmarks/ctc.py --lines {args.lines} --epochs {args.epochs} --seed {args.seed} --ship",
        "trained_on": "synthetic lines of MNIST training digits and pen-drawn digits (never a test digit)",
        "figures": {"check_set": result["ctc"]["overall"], "groups": result["ctc"]["groups"]},
        "files": pins,
    }
    write_json(target / shipped.LINE_MANIFEST, manifest)
    print(f"shipped: {', '.join(files)} in {target}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=30_000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-group", type=int, default=100)
    parser.add_argument("--ship", action="store_true", help="write it into the package as the shipped line reader")
    args = parser.parse_args()
    torch.set_num_threads(2)
    path = HERE / "runs" / f"ctc-{args.seed}-{args.lines}-{args.epochs}.pt"
    started = time.perf_counter()
    if path.is_file():
        net = build_line_net()
        net.load_state_dict(torch.load(path, weights_only=True))
        before = __import__("json").loads((HERE / "ctc.json").read_text()) if (HERE / "ctc.json").is_file() else {}
        same = (before.get("lines"), before.get("epochs"), before.get("seed")) == (args.lines, args.epochs, args.seed)
        train_s = before.get("train_s") if same else None  # measured when it was trained
    else:
        lines = make_lines(args.lines, args.seed)
        print(f"{len(lines):,} training lines in {time.perf_counter() - started:.0f} s", flush=True)
        net = train(lines, args.epochs, args.seed)
        train_s = time.perf_counter() - started
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(net.state_dict(), path)
    from read import GROUPS, check_set, score

    rows = check_set(args.per_group, 0)
    onnx = path.with_suffix(".onnx")
    export_onnx(net, onnx)
    reader = LineReader(path, onnx)
    t0 = time.perf_counter()
    answers = read_lines(reader, [r["picture"] for r in rows])
    per_number = (time.perf_counter() - t0) / len(rows)
    for row, (text, _) in zip(rows, answers, strict=True):
        row["ctc"] = text
    figures = score(rows, "ctc")
    result = {
        "machine": machine(),
        "lines": args.lines,
        "epochs": args.epochs,
        "seed": args.seed,
        "train_s": train_s,
        "ms_per_number": 1000 * per_number,
        "ctc": figures,
        "misreads": [
            {"group": r["group"], "text": r["text"], "read": r["ctc"]}
            for r in rows
            if r["ctc"] != r["text"].replace(",", ".")
        ][:30],
    }
    write_json(HERE / "ctc.json", result)
    if args.ship:
        ship(path, onnx, result, args)
    print({k: v for k, v in result.items() if k not in ("machine", "misreads")}, flush=True)
    import json

    earlier = json.loads((HERE / "read.json").read_text()) if (HERE / "read.json").is_file() else {}
    seg = earlier.get("segments") or earlier.get("digitlab")
    out_rows = []
    for g in [*GROUPS, "overall"]:
        c = figures["overall"] if g == "overall" else figures["groups"][g]
        s = (seg["overall"] if g == "overall" else seg["groups"][g]) if seg else None
        out_rows.append([g, f"{c['numbers']:.1%}", f"{c['characters']:.1%}", f"{s['numbers']:.1%}" if s else "—"])
    m = result["machine"]
    update_section(
        "ctc",
        "## Whole numbers, approach (b): a CTC line reader (`benchmarks/ctc.py`)\n\n"
        f"CNN + BiLSTM with CTC, trained here from scratch on {args.lines:,} synthetic lines of MNIST training digits "
        f"and pen-drawn digits ({args.epochs} epochs, {train_s or 0:.0f} s on {m['cpus']} CPUs), read on "
        "benchmarks/read.py's check set (MNIST test digits), beside the segmentation reader of `digitlab read` "
        f"(benchmarks/read.json). {result['ms_per_number']:.0f} ms a number. {m['date']}.\n\n"
        + table(["group", "numbers (CTC)", "characters (CTC)", "numbers (segmentation)"], out_rows),
    )


if __name__ == "__main__":
    main()
