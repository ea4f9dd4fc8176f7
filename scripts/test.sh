#!/usr/bin/env bash
# Runs every test of the project: Rust (unit, integration, vectors, property,
# snapshot, doc tests), then the Python binding (built into .venv with
# maturin; stubs checked with mypy's stubtest; pytest). Node joins as its
# binding lands.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --all-targets
cargo test --workspace --doc

# Python: a virtualenv inside the repository.
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q -r bindings-python/requirements-dev.txt
export VIRTUAL_ENV="$PWD/.venv"
(
  cd bindings-python
  ../.venv/bin/maturin develop -q
  ../.venv/bin/python -m mypy.stubtest vmrestore._native
  ../.venv/bin/python -m mypy python/vmrestore tests ../examples/python
  ../.venv/bin/python -m pytest -q tests ../examples/python
)
