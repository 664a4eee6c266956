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
//!
//! # Memory protocol
//!
//! The `unsafe` code in this crate rests on how fluvio-smartengine 0.50 drives a module,
//! one call at a time (`write_input`, the export, `read_output`):
//!
//! 1. The host encodes the input and calls the module's exported `alloc(len)`
//!    (`fluvio_smartmodule::memory::alloc`), which makes a `Vec::<u8>::with_capacity(len)`
//!    with the module's global allocator, forgets it and returns its pointer.
//! 2. The host copies exactly `len` bytes to that pointer and calls the export once with
//!    `(ptr, len, version)`. It allocates a fresh buffer for every call, never calls
//!    `dealloc` and never touches the buffer again: the export owns it and frees it.
//! 3. A transform export passes the host a pointer and length with the imported
//!    `copy_records(ptr, len)`. The host only remembers them and copies the bytes out of
//!    linear memory after the export has returned, before it calls the module again; so the
//!    buffer must stay alive and unchanged until the export is next called.

#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

pub use fluvio_smartmodule;

use fluvio_smartmodule::dataplane::core::{Decoder, Encoder};
use fluvio_smartmodule::dataplane::smartmodule::{
    SmartModuleExtraParams, SmartModuleInitErrorStatus, SmartModuleInitInput,
    SmartModuleTransformErrorStatus,
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
/// - `ptr` must be the pointer returned by this module's `alloc(len)` for this same `len`
///   (so it was allocated by the module's global allocator as a `Vec<u8>` of capacity
///   `len`), or any pointer meeting the same conditions.
/// - All `len` bytes at `ptr` must have been written (initialized).
/// - Ownership of the buffer passes to the returned `Vec`, which frees it when dropped: the
///   caller must not read, write, free or pass the buffer anywhere again, and must not call
///   this twice with the same pointer.
unsafe fn take_input(ptr: *mut u8, len: usize) -> Vec<u8> {
    // SAFETY: `Vec::from_raw_parts(ptr, len, capacity)` needs `ptr` allocated by the global
    // allocator with the layout a `Vec<u8>` of `capacity` elements uses, `len <= capacity`,
    // the first `len` bytes initialized, and no other owner. By the caller's contract `ptr`
    // comes from `alloc(len)`, which is `Vec::<u8>::with_capacity(len)` forgotten, in this
    // module and so with the same global allocator. std documents `with_capacity` as "at
    // least", but for a non-zero-sized element it allocates exactly
    // `Layout::array::<u8>(len)` (size `len`, align 1) and reports capacity `len`; that is
    // why capacity is `len` here, and fluvio's own `dealloc(ptr, size)` relies on the same
    // by calling `Vec::from_raw_parts(ptr, size, size)`. For `len == 0` `alloc` allocated
    // nothing and returned a dangling, well-aligned pointer, which a capacity-0 `Vec`
    // never frees. The host copied exactly `len` bytes there before the call, so all of
    // them are initialized, and it hands the buffer over exactly once: fluvio-smartengine
    // never frees or reuses it, so this `Vec` is its only owner and frees it once.
    unsafe { Vec::from_raw_parts(ptr, len, len) }
}

/// Split an encoded `SmartModuleInput` into (base offset, raw record bytes, base timestamp).
/// fluvio-protocol decodes a `Vec<u8>` one element at a time; the raw records are by far the
/// largest field, so they are taken as one slice here. `input_decode_matches_fluvio` pins it.
fn split_input(input: &[u8], version: i16) -> Option<(i64, &[u8], i64)> {
    let base_offset = i64::from_be_bytes(input.get(0..8)?.try_into().ok()?);
    let len = i32::from_be_bytes(input.get(8..12)?.try_into().ok()?);
    let len = usize::try_from(len).unwrap_or(0);
    let raw = input.get(12..12 + len)?;
    let mut rest = Cursor::new(input.get(12 + len..)?);
    // The deprecated fields are small; fluvio's decoders read them.
    if version <= 22 {
        let mut params = SmartModuleExtraParams::default();
        params.decode(&mut rest, version).ok()?;
        if version >= 16 {
            let mut join: Vec<u8> = Vec::new();
            join.decode(&mut rest, version).ok()?;
        }
    }
    let mut base_timestamp: i64 = 0;
    if version >= 22 {
        base_timestamp.decode(&mut rest, version).ok()?;
    }
    Some((base_offset, raw, base_timestamp))
}

/// One record of the input, borrowed from the input buffer.
struct RawRecord<'a> {
    /// The whole encoded record (length prefix included), for copying it out unchanged.
    whole: &'a [u8],
    /// attributes, timestamp delta and offset delta, as encoded.
    header: &'a [u8],
    timestamp_delta: i64,
    key: Option<&'a [u8]>,
    value: &'a [u8],
    headers: i64,
}

/// Zig-zag LEB128, as fluvio (and Kafka) encode record varints.
fn read_varint(buf: &[u8]) -> Option<(i64, usize)> {
    let mut v: u64 = 0;
    for (i, b) in buf.iter().take(10).enumerate() {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(((v >> 1) as i64 ^ -((v & 1) as i64), i + 1));
        }
    }
    None
}

fn read_len(buf: &[u8], pos: &mut usize) -> Option<usize> {
    let (v, n) = read_varint(buf.get(*pos..)?)?;
    *pos += n;
    usize::try_from(v).ok()
}

/// Parse an encoded `Vec<Record>` without copying: fluvio's decoder allocates and copies
/// every key and value, which is most of a filter's work.
fn parse_records(raw: &[u8]) -> Option<Vec<RawRecord<'_>>> {
    let count = i32::from_be_bytes(raw.get(0..4)?.try_into().ok()?);
    let count = usize::try_from(count).unwrap_or(0);
    let mut out = Vec::with_capacity(count.min(raw.len() / 8 + 1));
    let mut pos = 4;
    for _ in 0..count {
        let start = pos;
        let len = read_len(raw, &mut pos)?;
        let inner = raw.get(pos..pos.checked_add(len)?)?;
        pos += len;
        let mut p = 1; // attributes (i8)
        let (timestamp_delta, n) = read_varint(inner.get(p..)?)?;
        p += n;
        let (_offset_delta, n) = read_varint(inner.get(p..)?)?;
        p += n;
        let header = inner.get(..p)?;
        let has_key = *inner.get(p)? != 0;
        p += 1;
        let key = if has_key {
            let klen = read_len(inner, &mut p)?;
            let k = inner.get(p..p.checked_add(klen)?)?;
            p += klen;
            Some(k)
        } else {
            None
        };
        let vlen = read_len(inner, &mut p)?;
        let value = inner.get(p..p.checked_add(vlen)?)?;
        p += vlen;
        let (headers, _) = read_varint(inner.get(p..)?)?;
        out.push(RawRecord {
            whole: raw.get(start..pos)?,
            header,
            timestamp_delta,
            key,
            value,
            headers,
        });
    }
    Some(out)
}

/// Append a record with the same header and key as `r` and a new value.
fn encode_mapped(r: &RawRecord<'_>, value: &[u8], out: &mut Vec<u8>, scratch: &mut Vec<u8>) {
    scratch.clear();
    scratch.extend_from_slice(r.header);
    match r.key {
        Some(k) => {
            scratch.push(1);
            push_varint(scratch, k.len() as i64);
            scratch.extend_from_slice(k);
        }
        None => scratch.push(0),
    }
    push_varint(scratch, value.len() as i64);
    scratch.extend_from_slice(value);
    push_varint(scratch, r.headers);
    push_varint(out, scratch.len() as i64);
    out.extend_from_slice(scratch);
}

fn push_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        let b = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// Hand the module's output buffer to the host; it stays alive until the next call.
///
/// `copy` gets a pointer to `len` initialized bytes of `OUTPUT`. It stays valid, and the
/// bytes unchanged, until `with_output` runs again: only this function touches `OUTPUT`,
/// and the thread-local (one per module instance on single-threaded wasm32) is never
/// dropped while the module runs. That is what the host's `copy_records` needs, since it
/// reads the bytes after the export returns.
fn with_output(fill: impl FnOnce(&mut Vec<u8>), copy: impl FnOnce(*const u8, usize)) {
    OUTPUT.with(|buf| {
        let mut buf = buf.borrow_mut();
        buf.clear();
        fill(&mut buf);
        copy(buf.as_ptr(), buf.len());
    })
}

fn timestamp_of(record: &RawRecord<'_>, base_timestamp: i64) -> i64 {
    if base_timestamp <= 0 {
        0
    } else {
        base_timestamp + record.timestamp_delta
    }
}

/// Input buffer -> (records, base timestamp), or the error code to return.
fn read_input(input: &[u8], version: i16) -> Result<(Vec<RawRecord<'_>>, i64), i32> {
    let (_, raw, base_timestamp) = split_input(input, version)
        .ok_or(SmartModuleTransformErrorStatus::DecodingBaseInput as i32)?;
    let records =
        parse_records(raw).ok_or(SmartModuleTransformErrorStatus::DecodingRecords as i32)?;
    Ok((records, base_timestamp))
}

/// Body of a `map` export: `f` turns each record's value into a new value and never fails,
/// so one bad line can never stop the rest of its batch.
///
/// Unless the input cannot be decoded (then a negative error code is returned and `copy`
/// is not called), `copy` is called once with the encoded output, which stays valid until
/// the next `run_map`/`run_filter` call (see `with_output`).
///
/// # Safety
/// `ptr` and `len` must be what this module's `alloc(len)` returned and was asked for, with
/// all `len` bytes written, and ownership of that buffer passes to this call: the caller
/// must not use or free it afterwards, nor pass it to another call. This is what the
/// SmartModule host does (see the crate's memory protocol); [`take_input`] has the details.
pub unsafe fn run_map(
    ptr: *mut u8,
    len: usize,
    version: i16,
    f: impl Fn(&Input<'_>) -> Vec<u8>,
    copy: impl FnOnce(*const u8, usize),
) -> i32 {
    // SAFETY: this function's contract is `take_input`'s: `ptr`/`len` come from this
    // module's `alloc(len)`, are fully written, and the caller gave up the buffer to us.
    let input = unsafe { take_input(ptr, len) };
    let (records, base_timestamp) = match read_input(&input, version) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let n = records.len() as i32;
    with_output(
        |out| {
            out.extend_from_slice(&(records.len() as u32).to_be_bytes());
            let mut scratch = Vec::new();
            for r in &records {
                let value = f(&Input {
                    value: r.value,
                    timestamp_ms: timestamp_of(r, base_timestamp),
                });
                encode_mapped(r, &value, out, &mut scratch);
            }
            out.push(0); // error: None
        },
        copy,
    );
    n
}

/// Body of a `filter` export: keeps the records for which `f` is true.
///
/// Unless the input cannot be decoded (then a negative error code is returned and `copy`
/// is not called), `copy` is called once with the encoded output, which stays valid until
/// the next `run_map`/`run_filter` call (see `with_output`).
///
/// # Safety
/// `ptr` and `len` must be what this module's `alloc(len)` returned and was asked for, with
/// all `len` bytes written, and ownership of that buffer passes to this call: the caller
/// must not use or free it afterwards, nor pass it to another call. This is what the
/// SmartModule host does (see the crate's memory protocol); [`take_input`] has the details.
pub unsafe fn run_filter(
    ptr: *mut u8,
    len: usize,
    version: i16,
    f: impl Fn(&Input<'_>) -> bool,
    copy: impl FnOnce(*const u8, usize),
) -> i32 {
    // SAFETY: this function's contract is `take_input`'s: `ptr`/`len` come from this
    // module's `alloc(len)`, are fully written, and the caller gave up the buffer to us.
    let input = unsafe { take_input(ptr, len) };
    let (records, base_timestamp) = match read_input(&input, version) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let kept: Vec<&RawRecord<'_>> = records
        .iter()
        .filter(|r| {
            f(&Input {
                value: r.value,
                timestamp_ms: timestamp_of(r, base_timestamp),
            })
        })
        .collect();
    with_output(
        |out| {
            out.extend_from_slice(&(kept.len() as u32).to_be_bytes());
            // A kept record goes out exactly as it came in.
            for r in &kept {
                out.extend_from_slice(r.whole);
            }
            out.push(0); // error: None
        },
        copy,
    );
    kept.len() as i32
}

/// Body of an `init` export: hands the parameters to `f`, which stores the module's config.
///
/// # Safety
/// `ptr` and `len` must be what this module's `alloc(len)` returned and was asked for, with
/// all `len` bytes written, and ownership of that buffer passes to this call: the caller
/// must not use or free it afterwards, nor pass it to another call. This is what the
/// SmartModule host does (see the crate's memory protocol); [`take_input`] has the details.
pub unsafe fn run_init(
    ptr: *mut u8,
    len: usize,
    version: i16,
    f: impl FnOnce(&BTreeMap<String, String>) -> Result<(), String>,
) -> i32 {
    // SAFETY: this function's contract is `take_input`'s: `ptr`/`len` come from this
    // module's `alloc(len)`, are fully written, and the caller gave up the buffer to us.
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
            // SAFETY: fluvio-smartengine links `env.copy_records` to a host function taking
            // two i32 (a guest pointer and a length) and returning nothing, which is this
            // declaration on wasm32 (pointers and `usize` are 32-bit there).
            unsafe extern "C" {
                fn copy_records(ptr: i32, len: i32);
            }
            /// # Safety
            /// Only the SmartModule host may call this, as fluvio-smartengine does: `ptr` is
            /// the buffer this module's `alloc(len)` returned for the same `len`, the host
            /// has written all `len` bytes of the encoded input there, and it hands the
            /// buffer over exactly once (it never frees, reuses or reads it afterwards; this
            /// call frees it). Calls are never concurrent or reentrant.
            // SAFETY (no_mangle): the module exports no other symbol named `map`; it must
            // not also use fluvio's `#[smartmodule(map)]`.
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn map(ptr: *mut u8, len: usize, version: i16) -> i32 {
                // SAFETY: `ptr`/`len` meet `run_map`'s contract because the host calls this
                // export only as this function's `# Safety` says. `copy_records` is the
                // host import declared above; `run_map` passes it the output buffer, which
                // stays alive and unchanged until this module's next call, and the host
                // reads it right after this export returns. The casts are lossless on
                // wasm32 (32-bit pointers), and the host reads `len` back as a `u32`.
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
            // SAFETY: fluvio-smartengine links `env.copy_records` to a host function taking
            // two i32 (a guest pointer and a length) and returning nothing, which is this
            // declaration on wasm32 (pointers and `usize` are 32-bit there).
            unsafe extern "C" {
                fn copy_records(ptr: i32, len: i32);
            }
            /// # Safety
            /// Only the SmartModule host may call this, as fluvio-smartengine does: `ptr` is
            /// the buffer this module's `alloc(len)` returned for the same `len`, the host
            /// has written all `len` bytes of the encoded input there, and it hands the
            /// buffer over exactly once (it never frees, reuses or reads it afterwards; this
            /// call frees it). Calls are never concurrent or reentrant.
            // SAFETY (no_mangle): the module exports no other symbol named `filter`; it must
            // not also use fluvio's `#[smartmodule(filter)]`.
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn filter(ptr: *mut u8, len: usize, version: i16) -> i32 {
                // SAFETY: `ptr`/`len` meet `run_filter`'s contract because the host calls this
                // export only as this function's `# Safety` says. `copy_records` is the
                // host import declared above; `run_filter` passes it the output buffer, which
                // stays alive and unchanged until this module's next call, and the host
                // reads it right after this export returns. The casts are lossless on
                // wasm32 (32-bit pointers), and the host reads `len` back as a `u32`.
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
            /// Only the SmartModule host may call this, as fluvio-smartengine does: `ptr` is
            /// the buffer this module's `alloc(len)` returned for the same `len`, the host
            /// has written all `len` bytes of the encoded input there, and it hands the
            /// buffer over exactly once (it never frees, reuses or reads it afterwards; this
            /// call frees it). Calls are never concurrent or reentrant.
            // SAFETY (no_mangle): the module exports no other symbol named `init`; it must
            // not also use fluvio's `#[smartmodule(init)]`.
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn init(ptr: *mut u8, len: usize, version: i16) -> i32 {
                // SAFETY: `ptr`/`len` meet `run_init`'s contract because the host calls this
                // export only as this function's `# Safety` says.
                unsafe { $crate::run_init(ptr, len, version, $f) }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    use fluvio_smartmodule::dataplane::record::{Record, RecordData};
    use fluvio_smartmodule::dataplane::smartmodule::{SmartModuleInput, SmartModuleOutput};

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

    /// Give up `bytes` the way the host hands over its input: as the pointer and length of a
    /// fully written global-allocator buffer whose capacity is its length, as `alloc(len)`
    /// leaves it. Whoever gets the pair owns the buffer (`take_input` frees it).
    fn hand_over(bytes: Vec<u8>) -> (*mut u8, usize) {
        let mut bytes = std::mem::ManuallyDrop::new(bytes);
        bytes.shrink_to_fit();
        assert_eq!(
            bytes.capacity(),
            bytes.len(),
            "take_input needs len == capacity"
        );
        (bytes.as_mut_ptr(), bytes.len())
    }

    /// `run` gets a buffer from [`hand_over`] and owns it.
    fn call(
        bytes: Vec<u8>,
        version: i16,
        run: impl FnOnce(*mut u8, usize, i16, &mut Vec<u8>) -> i32,
    ) -> (i32, SmartModuleOutput) {
        let (ptr, len) = hand_over(bytes);
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
            // SAFETY: `with_output` calls this with the pointer and length of the live
            // `OUTPUT` vector (`len` initialized bytes, u8 needs no alignment) while it holds
            // the vector borrowed, and the slice is dropped before this closure returns.
            let s = unsafe { std::slice::from_raw_parts(ptr, len) };
            out.extend_from_slice(s);
        }
    }

    #[test]
    fn map_and_filter_round_trip() {
        let (bytes, v) = encode_input(&["a", "bb", "ccc"], 1_000);
        let (n, out) = call(bytes, v, |p, l, v, c| {
            // SAFETY: `call` hands over an owned buffer laid out as `alloc(len)` leaves it.
            unsafe {
                run_map(
                    p,
                    l,
                    v,
                    |i| format!("{}@{}", i.value.len(), i.timestamp_ms).into_bytes(),
                    copy_into(c),
                )
            }
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
    fn input_decode_matches_fluvio() {
        let raw: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        for version in [21i16, 22] {
            let input = SmartModuleInput::new(raw.clone(), 1234, 1_795_000_000_000);
            let mut bytes = Vec::new();
            input.encode(&mut bytes, version).expect("encode");
            let (offset, got, ts) = split_input(&bytes, version).expect("split");
            assert_eq!(offset, 1234);
            assert_eq!(got, raw.as_slice());
            let expected_ts = if version >= 22 { 1_795_000_000_000 } else { 0 };
            assert_eq!(ts, expected_ts, "version {version}");
        }
        assert!(
            split_input(&[0, 1, 2], 22).is_none(),
            "truncated input is refused"
        );
    }

    fn sample_records() -> Vec<Record> {
        let mut a = Record::new(b"value bytes \xff\x00 and more".to_vec());
        a.preamble.set_offset_delta(7);
        a.preamble.set_timestamp_delta(-3);
        let mut b = Record::new_key_value(b"key".to_vec(), vec![b'x'; 300]);
        b.preamble.set_offset_delta(1_000_000);
        b.preamble.set_timestamp_delta(86_400_000);
        let empty = Record::new(Vec::new());
        vec![a, b, empty]
    }

    /// `run` gets a buffer from [`hand_over`] and owns it.
    fn run_raw(
        records: &[Record],
        run: impl FnOnce(*mut u8, usize, i16, &mut Vec<u8>) -> i32,
    ) -> (i32, Vec<u8>) {
        let version = 22;
        let mut raw = Vec::new();
        records
            .to_vec()
            .encode(&mut raw, version)
            .expect("encode records");
        let mut bytes = Vec::new();
        SmartModuleInput::new(raw, 0, 1_000)
            .encode(&mut bytes, version)
            .expect("encode input");
        let (ptr, len) = hand_over(bytes);
        let mut copied = Vec::new();
        let n = run(ptr, len, version, &mut copied);
        (n, copied)
    }

    fn fluvio_output(records: Vec<Record>) -> Vec<u8> {
        let mut expected = Vec::new();
        SmartModuleOutput {
            successes: records,
            error: None,
        }
        .encode(&mut expected, 22)
        .expect("fluvio encode");
        expected
    }

    #[test]
    fn map_output_is_byte_identical_to_fluvio() {
        let records = sample_records();
        let (n, ours) = run_raw(&records, |p, l, v, c| {
            // SAFETY: `run_raw` hands over an owned buffer laid out as `alloc(len)` leaves it.
            unsafe { run_map(p, l, v, |i| [i.value, b"!"].concat(), copy_into(c)) }
        });
        assert_eq!(n, 3);
        let expected: Vec<Record> = records
            .into_iter()
            .map(|mut r| {
                r.value = RecordData::from([r.value.as_ref(), b"!"].concat());
                r
            })
            .collect();
        assert_eq!(ours, fluvio_output(expected));
    }

    #[test]
    fn filter_output_is_byte_identical_to_fluvio() {
        let records = sample_records();
        let (n, ours) = run_raw(&records, |p, l, v, c| {
            // SAFETY: `run_raw` hands over an owned buffer laid out as `alloc(len)` leaves it.
            unsafe { run_filter(p, l, v, |i| i.value.len() != 300, copy_into(c)) }
        });
        assert_eq!(n, 2);
        let expected = vec![records[0].clone(), records[2].clone()];
        assert_eq!(ours, fluvio_output(expected));
    }

    #[test]
    fn varints_agree_with_fluvio() {
        use fluvio_smartmodule::dataplane::core::EncoderVarInt;
        // fluvio 0.50's varints are 32-bit zig-zag in an i64: they agree with ours for
        // magnitudes below 2^30, which covers lengths and in-batch offset and time deltas.
        let values = [
            0i64,
            1,
            -1,
            63,
            -64,
            300,
            -300,
            86_400_000,
            (1 << 30) - 1,
            -(1 << 30),
        ];
        for v in values {
            let mut theirs = Vec::new();
            v.encode_varint(&mut theirs).expect("encode");
            let mut ours = Vec::new();
            push_varint(&mut ours, v);
            assert_eq!(ours, theirs, "{v}");
            assert_eq!(read_varint(&theirs), Some((v, theirs.len())), "{v}");
        }
    }

    #[test]
    fn truncated_records_are_refused() {
        let mut raw = Vec::new();
        sample_records().encode(&mut raw, 22).expect("encode");
        for cut in [3, 5, 20, raw.len() - 1] {
            assert!(parse_records(&raw[..cut]).is_none(), "cut at {cut}");
        }
        assert_eq!(parse_records(&raw).map(|r| r.len()), Some(3));
    }

    #[test]
    fn bad_input_is_an_error_code_not_a_panic() {
        let (ptr, len) = hand_over(vec![0xff, 0x01]);
        // SAFETY: `hand_over` gives up an owned buffer laid out as `alloc(len)` leaves it,
        // and it is passed on exactly once; `run_map` frees it even though decoding fails.
        let code = unsafe { run_map(ptr, len, 22, |_| Vec::new(), |_, _| {}) };
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
