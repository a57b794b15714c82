"""SHA-256 of the shipped reader's files, written by benchmarks/make_reader.py (checked before loading)."""

SHA256 = {
    "reader.pt": "dcfdecf3443201ba7625df65a902485b2155616066c4d392e0fefea02e0954fd",
    "reader.pt.json": "45494eca56102839ff5b817d4783ddb02a4203ee3e19b3a0e07b80b291648401",
    "reader.onnx": "4da1b64ded2823ba7a38415808df7582e8bb756ec327621666dc57bd41f49d17",
}
