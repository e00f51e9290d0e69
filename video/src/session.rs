//! PutMedia as a sans-IO session: fed the body's bytes as they arrive, it answers BUFFERING
//! and ERROR acknowledgements and whole fragments ready to store (docs/design/video.md,
//! "The session").

use crate::ack::{Ack, AckError, AckEvent};
use crate::fragment::FragmentMeta;
use crate::mkv::ebml::{self, Header, NotEbml, id};
use crate::mkv::{SegmentHeader, cluster, header};
use std::sync::Arc;

/// How cluster timecodes relate to the epoch (`x-amzn-fragment-timecode-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimecodeType {
    /// A cluster's time is ms since the epoch.
    Absolute,
    /// A cluster's time is added to the producer start timestamp.
    Relative,
}

/// A session's settings.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// How cluster timecodes relate to the epoch.
    pub timecode_type: TimecodeType,
    /// `x-amzn-producer-start-timestamp`, in ms since the epoch (relative timecodes).
    pub producer_start_ms: i64,
    /// The largest stored fragment (record) in bytes.
    pub fragment_bytes_max: usize,
    /// The longest fragment in ms.
    pub fragment_duration_max_ms: u64,
}

/// The longest fragment Kinesis Video accepts (4002 over it).
pub const FRAGMENT_DURATION_MAX_MS: u64 = 20_000;
/// The most tracks a stream may have (4012 over it).
pub const TRACKS_MAX: usize = 3;
/// The latest producer timestamp: the end of year 9999, in ms.
const PRODUCER_MS_MAX: i64 = 253_402_300_799_999;

/// What feeding a session produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// An acknowledgement to send now (BUFFERING, ERROR).
    Ack(Ack),
    /// A fragment received whole: store it, then acknowledge it.
    Fragment(ReceivedFragment),
}

/// A whole fragment, as its record will be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedFragment {
    /// Its timecode as the producer sent it, in ms (the acknowledgements' FragmentTimecode).
    pub timecode_ms: u64,
    /// What its record says about it.
    pub meta: FragmentMeta,
    /// The record: metadata, then the fragment's MKV.
    pub record: Vec<u8>,
}

/// One PutMedia body's parse.
#[derive(Debug)]
pub struct PutMediaSession {
    options: SessionOptions,
    /// Bytes received and not yet let go; those before `pos` are consumed (dropped once
    /// per feed, so consuming is not a copy of the rest each time).
    buf: Vec<u8>,
    pos: usize,
    stage: Stage,
    building: Building,
    /// The header clusters are read with (the current segment's, once its Tracks came).
    header: Option<Arc<SegmentHeader>>,
    /// Track numbers of the session's first segment; later segments must have the same.
    track_numbers: Option<Vec<u64>>,
    /// Bytes of a skipped element still to drop.
    skip: u64,
    cluster: Option<OpenCluster>,
    /// Producer time of the last fragment accepted, in ms.
    last_producer_ms: Option<i64>,
    ended: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Expecting an EBML header.
    EbmlHeader,
    /// Expecting a Segment's header.
    Segment,
    /// Inside a segment: level-1 elements.
    Body,
    /// Inside a segment refused for its tracks: everything until the next EBML header.
    Refused,
}

/// The parts of a segment's header as they arrive.
#[derive(Debug, Default)]
struct Building {
    ebml: Vec<u8>,
    info: Option<Vec<u8>>,
    tracks: Option<Vec<u8>>,
}

/// A cluster being received; its bytes start at `buf[pos]` (unless refused: refused bytes
/// are consumed as they come).
#[derive(Debug)]
struct OpenCluster {
    header: Header,
    /// Unknown size: bytes from `pos` walked, whole children only.
    walked: usize,
    /// Bytes refused (over the size limit, or in a refused segment) and dropped.
    refused: bool,
    /// Refused without an acknowledgement (its segment's was sent).
    silent: bool,
    buffering_sent: bool,
    timecode_ms: Option<u64>,
}

/// A fatal error: the session answers it and reads no further.
struct Fatal(AckError);

impl From<NotEbml> for Fatal {
    fn from(_: NotEbml) -> Fatal {
        Fatal(AckError::InvalidMkvData)
    }
}

impl PutMediaSession {
    /// A session expecting an MKV stream from its first byte.
    pub fn new(options: SessionOptions) -> PutMediaSession {
        PutMediaSession {
            options,
            buf: Vec::new(),
            pos: 0,
            stage: Stage::EbmlHeader,
            building: Building::default(),
            header: None,
            track_numbers: None,
            skip: 0,
            cluster: None,
            last_producer_ms: None,
            ended: false,
        }
    }

    /// Whether the session stopped reading (after a fatal error).
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Takes the next bytes of the body, received at `now_ms`.
    pub fn feed(&mut self, bytes: &[u8], now_ms: i64) -> Vec<Event> {
        let mut events = Vec::new();
        if self.ended {
            return events;
        }
        self.buf.extend_from_slice(bytes);
        if let Err(Fatal(error)) = self.advance(&mut events, now_ms) {
            self.fail(&mut events, error);
        }
        self.buf.drain(..self.pos);
        self.pos = 0;
        events
    }

    /// The bytes not consumed yet.
    fn pending(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Consumes `n` bytes; answers them.
    fn take(&mut self, n: usize) -> &[u8] {
        let start = self.pos;
        self.pos += n;
        &self.buf[start..self.pos]
    }

    /// The body ended: a cluster of unknown size still open ends with it; anything cut off
    /// is refused.
    pub fn finish(&mut self, now_ms: i64) -> Vec<Event> {
        let mut events = Vec::new();
        if self.ended {
            return events;
        }
        if let Some(open) = &self.cluster
            && open.header.size.is_none()
            && open.walked == self.pending().len()
        {
            let open = self.cluster.take().expect("open");
            self.close_cluster(&mut events, open, now_ms);
        }
        let cut_off = self.cluster.is_some()
            || self.skip > 0
            || !self.pending().is_empty()
            || matches!(self.stage, Stage::Segment);
        if cut_off {
            let timecode = self.cluster.as_ref().and_then(|c| c.timecode_ms);
            self.ended = true;
            events.push(Event::Ack(Ack::error(AckError::InvalidMkvData, timecode)));
        }
        self.ended = true;
        events
    }

    fn fail(&mut self, events: &mut Vec<Event>, error: AckError) {
        let timecode = self.cluster.as_ref().and_then(|c| c.timecode_ms);
        events.push(Event::Ack(Ack::error(error, timecode)));
        self.ended = true;
        self.buf = Vec::new();
        self.pos = 0;
    }

    /// Consumes what it can of `buf`.
    fn advance(&mut self, events: &mut Vec<Event>, now_ms: i64) -> Result<(), Fatal> {
        loop {
            if self.skip > 0 {
                let n = usize::try_from(self.skip)
                    .unwrap_or(usize::MAX)
                    .min(self.pending().len());
                self.take(n);
                self.skip -= n as u64;
                if self.skip > 0 {
                    return Ok(());
                }
                continue;
            }
            if self.cluster.is_some() {
                if !self.advance_cluster(events, now_ms)? {
                    return Ok(());
                }
                continue;
            }
            let Some(header) = ebml::header(self.pending())? else {
                return Ok(());
            };
            let progressed = match self.stage {
                Stage::EbmlHeader => self.ebml_header(header)?,
                Stage::Segment => {
                    if header.id != id::SEGMENT {
                        return Err(Fatal(AckError::InvalidMkvData));
                    }
                    self.take(header.len);
                    self.stage = Stage::Body;
                    true
                }
                Stage::Body | Stage::Refused => self.level_one(events, header)?,
            };
            if !progressed {
                return Ok(());
            }
        }
    }

    /// The EBML header, once whole.
    fn ebml_header(&mut self, header: Header) -> Result<bool, Fatal> {
        if header.id != id::EBML {
            return Err(Fatal(AckError::InvalidMkvData));
        }
        let Some(end) = header_element_end(header, self.pending().len())? else {
            return Ok(false);
        };
        header::check_ebml_header(&self.pending()[..end], header.len)?;
        let ebml = self.take(end).to_vec();
        self.building = Building {
            ebml,
            ..Building::default()
        };
        self.header = None;
        self.stage = Stage::Segment;
        Ok(true)
    }

    /// An element inside a segment: a Cluster opens, Info and Tracks are kept, the rest is
    /// skipped; a new EBML header starts a new segment. A cluster's child here means a
    /// cluster ended early: not valid MKV.
    fn level_one(&mut self, events: &mut Vec<Event>, header: Header) -> Result<bool, Fatal> {
        if header.id == id::EBML {
            self.stage = Stage::EbmlHeader;
            return Ok(true);
        }
        if matches!(header.id, id::TIMECODE | id::SIMPLE_BLOCK | id::BLOCK_GROUP) {
            return Err(Fatal(AckError::InvalidMkvData));
        }
        if header.id == id::CLUSTER {
            return self.open_cluster(header);
        }
        if self.stage == Stage::Refused || !matches!(header.id, id::INFO | id::TRACKS) {
            let size = header.size.ok_or(Fatal(AckError::InvalidMkvData))?;
            self.take(header.len);
            self.skip = size;
            return Ok(true);
        }
        let Some(end) = header_element_end(header, self.pending().len())? else {
            return Ok(false);
        };
        let element = self.take(end).to_vec();
        if header.id == id::INFO {
            header::timecode_scale(&element[header.len..])?;
            self.building.info = Some(element);
        } else {
            let tracks = header::tracks(&element[header.len..])?;
            if let Err(error) = self.check_tracks(&tracks) {
                events.push(Event::Ack(Ack::error(error, None)));
                self.stage = Stage::Refused;
                return Ok(true);
            }
            self.building.tracks = Some(element);
        }
        self.header = None;
        Ok(true)
    }

    /// Opens a cluster: refused at once when its declared size is over the limit, or when
    /// its segment was refused (silently: the segment's error was sent).
    fn open_cluster(&mut self, header: Header) -> Result<bool, Fatal> {
        let silent = self.stage == Stage::Refused;
        if !silent && self.header.is_none() {
            self.header = Some(Arc::new(self.segment_header()?));
        }
        let oversized = header.size.is_some_and(|size| {
            size.saturating_add(header.len as u64) > self.options.fragment_bytes_max as u64
        });
        let refused = silent || oversized;
        if refused {
            // Refused bytes are consumed as they come; only the size is kept.
            self.take(header.len);
        }
        self.cluster = Some(OpenCluster {
            header,
            walked: if refused { 0 } else { header.len },
            refused,
            silent,
            // A refused cluster's header is consumed: no BUFFERING is read from it.
            buffering_sent: refused,
            timecode_ms: None,
        });
        Ok(true)
    }

    fn check_tracks(&mut self, tracks: &[crate::mkv::Track]) -> Result<(), AckError> {
        let mut numbers: Vec<u64> = tracks.iter().map(|t| t.number).collect();
        numbers.sort_unstable();
        numbers.dedup();
        // Track numbers name MP4 track ids on playback: 1..=u32::MAX.
        let out_of_range = numbers.iter().any(|&n| n == 0 || n > u64::from(u32::MAX));
        if tracks.is_empty() || numbers.len() != tracks.len() || out_of_range {
            return Err(AckError::InvalidMkvData);
        }
        if tracks.len() > TRACKS_MAX {
            return Err(AckError::MoreThanAllowedTracksFound);
        }
        match &self.track_numbers {
            Some(first) if *first != numbers => Err(AckError::TrackNumberMismatch),
            _ => {
                self.track_numbers = Some(numbers);
                Ok(())
            }
        }
    }

    /// The segment's header from its parts: a Cluster before Tracks is not valid.
    fn segment_header(&self) -> Result<SegmentHeader, Fatal> {
        let tracks_element = self
            .building
            .tracks
            .clone()
            .ok_or(Fatal(AckError::InvalidMkvData))?;
        let info = match &self.building.info {
            Some(info) => info.clone(),
            None => {
                let mut info = Vec::new();
                ebml::write_element(&mut info, id::INFO, &[]);
                info
            }
        };
        let info_header = ebml::header(&info)?.expect("a whole element");
        Ok(SegmentHeader {
            ebml: self.building.ebml.clone(),
            timecode_scale_ns: header::timecode_scale(&info[info_header.len..])?,
            tracks: {
                let tracks_header = ebml::header(&tracks_element)?.expect("a whole element");
                header::tracks(&tracks_element[tracks_header.len..])?
            },
            info,
            tracks_element,
        })
    }

    /// Receives the open cluster; `Ok(false)` when more bytes are needed.
    fn advance_cluster(&mut self, events: &mut Vec<Event>, now_ms: i64) -> Result<bool, Fatal> {
        let open = self.cluster.as_ref().expect("a cluster is open");
        if !open.buffering_sent
            && let Some(timecode) = self.peek_timecode()
        {
            let open = self.cluster.as_mut().expect("open");
            open.timecode_ms = Some(timecode);
            open.buffering_sent = true;
            events.push(Event::Ack(Ack::new(AckEvent::Buffering, Some(timecode))));
        }
        let open = self.cluster.as_ref().expect("open");
        if let Some(size) = open.header.size {
            if open.refused {
                if !open.silent {
                    let error = AckError::MaxFragmentSizeReached;
                    events.push(Event::Ack(Ack::error(error, open.timecode_ms)));
                }
                self.skip = size;
                self.cluster = None;
                return Ok(true);
            }
            let total = open.header.len + usize::try_from(size).expect("under the fragment limit");
            if self.pending().len() < total {
                return Ok(false);
            }
            let open = self.cluster.take().expect("open");
            self.close_cluster(events, open, now_ms);
            return Ok(true);
        }
        // Unknown size: walk whole children until an element that ends the cluster.
        loop {
            let open = self.cluster.as_ref().expect("open");
            let Some(child) = ebml::header(&self.pending()[open.walked..])? else {
                return Ok(false);
            };
            if ends_cluster(child.id) {
                let open = self.cluster.take().expect("open");
                self.close_cluster(events, open, now_ms);
                return Ok(true);
            }
            let size = child.size.ok_or(Fatal(AckError::InvalidMkvData))?;
            let child_end = (open.walked as u64)
                .saturating_add(child.len as u64)
                .saturating_add(size);
            if !open.refused && child_end > self.options.fragment_bytes_max as u64 {
                // Over the limit before it is whole: refused now, the rest dropped as it comes.
                let open = self.cluster.as_mut().expect("open");
                open.refused = true;
                events.push(Event::Ack(Ack::error(
                    AckError::MaxFragmentSizeReached,
                    open.timecode_ms,
                )));
                let walked = open.walked;
                open.walked = 0;
                self.take(walked);
                continue;
            }
            let open = self.cluster.as_mut().expect("open");
            if open.refused {
                // Consumed as it comes: the child's header now, its content by skipping.
                open.walked = 0;
                self.take(child.len);
                self.skip = size;
                return Ok(true);
            }
            let end = usize::try_from(child_end).expect("under the fragment limit");
            if self.pending().len() < end {
                return Ok(false);
            }
            self.cluster.as_mut().expect("open").walked = end;
        }
    }

    /// The open cluster's Timecode, if its first child is the Timecode and has arrived.
    fn peek_timecode(&self) -> Option<u64> {
        let open = self.cluster.as_ref()?;
        let rest = self.pending().get(open.header.len..)?;
        let child = ebml::header(rest).ok()??;
        let end = child.len.checked_add(usize::try_from(child.size?).ok()?)?;
        if child.id != id::TIMECODE || rest.len() < end {
            return None;
        }
        let units = ebml::uint(&rest[child.len..end])?;
        Some(self.units_to_ms(units))
    }

    fn units_to_ms(&self, units: u64) -> u64 {
        let scale = self
            .header
            .as_ref()
            .map_or(1_000_000, |h| h.timecode_scale_ns);
        u64::try_from(u128::from(units) * u128::from(scale) / 1_000_000).unwrap_or(u64::MAX)
    }

    /// A whole cluster (`pending()[..walked]`, or its header and size): checked, made a
    /// fragment or refused.
    fn close_cluster(&mut self, events: &mut Vec<Event>, open: OpenCluster, now_ms: i64) {
        if open.refused {
            return;
        }
        let end = match open.header.size {
            Some(size) => open.header.len + usize::try_from(size).expect("in memory"),
            None => open.walked,
        };
        let start = self.pos;
        self.take(end);
        let content = &self.buf[start + open.header.len..start + end];
        let mut acks = Vec::new();
        if !open.buffering_sent {
            let timecode = cluster::decode(content)
                .ok()
                .map(|c| self.units_to_ms(c.timecode));
            acks.push(Event::Ack(Ack::new(AckEvent::Buffering, timecode)));
        }
        let result = self.fragment(content, now_ms);
        events.extend(acks);
        match result {
            Ok(fragment) => {
                self.last_producer_ms = Some(fragment.meta.producer_ms);
                events.push(Event::Fragment(fragment));
            }
            Err((error, timecode)) => events.push(Event::Ack(Ack::error(error, timecode))),
        }
    }

    /// A fragment of a whole cluster's content, or why not.
    fn fragment(
        &self,
        content: &[u8],
        now_ms: i64,
    ) -> Result<ReceivedFragment, (AckError, Option<u64>)> {
        let header = self
            .header
            .as_ref()
            .expect("a cluster has its segment's header");
        let decoded = cluster::decode(content).map_err(|_| (AckError::InvalidMkvData, None))?;
        let timecode_ms = self.units_to_ms(decoded.timecode);
        let refuse = |error| (error, Some(timecode_ms));
        let summary = crate::summary::summarize(header, &decoded).map_err(refuse)?;
        let producer_ms = match self.options.timecode_type {
            TimecodeType::Absolute => i64::try_from(timecode_ms).ok(),
            TimecodeType::Relative => i64::try_from(timecode_ms)
                .ok()
                .and_then(|ms| ms.checked_add(self.options.producer_start_ms)),
        }
        .filter(|ms| (0..=PRODUCER_MS_MAX).contains(ms))
        .ok_or(refuse(AckError::InvalidProducerTimestamp))?;
        if summary.duration_ms > self.options.fragment_duration_max_ms {
            return Err(refuse(AckError::MaxFragmentDurationReached));
        }
        if self.last_producer_ms.is_some_and(|last| producer_ms < last) {
            return Err(refuse(AckError::FragmentTimecodeLesserThanPrevious));
        }
        let meta = FragmentMeta {
            producer_ms,
            server_ms: now_ms,
            duration_ms: summary.duration_ms,
            frames: summary.frames,
            key_frame_ms: summary.key_frame_ms,
            tracks: summary.tracks,
        };
        // The record built in one buffer (prefix, then the MKV written in place), its size
        // known, and checked, before anything is copied.
        let size = crate::fragment::PREFIX_LEN + standalone_len(header, content.len());
        if size > self.options.fragment_bytes_max {
            return Err(refuse(AckError::MaxFragmentSizeReached));
        }
        let mut record = Vec::with_capacity(size);
        meta.write_prefix(&mut record);
        write_standalone_mkv(&mut record, header, content);
        Ok(ReceivedFragment {
            timecode_ms,
            meta,
            record,
        })
    }
}

/// The largest EBML header, Info or Tracks element a session holds to read whole.
const HEADER_ELEMENT_BYTES_MAX: u64 = 1 << 20;

/// The end of a header element (EBML header, Info, Tracks) starting at 0 if `have` bytes
/// hold it; unknown sizes and elements over 1 MiB are not valid here.
fn header_element_end(header: Header, have: usize) -> Result<Option<usize>, Fatal> {
    let size = header
        .size
        .filter(|&size| size <= HEADER_ELEMENT_BYTES_MAX)
        .ok_or(Fatal(AckError::InvalidMkvData))?;
    let end = header.len + usize::try_from(size).expect("at most 1 MiB");
    Ok((have >= end).then_some(end))
}

/// Whether an element ends a cluster of unknown size: a segment's element (a level-1 ID)
/// or a new EBML header. Anything else is the cluster's child (unknown ones are kept as
/// they are, never taken for the cluster's end).
fn ends_cluster(element: u32) -> bool {
    matches!(
        element,
        id::EBML
            | id::SEGMENT
            | id::CLUSTER
            | id::INFO
            | id::TRACKS
            | id::TAGS
            | 0x1C53_BB6B // Cues
            | 0x114D_9B74 // SeekHead
            | 0x1043_A770 // Chapters
            | 0x1941_A469 // Attachments
    )
}

/// The length of `write_standalone_mkv`'s file for a cluster of `content_len` bytes.
fn standalone_len(header: &SegmentHeader, content_len: usize) -> usize {
    header.ebml.len() + 12 + segment_len(header, content_len)
}

fn segment_len(header: &SegmentHeader, content_len: usize) -> usize {
    header.info.len() + header.tracks_element.len() + 12 + content_len
}

/// Writes a whole MKV file of one cluster: the segment's EBML header, a Segment of known
/// size with Info, Tracks and the cluster (its size made known).
fn write_standalone_mkv(out: &mut Vec<u8>, header: &SegmentHeader, cluster_content: &[u8]) {
    out.extend_from_slice(&header.ebml);
    let segment = segment_len(header, cluster_content.len());
    ebml::write_header(out, id::SEGMENT, Some(segment as u64));
    out.extend_from_slice(&header.info);
    out.extend_from_slice(&header.tracks_element);
    ebml::write_header(out, id::CLUSTER, Some(cluster_content.len() as u64));
    out.extend_from_slice(cluster_content);
}
