//! Remuxing stored fragments for playback, on request (nothing is stored twice): a
//! fragment's frames as samples with decode and presentation times (`demux`), written as
//! fragmented MP4 (`fmp4`) for HLS, DASH and GetClip, with playlists (`playlist`).

pub mod fmp4;
pub mod playlist;

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
    /// Each track of Tracks (in its order) with its samples, none for a track silent here.
    pub tracks: Vec<TrackSamples>,
}

impl Demuxed<'_> {
    /// The tracks, as an init segment describes them.
    pub fn track_entries(&self) -> Vec<Track> {
        self.tracks.iter().map(|t| t.track.clone()).collect()
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
