#!/usr/bin/env bash
# Build the SmartModules to wasm32-unknown-unknown from the sources in smartmodules/.
#
# smartmodules/dist/ holds the built .wasm files, checked in and compiled into `soc`, with
# smartmodules/dist/MANIFEST.sha256: the SHA-256 of every file of this repository they were
# built from and of the artifacts themselves (`sha256sum -c smartmodules/dist/MANIFEST.sha256`
# from the repository root).
# A machine without a wasm toolchain builds `soc` from them; a test fails when they are stale.
#
# This script builds the modules with the first route that works:
#   1. rustup's toolchain with the wasm32-unknown-unknown target installed
#      (`rustup target add wasm32-unknown-unknown`);
#   2. Debian's Rust with its standard-library source, built with -Zbuild-std
#      (`apt-get install rustc-web cargo-web rust-web-src lld`).
# and replaces the artifacts only when the sources changed (or with --force): builds by
# different toolchains differ in bytes, and the checked-in ones stay until the sources move.
# With --check it builds nothing and fails when the artifacts are stale.
# `--allow-undefined` is needed because the host import `copy_records` is resolved by the
# SmartModule engine at instantiation, not at link time.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
sm="$root/smartmodules"
dist="$sm/dist"
manifest="$dist/MANIFEST.sha256"
target=wasm32-unknown-unknown
modules=(soc_normalize soc_filter)
force=false
check=false
for arg in "$@"; do
  case "$arg" in
    --force) force=true ;;
    --check) check=true ;;
    *) echo "usage: $0 [--force|--check]" >&2; exit 2 ;;
  esac
done

# Every file of this repository the wasm build read (from cargo's dep-info), plus the
# manifests and lock file, as `sha256sum` lines relative to the repository root.
sources_hash() {
  {
    for m in "${modules[@]}"; do
      sed 's/^[^:]*://' "$sm/target/$target/release/$m.d"
    done | tr ' ' '\n' | grep "^$root/" | grep -v "^$root/smartmodules/target/" |
      sed "s|^$root/||"
    (cd "$root" && ls smartmodules/Cargo.toml smartmodules/Cargo.lock smartmodules/*/Cargo.toml \
      core/Cargo.toml)
  } | LC_ALL=C sort -u | (cd "$root" && xargs -d '\n' sha256sum)
}

# The recorded sources and artifacts still hash the same.
fresh() {
  [ -f "$manifest" ] && (cd "$root" && sha256sum --quiet -c "$manifest" >/dev/null 2>&1)
}

if $check; then
  if fresh; then
    echo "SmartModule artifacts match their sources" >&2
    exit 0
  fi
  echo "error: smartmodules/dist is stale: run scripts/build-smartmodules.sh and commit it" >&2
  exit 1
fi

have_rustup_target() {
  command -v rustup >/dev/null 2>&1 &&
    rustup target list --installed 2>/dev/null | grep -qx "$target"
}

have_debian_toolchain() {
  [ -x /usr/bin/cargo ] && [ -x /usr/bin/rustc ] && command -v wasm-ld >/dev/null 2>&1 &&
    [ -d "$(/usr/bin/rustc --print sysroot)/lib/rustlib/src/rust/library" ]
}

cd "$sm"
if [ "${SOC_WASM_ROUTE:-}" != debian ] && have_rustup_target; then
  echo "building SmartModules with rustup's $target target" >&2
  RUSTFLAGS="-C link-arg=--allow-undefined" cargo build --release --target "$target" \
    --target-dir "$sm/target"
elif have_debian_toolchain; then
  echo "building SmartModules with Debian's Rust and -Zbuild-std" >&2
  PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 \
    RUSTFLAGS="-C linker=wasm-ld -C link-arg=--allow-undefined" \
    /usr/bin/cargo build --release --target "$target" -Zbuild-std=std,panic_abort \
    --target-dir "$sm/target"
elif fresh; then
  echo "no wasm toolchain here; the checked-in SmartModules match their sources" >&2
  exit 0
else
  cat >&2 <<MSG
error: the SmartModule sources changed and no toolchain here can build wasm32-unknown-unknown.
Install one of:
  - rustup target add $target
  - apt-get install rustc-web cargo-web rust-web-src lld   (Debian 12)
MSG
  exit 1
fi

if ! $force && fresh; then
  echo "sources unchanged: keeping the checked-in artifacts in $dist" >&2
  exit 0
fi
mkdir -p "$dist"
for m in "${modules[@]}"; do
  cp "$sm/target/$target/release/$m.wasm" "$dist/${m#soc_}.wasm"
done
{
  sources_hash
  (cd "$root" && sha256sum smartmodules/dist/*.wasm)
} >"$manifest.new"
mv "$manifest.new" "$manifest"
echo "updated $dist (commit it with the source change)" >&2
ls -l "$dist"
