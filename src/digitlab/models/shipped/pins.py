"""SHA-256 of the shipped reader's files, written by benchmarks/make_reader.py (checked before loading)."""

SHA256 = {
    "reader.pt": "d959490b55e1d8460237153860aa36f433a2133d3817517915997b44f769ed3a",
    "reader.pt.json": "32765f9393938c962bbdffad2c9ee486496d834effb26759c6f6ac93aab5de26",
    "reader.onnx": "862523bf90d8967a03606a8f7b5bb0c62b1c2114eb02f8152977728ccbf3bf5f",
}
