//! The SmartModules and deployment config compiled into the binary, so an installed `soc`
//! needs no checkout. Directories given by the operator replace them (see `Assets`).
//!
//! The `.wasm` files come from `smartmodules/dist/`: built from the sources in
//! `smartmodules/` by `scripts/build-smartmodules.sh`, and checked in with the hash of the
//! sources they were built from (`smartmodules/dist/SOURCES.sha256`), so a machine without
//! a wasm toolchain still builds `soc`, and a test fails when they are stale.

use crate::assets::Assets;

#[derive(rust_embed::RustEmbed)]
#[folder = "../smartmodules/dist/"]
#[include = "*.wasm"]
struct SmartModules;

#[derive(rust_embed::RustEmbed)]
#[folder = "../fluvio-config/"]
#[include = "*.yaml"]
#[include = "*.yml"]
struct Deployment;

/// `normalize.wasm` and `filter.wasm`.
pub fn smartmodules() -> Assets {
    Assets::from_embed::<SmartModules>("SmartModules")
}

/// `chain.yaml` and `topics/*.yaml`, as in `fluvio-config/`.
pub fn deployment() -> Assets {
    Assets::from_embed::<Deployment>("deployment config")
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_modules_and_the_chain_are_embedded() {
        let modules: Vec<String> = super::smartmodules()
            .files_with_extension("", &["wasm"])
            .expect("embedded")
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(modules, ["filter.wasm", "normalize.wasm"]);
        let chain = super::super::config::chain_from(&super::deployment()).expect("chain");
        assert_eq!(chain.len(), 2);
        let topics = super::super::config::topics_from(&super::deployment()).expect("topics");
        assert!(topics.len() >= 2);
    }
}
