#!/usr/bin/env bash
# Build the SmartModules to wasm32-unknown-unknown and copy them to smartmodules/dist/.
#
# Picks the first route that works:
#   1. rustup's toolchain with the wasm32-unknown-unknown target installed
#      (`rustup target add wasm32-unknown-unknown`);
#   2. Debian's Rust with its standard-library source, built with -Zbuild-std
#      (`apt-get install rustc-web cargo-web rust-web-src lld`).
# `--allow-undefined` is needed because the host import `copy_records` is resolved by the
# SmartModule engine at instantiation, not at link time.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
sm="$root/smartmodules"
dist="$sm/dist"
target=wasm32-unknown-unknown
modules=(soc_normalize soc_filter)

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
else
  cat >&2 <<MSG
error: no toolchain here can build wasm32-unknown-unknown. Install one of:
  - rustup target add $target
  - apt-get install rustc-web cargo-web rust-web-src lld   (Debian 12)
MSG
  exit 1
fi

mkdir -p "$dist"
for m in "${modules[@]}"; do
  cp "$sm/target/$target/release/$m.wasm" "$dist/${m#soc_}.wasm"
done
ls -l "$dist"
