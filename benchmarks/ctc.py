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
from typing import Any

import numpy as np
import torch
from torch import nn

from _report import HERE, machine, table, update_section
from digitlab.core.files import write_json
from digitlab.data import strokes
from digitlab.data.datasets import load_dataset
from digitlab.data.number_lines import Layout, compose, on_paper
from digitlab.data.pictures import ink_map

ALPHABET = "0123456789.-"  # class k + 1; 0 is CTC's blank
HEIGHT = 32
MAX_WIDTH = 384


def to_input(picture: Any) -> np.ndarray | None:
    """A picture of one line -> (32, w) float32 ink in [0, 1], cropped to the ink; None when blank."""
    from PIL import Image

    ink, _ = ink_map(picture, smallest=0.005, line=True)
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if not len(rows):
        return None
    box = ink[max(0, rows[0] - 2) : rows[-1] + 3, max(0, cols[0] - 2) : cols[-1] + 3]
    width = int(np.clip(round(box.shape[1] * HEIGHT / box.shape[0]), 8, MAX_WIDTH))
    img = Image.fromarray(box.astype(np.float32), mode="F").resize((width, HEIGHT), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(img) / 255.0, 0, 1).astype(np.float32)


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


class LineNet(nn.Module):
    def __init__(self, classes: int = len(ALPHABET) + 1) -> None:
        super().__init__()

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

        self.cnn = nn.Sequential(
            *block(1, 16),
            nn.MaxPool2d(2),  # 16 × w/2
            *block(16, 32),
            nn.MaxPool2d(2),  # 8 × w/4
            *block(32, 64),
            nn.MaxPool2d((2, 1)),  # 4 × w/4
            *block(64, 96),
            nn.MaxPool2d((4, 1)),  # 1 × w/4
        )
        self.rnn = nn.LSTM(96, 96, bidirectional=True, batch_first=True)
        self.out = nn.Linear(192, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, 32, W) -> (B, W/4, classes) log-probs
        f = self.cnn(x).squeeze(2).transpose(1, 2)  # (B, T, 96)
        f, _ = self.rnn(f)
        return self.out(f).log_softmax(-1)


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


def decode(log_probs: np.ndarray, frames: int) -> tuple[str, float]:
    """Greedy CTC decoding of (T, classes) log-probs: the text and its confidence (product of each
    character's peak probability)."""
    best = log_probs[:frames].argmax(1)
    text, confidence, previous = [], 1.0, 0
    for t, k in enumerate(best):
        if k != 0 and k != previous:
            text.append(ALPHABET[k - 1])
            confidence *= float(np.exp(log_probs[t, k]))
        previous = k
    return "".join(text), confidence


def read_lines(net: LineNet, pictures: list[np.ndarray]) -> list[tuple[str, float]]:
    net.eval()
    out = []
    with torch.inference_mode():
        for picture in pictures:
            seen = to_input(picture)
            if seen is None:
                out.append(("", 0.0))
                continue
            width = seen.shape[1] + (-seen.shape[1]) % 4
            x = np.zeros((1, 1, HEIGHT, width), np.float32)
            x[0, 0, :, : seen.shape[1]] = seen
            lp = net(torch.from_numpy(x))[0].numpy()
            out.append(decode(lp, seen.shape[1] // 4))
    return out


def train(lines: list[tuple[np.ndarray, str]], epochs: int, seed: int) -> LineNet:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = LineNet()
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
            total += float(loss) * len(targets)
            seen += len(targets)
        print(
            f"epoch {epoch + 1}/{epochs}: loss {total / seen:.3f} ({time.perf_counter() - started:.0f} s)", flush=True
        )
    return net


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=30_000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-group", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(2)
    path = HERE / "runs" / f"ctc-{args.seed}-{args.lines}-{args.epochs}.pt"
    started = time.perf_counter()
    if path.is_file():
        net = LineNet()
        net.load_state_dict(torch.load(path, weights_only=True))
        train_s = None
    else:
        lines = make_lines(args.lines, args.seed)
        print(f"{len(lines):,} training lines in {time.perf_counter() - started:.0f} s", flush=True)
        net = train(lines, args.epochs, args.seed)
        train_s = time.perf_counter() - started
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(net.state_dict(), path)
    from read import GROUPS, check_set, score

    rows = check_set(args.per_group, 0)
    t0 = time.perf_counter()
    answers = read_lines(net, [r["picture"] for r in rows])
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
    print({k: v for k, v in result.items() if k not in ("machine", "misreads")}, flush=True)
    seg = (
        __import__("json").loads((HERE / "read.json").read_text())["digitlab"]
        if (HERE / "read.json").is_file()
        else None
    )
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
