//! Remuxing stored fragments for playback, on request (nothing is stored twice): a
//! fragment's frames as samples with decode and presentation times (`demux`), written as
//! fragmented MP4 (`fmp4`) for HLS, DASH and GetClip or as MPEG-TS (`ts`) for HLS, with
//! HLS playlists (`playlist`) and DASH manifests (`mpd`).
//!
//! Every fragment is placed on one timeline: a sample's media time is its fragment's
//! producer time plus its offset in the cluster, less the session's base (`Timing`), so
//! fragments of different PutMedia sessions (whose relative timecodes each restart at 0)
//! follow one another, and a playlist's or manifest's times are the segments' own.

pub mod fmp4;
pub mod mpd;
pub mod playlist;
pub mod ts;

use crate::mkv::ebml::{self, NotEbml, id};
use crate::mkv::{Track, cluster, header};
use std::ops::Range;

/// Why a fragment cannot be played as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemuxError {
    /// A codec HLS, DASH and MP4 do not carry here (H.264 video and AAC audio are).
    #[error(
        "the track {track} has codec {codec}; playback needs H.264 (V_MPEG4/ISO/AVC) video and AAC (A_AAC) audio"
    )]
    UnsupportedCodec {
        /// The track's number.
        track: u64,
        /// Its codec id.
        codec: String,
    },
    /// A track MPEG-TS cannot carry (fragmented MP4 can).
    #[error(
        "the track {track} cannot be carried in MPEG-TS: {why}; fragmented MP4 (HLS's default, DASH, GetClip) plays it"
    )]
    NotInMpegTs {
        /// The track's number.
        track: u64,
        /// Why.
        why: String,
    },
    /// A track's CodecPrivate does not read as its codec's configuration.
    #[error("the track {0}'s codec private data is not valid")]
    InvalidCodecPrivate(u64),
    /// A stored fragment that does not read as MKV (it was checked when stored).
    #[error("a stored fragment is not valid MKV: {0}")]
    NotMkv(&'static str),
}

impl From<NotEbml> for RemuxError {
    fn from(error: NotEbml) -> RemuxError {
        RemuxError::NotMkv(error.0)
    }
}

/// One frame of a track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Presentation time, ms.
    pub pts_ms: i64,
    /// Decode time, ms (the presentation times sorted, given out in decode order: with
    /// B-frames a frame may be decoded after it is shown, never before the one it follows).
    pub dts_ms: i64,
    /// Until the next sample's decode time, ms.
    pub duration_ms: u32,
    /// A key frame (a sync sample).
    pub keyframe: bool,
    /// Its bytes in the fragment's cluster.
    pub data: Range<usize>,
}

/// A track's samples in one fragment.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackSamples {
    /// The track.
    pub track: Track,
    /// Its samples in decode order.
    pub samples: Vec<Sample>,
}

/// A stored fragment read for remuxing.
#[derive(Debug, Clone, PartialEq)]
pub struct Demuxed<'a> {
    /// The cluster's content (samples point into it).
    pub cluster: &'a [u8],
    /// The cluster's time, ms: where its samples' times count from.
    pub cluster_ms: i64,
    /// Each track of Tracks (in its order) with its samples, none for a track silent here.
    pub tracks: Vec<TrackSamples>,
}

impl Demuxed<'_> {
    /// The tracks, as an init segment describes them.
    pub fn track_entries(&self) -> Vec<Track> {
        self.tracks.iter().map(|t| t.track.clone()).collect()
    }

    /// Moves every sample so that the cluster begins at `start_ms`, keeping their
    /// distances (a fragment placed on a session's timeline).
    pub fn start_at(&mut self, start_ms: i64) {
        let by = start_ms.saturating_sub(self.cluster_ms);
        for sample in self.tracks.iter_mut().flat_map(|t| t.samples.iter_mut()) {
            sample.pts_ms = sample.pts_ms.saturating_add(by);
            sample.dts_ms = sample.dts_ms.saturating_add(by);
        }
        self.cluster_ms = start_ms;
    }

    /// Keeps only the track numbered `number` (DASH serves a track per adaptation set);
    /// false when the fragment's tracks have no such number.
    pub fn retain_track(&mut self, number: u64) -> bool {
        self.tracks.retain(|t| t.track.number == number);
        !self.tracks.is_empty()
    }
}

/// Where a playback session's segments sit in time, fixed when the session begins (so a
/// segment fetched twice, or under a sliding LIVE window, is the same bytes): the
/// producer time that is media time 0, and how far each track's composition times are
/// moved so that none is before its decode time (B-frames are shown after a later frame
/// is decoded; fragmented MP4 moves them back with an edit list). The shifts are taken
/// from one fragment: the reorder delay is the encoder's, the same in every fragment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Timing {
    /// The producer time, ms, of media time 0 (the session's first sample).
    pub base_ms: i64,
    /// (track number, ms) for each track of the first fragment.
    pub shifts: Vec<(u64, u32)>,
}

impl Timing {
    /// The timing of a session whose first fragment is `first`, produced at
    /// `producer_ms`: media time 0 is its earliest sample (a cluster's blocks may begin
    /// before its timecode: Matroska's relative times are signed).
    pub fn of(first: &Demuxed<'_>, producer_ms: i64) -> Timing {
        let earliest = first
            .tracks
            .iter()
            .flat_map(|t| t.samples.iter().map(|s| s.dts_ms))
            .min()
            .unwrap_or(first.cluster_ms);
        Timing {
            base_ms: producer_ms.saturating_add(earliest.saturating_sub(first.cluster_ms)),
            shifts: first
                .tracks
                .iter()
                .map(|t| {
                    let most_early = t
                        .samples
                        .iter()
                        .map(|s| s.dts_ms - s.pts_ms)
                        .max()
                        .unwrap_or(0);
                    (
                        t.track.number,
                        u32::try_from(most_early.max(0)).unwrap_or(0),
                    )
                })
                .collect(),
        }
    }

    /// The composition shift of `track`, ms.
    pub fn shift(&self, track: u64) -> u32 {
        self.shifts
            .iter()
            .find(|(t, _)| *t == track)
            .map_or(0, |(_, s)| *s)
    }

    /// Where a fragment produced at `producer_ms` begins on the session's timeline.
    pub fn start_of(&self, producer_ms: i64) -> i64 {
        producer_ms.saturating_sub(self.base_ms)
    }
}

/// Reads a stored fragment's MKV (a whole one-cluster file) into samples.
pub fn demux(mkv: &[u8]) -> Result<Demuxed<'_>, RemuxError> {
    let mut top = ebml::children(mkv);
    let (ebml_header, _) = top.next().ok_or(RemuxError::NotMkv("empty"))??;
    let (segment, segment_content) = top.next().ok_or(RemuxError::NotMkv("no segment"))??;
    if ebml_header.id != id::EBML || segment.id != id::SEGMENT {
        return Err(RemuxError::NotMkv("not an EBML header and a segment"));
    }
    let mut scale = 1_000_000;
    let mut tracks = None;
    let mut cluster_content = None;
    for child in ebml::children(segment_content) {
        let (element, content) = child?;
        match element.id {
            id::INFO => scale = header::timecode_scale(content)?,
            id::TRACKS => tracks = Some(header::tracks(content)?),
            id::CLUSTER => cluster_content = Some(content),
            _ => {}
        }
    }
    let tracks = tracks.ok_or(RemuxError::NotMkv("no Tracks"))?;
    let content = cluster_content.ok_or(RemuxError::NotMkv("no Cluster"))?;
    let decoded = cluster::decode(content)?;
    let samples = samples_of(&tracks, scale, &decoded);
    Ok(Demuxed {
        cluster: content,
        cluster_ms: i64::try_from(
            i128::from(decoded.timecode).saturating_mul(i128::from(scale)) / 1_000_000,
        )
        .unwrap_or(i64::MAX),
        tracks: tracks
            .into_iter()
            .zip(samples)
            .map(|(track, samples)| TrackSamples { track, samples })
            .collect(),
    })
}

/// Each track's samples with decode times and durations.
fn samples_of(tracks: &[Track], scale: u64, cluster: &crate::mkv::ClusterInfo) -> Vec<Vec<Sample>> {
    let ms = |units: i128| {
        i64::try_from(units.saturating_mul(i128::from(scale)) / 1_000_000).unwrap_or(i64::MAX)
    };
    let mut per_track: Vec<Vec<Sample>> = vec![Vec::new(); tracks.len()];
    let mut last_durations: Vec<Option<u32>> = vec![None; tracks.len()];
    for block in &cluster.blocks {
        let Some(index) = tracks.iter().position(|t| t.number == block.track) else {
            continue;
        };
        let track = &tracks[index];
        let frame_ms = track.default_duration_ns.map(|ns| ns / 1_000_000);
        let at = i128::from(cluster.timecode) + i128::from(block.relative_time);
        for (i, frame) in block.frames.iter().enumerate() {
            let lace = i64::try_from(frame_ms.unwrap_or(0).saturating_mul(i as u64)).unwrap_or(0);
            let pts_ms = ms(at).saturating_add(lace);
            per_track[index].push(Sample {
                pts_ms,
                dts_ms: pts_ms,
                duration_ms: 0,
                keyframe: block.keyframe,
                data: frame.clone(),
            });
        }
        if let Some(units) = block.duration {
            last_durations[index] = u32::try_from(ms(i128::from(units))).ok();
        }
    }
    for (index, samples) in per_track.iter_mut().enumerate() {
        let mut presentation: Vec<i64> = samples.iter().map(|s| s.pts_ms).collect();
        presentation.sort_unstable();
        for (sample, dts) in samples.iter_mut().zip(&presentation) {
            sample.dts_ms = *dts;
        }
        let fallback = tracks[index]
            .default_duration_ns
            .and_then(|ns| u32::try_from(ns / 1_000_000).ok());
        for i in 0..samples.len() {
            samples[i].duration_ms = match samples.get(i + 1) {
                Some(next) => {
                    u32::try_from(next.dts_ms.saturating_sub(samples[i].dts_ms)).unwrap_or(0)
                }
                None => last_durations[index]
                    .or(fallback)
                    .or_else(|| i.checked_sub(1).map(|p| samples[p].duration_ms))
                    .unwrap_or(0),
            };
        }
    }
    per_track
}
