//! SmartModule exports that do not leak.
//!
//! `#[smartmodule]` in fluvio-smartmodule 0.50 hands each output buffer to the host with
//! `mem::forget` and the host never frees it, so a long-lived chain grows until the store
//! memory limit kills it. These helpers speak the same ABI (`(ptr, len, version) -> i32`
//! exports, the `copy_records(ptr, len)` import, fluvio-smartmodule's codec) but keep one
//! output buffer per module: the host copies it after the export returns, and the next call
//! reuses it. `alloc`/`dealloc` come from `fluvio_smartmodule::memory`; the input buffer the
//! host allocated is owned and dropped here.
//!
//! A module uses the macros: `export_map!(my_fn)`, `export_filter!(my_fn)`,
//! `export_init!(my_init)`.

pub use fluvio_smartmodule;

use fluvio_smartmodule::dataplane::core::{Decoder, Encoder};
use fluvio_smartmodule::dataplane::record::{Record, RecordData};
use fluvio_smartmodule::dataplane::smartmodule::{
    SmartModuleExtraParams, SmartModuleInitErrorStatus, SmartModuleInitInput, SmartModuleInput,
    SmartModuleOutput, SmartModuleTransformErrorStatus,
};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Cursor;

/// A record as a module sees it: its value and its timestamp (ms since the epoch; 0 if unknown).
pub struct Input<'a> {
    pub value: &'a [u8],
    pub timestamp_ms: i64,
}

thread_local! {
    // wasm32-unknown-unknown is single-threaded: one buffer lives for the module's lifetime.
    static OUTPUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The host writes its input into a buffer it got from `alloc(len)`; we take ownership.
///
/// # Safety
/// `ptr` must come from this module's `alloc(len)`.
unsafe fn take_input(ptr: *mut u8, len: usize) -> Vec<u8> {
    unsafe { Vec::from_raw_parts(ptr, len, len) }
}

fn decode_records(input: Vec<u8>, version: i16) -> Result<(Vec<Record>, i64), i32> {
    let mut sm_input = SmartModuleInput::default();
    if Decoder::decode(&mut sm_input, &mut Cursor::new(input), version).is_err() {
        return Err(SmartModuleTransformErrorStatus::DecodingBaseInput as i32);
    }
    let base_timestamp = sm_input.base_timestamp();
    let mut records: Vec<Record> = Vec::new();
    if Decoder::decode(
        &mut records,
        &mut Cursor::new(sm_input.into_raw_bytes()),
        version,
    )
    .is_err()
    {
        return Err(SmartModuleTransformErrorStatus::DecodingRecords as i32);
    }
    Ok((records, base_timestamp))
}

/// Encode `output` into the module's reused buffer and hand it to the host.
fn emit<E: Encoder>(
    output: &E,
    version: i16,
    copy: impl FnOnce(*const u8, usize),
) -> Result<(), i32> {
    OUTPUT.with(|buf| {
        let mut buf = buf.borrow_mut();
        buf.clear();
        if output.encode(&mut *buf, version).is_err() {
            return Err(SmartModuleTransformErrorStatus::EncodingOutput as i32);
        }
        copy(buf.as_ptr(), buf.len());
        Ok(())
    })
}

fn timestamp_of(record: &Record, base_timestamp: i64) -> i64 {
    if base_timestamp <= 0 {
        0
    } else {
        base_timestamp + record.timestamp_delta()
    }
}

/// Body of a `map` export: `f` turns each record's value into a new value and never fails,
/// so one bad line can never stop the rest of its batch.
///
/// # Safety
/// `ptr`/`len` must describe a buffer from this module's `alloc`.
pub unsafe fn run_map(
    ptr: *mut u8,
    len: usize,
    version: i16,
    f: impl Fn(&Input<'_>) -> Vec<u8>,
    copy: impl FnOnce(*const u8, usize),
) -> i32 {
    let input = unsafe { take_input(ptr, len) };
    let (records, base_timestamp) = match decode_records(input, version) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let mut output = SmartModuleOutput {
        successes: Vec::with_capacity(records.len()),
        error: None,
    };
    for mut record in records {
        let value = f(&Input {
            value: record.value.as_ref(),
            timestamp_ms: timestamp_of(&record, base_timestamp),
        });
        record.value = RecordData::from(value);
        output.successes.push(record);
    }
    let n = output.successes.len() as i32;
    match emit(&output, version, copy) {
        Ok(()) => n,
        Err(code) => code,
    }
}

/// Body of a `filter` export: keeps the records for which `f` is true.
///
/// # Safety
/// `ptr`/`len` must describe a buffer from this module's `alloc`.
pub unsafe fn run_filter(
    ptr: *mut u8,
    len: usize,
    version: i16,
    f: impl Fn(&Input<'_>) -> bool,
    copy: impl FnOnce(*const u8, usize),
) -> i32 {
    let input = unsafe { take_input(ptr, len) };
    let (records, base_timestamp) = match decode_records(input, version) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let mut output = SmartModuleOutput {
        successes: Vec::with_capacity(records.len()),
        error: None,
    };
    for record in records {
        let keep = f(&Input {
            value: record.value.as_ref(),
            timestamp_ms: timestamp_of(&record, base_timestamp),
        });
        if keep {
            output.successes.push(record);
        }
    }
    let n = output.successes.len() as i32;
    match emit(&output, version, copy) {
        Ok(()) => n,
        Err(code) => code,
    }
}

/// Body of an `init` export: hands the parameters to `f`, which stores the module's config.
///
/// # Safety
/// `ptr`/`len` must describe a buffer from this module's `alloc`.
pub unsafe fn run_init(
    ptr: *mut u8,
    len: usize,
    version: i16,
    f: impl FnOnce(&BTreeMap<String, String>) -> Result<(), String>,
) -> i32 {
    let input = unsafe { take_input(ptr, len) };
    let mut init = SmartModuleInitInput::default();
    if Decoder::decode(&mut init, &mut Cursor::new(input), version).is_err() {
        return SmartModuleInitErrorStatus::DecodingInput as i32;
    }
    match f(&params_map(&init.params)) {
        Ok(()) => 0,
        // A bad parameter fails the chain's construction on the host, which reports it.
        Err(_) => SmartModuleInitErrorStatus::InitError as i32,
    }
}

fn params_map(params: &SmartModuleExtraParams) -> BTreeMap<String, String> {
    // SmartModuleExtraParams exposes lookups only; its encoding is the map itself.
    let mut bytes = Vec::new();
    let mut map = BTreeMap::new();
    if params.encode(&mut bytes, 0).is_ok() {
        let _ = Decoder::decode(&mut map, &mut Cursor::new(bytes), 0);
    }
    map
}

/// Exports `map` calling `fn(&Input) -> Vec<u8>`.
#[macro_export]
macro_rules! export_map {
    ($f:path) => {
        #[cfg(target_arch = "wasm32")]
        mod __soc_map_export {
            #[link(wasm_import_module = "env")]
            unsafe extern "C" {
                fn copy_records(ptr: i32, len: i32);
            }
            /// # Safety
            /// Called by the SmartModule host with a buffer from `alloc`.
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn map(ptr: *mut u8, len: usize, version: i16) -> i32 {
                unsafe {
                    $crate::run_map(ptr, len, version, $f, |p, l| {
                        copy_records(p as i32, l as i32)
                    })
                }
            }
        }
    };
}

/// Exports `filter` calling `fn(&Input) -> bool`.
#[macro_export]
macro_rules! export_filter {
    ($f:path) => {
        #[cfg(target_arch = "wasm32")]
        mod __soc_filter_export {
            #[link(wasm_import_module = "env")]
            unsafe extern "C" {
                fn copy_records(ptr: i32, len: i32);
            }
            /// # Safety
            /// Called by the SmartModule host with a buffer from `alloc`.
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn filter(ptr: *mut u8, len: usize, version: i16) -> i32 {
                unsafe {
                    $crate::run_filter(ptr, len, version, $f, |p, l| {
                        copy_records(p as i32, l as i32)
                    })
                }
            }
        }
    };
}

/// Exports `init` calling `fn(&BTreeMap<String, String>) -> Result<(), String>`.
#[macro_export]
macro_rules! export_init {
    ($f:path) => {
        #[cfg(target_arch = "wasm32")]
        mod __soc_init_export {
            /// # Safety
            /// Called by the SmartModule host with a buffer from `alloc`.
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn init(ptr: *mut u8, len: usize, version: i16) -> i32 {
                unsafe { $crate::run_init(ptr, len, version, $f) }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_input(values: &[&str], base_timestamp: i64) -> (Vec<u8>, i16) {
        let version: i16 = 22;
        let records: Vec<Record> = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let mut r = Record::new(str::as_bytes(v).to_vec());
                r.preamble.set_offset_delta(i as i64);
                r.preamble.set_timestamp_delta(i as i64);
                r
            })
            .collect();
        let mut raw = Vec::new();
        records.encode(&mut raw, version).expect("encode records");
        let input = SmartModuleInput::new(raw, 100, base_timestamp);
        let mut bytes = Vec::new();
        input.encode(&mut bytes, version).expect("encode input");
        (bytes, version)
    }

    fn call(
        bytes: Vec<u8>,
        version: i16,
        run: impl FnOnce(*mut u8, usize, i16, &mut Vec<u8>) -> i32,
    ) -> (i32, SmartModuleOutput) {
        let mut bytes = std::mem::ManuallyDrop::new(bytes);
        bytes.shrink_to_fit();
        let (ptr, len) = (bytes.as_mut_ptr(), bytes.len());
        assert_eq!(bytes.capacity(), len);
        let mut copied = Vec::new();
        let n = run(ptr, len, version, &mut copied);
        let mut out = SmartModuleOutput::default();
        if n >= 0 {
            out.decode(&mut Cursor::new(copied), version)
                .expect("decode output");
        }
        (n, out)
    }

    fn copy_into(out: &mut Vec<u8>) -> impl FnOnce(*const u8, usize) + '_ {
        move |ptr, len| {
            // Natively the "guest memory" is ours: read it back as the host would.
            let s = unsafe { std::slice::from_raw_parts(ptr, len) };
            out.extend_from_slice(s);
        }
    }

    #[test]
    fn map_and_filter_round_trip() {
        let (bytes, v) = encode_input(&["a", "bb", "ccc"], 1_000);
        let (n, out) = call(bytes, v, |p, l, v, c| unsafe {
            run_map(
                p,
                l,
                v,
                |i| format!("{}@{}", i.value.len(), i.timestamp_ms).into_bytes(),
                copy_into(c),
            )
        });
        assert_eq!(n, 3);
        let values: Vec<String> = out
            .successes
            .iter()
            .map(|r| String::from_utf8_lossy(r.value.as_ref()).to_string())
            .collect();
        assert_eq!(values, vec!["1@1000", "2@1001", "3@1002"]);
    }

    #[test]
    fn bad_input_is_an_error_code_not_a_panic() {
        let bytes = vec![0xff, 0x01];
        let mut bytes = std::mem::ManuallyDrop::new(bytes);
        bytes.shrink_to_fit();
        let code = unsafe {
            run_map(
                bytes.as_mut_ptr(),
                bytes.len(),
                22,
                |_| Vec::new(),
                |_, _| {},
            )
        };
        assert!(code < 0);
    }

    #[test]
    fn params_are_read_from_init_input() {
        let mut params = BTreeMap::new();
        params.insert("drop_categories".to_string(), "network".to_string());
        let extra = SmartModuleExtraParams::from(params.clone());
        assert_eq!(params_map(&extra), params);
    }
}
