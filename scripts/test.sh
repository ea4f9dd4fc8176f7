#!/usr/bin/env bash
# Runs every test of the project: Rust (unit, integration, vectors, property,
# snapshot, doc tests). The Python and Node suites join here as their
# bindings land.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-targets
cargo test --workspace --doc
