"""Plans the 10,000-VM fleet from Python (inputs as Python dicts, conversion
included) against the Rust planner on the same fleet, alternating, in one
run. Prints medians and the ratio.

    cargo build --release --example fleet
    (cd bindings-python && maturin develop --release)
    .venv/bin/python benches/python_plan_fleet.py [N] [RUNS]
"""

import json
import pathlib
import statistics
import subprocess
import sys
import time

import vmrestore

ROOT = pathlib.Path(__file__).resolve().parents[1]
FLEET = ROOT / "target" / "release" / "examples" / "fleet"


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    items = json.loads(subprocess.run([str(FLEET), "json", str(n)], check=True, capture_output=True, text=True).stdout)
    inputs = [(i["restore_point"], i["request"], i["profile"]) for i in items]
    py, rust = [], []
    for _ in range(runs):
        t = time.perf_counter()
        plans = vmrestore.plan_many(inputs)
        py.append((time.perf_counter() - t) * 1e3)
        assert len(plans) == n
        rust.append(float(subprocess.run([str(FLEET), "time", str(n), "1"], check=True, capture_output=True, text=True).stdout))
    p, r = statistics.median(py), statistics.median(rust)
    print(f"plan {n} VMs, {runs} alternating runs, medians:")
    print(f"  Python plan_many (dicts in, Plan objects out) {p:.0f} ms")
    print(f"  Rust planner (parsed inputs)                   {r:.0f} ms")
    print(f"  ratio Python / Rust                            {p / r:.2f}")


if __name__ == "__main__":
    main()
