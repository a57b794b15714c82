"""SHA-256 of the shipped line reader's files (benchmarks/ctc.py --ship), checked before loading."""

SHA256 = {
    "line_reader.pt": "d869aaa478ecfe56fbb5f042190a74b98c6702dadbf971354a67747b4b05acee",
    "line_reader.onnx": "0a2d0a7612976631fa6349169d647bea967b32639f678c4d0e2a0a2dc66105a4",
}
