//! The `.wasm` files compiled into `soc` (`smartmodules/dist/`) were built from the sources
//! in this tree: every file recorded in `MANIFEST.sha256` still hashes the same. Fails after
//! a change to a SmartModule (or to what it compiles of `soc-core`) until
//! `scripts/build-smartmodules.sh` has rebuilt the artifacts.

use sha2::{Digest, Sha256};
use std::path::Path;

#[test]
fn checked_in_smartmodules_match_their_sources() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let manifest = std::fs::read_to_string(root.join("smartmodules/dist/MANIFEST.sha256"))
        .expect("smartmodules/dist/MANIFEST.sha256 (written by scripts/build-smartmodules.sh)");
    let mut stale = Vec::new();
    let mut listed = Vec::new();
    for line in manifest.lines().filter(|l| !l.trim().is_empty()) {
        let (hash, path) = line.split_once("  ").expect("`<sha256>  <path>` lines");
        listed.push(path.to_string());
        match std::fs::read(root.join(path)) {
            Ok(bytes) => {
                let actual = format!("{:x}", Sha256::digest(&bytes));
                if actual != hash {
                    stale.push(format!("{path} changed"));
                }
            }
            Err(e) => stale.push(format!("{path}: {e}")),
        }
    }
    for required in [
        "smartmodules/dist/normalize.wasm",
        "smartmodules/dist/filter.wasm",
        "smartmodules/normalize/src/lib.rs",
        "smartmodules/filter/src/lib.rs",
        "smartmodules/abi/src/lib.rs",
        "smartmodules/Cargo.lock",
    ] {
        assert!(
            listed.iter().any(|p| p == required),
            "{required} missing from the manifest"
        );
    }
    assert!(
        stale.is_empty(),
        "the checked-in SmartModules are stale; run scripts/build-smartmodules.sh and commit \
         smartmodules/dist:\n  {}",
        stale.join("\n  ")
    );
}
