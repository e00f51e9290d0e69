//! Recovery on open: classify every segment file, open sealed segments from their footers,
//! scan the rest, and cut the log at the first damage. Reads only (through mappings); the
//! writes recovery needs (freeing discarded segments) are done by the log through the I/O seam.

use crate::config::LogConfig;
use crate::error::{Result, StorageError};
use crate::format::{
    BATCH_HEADER_LEN, BATCH_HEADER_MAX_LEN, BATCH_MAGIC, BatchHeader, EntryId, FormatError,
    IndexEntry, SEGMENT_DATA_START, SEGMENT_HEADER_LEN, SegmentHeader, SegmentState, TRAILER_LEN,
    Trailer, decode_footer, verify_batch,
};
use crate::index::SparseIndex;
use crate::segment::{Segment, map_file};
use std::path::{Path, PathBuf};

/// What recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// Segments opened from their footer, without a scan.
    pub sealed_segments: usize,
    /// Segments whose batches were scanned and verified.
    pub scanned_segments: usize,
    /// Bytes of batches scanned.
    pub scanned_bytes: u64,
    /// Where the log was cut, if it was cut at damage (not at a clean end).
    pub truncated: Option<Truncation>,
    /// Live segments released: empty, retired, stale or after the cut.
    pub discarded_segments: usize,
    /// Live segments whose header is older than their data (the file was started again and
    /// the new header never reached the device): released, never chained.
    pub stale_segments: usize,
    /// Damage stepped over rather than cut at: a sealed segment after it proves the data
    /// after it was durable. The records in between are lost; the log goes on past them.
    pub holes: Vec<Truncation>,
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
    /// A replicated log's last entry.
    pub(crate) last_entry: Option<EntryId>,
    pub(crate) generation: u64,
    pub(crate) next_slot: u32,
    pub(crate) report: RecoveryReport,
}

/// File name of the segment in `slot`.
pub(crate) fn segment_file_name(slot: u32) -> String {
    format!("seg-{slot:08}.log")
}

/// Whether `name` is a segment file's (`seg-NNNNNNNN.log`).
pub(crate) fn is_segment_file_name(name: &str) -> bool {
    parse_slot(name).is_some()
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
    // Invariant: a new generation is above every generation whose batches may be on disk, or
    // a later life's stale batches could pass for this one's (and `holds_later_life` could
    // take live data for stale). A header never synced may be lost with its data pages kept;
    // each such lost life is its file's latest (retiring a file syncs its free header, which
    // carries the generation), so at most one per file lies above the highest header found.
    let files = found.len() as u64;
    let generation = found
        .iter()
        .filter_map(|f| f.header.map(|h| h.generation))
        .max()
        .unwrap_or(0)
        + files;
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
    refuse_other_kind(dir, &live, config)?;
    live.sort_by_key(|f| (f.segment.base_seq, std::cmp::Reverse(f.segment.generation)));
    let mut recovered = Recovered {
        live: Vec::new(),
        unsealed: Vec::new(),
        free: Vec::new(),
        discarded: Vec::new(),
        next_seq: seq_floor,
        chain_end: 0,
        last_entry: None,
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
///
/// `retired_floor` is the highest sequence a retired segment ended at: a live segment ending at
/// or below it was retired too (retention goes oldest first), its free header lost in a crash;
/// it is released, not chained. So are segments that hold nothing, and segments whose data
/// proves their header stale.
///
/// Where the chain breaks, durable data decides (docs/design/segment-format.md, "Recovery"):
/// a sealed segment is written only once everything up to its end is durable, so a break
/// before the last sealed segment is damage to step over (a hole), never a reason to drop the
/// sealed data after it; a break after it is the torn tail of a crash: the log is cut there.
fn chain_live(recovered: &mut Recovered, live: Vec<Found>, config: &LogConfig, retired_floor: u64) {
    let mut opened = Vec::new();
    for found in live {
        let follows_seq = found.header.map_or(0, |h| h.follows_seq);
        let mut opened_segment = open_segment(found.segment, config, &mut recovered.report);
        if config.replicated && opened_segment.sealed {
            opened_segment.progress.entries = sealed_entry_bounds(&opened_segment);
        }
        opened_segment.follows_seq = follows_seq;
        // A segment without records (empty, or control entries only) ends where it starts:
        // retired only if it starts below the floor.
        let retired = if opened_segment.progress.end_seq == opened_segment.segment.base_seq {
            opened_segment.segment.base_seq < retired_floor
        } else {
            opened_segment.progress.end_seq <= retired_floor
        };
        if opened_segment.stale {
            recovered.report.stale_segments += 1;
        }
        if retired || opened_segment.stale {
            recovered.discarded.push(opened_segment.segment);
            continue;
        }
        opened.push(opened_segment);
    }
    opened.sort_by_key(|o| (o.segment.base_seq, o.segment.generation));
    // A replicated log is never stepped over a hole: its entries must stay consecutive, and
    // what is lost after a break the leader sends again.
    let proven = match config.replicated {
        true => 0,
        false => opened.iter().rposition(|o| o.sealed).map_or(0, |i| i + 1),
    };
    let last = opened.len().saturating_sub(1);
    let mut chain = Chain {
        index_interval_bytes: config.index_interval_bytes,
        replicated: config.replicated,
        ..Chain::default()
    };
    for (i, opened) in opened.into_iter().enumerate() {
        chain.add(recovered, opened, i < proven, i == last);
    }
    if !chain.cut {
        recovered.report.truncated = chain.stopped_on;
    }
    // Numbers once handed out (even to records lost after a cut) are never handed out again.
    let floor = recovered.next_seq.max(chain.highest_seen);
    recovered.next_seq = chain.position.unwrap_or(0).max(floor);
    // Where the data ends, for the next segment's `follows_seq` when numbering jumps.
    recovered.chain_end = chain.data_end.unwrap_or(recovered.next_seq);
    if config.replicated {
        // A replica's numbers are its leader's: records lost here were never visible (nothing
        // above the commit is) or are committed and come again from the leader, with the
        // same numbers. The log goes on where its entries end, or where the chain stood, or
        // where retention freed the log (it frees committed segments only). Not above a
        // released segment's floor: a truncation leaves floors that a later one undercuts.
        recovered.next_seq = chain.data_end.or(chain.position).unwrap_or(retired_floor);
        recovered.chain_end = recovered.next_seq;
        recovered.last_entry = chain.last_entry;
    }
}

/// The walk of `chain_live` over the live segments, in sequence order.
#[derive(Default)]
struct Chain {
    /// Where the chain stands: moved by every accepted segment (an empty tail too).
    position: Option<u64>,
    /// Where the surviving data ends: moved only by segments that are kept.
    data_end: Option<u64>,
    /// The log was cut: every later segment is released.
    cut: bool,
    highest_seen: u64,
    /// Where the last scan stopped on bytes that are not a batch: the segment's real end if
    /// the next segment starts right there (stale bytes of a recycled file, a torn seal), a
    /// cut or a hole if not, or the tail of the log.
    stopped_on: Option<Truncation>,
    index_interval_bytes: u64,
    /// A replicated log's last kept entry.
    last_entry: Option<EntryId>,
    /// The log is replicated: no segment is stepped over, whatever follows it.
    replicated: bool,
}

impl Chain {
    /// Takes the next segment: kept, or released. `proven`: a sealed segment comes at or after
    /// it, so the data it holds was durable. `last`: no segment comes after it.
    fn add(&mut self, recovered: &mut Recovered, mut opened: Opened, proven: bool, last: bool) {
        let base = opened.segment.base_seq;
        self.highest_seen = self.highest_seen.max(opened.progress.end_seq);
        // A replicated log's entries must stay consecutive: an empty segment before data is a
        // break like any other (the leader sends what follows again).
        if opened.is_empty() && opened.damage.is_none() && !last && !self.replicated {
            // Holds nothing, ends cleanly and is followed by data: it says nothing about where
            // the chain stands (a file started again whose first writes never reached the
            // device). Damage at its first batch is different: the chain breaks there.
            recovered.discarded.push(opened.segment);
            return;
        }
        // The header says where the log stood when the segment started: normally its base, or
        // the end of the surviving data when numbering jumped after an earlier cut.
        let follows_seq = opened.follows_seq;
        let at = self.position;
        let follows = at
            .is_none_or(|at| base == at || follows_seq == at || self.data_end == Some(follows_seq))
            && entries_follow(self.last_entry, opened.progress.entries)
            // A sealed segment of entries whose bounds cannot be read is no continuation.
            && !(self.replicated && !opened.is_empty() && opened.progress.entries.is_none());
        // Where a break before this segment leaves the log, if the last scan did not stop
        // on damage that says more.
        let gap = Truncation {
            path: opened.segment.path.clone(),
            pos: SEGMENT_DATA_START,
            seq: self.data_end.or(at).unwrap_or(base),
            reason: format!("gap: the next segment starts at {base}"),
        };
        if !follows && proven && !self.cut {
            let hole = self.stopped_on.take().unwrap_or(gap);
            recovered.report.holes.push(hole);
        } else if self.cut || !follows {
            if !self.cut {
                recovered.report.truncated = Some(self.stopped_on.take().unwrap_or(gap));
            }
            self.cut = true;
            recovered.discarded.push(opened.segment);
            return;
        }
        self.position = Some(opened.progress.end_seq);
        self.stopped_on = opened.damage.take().map(|(pos, reason)| Truncation {
            path: opened.segment.path.clone(),
            pos,
            seq: opened.progress.end_seq,
            reason: reason.0.to_string(),
        });
        if opened.is_empty() {
            // The tail, holding nothing (started just before a crash, or torn at its first
            // batch), but it does fix where the chain stands.
            recovered.discarded.push(opened.segment);
            return;
        }
        self.data_end = Some(opened.progress.end_seq);
        if let Some((_, last)) = opened.progress.entries {
            self.last_entry = Some(last);
        }
        keep(recovered, opened, self.index_interval_bytes);
    }
}

/// Makes `opened` a live segment of the recovered log.
fn keep(recovered: &mut Recovered, mut opened: Opened, index_interval_bytes: u64) {
    let progress = opened.progress;
    if !opened.sealed {
        let tail = Tail {
            write_pos: progress.data_end,
            last_checksum: progress.last_checksum,
        };
        recovered.unsealed.push((recovered.live.len(), tail));
    }
    let index = SparseIndex::from_entries(progress.index, index_interval_bytes);
    opened.segment.restore(
        progress.end_seq,
        progress.data_end,
        progress.max_timestamp_ms,
        index,
    );
    recovered.live.push(opened.segment);
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
    /// Its data holds a batch of a later generation: the file was started again and that
    /// header never reached the device, so this header, and what it describes, is stale.
    stale: bool,
}

impl Opened {
    /// Holds no batch (a segment of control entries holds no record but is not empty).
    fn is_empty(&self) -> bool {
        self.progress.data_end == SEGMENT_DATA_START
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
            stale: false,
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
        stale: scanned.later_life,
    }
}

/// What a segment holds.
struct Progress {
    end_seq: u64,
    data_end: u64,
    max_timestamp_ms: u64,
    last_checksum: u64,
    index: Vec<IndexEntry>,
    /// A replicated log's first and last entries in the segment.
    entries: Option<(EntryId, EntryId)>,
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
        entries: None,
    })
}

struct Scanned {
    progress: Progress,
    /// The first batch refused for damage (not a clean end).
    damage: Option<(u64, FormatError)>,
    /// A batch of a later generation than the header's lies where the scan stopped or after.
    later_life: bool,
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
        entries: None,
    };
    let mut damage = None;
    let mut later_life = false;
    while progress.data_end + 64 <= limit {
        let pos = progress.data_end;
        match check_batch(segment, pos, limit, &progress, config.replicated) {
            Ok(header) => {
                if !header.is_control() {
                    index.observe(IndexEntry {
                        seq: header.base_seq,
                        timestamp_ms: header.min_timestamp_ms,
                        pos,
                    });
                }
                if let Some(entry) = header.entry {
                    let first = progress.entries.map_or(entry, |(first, _)| first);
                    progress.entries = Some((first, entry));
                }
                progress.end_seq = header.end_seq();
                progress.data_end = pos + u64::from(header.length);
                progress.max_timestamp_ms = header.max_timestamp_ms;
                progress.last_checksum = header.checksum;
            }
            Err(Stop::CleanEnd) => break,
            Err(Stop::LaterLife) => {
                later_life = true;
                break;
            }
            Err(Stop::Damage(reason)) => {
                later_life = holds_later_life(segment, pos, limit);
                damage = Some((pos, reason));
                break;
            }
        }
    }
    progress.index = index.entries().to_vec();
    Scanned {
        progress,
        damage,
        later_life,
    }
}

/// Whether a batch header of a later generation than the segment's lies in `[from, limit)`.
/// Only after damage stopped a scan (the page cache may have written a later life's pages
/// back around an earlier life's): batches are 8-byte aligned, so this looks at every 8th
/// byte for one.
fn holds_later_life(segment: &Segment, from: u64, limit: u64) -> bool {
    let bytes = segment.bytes(from, limit);
    let magic = BATCH_MAGIC.to_le_bytes();
    (0..bytes.len().saturating_sub(63)).step_by(8).any(|at| {
        bytes[at..at + 4] == magic
            && BatchHeader::parse(&bytes[at..bytes.len().min(at + BATCH_HEADER_MAX_LEN)])
                .is_ok_and(|h| h.generation > segment.generation)
    })
}

enum Stop {
    /// Never-written bytes or a batch from an earlier life of the file.
    CleanEnd,
    /// A batch from a later life of the file: its header is stale.
    LaterLife,
    Damage(FormatError),
}

fn check_batch(
    segment: &Segment,
    pos: u64,
    limit: u64,
    at: &Progress,
    replicated: bool,
) -> Result<BatchHeader, Stop> {
    let head = segment.bytes(pos, pos + BATCH_HEADER_MAX_LEN as u64);
    if head[..BATCH_HEADER_LEN].iter().all(|&b| b == 0) {
        return Err(Stop::CleanEnd);
    }
    let header = BatchHeader::parse(head).map_err(Stop::Damage)?;
    if header.generation > segment.generation {
        return Err(Stop::LaterLife);
    }
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
    } else if replicated != header.entry.is_some() {
        Some(match replicated {
            true => "a single-node batch in a replicated log",
            false => "an entry of a replicated log in a single-node log",
        })
    } else if !entries_follow(
        at.entries.map(|(_, last)| last),
        header.entry.map(|e| (e, e)),
    ) {
        Some("entry does not follow the previous entry")
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

/// Whether entries starting at `next` (first, last) may follow `previous`: the next index, a
/// term not lower. Where either side holds no entry there is nothing to check.
fn entries_follow(previous: Option<EntryId>, next: Option<(EntryId, EntryId)>) -> bool {
    match (previous, next) {
        (Some(previous), Some((first, _))) => {
            first.index == previous.index + 1 && first.term >= previous.term
        }
        _ => true,
    }
}

/// The first and last entries of a sealed segment of a replicated log, from batch headers: the
/// first batch, and a walk from the last index entry to the end of the data. `None` for a
/// segment whose headers do not say (the chain then checks nothing across it; a read of a
/// damaged batch reports it).
fn sealed_entry_bounds(opened: &Opened) -> Option<(EntryId, EntryId)> {
    let (segment, progress) = (&opened.segment, &opened.progress);
    let header_at = |pos: u64| {
        let head = segment.bytes(pos, pos + BATCH_HEADER_MAX_LEN as u64);
        BatchHeader::parse(head).ok()
    };
    if progress.data_end <= SEGMENT_DATA_START {
        return None;
    }
    let first = header_at(SEGMENT_DATA_START)?.entry?;
    let mut pos = progress.index.last().map_or(SEGMENT_DATA_START, |e| e.pos);
    loop {
        let header = header_at(pos)?;
        let end = pos + u64::from(header.length);
        if end >= progress.data_end {
            return (end == progress.data_end).then_some((first, header.entry?));
        }
        pos = end;
    }
}

/// Refuses to open a single-node log as replicated, or the reverse: recovery would take every
/// batch of the other kind for damage and release the data. Looks at the first batch of each
/// live segment (one of its own generation).
fn refuse_other_kind(dir: &Path, live: &[Found], config: &LogConfig) -> Result<()> {
    let other_kind = live.iter().any(|found| {
        let head = found.segment.bytes(
            SEGMENT_DATA_START,
            SEGMENT_DATA_START + BATCH_HEADER_MAX_LEN as u64,
        );
        BatchHeader::parse(head).is_ok_and(|h| {
            h.generation == found.segment.generation && h.entry.is_some() != config.replicated
        })
    });
    if !other_kind {
        return Ok(());
    }
    let (holds, opened_as) = match config.replicated {
        true => ("a single-node log", "replicated"),
        false => ("a replicated (cluster) log", "single-node"),
    };
    Err(StorageError::InvalidConfig(format!(
        "{} holds {holds}; it cannot be opened as {opened_as}",
        dir.display()
    )))
}
