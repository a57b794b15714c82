"""The line reader (issue 33, approach (b)): a whole number read at once, without cutting it into digits.

A small CNN turns a line scaled to ``HEIGHT`` pixels into a sequence of columns (one every 4 pixels), a
bidirectional LSTM reads the sequence, and each column gets a probability for blank, the ten digits, ``.`` and
``-`` (CTC). Greedy decoding keeps each run of one symbol once; each character keeps the columns it was read
in (its place on the line) and its peak probability. Trained from scratch on synthetic lines of MNIST
**training** digits and pen-drawn digits by ``benchmarks/ctc.py --ship`` (it writes ``shipped/line_reader.*``);
loaded with onnxruntime when installed (no PyTorch), else with PyTorch (``weights_only``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ALPHABET = "0123456789.-"  # class k + 1; 0 is CTC's blank
HEIGHT = 32  # a line is read 32 pixels high
STRIDE = 4  # pixels of the line a column of the sequence stands for


def build_line_net() -> Any:
    """The network (PyTorch): (B, 1, 32, W) -> (B, W/4, 13) log-probabilities."""
    import torch
    from torch import nn

    def block(c_in: int, c_out: int) -> list[Any]:
        return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

    class LineNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cnn = nn.Sequential(
                *block(1, 16),
                nn.MaxPool2d(2),  # 16 × W/2
                *block(16, 32),
                nn.MaxPool2d(2),  # 8 × W/4
                *block(32, 64),
                nn.MaxPool2d((2, 1)),  # 4 × W/4
                *block(64, 96),
                nn.MaxPool2d((4, 1)),  # 1 × W/4
            )
            self.rnn = nn.LSTM(96, 96, bidirectional=True, batch_first=True)
            self.out = nn.Linear(192, len(ALPHABET) + 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            f = self.cnn(x).squeeze(2).transpose(1, 2)  # (B, T, 96)
            f, _ = self.rnn(f)
            return self.out(f).log_softmax(-1)

    return LineNet()


@dataclass(frozen=True)
class Symbol:
    """One character the line reader found: its label, the columns it was read in, how sure, its top 3."""

    label: str
    first: int  # first column (× STRIDE: pixels of the 32-high line)
    last: int
    confidence: float
    top3: tuple[tuple[str, float], ...]


def decode(log_probs: np.ndarray) -> list[Symbol]:
    """Greedy CTC decoding of (T, 13) log-probabilities into symbols, left to right."""
    probs = np.exp(log_probs)  # (T, 13)
    best = probs.argmax(axis=1)  # (T,)
    out: list[Symbol] = []
    t = 0
    while t < len(best):
        k = int(best[t])
        if k == 0:
            t += 1
            continue
        end = t
        while end + 1 < len(best) and best[end + 1] == k:
            end += 1
        peak = t + int(np.argmax(probs[t : end + 1, k]))
        row = probs[peak, 1:]  # (12,) the symbols at the surest column
        order = np.argsort(-row)[:3]
        out.append(
            Symbol(
                ALPHABET[k - 1],
                t,
                end,
                float(probs[peak, k]),
                tuple((ALPHABET[int(i)], float(row[i])) for i in order),
            )
        )
        t = end + 1
    return out


class LineReader:
    """A trained line reader: ``read`` a (32, W) float32 line (ink 1, paper 0) -> its (W/4, 13) log-probs."""

    def __init__(self, pt: Path, onnx: Path | None = None) -> None:
        self.path = pt
        self.session = None
        self.net = None
        if onnx is not None and onnx.is_file():
            try:
                import onnxruntime as ort

                options = ort.SessionOptions()
                options.log_severity_level = 3
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                self.session = ort.InferenceSession(str(onnx), options, providers=["CPUExecutionProvider"])
            except ImportError:
                self.session = None
        if self.session is None:
            import torch

            self.net = build_line_net()
            self.net.load_state_dict(torch.load(pt, weights_only=True))
            self.net.eval()
        self.runtime = "onnx" if self.session is not None else "torch"

    def read(self, line: np.ndarray) -> np.ndarray:
        width = line.shape[1] + (-line.shape[1]) % STRIDE
        x = np.zeros((1, 1, HEIGHT, width), np.float32)
        x[0, 0, :, : line.shape[1]] = line
        if self.session is not None:
            (out,) = self.session.run(None, {"line": x})
            return np.asarray(out[0])[: line.shape[1] // STRIDE]
        import torch

        with torch.inference_mode():
            return self.net(torch.from_numpy(x))[0].numpy()[: line.shape[1] // STRIDE]  # type: ignore[misc]


def export_onnx(net: Any, path: Path) -> None:
    """The line reader as ONNX (opset 18), any line width."""
    import torch

    net.eval()
    x = torch.zeros(1, 1, HEIGHT, 128)
    torch.onnx.export(
        net,
        (x,),
        str(path),
        input_names=["line"],
        output_names=["log_probs"],
        dynamic_axes={"line": {3: "width"}, "log_probs": {1: "columns"}},
        opset_version=18,
        dynamo=False,
    )
