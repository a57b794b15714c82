"""Load `digitlab serve` as users would: throughput, latency, errors; ONNX Runtime vs PyTorch; memory.

Goals (issue 14), on 2 cores with the load generator on the same machine: >= 300 req/s at 32 clients with
p99 <= 150 ms and 0 errors (one PNG per request); >= 5,000 images/s with batches of 256; RSS after 10,000 bad
requests within +50 MB. The load generator is an asyncio client (aiohttp), each client sending its next request
when the last one is answered (closed loop).

Hostile clients (issue 30): 20,000 connections that send half a request and hold it open (two attacker
processes, opened while the measurement runs), while 32 clients get answers: 0 errors and p99 within 2× of the
quiet figure measured just before; the server's RSS, open files and log size before and after. The same load
from an external generator (wrk, Debian's package) beside the in-process one.
Writes benchmarks/serve.json and the "serve" section of BENCHMARKS.md.
Usage: python benchmarks/serve.py [--run RUN | --quick] [--seconds 30] [--workers 1] [--hostile-only]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from _report import HERE, machine, table, update_section
from digitlab import service
from digitlab.core.files import write_json
from digitlab.data.datasets import load_dataset

sys.path.insert(0, str(HERE.parent))
from tests.conftest import free_port


def make_run(out: Path, quick: bool) -> Path:
    flags = ["--quick"] if quick else []
    print(f"digitlab compare {' '.join(flags)} --models cnn ...", flush=True)
    proc = subprocess.run(
        [sys.executable, "-m", "digitlab", "compare", *flags, "--models", "cnn", "--out", str(out), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(json.loads(proc.stdout)["run"])


@contextmanager
def serving(
    model: Path, runtime: str, workers: int, log: Path | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`digitlab serve` on a free port, ready: (its process, its URL); stopped (SIGTERM) at the end."""
    port = free_port()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "digitlab", "serve", "--model", str(model), "--port", str(port)),
            *("--runtime", runtime, "--workers", str(workers), "--max-batch", "1024"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(log, "wb") if log is not None else subprocess.DEVNULL,  # noqa: SIM115 - the child holds it
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url)
        yield proc, url
    finally:
        proc.terminate()
        proc.wait(60)


def wait_ready(url: str) -> None:
    """Until `digitlab serve` at ``url`` says it is ready (two minutes at most)."""
    for _ in range(600):
        try:
            if httpx.get(f"{url}/v2/health/ready").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit("serve did not start")


def png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG")
    return buf.getvalue()


async def load(url: str, clients: int, seconds: float, payloads: list[dict[str, Any]], images: int) -> dict[str, Any]:
    """Closed-loop load: ``clients`` tasks, each posting its next payload when the last is answered.

    aiohttp's client: httpx's pool slows down with many connections (at 32 it is the bottleneck even
    against an endpoint that does nothing), which would measure the client, not the server.
    """
    import aiohttp

    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(url, connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as client:

        async def one(k: int) -> None:
            nonlocal errors
            n = k
            while time.perf_counter() < stop:
                payload = payloads[n % len(payloads)]
                n += clients
                began = time.perf_counter()
                try:
                    async with client.post(payload.get("path", "/predict"), **_aiohttp(payload)) as reply:
                        await reply.read()
                        ok = reply.status == 200
                except aiohttp.ClientError:
                    ok = False
                latencies.append(time.perf_counter() - began)
                errors += not ok

        began = time.perf_counter()
        await asyncio.gather(*(one(k) for k in range(clients)))
        elapsed = time.perf_counter() - began
    ms = np.asarray(latencies) * 1000
    return {
        "clients": clients,
        "images_per_request": images,
        "requests": len(latencies),
        "errors": errors,
        "req_per_s": len(latencies) / elapsed,
        "images_per_s": len(latencies) * images / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


def _aiohttp(payload: dict[str, Any]) -> dict[str, Any]:
    """An httpx-style payload (files=… or json=…) as aiohttp arguments."""
    import aiohttp

    if "binary" in payload:
        return {"data": payload["binary"], "headers": payload["headers"]}
    if "json" in payload:
        return {"data": payload["json_bytes"], "headers": {"content-type": "application/json"}}
    form = aiohttp.FormData()
    for field, (name, data, kind) in payload["files"]:
        form.add_field(field, data, filename=name, content_type=kind)
    return {"data": form}


def _binary_infer(images: np.ndarray) -> dict[str, Any]:
    """A v2 infer request in the binary tensor extension: JSON header, then the raw uint8 pixels."""
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "images",
                    "shape": list(images.shape),
                    "datatype": "UINT8",
                    "parameters": {"binary_data_size": images.nbytes},
                }
            ],
            "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}],
        }
    ).encode()
    return {
        "path": "/v2/models/cnn/infer",
        "binary": head + np.ascontiguousarray(images, dtype=np.uint8).tobytes(),
        "headers": {"Inference-Header-Content-Length": str(len(head)), "content-type": "application/octet-stream"},
    }


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bad_requests(url: str, pid: int, n: int) -> dict[str, float]:
    from tests.test_serve import _bad_requests

    x = load_dataset("mnist").x_test
    cases = [c for c in _bad_requests(x) if c[0] != 413]
    with httpx.Client(base_url=url, timeout=60) as client:
        for _, method, path, kwargs in cases:
            getattr(client, method)(path, **kwargs)
        before = rss_mb(pid)
        wrong = 0
        for k in range(n):
            status, method, path, kwargs = cases[k % len(cases)]
            wrong += getattr(client, method)(path, **kwargs).status_code != status
        after = rss_mb(pid)
        ready = client.get("/v2/health/ready").status_code == 200
    return {"requests": n, "rss_before_mb": before, "rss_after_mb": after, "wrong_status": wrong, "ready": ready}


def runtimes(model: Path) -> list[dict[str, Any]]:
    """ONNX Runtime vs PyTorch eager, in-process: batch 1 latency and batch 256 throughput."""
    x = load_dataset("mnist").x_test
    rows = []
    for runtime in ("torch", "onnx"):
        predictor = service.exporting.load_predictor(str(model), model.parent, runtime)
        predictor.probabilities(x[:256])
        one = []
        for k in range(300):
            began = time.perf_counter()
            predictor.probabilities(x[k : k + 1])
            one.append(time.perf_counter() - began)
        began = time.perf_counter()
        for k in range(0, 10_000, 256):
            predictor.probabilities(x[k : k + 256])
        rows.append(
            {
                "runtime": runtime,
                "batch1_median_ms": statistics.median(one) * 1000,
                "batch256_images_per_s": 10_000 / (time.perf_counter() - began),
            }
        )
    return rows


ATTACKER = """
import asyncio, resource, sys, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
port, n, rate, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
async def one(k, opened):
    await asyncio.sleep(k / rate)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /v2/health/live HTTP/1.1\\r\\nHost: x\\r\\n")  # never finished
        await writer.drain()
        opened.append(1)
        await asyncio.sleep(hold)
        writer.close()
    except OSError:
        pass
async def main():
    opened = []
    await asyncio.gather(*(one(k, opened) for k in range(n)))
    print(len(opened), flush=True)
asyncio.run(main())
"""


def open_files(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def hostile(model: Path, seconds: float, singles: list[dict[str, Any]]) -> dict[str, Any]:
    """32 clients, quiet and then beside 20,000 half-open connections; RSS, open files and log size around it."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "serve.log"
        with serving(model, "torch", 1, log) as (proc, url):
            port = int(url.rsplit(":", 1)[1])
            asyncio.run(load(url, 32, 5, singles, 1))  # warm
            quiet = asyncio.run(load(url, 32, seconds, singles, 1))
            print("quiet", quiet, flush=True)
            before = {"rss_mb": rss_mb(proc.pid), "open_files": open_files(proc.pid), "log_bytes": log.stat().st_size}
            n, rate = 20_000, 20_000 / max(1.0, seconds / 2)  # all of them open in the first half of the window
            attackers = [
                subprocess.Popen(
                    [sys.executable, "-c", ATTACKER, str(port), str(n // 2), str(rate / 2), str(seconds + 5)],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for _ in range(2)
            ]
            time.sleep(0.5)
            attacked = asyncio.run(load(url, 32, seconds, singles, 1))
            peak_files = open_files(proc.pid)
            held = sum(int((a.communicate(timeout=seconds + 60)[0] or "0").strip() or 0) for a in attackers)
            print("attacked", attacked, flush=True)
            after = {"rss_mb": rss_mb(proc.pid), "open_files": peak_files, "log_bytes": log.stat().st_size}
    return {
        "quiet": quiet,
        "attacked": dict(attacked, half_open_connections=n, opened_by_attackers=held),
        "before": before,
        "after": after,
        "p99_ratio": attacked["p99_ms"] / quiet["p99_ms"],
    }


def wrk(url: str, seconds: float, body: bytes) -> dict[str, Any] | None:
    """The same 32-client load from wrk (an external generator in C), JSON of one image to /predict."""
    import re
    import shutil

    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk); its row is left out", flush=True)
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = {json.dumps(body.decode())}\n"
        )
    proc = subprocess.run(
        ["wrk", "-t2", "-c32", f"-d{int(seconds)}s", "--latency", "-s", script.name, f"{url}/predict"],
        capture_output=True,
        text=True,
        check=True,
    )
    text = proc.stdout

    def ms(label: str) -> float:
        found = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", text)
        if not found:
            return float("nan")
        value, unit = float(found.group(1)), found.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return {
        "generator": "wrk",
        "clients": 32,
        "req_per_s": float(rate.group(1)) if rate else float("nan"),
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
        "errors": (int(errors.group(1)) if errors else 0)
        + (sum(map(int, socket_errors.groups())) if socket_errors else 0),
    }


def hostile_section(results: dict[str, Any]) -> str:
    h = results["hostile"]
    q, a, b, f = h["quiet"], h["attacked"], h["before"], h["after"]
    rows = [
        ["quiet", f"{q['req_per_s']:.0f}", f"{q['p50_ms']:.1f}", f"{q['p99_ms']:.1f}", q["errors"]],
        [
            f"beside {a['half_open_connections']:,} half-open connections",
            f"{a['req_per_s']:.0f}",
            f"{a['p50_ms']:.1f}",
            f"{a['p99_ms']:.1f}",
            a["errors"],
        ],
    ]
    for w in results.get("wrk") or []:
        label = f"wrk, 32 connections, a JSON array of 1 image, {w['runtime']}"
        rows.append([label, f"{w['req_per_s']:.0f}", f"{w['p50_ms']:.1f}", f"{w['p99_ms']:.1f}", w["errors"]])
    return (
        "## Serving against hostile clients (`benchmarks/serve.py`, issue 30)\n\n"
        f"32 clients, one PNG per request, {results['machine']['date']}; then the same while two attacker processes "
        f"open {a['half_open_connections']:,} connections that send half a request and hold it "
        f"({a['opened_by_attackers']:,} were accepted by the kernel; the server keeps at most 1,000 a worker, "
        "closing idle ones first, and closes any that has not sent whole headers within 10 s). "
        f"Goal: 0 errors and p99 within 2× of the quiet figure: **{h['p99_ratio']:.2f}×**.\n\n"
        + table(["load", "req/s", "p50 ms", "p99 ms", "errors"], rows)
        + f"\n\nServer: RSS {b['rss_mb']:.0f} → {f['rss_mb']:.0f} MB, open files {b['open_files']} → "
        f"{f['open_files']} (at the end of the attack), log {b['log_bytes']:,} → {f['log_bytes']:,} bytes.\n"
    )


def reader_load(seconds: float, workers: int = 1, repeats: int = 3) -> dict[str, Any]:
    """Issue 32's goal: `digitlab serve` as installed (no run folder: the shipped reader, every other setting
    its default) with ``workers`` workers under 32 wrk connections, each request one photographed digit as a
    base64 PNG in JSON (as the user finding measured it); ``repeats`` rounds after a warm-up, each reported."""
    import base64

    from digitlab.data import strokes

    rng = np.random.default_rng(0)
    photo = strokes.photograph(strokes.draw(strokes.STYLES["plain"], 3, rng), "photo", rng)  # (900, 1200) uint8
    picture = png(np.asarray(Image.fromarray(photo).resize((280, 210))))  # a phone's thumbnail of the page
    body = json.dumps({"images": [base64.b64encode(picture).decode()]}).encode()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "digitlab", "serve", "--out", str(Path(tmp) / "runs")),
                *("--port", str(port), "--workers", str(workers)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url)
            model = httpx.get(f"{url}/models").json()["models"][0]
            wrk(url, 3, body)  # warm-up
            rounds = [wrk(url, seconds, body) for _ in range(repeats)]
        finally:
            proc.terminate()
            proc.wait(60)
    found = [r for r in rounds if r]
    return {
        "workers": workers,
        "model": model["name"],
        "runtime": model["runtime"],
        "picture_bytes": len(picture),
        "rounds": found,
        "median_p99_ms": float(np.median([r["p99_ms"] for r in found])) if found else float("nan"),
        "goal_p99_ms": 100,
    }


def reader_section(results: list[dict[str, Any]], m: dict[str, Any]) -> str:
    rows = [
        [res["workers"], k + 1, f"{r['req_per_s']:.0f}", f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}", r["errors"]]
        for res in results
        for k, r in enumerate(res["rounds"])
    ]
    first = results[0]
    medians = "; ".join(
        f"{r['workers']} worker{'s' if r['workers'] > 1 else ''}: **{r['median_p99_ms']:.0f} ms**" for r in results
    )
    return (
        "## Serving the shipped reader (`benchmarks/serve.py --reader`)\n\n"
        f"`digitlab serve` right after install (no run folder: the `{first['model']}` answers, runtime "
        f"`{first['runtime']}`; every setting its default but `--workers`), wrk with 32 connections (2 threads) on "
        f"the same machine, each request one photographed digit as a base64 PNG in JSON "
        f"({first['picture_bytes']:,} bytes). {m['cpus']} CPUs, {m['date']}. Goal (issue 32): p99 ≤ "
        f"{first['goal_p99_ms']} ms.\n\n"
        + table(["workers", "round", "req/s", "p50 ms", "p99 ms", "errors"], rows)
        + f"\n\nMedian p99 of the rounds: {medians}."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", type=Path, help="run folder with a saved cnn (default: a fresh quick one)")
    parser.add_argument("--quick", action="store_true", help="train the fresh cnn on the 6,000 / 1,000 subset")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds per load level (default: 30)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers (default: 1)")
    parser.add_argument("--bad", type=int, default=10_000, help="bad requests for the memory check")
    parser.add_argument("--hostile-only", action="store_true", help="only the hostile-clients part (issue 30)")
    parser.add_argument("--report-only", action="store_true", help="rewrite the hostile section from serve.json")
    parser.add_argument("--reader", action="store_true", help="only the shipped reader under wrk (issue 32)")
    args = parser.parse_args()
    if args.reader:
        results = [reader_load(args.seconds, workers) for workers in (1, 2)]
        stored = {"machine": machine(), "results": results}
        write_json(HERE / "serve-reader.json", stored)
        print(json.dumps(results, indent=1), flush=True)
        update_section("serve_reader", reader_section(results, stored["machine"]))
        return
    if args.report_only:
        update_section("serve_hostile", hostile_section(json.loads((HERE / "serve.json").read_text())))
        return
    x = load_dataset("mnist").x_test
    singles = [{"files": [("file", (f"{k}.png", png(x[k]), "image/png"))]} for k in range(200)]
    batches = [
        {"json": True, "json_bytes": json.dumps({"arrays": x[k : k + 256].tolist()}).encode()}
        for k in range(0, 2560, 256)
    ]
    binary = [_binary_infer(x[k : k + 256]) for k in range(0, 2560, 256)]
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or make_run(Path(tmp), quick=True)
        model = run / "models" / "cnn.pt"
        if args.hostile_only:
            stored = json.loads((HERE / "serve.json").read_text()) if (HERE / "serve.json").is_file() else {}
            stored.update(machine=machine(), hostile=hostile(model, args.seconds, singles), wrk=[])
            one = json.dumps({"arrays": x[:1].tolist()}).encode()
            for runtime in ("torch", "onnx"):
                with serving(model, runtime, args.workers) as (_, url):
                    found = wrk(url, args.seconds, one)
                if found:
                    stored["wrk"].append(dict(found, runtime=runtime))
            write_json(HERE / "serve.json", stored)
            update_section("serve_hostile", hostile_section(stored))
            return
        results: dict[str, Any] = {"machine": machine(), "workers": args.workers, "load": {}}
        results["hostile"] = hostile(model, args.seconds, singles)
        one = json.dumps({"arrays": x[:1].tolist()}).encode()
        results["wrk"] = []
        for runtime in ("torch", "onnx"):
            with serving(model, runtime, args.workers) as (proc, url):
                levels = []
                for clients in (1, 8, 32):
                    levels.append(asyncio.run(load(url, clients, args.seconds, singles, 1)))
                    print(runtime, levels[-1], flush=True)
                levels.append(asyncio.run(load(url, 4, args.seconds, batches, 256)))
                print(runtime, levels[-1], flush=True)
                levels.append(dict(asyncio.run(load(url, 4, args.seconds, binary, 256)), via="v2 binary"))
                print(runtime, levels[-1], flush=True)
                results["load"][runtime] = levels
                if runtime == "torch":
                    results["bad_requests"] = bad_requests(url, proc.pid, args.bad)
                    print(results["bad_requests"], flush=True)
                found = wrk(url, args.seconds, one)
                if found:
                    results["wrk"].append(dict(found, runtime=runtime))
        results["runtimes"] = runtimes(model)
    write_json(HERE / "serve.json", results)
    m = results["machine"]
    rows = [
        [
            runtime,
            r["clients"],
            f"{r['images_per_request']}" + (f" ({r['via']})" if "via" in r else ""),
            f"{r['req_per_s']:.0f}",
            f"{r['images_per_s']:,.0f}",
            f"{r['p50_ms']:.1f}",
            f"{r['p95_ms']:.1f}",
            f"{r['p99_ms']:.1f}",
            r["errors"],
        ]
        for runtime, levels in results["load"].items()
        for r in levels
    ]
    bad = results["bad_requests"]
    rt = [
        [r["runtime"], f"{r['batch1_median_ms']:.2f}", f"{r['batch256_images_per_s']:,.0f}"]
        for r in results["runtimes"]
    ]
    body = (
        "## Serving (`benchmarks/serve.py`)\n\n"
        f"`digitlab serve` (uvicorn, {args.workers} worker) with a quick cnn, loaded by an asyncio aiohttp client on "
        f"the same machine ({m['cpus']} CPUs, {m['date']}); closed loop, {args.seconds:.0f} s per level; one PNG per "
        "request as multipart, or 256 images per request as JSON arrays to /predict or as raw bytes to /v2 infer "
        "(the protocol's binary tensor extension). Goals: ≥ 300 req/s at 32 clients with p99 ≤ 150 ms "
        "and 0 errors; ≥ 5,000 images/s with batches of 256.\n\n"
        + table(["runtime", "clients", "images/req", "req/s", "images/s", "p50 ms", "p95 ms", "p99 ms", "errors"], rows)
        + f"\n\nAfter {bad['requests']:,} bad requests (every kind of the test suite but the 21 MB bodies): RSS "
        f"{bad['rss_before_mb']:.0f} → {bad['rss_after_mb']:.0f} MB (goal: within +50 MB), wrong status codes: "
        f"{bad['wrong_status']}, still ready: {bad['ready']}.\n\n"
        "In-process, the cnn alone (all 10,000 test images for throughput):\n\n"
        + table(["runtime", "batch 1 median ms", "batch 256 images/s"], rt)
    )
    update_section("serve", body)
    update_section("serve_hostile", hostile_section(results))


if __name__ == "__main__":
    main()
