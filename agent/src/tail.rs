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
    /// Which contents of the file: a truncated file read again from its start is the next
    /// epoch.
    pub epoch: u32,
    /// The file's offset after it: acknowledging the record acknowledges everything before.
    pub end: u64,
}

/// Most bytes read from one file in one poll.
const READ_BYTES: usize = 1 << 20;

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
    /// Bytes a truncation took before they were read, with no copy holding them.
    lost_to_truncation: u64,
}

struct Tracked {
    id: FileId,
    epoch: u32,
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
            lost_to_truncation: 0,
        }
    }

    /// Bytes a truncation took before they were read, with no copy of them found.
    pub fn lost_to_truncation(&self) -> u64 {
        self.lost_to_truncation
    }

    /// Finds the pattern's new files, notes truncations, and reads what the files hold
    /// now: the records completed, oldest file first.
    pub fn poll(&mut self) -> Result<Vec<Record>, AgentError> {
        self.discover()?;
        self.fresh = false;
        self.note_truncations()?;
        let mut records = Vec::new();
        for i in 0..self.files.len() {
            if self.files[i].copy_of.is_none() {
                self.read(i, &mut records)?;
            }
        }
        // A file gone from the pattern, read to its end, is done: its last line goes as
        // it is.
        let options = &self.options;
        self.files.retain_mut(|file| {
            let done = !file.listed && file.copy_of.is_none() && file.at_end();
            if done {
                file.flush(options, &mut records);
            }
            !done
        });
        Ok(records)
    }

    /// The positions to keep for the files known, each at `acknowledged(file, epoch)` (the
    /// end of its last record acknowledged; none: where this run started it).
    pub fn positions(
        &self,
        acknowledged: impl Fn(FileId, u32) -> Option<u64>,
    ) -> Vec<FilePosition> {
        self.files
            .iter()
            .map(|file| FilePosition {
                path: file.path.clone(),
                id: file.id,
                fingerprint: file.fingerprint,
                offset: acknowledged(file.id, file.epoch).unwrap_or(file.started),
            })
            .collect()
    }

    /// Lists the pattern; tracks the files not known yet.
    fn discover(&mut self) -> Result<(), AgentError> {
        let paths = glob::glob(&self.options.pattern)
            .map_err(|e| AgentError::config("filePattern", e.to_string()))?;
        let mut found = Vec::new();
        for path in paths.flatten() {
            let Ok(metadata) = std::fs::metadata(&path) else {
                continue; // gone since it was listed
            };
            if metadata.is_file() && !compressed(&path) {
                found.push((metadata.modified().ok(), path, metadata));
            }
        }
        found.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        for file in &mut self.files {
            file.listed = false;
        }
        for (_, path, metadata) in found {
            let id = FileId {
                dev: metadata.dev(),
                ino: metadata.ino(),
            };
            if let Some(known) = self.files.iter_mut().find(|f| f.id == id) {
                known.path = path;
                known.listed = true;
                continue;
            }
            let Ok(file) = File::open(&path) else {
                continue;
            };
            let tracked = self.track(id, path, file, metadata.len())?;
            self.files.push(tracked);
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
            epoch: 0,
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
        };
        // A copy of a file read now waits for its original's truncation. Files too short
        // for a whole fingerprint are told apart by identity only.
        for original in &self.files {
            if original.copy_of.is_none()
                && original.fingerprint.len == FINGERPRINT_BYTES
                && tracked.starts_as(&original.fingerprint)?
            {
                tracked.copy_of = Some(original.id);
                return Ok(tracked);
            }
        }
        // The checkpoint's file itself, or (its identity reused by a new file, or a copy
        // of it made while the agent was down) a file starting as it did.
        let saved = self.saved.iter().position(|p| p.id == id).filter(|&i| {
            tracked
                .starts_as(&self.saved[i].fingerprint)
                .unwrap_or(false)
        });
        let saved = match saved {
            Some(i) => Some(i),
            None => self.saved.iter().position(|p| {
                p.id != id
                    && p.fingerprint.len == FINGERPRINT_BYTES
                    && tracked.starts_as(&p.fingerprint).unwrap_or(false)
            }),
        };
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
            let copy = self.files.iter().position(|c| c.copy_of == Some(original));
            let skip = self.options.skip_header_lines;
            let (offset, line, record, headers_left) = {
                let file = &mut self.files[i];
                let taken = (
                    file.offset,
                    std::mem::take(&mut file.line),
                    file.record.take(),
                    file.headers_left,
                );
                file.restart(skip)?;
                taken
            };
            match copy {
                Some(c) => {
                    let copy = &mut self.files[c];
                    copy.copy_of = None;
                    copy.offset = offset;
                    copy.started = offset
                        - line.len() as u64
                        - record.as_ref().map_or(0, |r| r.0.len() as u64);
                    copy.line = line;
                    copy.record = record;
                    copy.headers_left = headers_left;
                    // The copy's rest comes before the original's new lines.
                    let copy = self.files.remove(c);
                    let at = if c < i { i - 1 } else { i };
                    self.files.insert(at, copy);
                }
                None => self.lost_to_truncation += offset,
            }
        }
        Ok(())
    }

    /// Reads what file `i` holds past its offset into records.
    fn read(&mut self, i: usize, records: &mut Vec<Record>) -> Result<(), AgentError> {
        let options = &self.options;
        let file = &mut self.files[i];
        let mut buffer = vec![0; READ_BYTES];
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

    /// Reads the file again from its start (it was truncated): its next epoch.
    fn restart(&mut self, skip_header_lines: usize) -> Result<(), AgentError> {
        let size = self.file.metadata().map_or(0, |m| m.len());
        self.fingerprint = fingerprint(&self.file, &self.path, FINGERPRINT_BYTES.min(size))?;
        self.epoch += 1;
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
                epoch: self.epoch,
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
                    epoch: self.epoch,
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
                epoch: self.epoch,
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
                epoch: self.epoch,
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

/// The fingerprint of a file's first `len` bytes.
fn fingerprint(file: &File, path: &Path, len: u64) -> Result<Fingerprint, AgentError> {
    let mut bytes = vec![0; len as usize];
    let mut read = 0;
    while read < bytes.len() {
        let n = file
            .read_at(&mut bytes[read..], read as u64)
            .map_err(|e| AgentError::io("read", path, e))?;
        if n == 0 {
            break;
        }
        read += n;
    }
    bytes.truncate(read);
    Ok(Fingerprint {
        len: read as u64,
        hash: xxhash_rust::xxh3::xxh3_64(&bytes),
    })
}
