//! A segment's header: the EBML header's DocType, Info's timecode scale and the tracks,
//! decoded from whole elements with webm-iterable.

use super::ebml::{self, NotEbml, id};
use std::io::Cursor;
use webm_iterable::WebmIterator;
use webm_iterable::iterator::AllowableErrors;
use webm_iterable::matroska_spec::{Master, MatroskaSpec};

/// One track as Tracks describes it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Track {
    /// Its number, as blocks name it.
    pub number: u64,
    /// Its UID.
    pub uid: u64,
    /// 1 video, 2 audio (Matroska's TrackType).
    pub kind: u64,
    /// Its codec, e.g. `V_MPEG4/ISO/AVC`, `A_AAC`.
    pub codec_id: String,
    /// The codec's private data (an avcC record for H.264, AudioSpecificConfig for AAC).
    pub codec_private: Vec<u8>,
    /// Nanoseconds per frame, when the track says.
    pub default_duration_ns: Option<u64>,
    /// Video: width and height in pixels.
    pub pixels: Option<(u64, u64)>,
    /// Audio: sampling frequency (Hz) and channels.
    pub audio: Option<(f64, u64)>,
}

/// What a segment's header says, with the bytes a stored fragment repeats.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentHeader {
    /// The EBML header element, whole.
    pub ebml: Vec<u8>,
    /// The Info element, whole (an empty Info when the producer sent none).
    pub info: Vec<u8>,
    /// The Tracks element, whole.
    pub tracks_element: Vec<u8>,
    /// Nanoseconds per timecode unit (Info's TimecodeScale; 1,000,000 by default).
    pub timecode_scale_ns: u64,
    /// The tracks.
    pub tracks: Vec<Track>,
}

/// The DocType of a whole EBML header element: `matroska` or `webm` is accepted.
pub(crate) fn check_ebml_header(element: &[u8], header_len: usize) -> Result<(), NotEbml> {
    let mut doc_type = None;
    for child in ebml::children(&element[header_len..]) {
        let (header, content) = child?;
        if header.id == id::DOC_TYPE {
            doc_type = Some(
                String::from_utf8_lossy(content)
                    .trim_end_matches('\0')
                    .to_owned(),
            );
        }
    }
    match doc_type.as_deref() {
        Some("matroska" | "webm") => Ok(()),
        _ => Err(NotEbml("the EBML header's DocType is not matroska or webm")),
    }
}

/// Info's TimecodeScale, from the whole Info element's content.
pub(crate) fn timecode_scale(info_content: &[u8]) -> Result<u64, NotEbml> {
    for child in ebml::children(info_content) {
        let (header, content) = child?;
        if header.id == 0x2A_D7B1 {
            return match ebml::uint(content) {
                Some(scale) if scale > 0 => Ok(scale),
                _ => Err(NotEbml("Info's TimecodeScale is not a positive integer")),
            };
        }
    }
    Ok(1_000_000)
}

/// The tracks of a whole Tracks element (header included).
pub(crate) fn tracks(element: &[u8]) -> Result<Vec<Track>, NotEbml> {
    let mut iterator = WebmIterator::new(
        Cursor::new(element),
        &[MatroskaSpec::TrackEntry(Master::Start)],
    );
    // A producer's unknown elements are skipped, not refused.
    iterator.allow_errors(&[
        AllowableErrors::InvalidTagIds,
        AllowableErrors::HierarchyProblems,
    ]);
    let mut tracks = Vec::new();
    for tag in iterator {
        let tag = tag.map_err(|_| NotEbml("the Tracks element is not valid EBML"))?;
        if let MatroskaSpec::TrackEntry(Master::Full(children)) = tag {
            tracks.push(track(&children));
        }
    }
    Ok(tracks)
}

fn track(children: &[MatroskaSpec]) -> Track {
    let mut track = Track::default();
    for child in children {
        match child {
            MatroskaSpec::TrackNumber(n) => track.number = *n,
            MatroskaSpec::TrackUID(uid) => track.uid = *uid,
            MatroskaSpec::TrackType(kind) => track.kind = *kind,
            MatroskaSpec::CodecID(codec) => track.codec_id.clone_from(codec),
            MatroskaSpec::CodecPrivate(data) => track.codec_private.clone_from(data),
            MatroskaSpec::DefaultDuration(ns) => track.default_duration_ns = Some(*ns),
            MatroskaSpec::Video(Master::Full(video)) => {
                let find = |want: fn(&MatroskaSpec) -> Option<u64>| video.iter().find_map(want);
                let width = find(|tag| match tag {
                    MatroskaSpec::PixelWidth(w) => Some(*w),
                    _ => None,
                });
                let height = find(|tag| match tag {
                    MatroskaSpec::PixelHeight(h) => Some(*h),
                    _ => None,
                });
                track.pixels = width.zip(height);
            }
            MatroskaSpec::Audio(Master::Full(audio)) => {
                let rate = audio.iter().find_map(|tag| match tag {
                    MatroskaSpec::SamplingFrequency(hz) => Some(*hz),
                    _ => None,
                });
                let channels = audio.iter().find_map(|tag| match tag {
                    MatroskaSpec::Channels(n) => Some(*n),
                    _ => None,
                });
                track.audio = Some((rate.unwrap_or(8000.0), channels.unwrap_or(1)));
            }
            _ => {}
        }
    }
    track
}
