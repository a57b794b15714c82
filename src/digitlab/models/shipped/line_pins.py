"""SHA-256 of the shipped line reader's files (benchmarks/ctc.py --ship), checked before loading."""

SHA256 = {
    "line_reader.pt": "61fff2a4d73b805c1153b22db45db0b019f4cc54b640eb43255b823f13d6f277",
    "line_reader.onnx": "a334b6770a0c4ec95a7cc61b19c09a3b9bda4d715b6122023b1c7673854ac16d",
}
