"""The Python examples run: the DR runbook writes its summary."""

import json
import pathlib
import subprocess
import sys

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples" / "python"


def test_runbook_restores_the_demo_to_another_region(tmp_path):
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "runbook.py"), "--region", "northeurope", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert {s["vm"] for s in summary} == {"web01", "db01", "app01"}
    assert all(s["status"] == "succeeded" for s in summary)
    assert "CV-04" in out.stdout  # the encrypted VM gets a new key vault in the new region
