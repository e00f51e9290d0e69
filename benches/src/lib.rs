//! Shared pieces of Sluice's criterion benches: the physical baselines every figure is
//! compared with, and the same-run ratio report.
//!
//! Short runs by default; set `SLUICE_BENCH_FULL=1` for the full-length run.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// True when `SLUICE_BENCH_FULL` asks for the full-length run.
pub fn full_mode() -> bool {
    std::env::var_os("SLUICE_BENCH_FULL").is_some_and(|v| v != "0")
}

/// Criterion settings for the chosen mode.
pub fn criterion_config() -> criterion::Criterion {
    let c = criterion::Criterion::default().configure_from_args();
    if full_mode() {
        c.sample_size(30)
            .warm_up_time(Duration::from_secs(3))
            .measurement_time(Duration::from_secs(10))
    } else {
        c.sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2))
    }
}

/// The benches' record data: seed 1 of the shared generator, the bytes the benches have
/// always written.
pub fn filler(len: usize) -> Vec<u8> {
    sluice_storage::testing::payload(1, len)
}

/// Sequential buffered writes of `chunk` into a pre-allocated file of `file_len` bytes,
/// wrapping at the end (as a segment ring reuses its files), with an fdatasync every
/// `sync_every` bytes if set. Returns the time for `chunks` writes.
pub struct SequentialWriter {
    file: File,
    file_len: u64,
    pos: u64,
    unsynced: u64,
    sync_every: Option<u64>,
}

impl SequentialWriter {
    /// Creates and pre-allocates the baseline file.
    pub fn new(path: &Path, file_len: u64, sync_every: Option<u64>) -> SequentialWriter {
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .unwrap();
        file.set_len(file_len).unwrap();
        file.sync_all().unwrap();
        SequentialWriter {
            file,
            file_len,
            pos: 0,
            unsynced: 0,
            sync_every,
        }
    }

    /// Writes `chunks` copies of `chunk` and returns the elapsed time.
    pub fn write(&mut self, chunk: &[u8], chunks: u64) -> Duration {
        let started = Instant::now();
        for _ in 0..chunks {
            if self.pos + chunk.len() as u64 > self.file_len {
                self.pos = 0;
            }
            self.file.write_all_at(chunk, self.pos).unwrap();
            self.pos += chunk.len() as u64;
            self.unsynced += chunk.len() as u64;
            if self.sync_every.is_some_and(|every| self.unsynced >= every) {
                self.file.sync_data().unwrap();
                self.unsynced = 0;
            }
        }
        if self.sync_every.is_some() && self.unsynced > 0 {
            self.file.sync_data().unwrap();
            self.unsynced = 0;
        }
        started.elapsed()
    }
}

static RUN_START: std::sync::OnceLock<std::time::SystemTime> = std::sync::OnceLock::new();

/// Call first in a bench's `main`: ratios then use only results this run wrote, never a
/// previous run's (a bench filtered out of this run reports "not measured").
pub fn mark_run_start() {
    let _ = RUN_START.set(std::time::SystemTime::now());
}

/// Where criterion keeps its results (as criterion itself decides it).
fn criterion_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("criterion"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/criterion"),
    }
}

/// Time per iteration, in seconds, that criterion estimated for `group/function` in this run
/// (warm-up excluded): the slope of its linear fit, the figure it prints, or else the mean.
pub fn mean_iteration_secs(group: &str, function: &str) -> Option<f64> {
    let path = criterion_dir()
        .join(group)
        .join(function)
        .join("new/estimates.json");
    if let Some(started) = RUN_START.get() {
        let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
        if modified < *started {
            return None;
        }
    }
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let estimate = json["slope"]["point_estimate"]
        .as_f64()
        .or(json["mean"]["point_estimate"].as_f64())?;
    Some(estimate / 1e9)
}

/// Prints `subject` against `baseline` (same group, same bytes per iteration) as MB/s and
/// their ratio, with the target.
pub fn print_ratio(
    label: &str,
    group: &str,
    subject: &str,
    baseline: &str,
    bytes_per_iter: u64,
    target: f64,
) {
    match (
        mean_iteration_secs(group, subject),
        mean_iteration_secs(group, baseline),
    ) {
        (Some(s), Some(b)) => {
            let (s_mb, b_mb) = (
                bytes_per_iter as f64 / s / 1e6,
                bytes_per_iter as f64 / b / 1e6,
            );
            let ratio = b / s;
            let verdict = if ratio >= target { "meets" } else { "BELOW" };
            println!(
                "{label}: {s_mb:.0} MB/s vs baseline {b_mb:.0} MB/s = {ratio:.2} ({verdict} target {target})"
            );
        }
        _ => println!("{label}: not measured in this run (filtered out)"),
    }
}
