#!/usr/bin/env python3
"""Page-blob upload: vmrestore's writer against the official Python SDK
(azure-storage-blob, `upload_blob(..., blob_type="PageBlob",
max_concurrency=8)`), on the same Azurite, alternating, in one invocation.

    .venv/bin/pip install -r benches/requirements.txt
    cargo build --release --example blob_upload
    .venv/bin/python benches/pageblob_vs_sdk.py [--runs 3] [--size-mib 2048]

Disks: SIZE with half data and half zeros (alternating 8 MiB runs), and a
fully dense one; then a rerun of each tool over its unchanged blob. Azurite
is a single Node process and is the ceiling: measured first (the same 4 MiB
buffer Put to a blob with 8 in flight, no file, no hashing). Every client
runs as its own process; its CPU time is user + sys of that process.
Prints medians, throughput against the ceiling, and ratios.
"""

import argparse
import json
import os
import pathlib
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from azure.storage.blob import BlobServiceClient

ROOT = pathlib.Path(__file__).resolve().parents[1]
AZURITE = ROOT / "bindings-node" / "node_modules" / ".bin" / "azurite-blob"
UPLOADER = ROOT / "target" / "release" / "examples" / "blob_upload"
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

SDK_CHILD = r"""
import sys
from azure.storage.blob import BlobClient
url, container, blob, path = sys.argv[1:5]
conn = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
        f"BlobEndpoint={url};")
c = BlobClient.from_connection_string(conn, container_name=container, blob_name=blob)
with open(path, "rb") as f:
    c.upload_blob(f, blob_type="PageBlob", max_concurrency=8, overwrite=True)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_child(cmd) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + sys) of the child, stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({out.returncode}): {out.stderr.strip()[-2000:]}")
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out.stdout


def make_image(path: pathlib.Path, size: int, dense: bool) -> None:
    block = 8 << 20
    with open(path, "wb") as f:
        for i in range(size // block):
            if dense or i % 2 == 0:
                f.write(os.urandom(block))
            else:
                f.write(bytes(block))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size-mib", type=int, default=2048)
    args = ap.parse_args()
    for p, how in [(AZURITE, "npm install in bindings-node"), (UPLOADER, "cargo build --release --example blob_upload")]:
        if not p.exists():
            print(f"{p} is missing: {how}", file=sys.stderr)
            return 2
    size = args.size_mib << 20
    work = pathlib.Path(tempfile.mkdtemp(prefix="vmrestore-bench-"))
    azurite = None

    def start_azurite() -> str:
        # A fresh Azurite per run: it keeps blobs in memory (and frees
        # deleted ones late), and a run writes about 10 GiB.
        nonlocal azurite
        if azurite:
            azurite.kill()
            azurite.wait()
        port = free_port()
        azurite = subprocess.Popen(
            [str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence",
             "--skipApiVersionCheck", "--silent", "--disableTelemetry"],
            cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        return f"http://127.0.0.1:{port}/{ACCOUNT}"

    try:
        url = start_azurite()
        images = {"half": work / "half.raw", "dense": work / "dense.raw"}
        for name, path in images.items():
            make_image(path, size, dense=name == "dense")
        data_bytes = {"half": size // 2, "dense": size}

        # vmrestore writes from its repository, as a restore does: every
        # chunk read is verified with SHA-256 (the import is not timed).
        repo = work / "repo"
        for name, path in images.items():
            subprocess.run([str(UPLOADER), "--prepare", "--repo", str(repo), "--image", str(path),
                            "--id", name, "--container", "-", "--blob", "-"], check=True)

        def ours(disk: str, blob: str):
            return run_child([str(UPLOADER), "--repo", str(repo), "--id", disk, "--container", f"{url}/bench",
                              "--blob", blob, "--concurrency", "8"])

        def sdk(disk: str, blob: str):
            return run_child([sys.executable, "-c", SDK_CHILD, url, "bench", blob, str(images[disk])])

        def service():
            return BlobServiceClient.from_connection_string(
                "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                f"AccountKey={KEY};BlobEndpoint={url};")

        def drop(blob: str) -> None:
            service().get_blob_client("bench", blob).delete_blob()

        results: dict[str, list[tuple[float, float]]] = {}
        ceiling = []
        for r in range(args.runs):
            if r:
                url = start_azurite()
            wall, cpu, _ = run_child([str(UPLOADER), "--ceiling", "--size", str(size), "--container",
                                      f"{url}/bench", "--blob", f"ceiling-{r}", "--concurrency", "8"])
            ceiling.append(size / wall / (1 << 20))
            drop(f"ceiling-{r}")
            for disk in ["half", "dense"]:
                order = [("vmrestore", ours), ("sdk", sdk)]
                if r % 2:
                    order.reverse()
                for tool, fn in order:
                    blob = f"{tool}-{disk}-{r}"
                    # The SDK writes the blob as it is; ours adds the 512-byte footer.
                    results.setdefault(f"{tool} {disk}", []).append(fn(disk, blob)[:2])
                    results.setdefault(f"{tool} {disk} rerun", []).append(fn(disk, blob)[:2])
                    if tool == "vmrestore":
                        drop(f"{blob}.vhd")
                        drop(f"{blob}.vhd.vmrestore-state.json")
                    else:
                        drop(blob)
        ceil = statistics.median(ceiling)
        print(f"Azurite ceiling (4 MiB Put Page, 8 in flight): median {ceil:.1f} MiB/s over {args.runs} runs")
        print(f"{'case':28} {'wall s':>8} {'CPU s':>7} {'data MiB/s':>11} {'of ceiling':>10}")
        med = {}
        for case, vals in results.items():
            wall = statistics.median(v[0] for v in vals)
            cpu = statistics.median(v[1] for v in vals)
            disk = case.split()[1]
            mibs = data_bytes[disk] / wall / (1 << 20)
            med[case] = (wall, cpu, mibs)
            print(f"{case:28} {wall:8.2f} {cpu:7.2f} {mibs:11.1f} {mibs / ceil:10.0%}")
        print("ratios (vmrestore / sdk):")
        for disk in ["half", "dense"]:
            o, s = med[f"vmrestore {disk}"], med[f"sdk {disk}"]
            print(f"  {disk}: throughput x{o[2] / s[2]:.2f}, client CPU x{o[1] / s[1]:.2f}")
            o2 = med[f"vmrestore {disk} rerun"]
            print(f"  {disk} rerun over the unchanged blob: {o2[0]:.2f} s = {o2[0] / o[0]:.1%} of the first run"
                  f" (sdk rerun {med[f'sdk {disk} rerun'][0]:.2f} s)")
        print(json.dumps({"ceiling_mib_s": ceil, "cases": med}))
    finally:
        if azurite:
            azurite.kill()
            azurite.wait()
        import shutil
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
