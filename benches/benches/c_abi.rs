//! The C ABI against the Rust API, same engine, same run (the C ABI issue): put_batch of 500
//! records and a full scan of a shard, through `sluice_put_batch` / `sluice_iterator_next`
//! and through `Engine::put_batch` / `Engine::get_records`.

// Calling the exported C functions needs unsafe; each call says what it relies on.
#![allow(unsafe_code)]

use criterion::{Criterion, Throughput};
use sluice::*;
use sluice_benches::{criterion_config, filler, mean_iteration_secs};
use sluice_core::{CreateStream, Durability, Engine, EngineConfig, IteratorStart, PutRecord};
use std::ffi::CString;
use std::path::Path;

const BATCH: usize = 500;
const RECORD_BYTES: usize = 100;
const SCAN_RECORDS: usize = 200_000;

fn open_engine(dir: &Path) -> Engine {
    let mut config = EngineConfig::new(dir);
    config.cores = 1;
    config.durability = Durability::Visible;
    Engine::open(config).unwrap()
}

struct Input {
    keys: Vec<CString>,
    data: Vec<u8>,
}

impl Input {
    fn new() -> Input {
        Input {
            keys: (0..BATCH)
                .map(|i| CString::new(format!("key-{i}")).unwrap())
                .collect(),
            data: filler(RECORD_BYTES),
        }
    }

    fn c_records(&self) -> Vec<sluice_record_in> {
        self.keys
            .iter()
            .map(|k| sluice_record_in {
                partition_key: k.as_ptr(),
                data: self.data.as_ptr(),
                data_len: self.data.len(),
                explicit_hash_key: std::ptr::null(),
            })
            .collect()
    }

    fn rust_records(&self) -> Vec<PutRecord<'_>> {
        self.keys
            .iter()
            .map(|k| PutRecord::new(k.to_str().unwrap(), &self.data))
            .collect()
    }
}

fn c_put(
    engine: *mut sluice_engine,
    stream: &CString,
    records: &[sluice_record_in],
    results: &mut [sluice_put_result],
) {
    // SAFETY: live engine, valid records and a results array of the same length.
    let r = unsafe {
        sluice_put_batch(
            engine,
            stream.as_ptr(),
            records.as_ptr(),
            records.len(),
            SLUICE_DURABILITY_DEFAULT,
            results.as_mut_ptr(),
        )
    };
    assert_eq!(r, SLUICE_OK);
}

/// Reads the whole shard through a C iterator, touching every record's bytes; returns the
/// record count.
fn c_scan(engine: *mut sluice_engine, stream: &CString, shard: &CString) -> usize {
    let mut iterator = std::ptr::null_mut();
    let mut total = 0;
    // SAFETY: live engine and iterator; the records array is read before the next call on
    // the iterator, as the API requires.
    unsafe {
        assert_eq!(
            sluice_iterator_new(
                engine,
                stream.as_ptr(),
                shard.as_ptr(),
                SLUICE_TRIM_HORIZON,
                std::ptr::null(),
                0,
                &mut iterator
            ),
            SLUICE_OK
        );
        loop {
            let mut count = 0;
            assert_eq!(sluice_iterator_next(iterator, 0, &mut count), SLUICE_OK);
            if count == 0 {
                break;
            }
            let mut records = std::ptr::null();
            assert_eq!(
                sluice_iterator_records(iterator, &mut records, &mut count),
                SLUICE_OK
            );
            for record in std::slice::from_raw_parts(records, count) {
                total += std::slice::from_raw_parts(record.data, record.data_len)
                    .iter()
                    .map(|&b| b as usize)
                    .sum::<usize>()
                    & 1;
                total += 1;
            }
        }
        sluice_iterator_free(iterator);
    }
    total
}

fn rust_scan(engine: &Engine) -> usize {
    let mut iterator = engine
        .stream("scan")
        .unwrap()
        .shard_iterator("shardId-000000000000", IteratorStart::TrimHorizon)
        .unwrap();
    let mut total = 0;
    loop {
        let batch = engine.get_records(&mut iterator, None).unwrap();
        if batch.is_empty() {
            return total;
        }
        for record in batch.records() {
            std::hint::black_box(record.data.iter().map(|&b| b as usize).sum::<usize>());
            total += 1;
        }
    }
}

/// Times `timed` over `iters` rounds; each round also runs `other` (untimed), so both sides
/// of a comparison run under the same alternating load, whichever is measured first.
fn interleaved(
    iters: u64,
    mut timed: impl FnMut(),
    mut other: impl FnMut(),
) -> std::time::Duration {
    let mut total = std::time::Duration::ZERO;
    for _ in 0..iters {
        let started = std::time::Instant::now();
        timed();
        total += started.elapsed();
        other();
    }
    total
}

fn main() {
    sluice_benches::mark_run_start();
    let dir = tempfile::tempdir_in(bench_dir()).unwrap();
    // One engine for both sides: the C handle wraps the same engine the Rust calls use.
    let rust = open_engine(dir.path());
    let c = sluice_engine_from(rust.clone());
    let input = Input::new();
    let mut criterion = criterion_config();
    bench_puts(&mut criterion, &rust, c, &input);
    bench_scans(&mut criterion, &rust, c, &input);
    criterion.final_summary();
    println!();
    for group in ["c_abi_put_100B_x500", "c_abi_scan"] {
        if let (Some(rust), Some(c)) = (
            mean_iteration_secs(group, "rust"),
            mean_iteration_secs(group, "c_abi"),
        ) {
            let ratio = rust / c;
            let verdict = if ratio >= 0.95 { "meets" } else { "BELOW" };
            println!(
                "{group}: C ABI at {ratio:.3} of the Rust API's speed ({verdict} target: within 5%)"
            );
        }
    }
    // SAFETY: the handle is not used afterwards.
    unsafe { sluice_engine_free(c) };
}

/// put_batch of `BATCH` records into stream `bench`, through the C ABI and the Rust API.
fn bench_puts(criterion: &mut Criterion, rust: &Engine, c: *mut sluice_engine, input: &Input) {
    let stream = CString::new("bench").unwrap();
    rust.create_stream(CreateStream::provisioned("bench", 1))
        .wait()
        .unwrap();
    let (c_records, rust_records) = (input.c_records(), input.rust_records());
    let results = vec![
        sluice_put_result {
            result: 0,
            shard_id: [0; 24],
            sequence_number_high: 0,
            sequence_number_low: 0
        };
        BATCH
    ];
    // Rust looks the stream up once, as an embedder does; each C call names it.
    let bench = rust.stream("bench").unwrap();
    let rust_put = || drop(bench.put_batch(&rust_records).wait().unwrap());
    let mut group = criterion.benchmark_group("c_abi_put_100B_x500");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("rust", |b| {
        b.iter_custom(|iters| {
            let mut out = results.clone();
            interleaved(iters, rust_put, || c_put(c, &stream, &c_records, &mut out))
        })
    });
    group.bench_function("c_abi", |b| {
        b.iter_custom(|iters| {
            let mut out = results.clone();
            interleaved(iters, || c_put(c, &stream, &c_records, &mut out), rust_put)
        })
    });
    group.finish();
}

/// A full scan of a `SCAN_RECORDS`-record shard, through the C ABI and the Rust API.
fn bench_scans(criterion: &mut Criterion, rust: &Engine, c: *mut sluice_engine, input: &Input) {
    let rust_records = input.rust_records();
    // The scans read one stream of their own, the same shard on both sides.
    rust.create_stream(CreateStream::provisioned("scan", 1))
        .wait()
        .unwrap();
    for _ in 0..SCAN_RECORDS / BATCH {
        rust.stream("scan")
            .unwrap()
            .put_batch(&rust_records)
            .wait()
            .unwrap();
    }
    let scan_stream = CString::new("scan").unwrap();
    let shard = CString::new("shardId-000000000000").unwrap();
    assert_eq!(rust_scan(rust), SCAN_RECORDS);
    assert_eq!(c_scan(c, &scan_stream, &shard), SCAN_RECORDS);
    let mut group = criterion.benchmark_group("c_abi_scan");
    group.throughput(Throughput::Elements(SCAN_RECORDS as u64));
    group.bench_function("rust", |b| {
        b.iter_custom(|iters| {
            interleaved(
                iters,
                || {
                    std::hint::black_box(rust_scan(rust));
                },
                || {
                    std::hint::black_box(c_scan(c, &scan_stream, &shard));
                },
            )
        })
    });
    group.bench_function("c_abi", |b| {
        b.iter_custom(|iters| {
            interleaved(
                iters,
                || {
                    std::hint::black_box(c_scan(c, &scan_stream, &shard));
                },
                || {
                    std::hint::black_box(rust_scan(rust));
                },
            )
        })
    });
    group.finish();
}

fn bench_dir() -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
