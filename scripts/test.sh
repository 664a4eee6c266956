#!/usr/bin/env bash
# The project's test suite: the SmartModule artifacts against their sources, the wasm build,
# SmartModule unit tests, formatting, lints, and every workspace test (database tests on
# SQLite, and on PostgreSQL when one is reachable or SOC_TEST_POSTGRES_URL names one).
#
# Installs what the tests need when it is missing: as root on Debian with apt-get;
# otherwise it prints exactly what to install and stops.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

have_wasm_toolchain() {
  { command -v rustup >/dev/null 2>&1 &&
    rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; } ||
    { [ -x /usr/bin/rustc ] && command -v wasm-ld >/dev/null 2>&1 &&
      [ -d "$(/usr/bin/rustc --print sysroot)/lib/rustlib/src/rust/library" ]; }
}

chromium="${SOC_CHROMIUM:-/usr/bin/chromium}"
missing=()
have_wasm_toolchain || missing+=(rustc-web cargo-web rust-web-src lld)
[ -x "$chromium" ] || missing+=(chromium)
# The response agent's tests run real nftables in network namespaces.
command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || missing+=(nftables)
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || missing+=(iproute2)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  else
    cat >&2 <<MSG
The tests need packages this machine lacks. On Debian 12, as root:
  apt-get install ${missing[*]}
(rustc-web, cargo-web, rust-web-src and lld build the SmartModules from source; with rustup,
\`rustup target add wasm32-unknown-unknown\` does instead. chromium runs the dashboard test;
SOC_CHROMIUM=/path/to/chrome points at another. nftables and iproute2 run the response agent's
tests in network namespaces, as root.)
MSG
    exit 1
  fi
fi

# schemathesis (PyPI) fuzzes the running gateway against its OpenAPI document.
if [ -z "${SOC_SCHEMATHESIS:-}" ]; then
  if ! command -v schemathesis >/dev/null 2>&1; then
    if command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then
      echo "== installing schemathesis from PyPI"
      python3 -m pip install -q schemathesis ||
        python3 -m pip install -q --break-system-packages schemathesis
      hash -r
      if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
    fi
  fi
  if ! command -v schemathesis >/dev/null 2>&1; then
    echo "The API test needs schemathesis: python3 -m pip install schemathesis" \
      "(or set SOC_SCHEMATHESIS to its path)" >&2
    exit 1
  fi
  SOC_SCHEMATHESIS="$(command -v schemathesis)"
  export SOC_SCHEMATHESIS
fi

# PostgreSQL: the named one, else the local default when it answers, else SQLite only.
if [ -z "${SOC_TEST_POSTGRES_URL+set}" ]; then
  if (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
    export SOC_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test
  else
    echo "== no PostgreSQL on 127.0.0.1:5432: database tests run on SQLite only" \
      "(set SOC_TEST_POSTGRES_URL to include one)"
  fi
fi
[ -n "${SOC_TEST_POSTGRES_URL:-}" ] || unset SOC_TEST_POSTGRES_URL

echo "== SmartModules: checked-in artifacts match their sources"
./scripts/build-smartmodules.sh --check

echo "== SmartModules: build to wasm from source"
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
