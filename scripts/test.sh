#!/usr/bin/env bash
# Runs every test of the project: Rust (unit, integration, vectors, property,
# snapshot, doc tests), the Python binding (built into .venv with maturin;
# stubs checked with mypy's stubtest; pytest), then the Node binding (built
# with `napi build` from a local node_modules; generated types checked for
# drift and with tsc; `node --test`).
set -euo pipefail
cd "$(dirname "$0")/.."

# npm packages (napi CLI, TypeScript, Azurite) into bindings-node/node_modules:
# the Rust tests start Azurite from there.
(
  cd bindings-node
  # `npm install --no-save` from the lock file (npm ci refuses lock files
  # whose optional platform packages npm itself left out).
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm install --no-save --no-audit --no-fund --loglevel=error
  fi
)

# Python: a virtualenv inside the repository. It also holds Microsoft's
# management SDKs, whose models (generated from azure-rest-api-specs) the ARM
# tests check every request body against: that check may not be skipped here.
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q -r bindings-python/requirements-dev.txt -r tests/arm_spec/requirements.txt
export VMRESTORE_REQUIRE_SPEC=1

# The Node addon's napi_* symbols come from the Node process that loads it:
# a Rust test harness cannot link it. It is built and tested from Node below.
cargo test --workspace --all-targets --exclude vmrestore-node
cargo test --workspace --doc --exclude vmrestore-node

export VIRTUAL_ENV="$PWD/.venv"
(
  cd bindings-python
  ../.venv/bin/maturin develop -q
  ../.venv/bin/python -m mypy.stubtest vmrestore._native
  ../.venv/bin/python -m mypy python/vmrestore tests ../examples/python
  ../.venv/bin/python -m pytest -q tests ../examples/python
)

# Node: packages in bindings-node/node_modules, the addon built by napi.
(
  cd bindings-node
  node scripts/gen-types.js --check
  # `napi build` regenerates index.d.ts: it must not drift from the
  # committed copy; index.js is hand-written, and the build must leave it.
  before="$(mktemp -d)"
  cp index.d.ts index.js "$before/"
  npx --no-install napi build --platform --no-js
  for f in index.d.ts index.js; do
    if ! cmp -s "$before/$f" "$f"; then
      diff -u "$before/$f" "$f" | head -40 || true
      echo "bindings-node/$f drifted from the build: commit the regenerated file" >&2
      exit 1
    fi
  done
  rm -rf "$before"
  npx --no-install tsc -p test/tsconfig.json
  node --test test/
)
