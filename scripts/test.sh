#!/usr/bin/env bash
# Runs Cairn's whole test suite from a fresh clone: installs the system packages the build
# needs (Debian), checks formatting and lints, then runs every test in the workspace.
#
#   ./scripts/test.sh
#
# Needs: a Rust toolchain (cargo). Installs with apt-get, as root (or through sudo):
# libclang-dev (RocksDB's bindings are generated with bindgen), g++ and pkg-config; for the
# tests, prometheus (promtool), chromium (headless, for the explorer page) and python3-venv
# (openapi-spec-validator from PyPI in .tools/).
set -euo pipefail
cd "$(dirname "$0")/.."

CAIRN_TEST_TOOLS=1 source scripts/deps.sh

start=$SECONDS
say "cargo fmt --check"
cargo fmt --all -- --check

# Build once in the test profile; clippy then reuses the compiled dependencies' metadata.
say "cargo test --workspace (builds RocksDB from source on a fresh machine: ~10 min)"
cargo test --workspace --locked --no-run
# The end-to-end tests run the workspace's binaries (cairn, cairn-node, cairn-testnet), which
# cargo builds for tests only within their own package.
cargo build --workspace --locked --bins

say "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

# The consensus crate must stay free of IO crates (DESIGN §2), and the ledger must build
# without its storage engine, which is how consensus uses it.
say "consensus depends on no IO crate; the ledger builds without RocksDB"
if cargo tree --locked -p cairn-consensus -e normal --prefix none | grep -E '^(rocksdb|librocksdb-sys|tokio|libp2p) '; then
  echo "error: cairn-consensus depends on an IO crate (above)" >&2; exit 1
fi
cargo check --locked -p cairn-ledger -p cairn-consensus --no-default-features --lib

say "running the tests"
cargo test --workspace --locked

say "all checks passed in $((SECONDS - start)) s"
