//! The metric store: statistic sets per series per bucket (a minute for metrics, an hour for
//! usage), kept for a window, written to a checksummed append-only log and read back at open
//! (docs/design/cloudwatch.md).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A series: namespace, metric name, dimensions (sorted by name) and unit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    /// `AWS/Kinesis`, or a custom namespace.
    pub namespace: String,
    /// The metric's name.
    pub name: String,
    /// (name, value) pairs, sorted by name.
    pub dimensions: Vec<(String, String)>,
    /// CloudWatch's unit name (`Count`, `Bytes`, `Milliseconds`, `None`...).
    pub unit: String,
}

impl SeriesKey {
    /// A key with its dimensions sorted.
    pub fn new(namespace: &str, name: &str, dimensions: &[(&str, &str)], unit: &str) -> SeriesKey {
        let mut dimensions: Vec<(String, String)> = dimensions
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        dimensions.sort();
        SeriesKey {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            dimensions,
            unit: unit.to_owned(),
        }
    }
}

/// A statistic set: what every statistic but percentiles is computed from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// Samples (a double: `PutMetricData` may send statistic sets with any count).
    pub count: f64,
    /// Their sum.
    pub sum: f64,
    /// The least sample.
    pub min: f64,
    /// The greatest sample.
    pub max: f64,
}

impl Stats {
    /// One sample.
    pub fn one(value: f64) -> Stats {
        Stats {
            count: 1.0,
            sum: value,
            min: value,
            max: value,
        }
    }

    /// Adds another set.
    pub fn merge(&mut self, other: &Stats) {
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }
}

/// Seconds since the epoch, now.
pub fn now_s() -> u64 {
    crate::clock::now_ms() / 1000
}

/// A store of one tenant's series.
pub struct MetricStore {
    /// Bucket width in seconds (60: minutes).
    width_s: u64,
    /// Buckets older than this many seconds before now are dropped.
    retention_s: u64,
    /// The log; `None` keeps the store in memory only.
    path: Option<PathBuf>,
    inner: Mutex<Inner>,
    /// Held while the log is written, so flushes write in the order they took their buckets.
    writer: Mutex<()>,
}

#[derive(Default)]
struct Inner {
    series: HashMap<SeriesKey, Series>,
    /// Buckets changed since the last flush, by series.
    dirty: HashMap<SeriesKey, BTreeSet<u64>>,
    /// Bytes in the log.
    log_bytes: u64,
    /// Lines of the log that failed their checksum when it was read.
    damaged_lines: u64,
}

#[derive(Default)]
struct Series {
    buckets: BTreeMap<u64, Stats>,
    /// When a datapoint last arrived (seconds), for ListMetrics' RecentlyActive.
    last_write_s: u64,
}

/// What the store found when it opened its log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// Buckets read.
    pub buckets: usize,
    /// Lines skipped because their checksum failed.
    pub damaged_lines: u64,
}

impl MetricStore {
    /// A store kept in memory only.
    pub fn in_memory(width_s: u64, retention_s: u64) -> MetricStore {
        MetricStore {
            width_s,
            retention_s,
            path: None,
            inner: Mutex::new(Inner::default()),
            writer: Mutex::new(()),
        }
    }

    /// Opens (or creates) the store whose log is `path`, reading what it holds.
    pub fn open(path: &Path, width_s: u64, retention_s: u64) -> std::io::Result<MetricStore> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let store = MetricStore {
            width_s,
            retention_s,
            path: Some(path.to_owned()),
            inner: Mutex::new(Inner::default()),
            writer: Mutex::new(()),
        };
        store.replay()?;
        Ok(store)
    }

    /// Bucket width in seconds.
    pub fn width_s(&self) -> u64 {
        self.width_s
    }

    /// Retention in seconds.
    pub fn retention_s(&self) -> u64 {
        self.retention_s
    }

    /// What opening found.
    pub fn opened(&self) -> Opened {
        let inner = self.lock();
        Opened {
            buckets: inner.series.values().map(|s| s.buckets.len()).sum(),
            damaged_lines: inner.damaged_lines,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Adds datapoints at `at_s` (seconds since the epoch) to their series' buckets.
    pub fn record(&self, at_s: u64, points: &[(SeriesKey, Stats)]) {
        let bucket = at_s - at_s % self.width_s;
        let written_s = now_s();
        let mut inner = self.lock();
        for (key, stats) in points {
            let series = match inner.series.get_mut(key) {
                Some(series) => series,
                None => inner.series.entry(key.clone()).or_default(),
            };
            series
                .buckets
                .entry(bucket)
                .and_modify(|b| b.merge(stats))
                .or_insert(*stats);
            series.last_write_s = series.last_write_s.max(written_s);
            match inner.dirty.get_mut(key) {
                Some(buckets) => {
                    buckets.insert(bucket);
                }
                None => {
                    inner.dirty.insert(key.clone(), BTreeSet::from([bucket]));
                }
            }
        }
    }

    /// How many series the store holds, and how many of `keys` it does not hold yet.
    pub fn series_count(&self, keys: &[&SeriesKey]) -> (usize, usize) {
        let inner = self.lock();
        let new: std::collections::HashSet<&&SeriesKey> = keys
            .iter()
            .filter(|k| !inner.series.contains_key(**k))
            .collect();
        (inner.series.len(), new.len())
    }

    /// The series matching `filter`, with when each was last written to.
    pub fn series(&self, filter: impl Fn(&SeriesKey) -> bool) -> Vec<(SeriesKey, u64)> {
        let inner = self.lock();
        let mut found: Vec<(SeriesKey, u64)> = inner
            .series
            .iter()
            .filter(|(key, series)| !series.buckets.is_empty() && filter(key))
            .map(|(key, series)| (key.clone(), series.last_write_s))
            .collect();
        found.sort();
        found
    }

    /// The buckets in `[from_s, to_s)` of each series matching `filter`, by series.
    pub fn buckets(
        &self,
        filter: impl Fn(&SeriesKey) -> bool,
        from_s: u64,
        to_s: u64,
    ) -> Vec<(SeriesKey, Vec<(u64, Stats)>)> {
        let inner = self.lock();
        let mut found: Vec<(SeriesKey, Vec<(u64, Stats)>)> = inner
            .series
            .iter()
            .filter(|(key, _)| filter(key))
            .map(|(key, series)| {
                let buckets = series
                    .buckets
                    .range(from_s..to_s.max(from_s))
                    .map(|(at, stats)| (*at, *stats))
                    .collect();
                (key.clone(), buckets)
            })
            .filter(|(_, buckets): &(SeriesKey, Vec<_>)| !buckets.is_empty())
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
    }

    /// Drops buckets past the window, then appends the changed buckets to the log (rewriting
    /// it whole when it has grown to twice what is live). The lines are made under the
    /// store's lock and written after it is released (the writer lock keeps writes in order),
    /// so the calls that record are never held up by the disk.
    pub fn flush(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            let mut inner = self.lock();
            self.prune(&mut inner);
            inner.dirty.clear();
            return Ok(());
        };
        let _writing = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let (write, log_bytes) = {
            let mut inner = self.lock();
            self.prune(&mut inner);
            if inner.dirty.is_empty() {
                return Ok(());
            }
            let dirty = std::mem::take(&mut inner.dirty);
            let mut entries = Vec::new();
            for (key, buckets) in &dirty {
                let Some(series) = inner.series.get(key) else {
                    continue;
                };
                for at in buckets {
                    if let Some(stats) = series.buckets.get(at) {
                        entries.push(Entry::of(key, *at, stats));
                    }
                }
            }
            let line = encode_line(&entries);
            let live_buckets: u64 = inner.series.values().map(|s| s.buckets.len() as u64).sum();
            let per_bucket = (line.len() as u64 / entries.len().max(1) as u64).max(64);
            if inner.log_bytes + line.len() as u64 > (2 * live_buckets * per_bucket).max(1 << 20) {
                (Write::Whole(whole_lines(&inner.series)), inner.log_bytes)
            } else {
                (Write::Append(line), inner.log_bytes)
            }
        };
        let written = match write {
            Write::Whole(lines) => rewrite(path, &lines),
            Write::Append(line) => append(path, &line, log_bytes),
        };
        let mut inner = self.lock();
        match written {
            Ok(bytes) => {
                inner.log_bytes = bytes;
                Ok(())
            }
            Err(e) => {
                // What was taken stays to write: marked changed again.
                inner.log_bytes = log_bytes;
                let keys: Vec<(SeriesKey, Vec<u64>)> = inner
                    .series
                    .iter()
                    .map(|(k, s)| (k.clone(), s.buckets.keys().copied().collect()))
                    .collect();
                for (key, buckets) in keys {
                    inner.dirty.entry(key).or_default().extend(buckets);
                }
                Err(e)
            }
        }
    }

    /// Drops the buckets older than the window.
    fn prune(&self, inner: &mut Inner) {
        let oldest = now_s().saturating_sub(self.retention_s);
        let oldest = oldest - oldest % self.width_s;
        inner.series.retain(|_, series| {
            series.buckets = series.buckets.split_off(&oldest);
            !series.buckets.is_empty()
        });
    }

    /// Reads the log at `path` into a store kept in memory, changing nothing on disk (for a
    /// report over a log another store may be appending to).
    pub fn read(path: &Path, width_s: u64, retention_s: u64) -> std::io::Result<MetricStore> {
        let mut store = MetricStore {
            width_s,
            retention_s,
            path: Some(path.to_owned()),
            inner: Mutex::new(Inner::default()),
            writer: Mutex::new(()),
        };
        store.replay_with(false)?;
        store.path = None;
        Ok(store)
    }

    fn replay(&self) -> std::io::Result<()> {
        self.replay_with(true)
    }

    /// Reads the log; with `cut`, a torn tail is cut off the file.
    fn replay_with(&self, cut: bool) -> std::io::Result<()> {
        let path = self.path.as_ref().expect("a store with a log");
        let file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut inner = self.lock();
        let mut reader = std::io::BufReader::new(file);
        let mut line = Vec::new();
        // The end of the last whole line: a torn last write (a crash in the middle of an
        // append) is cut off there, so the next append starts a line of its own.
        let mut whole = 0u64;
        loop {
            line.clear();
            let read = reader.read_until(b'\n', &mut line)?;
            if read == 0 {
                break;
            }
            if line.ends_with(b"\n") {
                whole += read as u64;
            }
            let Some(entries) = decode_line(&line) else {
                inner.damaged_lines += 1;
                continue;
            };
            for entry in entries {
                let Ok(entry) = serde_json::from_value::<Entry>(entry) else {
                    inner.damaged_lines += 1;
                    continue;
                };
                let (key, at, stats) = entry.into_parts();
                inner
                    .series
                    .entry(key)
                    .or_default()
                    .buckets
                    .insert(at, stats);
            }
        }
        if cut && std::fs::metadata(path)?.len() > whole {
            std::fs::OpenOptions::new()
                .write(true)
                .open(path)?
                .set_len(whole)?;
        }
        inner.log_bytes = whole;
        for series in inner.series.values_mut() {
            series.last_write_s = series.buckets.keys().next_back().copied().unwrap_or(0);
        }
        Ok(())
    }
}

impl Drop for MetricStore {
    fn drop(&mut self) {
        if let Err(e) = self.flush()
            && let Some(path) = &self.path
        {
            eprintln!("sluice serve: writing {}: {e}", path.display());
        }
    }
}

/// One bucket as the log holds it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Entry(
    String,
    String,
    Vec<(String, String)>,
    String,
    u64,
    f64,
    f64,
    f64,
    f64,
);

impl Entry {
    fn of(key: &SeriesKey, at: u64, stats: &Stats) -> Entry {
        Entry(
            key.namespace.clone(),
            key.name.clone(),
            key.dimensions.clone(),
            key.unit.clone(),
            at,
            stats.count,
            stats.sum,
            stats.min,
            stats.max,
        )
    }

    fn into_parts(self) -> (SeriesKey, u64, Stats) {
        let Entry(namespace, name, dimensions, unit, at, count, sum, min, max) = self;
        let key = SeriesKey {
            namespace,
            name,
            dimensions,
            unit,
        };
        (
            key,
            at,
            Stats {
                count,
                sum,
                min,
                max,
            },
        )
    }
}

fn encode_line(entries: &[Entry]) -> Vec<u8> {
    let mut line = serde_json::to_vec(entries).expect("buckets serialize");
    let sum = xxhash_rust::xxh3::xxh3_64(&line);
    line.extend_from_slice(format!(" {sum:016x}\n").as_bytes());
    line
}

/// The entries of a line (each read on its own), or `None` when it is torn or damaged.
fn decode_line(line: &[u8]) -> Option<Vec<serde_json::Value>> {
    let line = line.strip_suffix(b"\n")?;
    let split = line.iter().rposition(|&b| b == b' ')?;
    let (json, sum) = (&line[..split], &line[split + 1..]);
    let sum = u64::from_str_radix(std::str::from_utf8(sum).ok()?, 16).ok()?;
    if xxhash_rust::xxh3::xxh3_64(json) != sum {
        return None;
    }
    serde_json::from_slice(json).ok()
}

/// What a flush writes.
enum Write {
    /// One line at the end of the log.
    Append(Vec<u8>),
    /// The whole log anew: a line per series.
    Whole(Vec<Vec<u8>>),
}

/// Every live bucket as lines, a line per series (lines stay short).
fn whole_lines(series: &HashMap<SeriesKey, Series>) -> Vec<Vec<u8>> {
    let mut keys: Vec<&SeriesKey> = series.keys().collect();
    keys.sort();
    keys.into_iter()
        .map(|key| {
            let entries: Vec<Entry> = series[key]
                .buckets
                .iter()
                .map(|(at, stats)| Entry::of(key, *at, stats))
                .collect();
            encode_line(&entries)
        })
        .collect()
}

/// Appends `line` to the log of `len` bytes; returns its new size. A failed write is cut
/// off, so no torn line is left for the next append to follow.
fn append(path: &Path, line: &[u8], len: u64) -> std::io::Result<u64> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    if let Err(e) = file.write_all(line) {
        let _ = file.set_len(len);
        return Err(e);
    }
    Ok(len + line.len() as u64)
}

/// Writes `lines` as a new log in place of the old one; returns its size.
fn rewrite(path: &Path, lines: &[Vec<u8>]) -> std::io::Result<u64> {
    let writing = path.with_extension("writing");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&writing)?);
    let mut written = 0;
    for line in lines {
        file.write_all(line)?;
        written += line.len() as u64;
    }
    file.into_inner().map_err(|e| e.into_error())?.sync_data()?;
    std::fs::rename(&writing, path)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> SeriesKey {
        SeriesKey::new("AWS/Kinesis", name, &[("StreamName", "s")], "Count")
    }

    #[test]
    fn buckets_merge_and_survive_a_reopen_and_a_damaged_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.log");
        let now = now_s();
        let minute = now - now % 60;
        {
            let store = MetricStore::open(&path, 60, 3600).unwrap();
            store.record(minute + 1, &[(key("a"), Stats::one(2.0))]);
            store.record(minute + 59, &[(key("a"), Stats::one(5.0))]);
            store.flush().unwrap();
            store.record(minute - 60, &[(key("b"), Stats::one(1.0))]);
            store.record(minute + 2, &[(key("a"), Stats::one(1.0))]);
        }
        // A torn line at the end is skipped, not read.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(br#"[["AWS/Kinesis","a",[],"Count",0,1.0,1.0"#)
            .unwrap();
        drop(file);
        let store = MetricStore::open(&path, 60, 3600).unwrap();
        assert_eq!(
            store.opened(),
            Opened {
                buckets: 2,
                damaged_lines: 1
            }
        );
        let a = store.buckets(|k| k.name == "a", 0, u64::MAX);
        assert_eq!(
            a[0].1,
            vec![(
                minute,
                Stats {
                    count: 3.0,
                    sum: 8.0,
                    min: 1.0,
                    max: 5.0
                }
            )]
        );
        assert_eq!(store.buckets(|k| k.name == "b", 0, u64::MAX)[0].1.len(), 1);
        // The torn tail was cut at opening: what is appended next reads back.
        store.record(minute + 3, &[(key("c"), Stats::one(4.0))]);
        drop(store);
        let store = MetricStore::open(&path, 60, 3600).unwrap();
        assert_eq!(store.opened().damaged_lines, 0);
        assert_eq!(store.buckets(|k| k.name == "c", 0, u64::MAX)[0].1.len(), 1);
    }

    #[test]
    fn an_entry_that_does_not_read_costs_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.log");
        let now = now_s();
        let good = serde_json::json!(["N", "good", [], "None", now - now % 60, 1.0, 2.0, 2.0, 2.0]);
        let bad = serde_json::json!(["N", "bad", [], "None", now - now % 60, 1.0, null, 2.0, 2.0]);
        let json = serde_json::to_vec(&serde_json::json!([bad, good])).unwrap();
        let sum = xxhash_rust::xxh3::xxh3_64(&json);
        let mut line = json;
        line.extend_from_slice(format!(" {sum:016x}\n").as_bytes());
        std::fs::write(&path, line).unwrap();
        let store = MetricStore::open(&path, 60, 3600).unwrap();
        assert_eq!(
            store.opened(),
            Opened {
                buckets: 1,
                damaged_lines: 1
            }
        );
    }

    #[test]
    fn buckets_past_the_window_are_dropped_and_the_log_is_compacted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.log");
        let now = now_s();
        let store = MetricStore::open(&path, 60, 600).unwrap();
        store.record(now - 3600, &[(key("old"), Stats::one(1.0))]);
        store.record(now, &[(key("new"), Stats::one(1.0))]);
        store.flush().unwrap();
        assert!(store.series(|_| true).iter().all(|(k, _)| k.name == "new"));
        // Many flushes of the same bucket grow the log until it is rewritten.
        for i in 0..20_000 {
            store.record(now, &[(key("new"), Stats::one(f64::from(i)))]);
            store.flush().unwrap();
        }
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size < 2 << 20, "the log was compacted: {size} bytes");
        drop(store);
        let store = MetricStore::open(&path, 60, 600).unwrap();
        let new = store.buckets(|_| true, 0, u64::MAX);
        assert_eq!(new[0].1[0].1.count, 20_001.0);
    }
}
