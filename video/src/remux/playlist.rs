//! HLS playlists, written by m3u8-rs: a master playlist naming one media playlist, and
//! media playlists of fragments as Kinesis Video writes them (a segment per fragment,
//! program-date-time and discontinuity tags when asked).

use crate::log::FragmentEntry;
use crate::mkv::Track;
use m3u8_rs::{
    MasterPlaylist, MediaPlaylist, MediaPlaylistType, MediaSegment, Resolution, VariantStream,
};

/// Where a playlist's segments come from and how they are named.
#[derive(Debug, Clone)]
pub struct MediaPlaylistSpec {
    /// The fragments, in number order.
    pub fragments: Vec<FragmentEntry>,
    /// The first fragment's index in the session (`EXT-X-MEDIA-SEQUENCE`).
    pub media_sequence: u64,
    /// Whether the playlist is whole (`ON_DEMAND`: `VOD`, `EXT-X-ENDLIST`).
    pub ended: bool,
    /// `EXT-X-PROGRAM-DATE-TIME` on every segment, from the producer's or server's time.
    pub program_date_time: Option<crate::log::TimeKind>,
    /// Which segments start a discontinuity.
    pub discontinuity: Discontinuity,
    /// The init segment's URI (fragmented MP4), none for MPEG-TS.
    pub init_uri: Option<String>,
}

/// HLS's DiscontinuityMode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discontinuity {
    /// Before every segment.
    Always,
    /// Never.
    Never,
    /// Where a fragment does not follow the one before it (`discontinuous`).
    OnDiscontinuity,
}

/// The gap between two fragments' times taken for a discontinuity.
const GAP_MS: i64 = 50;

/// Whether `next` does not follow `previous` in time: it begins before `previous` did (a
/// producer's clock or timecodes went back) or more than 50 ms after `previous` ended (a
/// gap: a producer restarted or fragments were lost). Beginning before `previous` ended is
/// not one: a cluster's audio runs past the next cluster's first frame. A fragment's length
/// may stop at its last frame's start (blocks without durations, as the Kinesis Video
/// producer SDK writes them), so its end is taken one frame interval later: at 10 frames a
/// second, 100 ms of it.
pub fn discontinuous(previous: &FragmentEntry, next: &FragmentEntry) -> bool {
    let meta = &previous.meta;
    let frames_per_track = u64::from(meta.frames) / u64::from(meta.tracks.max(1));
    let frame_interval = meta.duration_ms / frames_per_track.saturating_sub(1).max(1);
    let end = meta
        .producer_ms
        .saturating_add(i64::try_from(meta.duration_ms + frame_interval).unwrap_or(i64::MAX));
    next.meta.producer_ms < meta.producer_ms || next.meta.producer_ms > end.saturating_add(GAP_MS)
}

/// A media playlist whose segment `i` is at `segment_uri(fragment)`.
pub fn media_playlist(
    spec: &MediaPlaylistSpec,
    segment_uri: impl Fn(&FragmentEntry) -> String,
) -> Vec<u8> {
    let mut segments = Vec::with_capacity(spec.fragments.len());
    for (i, fragment) in spec.fragments.iter().enumerate() {
        let discontinuity = match spec.discontinuity {
            Discontinuity::Always => true,
            Discontinuity::Never => false,
            Discontinuity::OnDiscontinuity => {
                i > 0 && discontinuous(&spec.fragments[i - 1], fragment)
            }
        };
        segments.push(MediaSegment {
            uri: segment_uri(fragment),
            duration: fragment.meta.duration_ms as f32 / 1000.0,
            discontinuity,
            map: (i == 0)
                .then(|| spec.init_uri.clone())
                .flatten()
                .map(|uri| m3u8_rs::Map {
                    uri,
                    ..m3u8_rs::Map::default()
                }),
            program_date_time: spec.program_date_time.and_then(|kind| {
                let ms = match kind {
                    crate::log::TimeKind::Producer => fragment.meta.producer_ms,
                    crate::log::TimeKind::Server => fragment.meta.server_ms,
                };
                chrono::DateTime::from_timestamp_millis(ms).map(|t| t.fixed_offset())
            }),
            ..MediaSegment::default()
        });
    }
    let longest_ms = spec
        .fragments
        .iter()
        .map(|f| f.meta.duration_ms)
        .max()
        .unwrap_or(1000);
    let playlist = MediaPlaylist {
        version: Some(if spec.init_uri.is_some() { 7 } else { 3 }),
        target_duration: longest_ms.div_ceil(1000).max(1),
        media_sequence: spec.media_sequence,
        // Every segment begins a discontinuity (ALWAYS): as many went before as segments.
        // ON_DISCONTINUITY does not count those that slid out of a LIVE window (yet).
        discontinuity_sequence: match spec.discontinuity {
            Discontinuity::Always => spec.media_sequence,
            _ => 0,
        },
        segments,
        end_list: spec.ended,
        playlist_type: spec.ended.then_some(MediaPlaylistType::Vod),
        independent_segments: true,
        ..MediaPlaylist::default()
    };
    let mut out = Vec::new();
    playlist.write_to(&mut out).expect("writing to memory");
    out
}

/// A master playlist with one variant: `media_uri`, with the tracks' codecs.
pub fn master_playlist(media_uri: &str, tracks: &[Track], bandwidth: u64) -> Vec<u8> {
    let codecs: Vec<String> = tracks.iter().filter_map(codec_string).collect();
    let resolution = tracks
        .iter()
        .find_map(|t| t.pixels)
        .map(|(width, height)| Resolution { width, height });
    let playlist = MasterPlaylist {
        version: Some(3),
        independent_segments: true,
        variants: vec![VariantStream {
            uri: media_uri.to_owned(),
            bandwidth: bandwidth.max(1),
            codecs: (!codecs.is_empty()).then(|| codecs.join(",")),
            resolution,
            ..VariantStream::default()
        }],
        ..MasterPlaylist::default()
    };
    let mut out = Vec::new();
    playlist.write_to(&mut out).expect("writing to memory");
    out
}

/// RFC 6381's name of a track's codec: `avc1.PPCCLL` from its avcC, `mp4a.40.N` from its
/// AudioSpecificConfig.
pub fn codec_string(track: &Track) -> Option<String> {
    match track.codec_id.as_str() {
        "V_MPEG4/ISO/AVC" => {
            let c = track.codec_private.get(1..4)?;
            Some(format!("avc1.{:02x}{:02x}{:02x}", c[0], c[1], c[2]))
        }
        id if id.starts_with("A_AAC") => {
            let object_type = track.codec_private.first().map_or(2, |b| b >> 3);
            Some(format!("mp4a.40.{object_type}"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FragmentMeta;

    fn fragment(producer_ms: i64, duration_ms: u64, frames: u32, tracks: u32) -> FragmentEntry {
        FragmentEntry {
            offset: 0,
            size: 1,
            meta: FragmentMeta {
                producer_ms,
                server_ms: producer_ms,
                duration_ms,
                frames,
                key_frame_ms: Some(0),
                tracks,
            },
        }
    }

    #[test]
    fn discontinuities_are_gaps_and_steps_back_not_interleaving_or_frame_rate() {
        // 25 fps video and audio: the audio runs 80 ms past the next cluster's start.
        let interleaved = fragment(0, 1_080, 25 + 47, 2);
        assert!(!discontinuous(&interleaved, &fragment(1_000, 1_000, 72, 2)));
        // 1 fps, no block durations: 10 frames span 9 s; the next begins at 10 s.
        let time_lapse = fragment(0, 9_000, 10, 1);
        assert!(!discontinuous(&time_lapse, &fragment(10_000, 9_000, 10, 1)));
        // 15 fps video alone, the same: 15 frames span 933 ms, the next at 1,000 ms.
        assert!(!discontinuous(
            &fragment(0, 933, 15, 1),
            &fragment(1_000, 933, 15, 1)
        ));
        // A gap of a second after the end, and a step back, are discontinuities.
        assert!(discontinuous(&time_lapse, &fragment(11_100, 9_000, 10, 1)));
        assert!(discontinuous(&interleaved, &fragment(-10, 1_000, 72, 2)));
    }
}
