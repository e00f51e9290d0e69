//! What a fragment's blocks add up to (duration, frames, its first key frame, its tracks),
//! and the track rules a fragment must keep.

use crate::ack::AckError;
use crate::mkv::{ClusterInfo, SegmentHeader};

/// A fragment's totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Summary {
    pub duration_ms: u64,
    pub frames: u32,
    pub key_frame_ms: Option<u32>,
    pub tracks: u32,
}

/// Sums up a cluster's blocks: every block's track is in Tracks (4010) and every track has
/// a block (4011).
pub(crate) fn summarize(
    header: &SegmentHeader,
    cluster: &ClusterInfo,
) -> Result<Summary, AckError> {
    let scale = i128::from(header.timecode_scale_ns);
    let mut seen = vec![false; header.tracks.len()];
    let mut start_ns = i128::MAX;
    let mut end_ns = i128::MIN;
    let mut frames = 0u32;
    let mut first_key_ns: Option<(bool, i128)> = None;
    for block in &cluster.blocks {
        let index = header
            .tracks
            .iter()
            .position(|t| t.number == block.track)
            .ok_or(AckError::TrackNumberMismatch)?;
        seen[index] = true;
        let track = &header.tracks[index];
        // Saturating: a hostile duration makes a long fragment (refused), never a wrap.
        let at = i128::from(block.relative_time).saturating_mul(scale);
        let length = match (block.duration, track.default_duration_ns) {
            (Some(units), _) => i128::from(units).saturating_mul(scale),
            (None, Some(ns)) => i128::from(ns).saturating_mul(block.frames.len() as i128),
            (None, None) => 0,
        };
        start_ns = start_ns.min(at);
        end_ns = end_ns.max(at.saturating_add(length));
        frames = frames.saturating_add(u32::try_from(block.frames.len()).unwrap_or(u32::MAX));
        if block.keyframe {
            let video = track.kind == 1;
            // The first video key frame, or the first key frame when no video has one.
            let better = match first_key_ns {
                None => true,
                Some((was_video, _)) => video && !was_video,
            };
            if better {
                first_key_ns = Some((video, at));
            }
        }
    }
    if seen.contains(&false) {
        return Err(AckError::FramesMissingForTrack);
    }
    let tracks = header
        .tracks
        .iter()
        .filter(|t| (1..=32).contains(&t.number))
        .fold(0u32, |bits, t| bits | 1 << (t.number - 1));
    let duration_ms = if cluster.blocks.is_empty() {
        0
    } else {
        u64::try_from(end_ns.saturating_sub(start_ns).max(0) / 1_000_000).unwrap_or(u64::MAX)
    };
    Ok(Summary {
        duration_ms,
        frames,
        key_frame_ms: first_key_ns
            .map(|(_, ns)| u32::try_from((ns.max(0)) / 1_000_000).unwrap_or(u32::MAX)),
        tracks,
    })
}
