//! An application's durable state (docs/design/analytics.md, "Checkpoints and exactly-once
//! output"): the snapshot, written whole and atomically now and then, and the journal of the
//! steps taken since, appended before a step's rows are put.

use crate::error::AnalyticsError;
use crate::pipeline::{PipelineState, WindowPart, WindowRows};
use crate::reference::{LoadedReference, REFERENCE_PREFIX};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use xxhash_rust::xxh3::xxh3_64;

const SNAPSHOT_MAGIC: &[u8; 8] = b"SLKDACP1";
const SNAPSHOT_FILE: &str = "checkpoint";
const JOURNAL_FILE: &str = "journal";
const LOCK_FILE: &str = "lock";
/// A journal entry's size on disk, its checksum included.
const ENTRY_BYTES: usize = 64;

/// One step of the application task: a read of one shard (perhaps empty) and the watermark
/// after it. Replaying the steps after a snapshot, in order, over the same records, makes the
/// same rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Step {
    /// Its number: 1, 2, ... over the application's life.
    pub number: u64,
    /// The shard read.
    pub shard: u32,
    /// Log positions of the first and last record read (meaningless when `count` is 0).
    pub first: u64,
    pub last: u64,
    /// Records read.
    pub count: u64,
    /// The shard was read to its end.
    pub end_of_shard: bool,
    /// The time before which the shard holds no more records, after this read.
    pub held_ms: i64,
    /// The watermark the pipeline was advanced to (`i64::MIN`: not advanced).
    pub watermark_ms: i64,
}

impl Step {
    fn encode(&self) -> [u8; ENTRY_BYTES] {
        let mut out = [0u8; ENTRY_BYTES];
        out[0..8].copy_from_slice(&self.number.to_le_bytes());
        out[8..12].copy_from_slice(&self.shard.to_le_bytes());
        out[12..16].copy_from_slice(&u32::from(self.end_of_shard).to_le_bytes());
        out[16..24].copy_from_slice(&self.first.to_le_bytes());
        out[24..32].copy_from_slice(&self.last.to_le_bytes());
        out[32..40].copy_from_slice(&self.count.to_le_bytes());
        out[40..48].copy_from_slice(&self.held_ms.to_le_bytes());
        out[48..56].copy_from_slice(&self.watermark_ms.to_le_bytes());
        let sum = xxh3_64(&out[..56]);
        out[56..64].copy_from_slice(&sum.to_le_bytes());
        out
    }

    /// The step an entry holds; `None` for a torn or damaged one.
    fn decode(entry: &[u8]) -> Option<Step> {
        let word = |at: usize| u64::from_le_bytes(entry[at..at + 8].try_into().expect("8 bytes"));
        if entry.len() != ENTRY_BYTES || xxh3_64(&entry[..56]) != word(56) {
            return None;
        }
        let flags = u32::from_le_bytes(entry[12..16].try_into().expect("4 bytes"));
        Some(Step {
            number: word(0),
            shard: u32::from_le_bytes(entry[8..12].try_into().expect("4 bytes")),
            end_of_shard: flags & 1 == 1,
            first: word(16),
            last: word(24),
            count: word(32),
            held_ms: word(40) as i64,
            watermark_ms: word(48) as i64,
        })
    }
}

/// What a snapshot holds besides the open windows' rows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SnapshotHeader {
    /// The source stream its positions are in.
    #[serde(default)]
    pub source: String,
    /// The digest of the code and input it was taken for.
    pub spec_digest: u64,
    /// The digest of the name and outputs (the output rows' keys depend on them).
    #[serde(default)]
    pub outputs_digest: u64,
    /// The last step whose rows are all put.
    pub step: u64,
    /// Per source shard, the number of the last record taken (decimal).
    pub positions: BTreeMap<u32, String>,
    /// Per source shard, the time before which it holds no more records.
    pub held_ms: BTreeMap<u32, i64>,
    /// Per output Sluice stream, per shard, its newest record's number (decimal) once the
    /// step's rows were put: rows found after it were put by later steps.
    pub output_ends: BTreeMap<String, BTreeMap<u32, String>>,
    /// The pipeline's watermark and counters.
    pub watermark_ms: i64,
    pub late_rows: u64,
    pub unfit_values: u64,
    /// The open windows, in the order of their rows after the header.
    pub windows: Vec<WindowHeader>,
    /// The `RANDOM_CUT_FOREST`s, after the windows: each pump's name and its forest's size.
    #[serde(default)]
    pub forests: Vec<(String, u64)>,
    /// The saved reference tables the steps after it run with (files beside it).
    #[serde(default)]
    pub references: Vec<String>,
}

/// An open window in a snapshot: its rows follow as one Arrow IPC stream of `bytes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WindowHeader {
    pub pump: String,
    #[serde(default)]
    pub part: WindowPart,
    pub start_ms: i64,
    pub bytes: u64,
}

/// A snapshot read back: its header and the pipeline state it holds.
pub(crate) struct Snapshot {
    pub header: SnapshotHeader,
    pub pipeline: PipelineState,
}

/// What recovery found in a state directory.
pub(crate) struct Recovered {
    pub snapshot: Option<Snapshot>,
    /// Steps after the snapshot's, in order.
    pub steps: Vec<Step>,
}

/// An application's state directory: the snapshot and the journal.
pub(crate) struct StateDir {
    dir: PathBuf,
    /// Locked while this task runs: two tasks on one directory would wipe each other's
    /// journal.
    _lock: File,
    journal: File,
    /// Entries written since the last sync.
    unsynced: bool,
}

fn io_error(what: &str, path: &Path, e: impl std::fmt::Display) -> AnalyticsError {
    AnalyticsError::execution(&format!("{what} {}", path.display()), e)
}

impl StateDir {
    /// Opens (creating) `dir`, reads its snapshot and the journal's steps after it; a torn
    /// last entry (a crash while it was written) is cut off.
    pub fn open(dir: &Path) -> Result<(StateDir, Recovered), AnalyticsError> {
        std::fs::create_dir_all(dir).map_err(|e| io_error("create", dir, e))?;
        StateDir::open_locked(dir)
    }

    fn open_locked(dir: &Path) -> Result<(StateDir, Recovered), AnalyticsError> {
        let lock_path = dir.join(LOCK_FILE);
        let lock = File::create(&lock_path).map_err(|e| io_error("open", &lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(AnalyticsError::InUse(format!(
                    "The state directory {} is in use by an application still running.",
                    dir.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_error("lock", &lock_path, e)),
        }
        let snapshot = read_snapshot(&dir.join(SNAPSHOT_FILE))?;
        let journal_path = dir.join(JOURNAL_FILE);
        let mut journal = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&journal_path)
            .map_err(|e| io_error("open", &journal_path, e))?;
        let mut bytes = Vec::new();
        journal
            .read_to_end(&mut bytes)
            .map_err(|e| io_error("read", &journal_path, e))?;
        let after = snapshot.as_ref().map_or(0, |s| s.header.step);
        let mut steps = Vec::new();
        let mut good = 0;
        let entries: Vec<&[u8]> = bytes.chunks(ENTRY_BYTES).collect();
        for (i, entry) in entries.iter().enumerate() {
            let Some(step) = Step::decode(entry) else {
                // Only the last entry can be torn by a crash; one followed by good entries is
                // damage, and the steps after it cannot be dropped.
                if entries[i + 1..].iter().any(|e| Step::decode(e).is_some()) {
                    return Err(io_error(
                        "read",
                        &journal_path,
                        format!("entry {} is damaged and entries after it are whole", i + 1),
                    ));
                }
                break;
            };
            good += ENTRY_BYTES;
            if step.number > after {
                steps.push(step);
            }
        }
        // Steps follow each other from the snapshot's (or from the first, with none).
        for (expected, step) in (after + 1..).zip(&steps) {
            if step.number != expected {
                return Err(io_error(
                    "read",
                    &journal_path,
                    format!(
                        "step {} follows step {} of the checkpoint",
                        step.number,
                        expected - 1
                    ),
                ));
            }
        }
        if good < bytes.len() {
            journal
                .set_len(good as u64)
                .and_then(|()| journal.sync_data())
                .map_err(|e| io_error("cut the torn end of", &journal_path, e))?;
        }
        let state = StateDir {
            dir: dir.to_owned(),
            _lock: lock,
            journal,
            unsynced: false,
        };
        Ok((state, Recovered { snapshot, steps }))
    }

    /// Empties the state directory `dir` (its checkpoint and journal), so the next start
    /// starts afresh; refused while an application runs on it. The lock file stays: a
    /// task that still holds it keeps others out.
    pub fn reset(dir: &Path) -> Result<(), AnalyticsError> {
        if !dir.exists() {
            return Ok(());
        }
        let (state, _) = StateDir::open_locked(dir)?;
        // The journal first: steps left without their snapshot would be replayed from the
        // start. The reference tables' copies last, once no snapshot names them.
        for file in [JOURNAL_FILE, SNAPSHOT_FILE] {
            match std::fs::remove_file(dir.join(file)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error("remove", &dir.join(file), e)),
            }
        }
        state.keep_references(&[])
    }

    /// Appends a step (in the page cache: [`StateDir::sync`] makes it durable).
    pub fn append(&mut self, step: &Step) -> Result<(), AnalyticsError> {
        self.journal
            .write_all(&step.encode())
            .map_err(|e| io_error("append to", &self.dir.join(JOURNAL_FILE), e))?;
        self.unsynced = true;
        Ok(())
    }

    /// Makes the appended steps durable: done before a step's rows are put, so a crash
    /// after the put finds the step to replay.
    pub fn sync(&mut self) -> Result<(), AnalyticsError> {
        if self.unsynced {
            self.journal
                .sync_data()
                .map_err(|e| io_error("sync", &self.dir.join(JOURNAL_FILE), e))?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Writes a snapshot atomically (a temporary file, synced, renamed over the old one,
    /// the directory synced), then empties the journal: its steps are in the snapshot.
    pub fn save(
        &mut self,
        header: SnapshotHeader,
        windows: &[WindowRows],
        forests: &[(String, Vec<u8>)],
    ) -> Result<(), AnalyticsError> {
        let bytes = encode_snapshot(header, windows, forests)?;
        replace_file(&self.dir.join(SNAPSHOT_FILE), &bytes)?;
        self.journal
            .set_len(0)
            .and_then(|()| self.journal.sync_data())
            .map_err(|e| io_error("empty", &self.dir.join(JOURNAL_FILE), e))?;
        self.unsynced = false;
        Ok(())
    }
}

impl StateDir {
    /// Saves a reference table's copy, unless it is saved already (its name is its
    /// digest's; a file of another size is no copy of it).
    pub fn save_reference(&self, reference: &LoadedReference) -> Result<(), AnalyticsError> {
        let path = self.dir.join(reference.file_name());
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == reference.saved_len()) {
            return Ok(());
        }
        replace_file_with(&path, |file| reference.write_to(file))
    }

    /// The saved reference table's copy `name` (as a snapshot names it); a damaged or
    /// missing one is refused, saying how to start afresh.
    pub fn read_reference(&self, name: &str) -> Result<LoadedReference, AnalyticsError> {
        let path = self.dir.join(name);
        let named = name.strip_prefix(REFERENCE_PREFIX).is_some_and(|digest| {
            digest.len() == 16 && digest.bytes().all(|b| b.is_ascii_hexdigit())
        });
        let read = if named {
            std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(LoadedReference::decode)
                .and_then(|copy| match copy.file_name() == name {
                    true => Ok(copy),
                    false => Err("it is not the copy of that name".to_owned()),
                })
        } else {
            Err("the checkpoint names no reference table's copy".to_owned())
        };
        read.map_err(|e| {
            AnalyticsError::invalid(format!(
                "The reference table the checkpoint's steps ran with ({}) cannot be read: {e}. Start the application from NOW or TRIM_HORIZON to start its state afresh.",
                path.display()
            ))
        })
    }

    /// Removes the saved reference tables not named in `kept`.
    pub fn keep_references(&self, kept: &[String]) -> Result<(), AnalyticsError> {
        let entries = std::fs::read_dir(&self.dir).map_err(|e| io_error("list", &self.dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_error("list", &self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(REFERENCE_PREFIX) && !kept.contains(&name) {
                std::fs::remove_file(entry.path())
                    .map_err(|e| io_error("remove", &entry.path(), e))?;
            }
        }
        Ok(())
    }
}

/// Replaces `path` with `bytes` atomically: a temporary file beside it, synced, renamed over
/// it, the directory synced.
pub(crate) fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), AnalyticsError> {
    replace_file_with(path, |file| file.write_all(bytes))
}

/// As [`replace_file`], with what `contents` writes.
fn replace_file_with(
    path: &Path,
    contents: impl FnOnce(&mut std::io::BufWriter<File>) -> std::io::Result<()>,
) -> Result<(), AnalyticsError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let write = || -> std::io::Result<()> {
        let mut out = std::io::BufWriter::new(File::create(&temporary)?);
        contents(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| io_error("write", path, e))
}

/// Layout: magic, header length (u32 LE), header (JSON), each window's rows (an Arrow IPC
/// stream), each forest (CBOR), then the xxh3-64 of everything before it.
fn encode_snapshot(
    mut header: SnapshotHeader,
    windows: &[WindowRows],
    forests: &[(String, Vec<u8>)],
) -> Result<Vec<u8>, AnalyticsError> {
    let mut blobs = Vec::with_capacity(windows.len());
    header.windows.clear();
    for window in windows {
        let mut blob = Vec::new();
        let failed = |e| AnalyticsError::execution("encode a window's rows", e);
        let mut writer = StreamWriter::try_new(&mut blob, &window.schema).map_err(failed)?;
        for batch in &window.rows {
            writer.write(batch).map_err(failed)?;
        }
        writer.finish().map_err(failed)?;
        drop(writer);
        header.windows.push(WindowHeader {
            pump: window.pump.clone(),
            part: window.part,
            start_ms: window.start_ms,
            bytes: blob.len() as u64,
        });
        blobs.push(blob);
    }
    header.forests = forests
        .iter()
        .map(|(pump, saved)| (pump.clone(), saved.len() as u64))
        .collect();
    blobs.extend(forests.iter().map(|(_, saved)| saved.clone()));
    let json = serde_json::to_vec(&header)
        .map_err(|e| AnalyticsError::execution("encode a snapshot", e))?;
    let mut out = Vec::with_capacity(json.len() + blobs.iter().map(Vec::len).sum::<usize>() + 32);
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    for blob in &blobs {
        out.extend_from_slice(blob);
    }
    let sum = xxh3_64(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    Ok(out)
}

fn read_snapshot(path: &Path) -> Result<Option<Snapshot>, AnalyticsError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("read", path, e)),
    };
    let damaged = |what: &str| {
        AnalyticsError::execution(
            &format!("read {}", path.display()),
            format!("the checkpoint is damaged ({what}); it is never used so"),
        )
    };
    if bytes.len() < 20 || &bytes[..8] != SNAPSHOT_MAGIC {
        return Err(damaged("no checkpoint header"));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 8);
    if xxh3_64(body) != u64::from_le_bytes(sum.try_into().expect("8 bytes")) {
        return Err(damaged("checksum mismatch"));
    }
    let json_len = u32::from_le_bytes(body[8..12].try_into().expect("4 bytes")) as usize;
    let json = body
        .get(12..12 + json_len)
        .ok_or_else(|| damaged("header cut short"))?;
    let header: SnapshotHeader =
        serde_json::from_slice(json).map_err(|_| damaged("header not readable"))?;
    let mut at = 12 + json_len;
    let mut windows = Vec::with_capacity(header.windows.len());
    for window in &header.windows {
        let blob = body
            .get(at..at + window.bytes as usize)
            .ok_or_else(|| damaged("window rows cut short"))?;
        at += blob.len();
        let reader = StreamReader::try_new(blob, None).map_err(|_| damaged("window rows"))?;
        let schema = reader.schema();
        let rows = reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| damaged("window rows"))?;
        windows.push(WindowRows {
            pump: window.pump.clone(),
            part: window.part,
            start_ms: window.start_ms,
            schema,
            rows,
        });
    }
    let mut forests = Vec::with_capacity(header.forests.len());
    for (pump, bytes) in &header.forests {
        let saved = body
            .get(at..at + *bytes as usize)
            .ok_or_else(|| damaged("forest cut short"))?;
        at += saved.len();
        forests.push((pump.clone(), saved.to_vec()));
    }
    let pipeline = PipelineState {
        watermark_ms: header.watermark_ms,
        late_rows: header.late_rows,
        unfit_values: header.unfit_values,
        windows,
        forests,
    };
    Ok(Some(Snapshot { header, pipeline }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use std::sync::Arc;

    fn step(number: u64) -> Step {
        Step {
            number,
            shard: 3,
            first: 10,
            last: 19,
            count: 10,
            end_of_shard: number.is_multiple_of(2),
            held_ms: 1_000 * number as i64,
            watermark_ms: i64::MIN,
        }
    }

    #[test]
    fn journal_steps_come_back_and_a_torn_last_entry_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut state, recovered) = StateDir::open(dir.path()).unwrap();
            assert!(recovered.snapshot.is_none() && recovered.steps.is_empty());
            for n in 1..=3 {
                state.append(&step(n)).unwrap();
            }
            state.sync().unwrap();
        }
        // A crash half-way through a fourth entry.
        let journal = dir.path().join(JOURNAL_FILE);
        let mut file = OpenOptions::new().append(true).open(&journal).unwrap();
        file.write_all(&step(4).encode()[..30]).unwrap();
        drop(file);
        let (mut state, recovered) = StateDir::open(dir.path()).unwrap();
        assert_eq!(recovered.steps, vec![step(1), step(2), step(3)]);
        assert_eq!(std::fs::metadata(&journal).unwrap().len(), 3 * 64);
        state.append(&step(4)).unwrap();
        drop(state);
        let (_, recovered) = StateDir::open(dir.path()).unwrap();
        assert_eq!(recovered.steps.len(), 4);
    }

    #[test]
    fn a_damaged_entry_before_whole_ones_is_refused_and_a_directory_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut state, _) = StateDir::open(dir.path()).unwrap();
            // A second task on the directory is refused while the first holds it.
            let Err(AnalyticsError::InUse(_)) = StateDir::open(dir.path()) else {
                panic!("two tasks on one state directory");
            };
            for n in 1..=3 {
                state.append(&step(n)).unwrap();
            }
            state.sync().unwrap();
        }
        let journal = dir.path().join(JOURNAL_FILE);
        let mut bytes = std::fs::read(&journal).unwrap();
        bytes[ENTRY_BYTES + 5] ^= 1;
        std::fs::write(&journal, &bytes).unwrap();
        let Err(e) = StateDir::open(dir.path()) else {
            panic!("steps after a damaged entry were dropped");
        };
        assert!(e.to_string().contains("entry 2 is damaged"), "{e}");
        // Steps that do not follow each other are refused too.
        let mut gap = step(1).encode().to_vec();
        gap.extend_from_slice(&step(3).encode());
        std::fs::write(&journal, gap).unwrap();
        let Err(e) = StateDir::open(dir.path()) else {
            panic!("a gap in the journal was taken");
        };
        assert!(e.to_string().contains("step 3 follows step 1"), "{e}");
    }

    #[test]
    fn a_snapshot_holds_windows_and_empties_the_journal_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("N", DataType::Int64, true)]));
        let rows = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from(vec![Some(1), None, Some(3)]))],
        )
        .unwrap();
        let (mut state, _) = StateDir::open(dir.path()).unwrap();
        state.append(&step(1)).unwrap();
        state.append(&step(2)).unwrap();
        let header = SnapshotHeader {
            spec_digest: 7,
            step: 2,
            positions: BTreeMap::from([(0, "18446744073709551626".to_owned())]),
            watermark_ms: 60_000,
            late_rows: 4,
            ..SnapshotHeader::default()
        };
        let window = WindowRows {
            pump: "P".into(),
            part: WindowPart::SlidingPending,
            start_ms: 120_000,
            schema,
            rows: vec![rows.clone(), rows.slice(1, 2)],
        };
        state.save(header.clone(), &[window], &[]).unwrap();
        state.append(&step(3)).unwrap();
        drop(state);
        let (_, recovered) = StateDir::open(dir.path()).unwrap();
        let snapshot = recovered.snapshot.unwrap();
        assert_eq!(snapshot.header.positions, header.positions);
        assert_eq!(snapshot.header.step, 2);
        assert_eq!(snapshot.pipeline.late_rows, 4);
        let windows = &snapshot.pipeline.windows;
        assert_eq!(windows.len(), 1);
        assert_eq!(
            (windows[0].pump.as_str(), windows[0].start_ms),
            ("P", 120_000)
        );
        assert_eq!(windows[0].part, WindowPart::SlidingPending);
        assert_eq!(windows[0].rows, vec![rows.clone(), rows.slice(1, 2)]);
        assert_eq!(recovered.steps, vec![step(3)]);
        // One flipped byte: the checkpoint is refused, not read.
        let path = dir.path().join(SNAPSHOT_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let Err(e) = StateDir::open(dir.path()) else {
            panic!("a damaged checkpoint was read");
        };
        assert!(e.to_string().contains("damaged"), "{e}");
    }
}
