//! A flow's files, tailed through rotation (docs/design/agent.md, "Files and their
//! identity"): files of the pattern are known by identity and fingerprint, read in the order
//! they were found (oldest first), each from the offset acknowledged, and split into
//! records. A rotated file (renamed) is read to its end through the handle kept open; a
//! copy made by `copytruncate` takes over where its original was when the original is
//! truncated.

use crate::AgentError;
use crate::checkpoint::{FINGERPRINT_BYTES, FileId, FilePosition, Fingerprint};
use regex::bytes::Regex;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What a flow's files are and how they split into records.
#[derive(Debug, Clone)]
pub struct TailOptions {
    /// `filePattern`: a glob (`*`, `?` and `[...]` within a path's component).
    pub pattern: String,
    /// `multiLineStartPattern`: a record starts at a line that matches it; other lines
    /// belong to the record before them.
    pub multi_line_start: Option<Regex>,
    /// `skipHeaderLines`: lines left out at the start of each file.
    pub skip_header_lines: usize,
    /// `initialPosition` `END_OF_FILE`: files found when the flow has no checkpoint are
    /// read from their end.
    pub start_at_end: bool,
}

/// A record and where it ends in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its bytes, the newline ending its last line included.
    pub data: Vec<u8>,
    /// The file it was read from.
    pub file: FileId,
    /// Which reading of a file it comes from: a number of the tailer's, new for each file
    /// tracked and each time a truncated file is read again from its start (so that an
    /// identity reused by a new file is never taken for the old one's).
    pub track: u64,
    /// The file's offset after it: acknowledging the record acknowledges everything before.
    pub end: u64,
}

/// Most bytes read from one file in one poll.
const READ_BYTES: u64 = 1 << 20;
/// How long a file gone from the pattern (rotated by rename) is still read: writers go on
/// writing it until they reopen their log.
const ROTATED_GRACE: Duration = Duration::from_secs(2);
/// How many bytes before a point a copy must share with its original.
const MIRROR_BYTES: u64 = 1024;

/// A flow's files and how far each is read.
pub struct Tailer {
    options: TailOptions,
    /// The files known, in reading order.
    files: Vec<Tracked>,
    /// Positions of the checkpoint not yet matched with a file.
    saved: Vec<FilePosition>,
    /// No checkpoint for the flow: files found at the first poll start at their end when
    /// `start_at_end`.
    fresh: bool,
    /// Truncations with no copy found to read the rest from.
    truncations_without_copy: u64,
    /// The next [`Record::track`].
    next_track: u64,
}

struct Tracked {
    id: FileId,
    track: u64,
    path: PathBuf,
    file: File,
    fingerprint: Fingerprint,
    /// Where this run started reading it (acknowledged before).
    started: u64,
    /// Bytes read from the file: into records, `line` or `record`.
    offset: u64,
    /// A line not ended yet.
    line: Vec<u8>,
    /// The multi-line record being gathered, and where its last line ends.
    record: Option<(Vec<u8>, u64)>,
    /// Lines still to skip at the file's start.
    headers_left: usize,
    /// Copies wait (unread) while their original is read: the original holds what they
    /// hold, and more.
    copy_of: Option<FileId>,
    /// Seen under the pattern at the last poll.
    listed: bool,
    /// When it was first found gone from the pattern.
    unlisted_at: Option<Instant>,
}

impl Tailer {
    /// Tails `options.pattern`'s files from `saved` (the flow's checkpoint; `fresh` when
    /// it has none).
    pub fn new(options: TailOptions, saved: &[FilePosition], fresh: bool) -> Tailer {
        Tailer {
            options,
            files: Vec::new(),
            saved: saved.to_vec(),
            fresh,
            truncations_without_copy: 0,
            next_track: 0,
        }
    }

    /// Truncations with no copy found to read the rest from (what was written between the
    /// last read and the truncation is lost).
    pub fn truncations_without_copy(&self) -> u64 {
        self.truncations_without_copy
    }

    /// The tracks of the files read now ([`Record::track`]).
    pub fn tracks(&self) -> impl Iterator<Item = u64> + '_ {
        self.files.iter().map(|f| f.track)
    }

    fn new_track(&mut self) -> u64 {
        self.next_track += 1;
        self.next_track
    }

    /// Finds the pattern's new files, notes truncations, and reads what the files hold
    /// now: the records completed, oldest file first.
    pub fn poll(&mut self) -> Result<Vec<Record>, AgentError> {
        self.discover()?;
        self.fresh = false;
        self.note_truncations()?;
        self.release_false_copies()?;
        let mut records = Vec::new();
        for i in 0..self.files.len() {
            if self.files[i].copy_of.is_none() {
                self.read(i, &mut records)?;
            }
        }
        // A file gone from the pattern a while, read to its end, is done: its last line
        // goes as it is; a copy waiting on it takes over where it ended.
        while let Some(i) = self.files.iter().position(Tracked::done) {
            let mut file = self.files.remove(i);
            file.flush(&self.options, &mut records);
            if let Some(copy) = self.files.iter_mut().find(|c| c.copy_of == Some(file.id)) {
                copy.take_over(&mut file);
            }
        }
        Ok(records)
    }

    /// The positions to keep for the files read, each at `acknowledged(track)` (the end of
    /// its last record acknowledged; none: where this run started it). Copies waiting on
    /// their original are left out: a restart finds them again by their first bytes.
    pub fn positions(&self, acknowledged: impl Fn(u64) -> Option<u64>) -> Vec<FilePosition> {
        self.files
            .iter()
            .filter(|file| file.copy_of.is_none())
            .map(|file| FilePosition {
                path: file.path.clone(),
                id: file.id,
                fingerprint: file.fingerprint,
                offset: acknowledged(file.track).unwrap_or(file.started),
            })
            .collect()
    }

    /// Lists the pattern; tracks the files not known yet.
    fn discover(&mut self) -> Result<(), AgentError> {
        let paths = glob::glob(&self.options.pattern)
            .map_err(|e| AgentError::config("filePattern", e.to_string()))?;
        let mut found = Vec::new();
        for path in paths.flatten() {
            if compressed(&path) {
                continue;
            }
            // Opened first, its identity taken from the handle: a rename between the two
            // cannot pair one file's identity with another's contents.
            let Ok(file) = File::open(&path) else {
                continue; // gone since it was listed
            };
            let Ok(metadata) = file.metadata() else {
                continue;
            };
            let id = FileId {
                dev: metadata.dev(),
                ino: metadata.ino(),
            };
            if metadata.is_file() {
                // The checkpoint's files first: a copy of one is then known as a copy.
                let unsaved = !self.saved.iter().any(|p| p.id == id);
                found.push((
                    unsaved,
                    metadata.modified().ok(),
                    path,
                    id,
                    file,
                    metadata.len(),
                ));
            }
        }
        found.sort_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)));
        for file in &mut self.files {
            file.listed = false;
        }
        for (_, _, path, id, file, size) in found {
            if let Some(known) = self.files.iter_mut().find(|f| f.id == id) {
                known.path = path;
                known.listed = true;
                continue;
            }
            let tracked = self.track(id, path, file, size)?;
            self.files.push(tracked);
        }
        for file in &mut self.files {
            if file.listed {
                file.unlisted_at = None;
            } else {
                file.unlisted_at.get_or_insert_with(Instant::now);
            }
        }
        // The checkpoint's files not found at the first listing are gone.
        self.saved.clear();
        Ok(())
    }

    /// A file found under the pattern: where to read it from, and whether it is a copy.
    fn track(
        &mut self,
        id: FileId,
        path: PathBuf,
        file: File,
        size: u64,
    ) -> Result<Tracked, AgentError> {
        let mut tracked = Tracked {
            id,
            track: self.new_track(),
            started: 0,
            fingerprint: fingerprint(&file, &path, FINGERPRINT_BYTES.min(size))?,
            path,
            file,
            offset: 0,
            line: Vec::new(),
            record: None,
            headers_left: self.options.skip_header_lines,
            copy_of: None,
            listed: true,
            unlisted_at: None,
        };
        // The checkpoint's file itself.
        let mut saved = self.saved.iter().position(|p| p.id == id).filter(|&i| {
            tracked
                .starts_as(&self.saved[i].fingerprint)
                .unwrap_or(false)
        });
        if saved.is_none() {
            // A copy of a file read now (the same first bytes, and the same bytes where
            // the shorter ends) waits for its original's truncation. Files too short for
            // a whole fingerprint are told apart by identity only.
            for original in &self.files {
                if original.copy_of.is_none()
                    && original.fingerprint.len == FINGERPRINT_BYTES
                    && tracked.starts_as(&original.fingerprint)?
                    && tracked.mirrors(original)?
                {
                    tracked.copy_of = Some(original.id);
                    return Ok(tracked);
                }
            }
            // A copy made while the agent was down of a checkpoint's file truncated since.
            saved = self.saved.iter().position(|p| {
                p.id != id
                    && p.fingerprint.len == FINGERPRINT_BYTES
                    && tracked.starts_as(&p.fingerprint).unwrap_or(false)
            });
        }
        if let Some(i) = saved {
            let position = self.saved.remove(i);
            tracked.start_at(position.offset.min(size));
        } else if self.fresh && self.options.start_at_end {
            tracked.start_at(size);
        }
        Ok(tracked)
    }

    /// A file that no longer starts as it did was truncated (and perhaps written again):
    /// its copy, if one waits, takes over from where it was; it starts again.
    fn note_truncations(&mut self) -> Result<(), AgentError> {
        for i in 0..self.files.len() {
            let file = &self.files[i];
            let shrunk = file.file.metadata().is_ok_and(|m| m.len() < file.offset);
            if file.copy_of.is_some() || (!shrunk && file.starts_as(&file.fingerprint)?) {
                continue;
            }
            let original = file.id;
            if let Some(c) = self.files.iter().position(|c| c.copy_of == Some(original)) {
                let (copy, truncated) = pair_mut(&mut self.files, c, i);
                copy.take_over(truncated);
                // The copy's rest comes before the original's new lines.
                let copy = self.files.remove(c);
                let at = if c < i { i - 1 } else { i };
                self.files.insert(at, copy);
            } else {
                self.truncations_without_copy += 1;
            }
            let track = self.new_track();
            let skip = self.options.skip_header_lines;
            let at = self
                .files
                .iter()
                .position(|f| f.id == original)
                .expect("still known");
            self.files[at].restart(skip, track)?;
        }
        Ok(())
    }

    /// Releases waiting copies that turn out not to be copies (their bytes where the shorter
    /// file ends differ from their original's): new files that began as another did.
    fn release_false_copies(&mut self) -> Result<(), AgentError> {
        for c in 0..self.files.len() {
            let Some(original) = self.files[c].copy_of else {
                continue;
            };
            let Some(original) = self.files.iter().find(|f| f.id == original) else {
                continue;
            };
            if !self.files[c].mirrors(original)? {
                self.files[c].copy_of = None;
            }
        }
        Ok(())
    }

    /// Reads what file `i` holds past its offset into records.
    fn read(&mut self, i: usize, records: &mut Vec<Record>) -> Result<(), AgentError> {
        let options = &self.options;
        let file = &mut self.files[i];
        let size = file
            .file
            .metadata()
            .map_err(|e| AgentError::io("read", &file.path, e))?
            .len();
        if size <= file.offset {
            return Ok(());
        }
        let mut buffer = vec![0; (size - file.offset).min(READ_BYTES) as usize];
        let read = file
            .file
            .read_at(&mut buffer, file.offset)
            .map_err(|e| AgentError::io("read", &file.path, e))?;
        buffer.truncate(read);
        file.offset += read as u64;
        file.grow_fingerprint()?;
        let mut start = 0;
        let base = file.offset - read as u64;
        while let Some(newline) = buffer[start..].iter().position(|b| *b == b'\n') {
            let end = start + newline + 1;
            let mut line = std::mem::take(&mut file.line);
            line.extend_from_slice(&buffer[start..end]);
            file.take_line(options, line, base + end as u64, records);
            start = end;
        }
        file.line.extend_from_slice(&buffer[start..]);
        Ok(())
    }
}

impl Tracked {
    /// Whether the file's first bytes are those `fingerprint` covers.
    fn starts_as(&self, fingerprint: &Fingerprint) -> Result<bool, AgentError> {
        Ok(self.fingerprint.len >= fingerprint.len
            && self::fingerprint(&self.file, &self.path, fingerprint.len)? == *fingerprint)
    }

    fn start_at(&mut self, offset: u64) {
        self.offset = offset;
        self.started = offset;
        if offset > 0 {
            self.headers_left = 0;
        }
    }

    fn at_end(&self) -> bool {
        self.file.metadata().is_ok_and(|m| m.len() <= self.offset)
    }

    /// Gone from the pattern for a while and read to its end: no more will come.
    fn done(&self) -> bool {
        self.copy_of.is_none()
            && self
                .unlisted_at
                .is_some_and(|t| t.elapsed() >= ROTATED_GRACE)
            && self.at_end()
    }

    /// Whether this file holds the same bytes as `original` just before where the shorter
    /// of the two ends (as a copy of it does).
    fn mirrors(&self, original: &Tracked) -> Result<bool, AgentError> {
        let size = |f: &Tracked| f.file.metadata().map_or(0, |m| m.len());
        let end = size(self).min(size(original));
        let len = end.min(MIRROR_BYTES);
        Ok(bytes_at(&self.file, &self.path, end - len, len)?
            == bytes_at(&original.file, &original.path, end - len, len)?)
    }

    /// A copy's place taken from a file no longer read (its original, truncated or gone):
    /// reading goes on in the copy from where the original was.
    fn take_over(&mut self, original: &mut Tracked) {
        self.copy_of = None;
        self.offset = original.offset;
        self.line = std::mem::take(&mut original.line);
        self.record = original.record.take();
        self.started = self.offset
            - self.line.len() as u64
            - self.record.as_ref().map_or(0, |r| r.0.len() as u64);
        self.headers_left = original.headers_left;
    }

    /// Reads the file again from its start (it was truncated), as `track`.
    fn restart(&mut self, skip_header_lines: usize, track: u64) -> Result<(), AgentError> {
        let size = self.file.metadata().map_or(0, |m| m.len());
        self.fingerprint = fingerprint(&self.file, &self.path, FINGERPRINT_BYTES.min(size))?;
        self.track = track;
        self.offset = 0;
        self.started = 0;
        self.line.clear();
        self.record = None;
        self.headers_left = skip_header_lines;
        Ok(())
    }

    /// Covers more of a small file's first bytes as it grows.
    fn grow_fingerprint(&mut self) -> Result<(), AgentError> {
        let len = FINGERPRINT_BYTES.min(self.offset);
        if len > self.fingerprint.len {
            self.fingerprint = fingerprint(&self.file, &self.path, len)?;
        }
        Ok(())
    }

    /// A complete line, ending at `end` in the file: a record, part of one, or a header.
    fn take_line(
        &mut self,
        options: &TailOptions,
        line: Vec<u8>,
        end: u64,
        records: &mut Vec<Record>,
    ) {
        if self.headers_left > 0 {
            self.headers_left -= 1;
            return;
        }
        let Some(start) = &options.multi_line_start else {
            records.push(Record {
                data: line,
                file: self.id,
                track: self.track,
                end,
            });
            return;
        };
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        if start.is_match(text) {
            if let Some((data, end)) = self.record.take() {
                records.push(Record {
                    data,
                    file: self.id,
                    track: self.track,
                    end,
                });
            }
            self.record = Some((line, end));
        } else if let Some((data, at)) = &mut self.record {
            data.extend_from_slice(&line);
            *at = end;
        } else {
            // Lines before the first start line are records of their own.
            records.push(Record {
                data: line,
                file: self.id,
                track: self.track,
                end,
            });
        }
    }

    /// The file will not grow: its record being gathered and its last line go as they are.
    fn flush(&mut self, options: &TailOptions, records: &mut Vec<Record>) {
        let line = std::mem::take(&mut self.line);
        if !line.is_empty() {
            let end = self.offset;
            self.take_line(options, line, end, records);
        }
        if let Some((data, end)) = self.record.take() {
            records.push(Record {
                data,
                file: self.id,
                track: self.track,
                end,
            });
        }
    }
}

/// A rotated log compressed (`.gz`, `.bz2`, `.zip`): the agent leaves it, as the Java agent
/// does, whatever the pattern.
fn compressed(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        ["gz", "bz2", "zip"]
            .iter()
            .any(|c| e.eq_ignore_ascii_case(c))
    })
}

/// Two files of `files`, mutably: the one at `a` and the one at `b` (`a != b`).
fn pair_mut<T>(files: &mut [T], a: usize, b: usize) -> (&mut T, &mut T) {
    if a < b {
        let (low, high) = files.split_at_mut(b);
        (&mut low[a], &mut high[0])
    } else {
        let (low, high) = files.split_at_mut(a);
        (&mut high[0], &mut low[b])
    }
}

/// The fingerprint of a file's first `len` bytes.
fn fingerprint(file: &File, path: &Path, len: u64) -> Result<Fingerprint, AgentError> {
    let bytes = bytes_at(file, path, 0, len)?;
    Ok(Fingerprint {
        len: bytes.len() as u64,
        hash: xxhash_rust::xxh3::xxh3_64(&bytes),
    })
}

/// Up to `len` bytes of a file from `offset` (fewer where it ends).
fn bytes_at(file: &File, path: &Path, offset: u64, len: u64) -> Result<Vec<u8>, AgentError> {
    let mut bytes = vec![0; len as usize];
    let mut read = 0;
    while read < bytes.len() {
        let n = file
            .read_at(&mut bytes[read..], offset + read as u64)
            .map_err(|e| AgentError::io("read", path, e))?;
        if n == 0 {
            break;
        }
        read += n;
    }
    bytes.truncate(read);
    Ok(bytes)
}
