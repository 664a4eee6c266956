#!/usr/bin/env bash
# The project's test suite: SmartModule unit tests, the wasm build, formatting, lints, and
# every workspace test (database tests on SQLite, and on PostgreSQL via SOC_TEST_POSTGRES_URL).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

export SOC_TEST_POSTGRES_URL="${SOC_TEST_POSTGRES_URL-postgres://postgres@127.0.0.1:5432/test}"
[ -n "$SOC_TEST_POSTGRES_URL" ] || unset SOC_TEST_POSTGRES_URL

echo "== SmartModules: build to wasm"
./scripts/build-smartmodules.sh

echo "== SmartModules: unit tests (native)"
cargo test --manifest-path smartmodules/Cargo.toml

echo "== format and lints"
cargo fmt --all -- --check
(cd smartmodules && cargo fmt --all -- --check)
cargo clippy --workspace --all-targets -- -D warnings
(cd smartmodules && cargo clippy --all-targets -- -D warnings)

echo "== workspace tests"
cargo test --workspace -- --skip ssh_bruteforce_on_a_fluvio_cluster

# Shown uncaptured, so the log says why it was skipped when no cluster is set.
echo "== Fluvio cluster test (FLUVIO_ENDPOINT=${FLUVIO_ENDPOINT:-unset})"
cargo test -p soc --test fluvio_cluster -- --nocapture
