//! A segment's header: the EBML header's DocType, Info's timecode scale and the tracks,
//! decoded from whole elements with the element walker.

use super::ebml::{self, NotEbml, id};

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

/// The largest TimecodeScale taken: a second per unit (times stay far inside i64 ms).
const TIMECODE_SCALE_MAX: u64 = 1_000_000_000;

/// Info's TimecodeScale, from the whole Info element's content.
pub(crate) fn timecode_scale(info_content: &[u8]) -> Result<u64, NotEbml> {
    for child in ebml::children(info_content) {
        let (header, content) = child?;
        if header.id == 0x2A_D7B1 {
            return match ebml::uint(content) {
                Some(scale) if (1..=TIMECODE_SCALE_MAX).contains(&scale) => Ok(scale),
                _ => Err(NotEbml("Info's TimecodeScale is not 1 ns to 1 s")),
            };
        }
    }
    Ok(1_000_000)
}

/// The tracks of a Tracks element's content. Read with the element walker (bounded: Tracks,
/// TrackEntry, Video or Audio, then values), so a hostile nesting costs nothing.
pub(crate) fn tracks(content: &[u8]) -> Result<Vec<Track>, NotEbml> {
    let mut tracks = Vec::new();
    for child in ebml::children(content) {
        let (element, entry) = child?;
        if element.id == TRACK_ENTRY {
            tracks.push(track(entry)?);
        }
    }
    Ok(tracks)
}

const TRACK_ENTRY: u32 = 0xAE;

fn track(entry: &[u8]) -> Result<Track, NotEbml> {
    let mut track = Track::default();
    let uint =
        |content: &[u8]| ebml::uint(content).ok_or(NotEbml("an integer longer than 8 bytes"));
    for child in ebml::children(entry) {
        let (element, content) = child?;
        match element.id {
            0xD7 => track.number = uint(content)?,
            0x73C5 => track.uid = uint(content)?,
            0x83 => track.kind = uint(content)?,
            0x86 => {
                track.codec_id = String::from_utf8_lossy(content)
                    .trim_end_matches('\0')
                    .to_owned()
            }
            0x63A2 => track.codec_private = content.to_vec(),
            0x23_E383 => track.default_duration_ns = Some(uint(content)?),
            0xE0 => {
                let (mut width, mut height) = (None, None);
                for child in ebml::children(content) {
                    let (element, value) = child?;
                    match element.id {
                        0xB0 => width = Some(uint(value)?),
                        0xBA => height = Some(uint(value)?),
                        _ => {}
                    }
                }
                track.pixels = width.zip(height);
            }
            0xE1 => {
                let (mut rate, mut channels) = (8_000.0, 1);
                for child in ebml::children(content) {
                    let (element, value) = child?;
                    match element.id {
                        0xB5 => rate = float(value)?,
                        0x9F => channels = uint(value)?,
                        _ => {}
                    }
                }
                track.audio = Some((rate, channels));
            }
            _ => {}
        }
    }
    Ok(track)
}

/// A float element's content (4 or 8 bytes, big-endian; empty is 0).
fn float(content: &[u8]) -> Result<f64, NotEbml> {
    match content.len() {
        0 => Ok(0.0),
        4 => Ok(f64::from(f32::from_be_bytes(
            content.try_into().expect("4 bytes"),
        ))),
        8 => Ok(f64::from_be_bytes(content.try_into().expect("8 bytes"))),
        _ => Err(NotEbml("a float of neither 4 nor 8 bytes")),
    }
}
