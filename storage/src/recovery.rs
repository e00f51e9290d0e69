//! Recovery on open: classify every segment file, open sealed segments from their footers,
//! scan the rest, and cut the log at the first damage. Reads only (through mappings); the
//! writes recovery needs (freeing discarded segments) are done by the log through the I/O seam.

use crate::config::LogConfig;
use crate::error::{Result, StorageError};
use crate::format::{
    BatchHeader, FormatError, IndexEntry, SEGMENT_DATA_START, SEGMENT_HEADER_LEN, SegmentHeader,
    SegmentState, TRAILER_LEN, Trailer, decode_footer, verify_batch,
};
use crate::index::SparseIndex;
use crate::segment::{Segment, map_file};
use std::path::{Path, PathBuf};

/// What recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments opened from their footer, without a scan.
    pub sealed_segments: usize,
    /// Segments whose batches were scanned and verified.
    pub scanned_segments: usize,
    /// Bytes of batches scanned.
    pub scanned_bytes: u64,
    /// Where the log was cut, if it was cut at damage (not at a clean end).
    pub truncated: Option<Truncation>,
    /// Live segments released because they came after the cut.
    pub discarded_segments: usize,
    /// Segments free for reuse.
    pub free_segments: usize,
}

/// The point where recovery cut the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    /// Segment file.
    pub path: PathBuf,
    /// Byte offset of the first batch dropped.
    pub pos: u64,
    /// Sequence number the log continues from.
    pub seq: u64,
    /// Why the batch there was refused.
    pub reason: String,
}

/// Where the data of an unsealed segment ends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tail {
    pub(crate) write_pos: u64,
    pub(crate) last_checksum: u64,
}

/// The recovered log, ready for the writer.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub(crate) live: Vec<Segment>,
    /// Live segments (index into `live`) without a valid seal, and where their data ends: the
    /// log seals them all before appending.
    pub(crate) unsealed: Vec<(usize, Tail)>,
    pub(crate) free: Vec<Segment>,
    /// Live on disk but after the cut: must be marked free before anything is appended.
    pub(crate) discarded: Vec<Segment>,
    pub(crate) next_seq: u64,
    /// Where the surviving data ends; below `next_seq` only when numbering jumps after a cut.
    pub(crate) chain_end: u64,
    pub(crate) generation: u64,
    pub(crate) next_slot: u32,
    pub(crate) report: RecoveryReport,
}

/// File name of the segment in `slot`.
pub(crate) fn segment_file_name(slot: u32) -> String {
    format!("seg-{slot:08}.log")
}

fn parse_slot(name: &str) -> Option<u32> {
    name.strip_prefix("seg-")?
        .strip_suffix(".log")?
        .parse()
        .ok()
}

struct Found {
    segment: Segment,
    header: Option<SegmentHeader>,
}

/// Reads the directory and rebuilds the log's state.
pub(crate) fn recover(dir: &Path, config: &LogConfig) -> Result<Recovered> {
    let mut found = Vec::new();
    let mut next_slot = 0u32;
    let entries = std::fs::read_dir(dir).map_err(|e| StorageError::io("list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io("list", dir, e))?;
        let name = entry.file_name();
        let name = name.to_str().unwrap_or_default();
        if name.starts_with("seg-") && name.ends_with(".log.tmp") {
            // A segment whose creation was interrupted: it never held data.
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|e| StorageError::io("remove", &path, e))?;
            continue;
        }
        let Some(slot) = parse_slot(name) else {
            continue;
        };
        next_slot = next_slot.max(slot + 1);
        found.push(open_found(entry.path(), config)?);
    }
    let generation = found
        .iter()
        .filter_map(|f| f.header.map(|h| h.generation))
        .max()
        .unwrap_or(0);
    let floor_of = |state: SegmentState| {
        let headers = found
            .iter()
            .filter_map(|f| f.header.filter(|h| h.state == state));
        headers.map(|h| h.base_seq).max().unwrap_or(0)
    };
    let retired_floor = floor_of(SegmentState::Free);
    let seq_floor = retired_floor.max(floor_of(SegmentState::Released));
    let (mut live, mut free): (Vec<Found>, Vec<Found>) = found
        .into_iter()
        .partition(|f| f.header.is_some_and(|h| h.state == SegmentState::Live));
    live.sort_by_key(|f| (f.segment.base_seq, std::cmp::Reverse(f.segment.generation)));
    let mut recovered = Recovered {
        live: Vec::new(),
        unsealed: Vec::new(),
        free: Vec::new(),
        discarded: Vec::new(),
        next_seq: seq_floor,
        chain_end: 0,
        generation,
        next_slot,
        report: RecoveryReport::default(),
    };
    chain_live(&mut recovered, live, config, retired_floor);
    recovered.free.extend(free.drain(..).map(|f| f.segment));
    recovered.report.free_segments = recovered.free.len() + recovered.discarded.len();
    recovered.report.discarded_segments = recovered.discarded.len();
    Ok(recovered)
}

fn open_found(path: PathBuf, config: &LogConfig) -> Result<Found> {
    let map = map_file(&path)?;
    if map.len() as u64 != config.segment_size_bytes {
        return Err(StorageError::InvalidConfig(format!(
            "segment {} is {} bytes but segment_size_bytes is {}",
            path.display(),
            map.len(),
            config.segment_size_bytes
        )));
    }
    let header = SegmentHeader::decode(&map[..SEGMENT_HEADER_LEN]).ok();
    let (generation, base_seq) = header.map_or((0, 0), |h| (h.generation, h.base_seq));
    Ok(Found {
        segment: Segment::new(path, map, generation, base_seq),
        header,
    })
}

/// Opens every live segment and walks them in sequence order; each must start where the
/// previous one ended (or, for the first segment after an earlier cut, where its header says
/// the surviving data ended).
/// Everything after the first gap or damaged batch is discarded.
///
/// `retired_floor` is the highest sequence a retired segment ended at: a live segment ending at
/// or below it was retired too (retention goes oldest first), its free header lost in a crash;
/// it is released, not chained.
fn chain_live(recovered: &mut Recovered, live: Vec<Found>, config: &LogConfig, retired_floor: u64) {
    let mut opened = Vec::new();
    for found in live {
        let follows_seq = found.header.map_or(0, |h| h.follows_seq);
        let mut opened_segment = open_segment(found.segment, config, &mut recovered.report);
        opened_segment.follows_seq = follows_seq;
        let retired = if opened_segment.is_empty() {
            opened_segment.segment.base_seq < retired_floor
        } else {
            opened_segment.progress.end_seq <= retired_floor
        };
        if retired {
            recovered.discarded.push(opened_segment.segment);
            continue;
        }
        opened.push(opened_segment);
    }
    opened.sort_by_key(|o| (o.segment.base_seq, o.segment.generation));
    // Where the chain stands (moved by every accepted segment, empty ones too) and where its
    // surviving data ends (moved only by segments that are kept).
    let mut position: Option<u64> = None;
    let mut data_end: Option<u64> = None;
    let mut cut = false;
    let mut highest_seen = 0;
    // Where the last scan stopped on bytes that are not a batch: the segment's real end if the
    // next segment starts right there (stale bytes of a recycled file, a torn seal), a cut if
    // not, or the tail of the log.
    let mut stopped_on: Option<Truncation> = None;
    for mut opened in opened {
        let base = opened.segment.base_seq;
        highest_seen = highest_seen.max(opened.progress.end_seq);
        // The header says where the log stood when the segment started: normally its base, or
        // the end of the surviving data when numbering jumped after an earlier cut.
        let follows_seq = opened.follows_seq;
        let follows = position
            .is_none_or(|at| base == at || follows_seq == at || data_end == Some(follows_seq));
        if cut || !follows {
            if !cut {
                let gap = || Truncation {
                    path: opened.segment.path.clone(),
                    pos: SEGMENT_DATA_START,
                    seq: data_end.or(position).unwrap_or(base),
                    reason: format!("gap: the next segment starts at {base}"),
                };
                recovered.report.truncated = stopped_on.take().or_else(|| Some(gap()));
            }
            cut = true;
            recovered.discarded.push(opened.segment);
            continue;
        }
        position = Some(opened.progress.end_seq);
        stopped_on = opened.damage.map(|(pos, reason)| Truncation {
            path: opened.segment.path.clone(),
            pos,
            seq: opened.progress.end_seq,
            reason: reason.0.to_string(),
        });
        if opened.is_empty() {
            // Holds nothing (started just before a crash, or torn at its first batch), but
            // it does fix where the chain stands.
            recovered.discarded.push(opened.segment);
            continue;
        }
        let progress = opened.progress;
        data_end = Some(progress.end_seq);
        if !opened.sealed {
            let tail = Tail {
                write_pos: progress.data_end,
                last_checksum: progress.last_checksum,
            };
            recovered.unsealed.push((recovered.live.len(), tail));
        }
        let index = SparseIndex::from_entries(progress.index, config.index_interval_bytes);
        opened.segment.restore(
            progress.end_seq,
            progress.data_end,
            progress.max_timestamp_ms,
            index,
        );
        recovered.live.push(opened.segment);
    }
    if !cut {
        recovered.report.truncated = stopped_on;
    }
    // Numbers once handed out (even to records lost after a cut) are never handed out again.
    let floor = recovered.next_seq.max(highest_seen);
    recovered.next_seq = position.unwrap_or(0).max(floor);
    // Where the data ends, for the next segment's `follows_seq` when numbering jumps.
    recovered.chain_end = data_end.unwrap_or(recovered.next_seq);
}

/// A live segment after its footer was read or its batches scanned.
struct Opened {
    segment: Segment,
    /// From the header: where the log stood when this segment started.
    follows_seq: u64,
    progress: Progress,
    sealed: bool,
    /// The first batch refused for damage, if the scan stopped at one.
    damage: Option<(u64, FormatError)>,
}

impl Opened {
    fn is_empty(&self) -> bool {
        self.progress.end_seq == self.segment.base_seq
    }
}

fn open_segment(segment: Segment, config: &LogConfig, report: &mut RecoveryReport) -> Opened {
    if let Some(progress) = segment.with_read_around_off(open_sealed) {
        report.sealed_segments += 1;
        return Opened {
            segment,
            follows_seq: 0,
            progress,
            sealed: true,
            damage: None,
        };
    }
    let scanned = scan(&segment, config);
    report.scanned_segments += 1;
    report.scanned_bytes += scanned.progress.data_end - SEGMENT_DATA_START;
    Opened {
        segment,
        follows_seq: 0,
        progress: scanned.progress,
        sealed: false,
        damage: scanned.damage,
    }
}

/// What a segment holds.
struct Progress {
    end_seq: u64,
    data_end: u64,
    max_timestamp_ms: u64,
    last_checksum: u64,
    index: Vec<IndexEntry>,
}

/// Opens a segment from its trailer and footer, if both are valid and of its generation.
fn open_sealed(segment: &Segment) -> Option<Progress> {
    let size = segment.len();
    let trailer = Trailer::decode(segment.bytes(size - TRAILER_LEN as u64, size)).ok()?;
    let footer_end = trailer.footer_pos.checked_add(trailer.footer_len)?;
    if trailer.generation != segment.generation
        || trailer.footer_pos < SEGMENT_DATA_START
        || footer_end > size - TRAILER_LEN as u64
    {
        return None;
    }
    let bytes = segment.bytes(trailer.footer_pos, footer_end);
    let footer = decode_footer(bytes, trailer.footer_checksum).ok()?;
    let consistent = footer.generation == segment.generation
        && footer.base_seq == segment.base_seq
        && footer.end_seq == trailer.end_seq
        && footer.end_seq >= footer.base_seq
        && footer.data_end == trailer.footer_pos
        && footer
            .index
            .windows(2)
            .all(|w| w[0].seq < w[1].seq && w[0].pos < w[1].pos)
        && footer
            .index
            .iter()
            .all(|e| e.pos >= SEGMENT_DATA_START && e.pos < footer.data_end);
    consistent.then_some(Progress {
        end_seq: footer.end_seq,
        data_end: footer.data_end,
        max_timestamp_ms: footer.max_timestamp_ms,
        last_checksum: footer.last_checksum,
        index: footer.index,
    })
}

struct Scanned {
    progress: Progress,
    /// The first batch refused for damage (not a clean end).
    damage: Option<(u64, FormatError)>,
}

/// Verifies batches from the start of the segment until the first one that fails.
fn scan(segment: &Segment, config: &LogConfig) -> Scanned {
    let limit = config.data_limit();
    let mut index = SparseIndex::new(config.index_interval_bytes);
    let mut progress = Progress {
        end_seq: segment.base_seq,
        data_end: SEGMENT_DATA_START,
        max_timestamp_ms: 0,
        last_checksum: 0,
        index: Vec::new(),
    };
    let mut damage = None;
    while progress.data_end + 64 <= limit {
        let pos = progress.data_end;
        match check_batch(segment, pos, limit, &progress) {
            Ok(header) => {
                index.observe(IndexEntry {
                    seq: header.base_seq,
                    timestamp_ms: header.min_timestamp_ms,
                    pos,
                });
                progress.end_seq = header.end_seq();
                progress.data_end = pos + u64::from(header.length);
                progress.max_timestamp_ms = header.max_timestamp_ms;
                progress.last_checksum = header.checksum;
            }
            Err(Stop::CleanEnd) => break,
            Err(Stop::Damage(reason)) => {
                damage = Some((pos, reason));
                break;
            }
        }
    }
    progress.index = index.entries().to_vec();
    Scanned { progress, damage }
}

enum Stop {
    /// Never-written bytes or a batch from an earlier life of the file.
    CleanEnd,
    Damage(FormatError),
}

fn check_batch(
    segment: &Segment,
    pos: u64,
    limit: u64,
    at: &Progress,
) -> Result<BatchHeader, Stop> {
    let head = segment.bytes(pos, pos + 64);
    if head.iter().all(|&b| b == 0) {
        return Err(Stop::CleanEnd);
    }
    let header = BatchHeader::parse(head).map_err(Stop::Damage)?;
    if header.generation != segment.generation {
        return Err(Stop::CleanEnd);
    }
    let fault = if header.base_seq != at.end_seq {
        Some("batch out of sequence")
    } else if header.prev_checksum != at.last_checksum {
        Some("batch does not follow the previous batch")
    } else if pos + u64::from(header.length) > limit {
        Some("batch runs past the data region")
    } else if header.min_timestamp_ms < at.max_timestamp_ms {
        Some("batch timestamps go back in time")
    } else {
        None
    };
    if let Some(reason) = fault {
        return Err(Stop::Damage(FormatError(reason)));
    }
    let bytes = segment.bytes(pos, pos + u64::from(header.length));
    verify_batch(bytes, &header).map_err(Stop::Damage)?;
    Ok(header)
}
