//! GetMedia's output: where a read starts, and each fragment as a segment tagged as Kinesis
//! Video tags it (docs/design/video.md, "Reads").

use crate::error::VideoError;
use crate::fragment::FragmentMeta;
use crate::log::{FragmentLog, TimeKind, fragment_offset};
use crate::mkv::ebml::{self, id};

/// Where GetMedia starts (its StartSelector).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetMediaStart {
    /// The oldest retained fragment.
    Earliest,
    /// The next fragment to arrive.
    Now,
    /// That fragment.
    FragmentNumber(String),
    /// The fragment the server received holding this time (ms), or the first after it.
    ServerTimestamp(i64),
    /// The fragment the producer stamped holding this time (ms), or the first after it.
    ProducerTimestamp(i64),
    /// The fragment after the one the token (a fragment number) names.
    ContinuationToken(String),
}

impl GetMediaStart {
    /// The offset of the first fragment to send.
    pub fn offset(&self, log: &FragmentLog) -> Result<u64, VideoError> {
        let next = log.next_offset();
        Ok(match self {
            GetMediaStart::Earliest => log.earliest().map_or(next, |e| e.offset),
            GetMediaStart::Now => next,
            GetMediaStart::FragmentNumber(number) => {
                let offset = fragment_offset(number).filter(|&o| log.entry(o).is_some());
                offset.ok_or_else(|| {
                    VideoError::NotFound(format!(
                        "The fragment {number} does not exist in this stream."
                    ))
                })?
            }
            GetMediaStart::ServerTimestamp(ms) => log
                .first_at(TimeKind::Server, *ms)
                .map_or(next, |e| e.offset),
            GetMediaStart::ProducerTimestamp(ms) => log
                .first_at(TimeKind::Producer, *ms)
                .map_or(next, |e| e.offset),
            GetMediaStart::ContinuationToken(token) => {
                let offset = fragment_offset(token)
                    .filter(|&o| o < next)
                    .ok_or_else(|| {
                        VideoError::InvalidArgument(format!(
                            "The continuation token {token:?} is not one this stream gave."
                        ))
                    })?;
                // A token for a fragment retention removed goes on from the oldest kept.
                (offset + 1).max(log.earliest().map_or(next, |e| e.offset))
            }
        })
    }
}

/// A stored fragment's MKV as GetMedia sends it: the EBML header, a Segment of unknown
/// size with Info and Tracks, Tags naming the fragment, its Cluster, then Tags with the
/// continuation token and how far behind now it is.
pub fn media_of(
    mkv: &[u8],
    number: &str,
    meta: &FragmentMeta,
    millis_behind_now: i64,
) -> Result<Vec<u8>, VideoError> {
    let broken =
        |_| VideoError::Internal(format!("The stored fragment {number} is not whole MKV."));
    let mut parts = ebml::children(mkv);
    let (ebml_header, ebml_content) = parts
        .next()
        .ok_or(VideoError::Internal("an empty fragment".into()))?
        .map_err(broken)?;
    let (segment, segment_content) = parts
        .next()
        .ok_or(VideoError::Internal(
            "a fragment without its segment".into(),
        ))?
        .map_err(broken)?;
    if ebml_header.id != id::EBML || segment.id != id::SEGMENT {
        return Err(VideoError::Internal(format!(
            "The stored fragment {number} is not whole MKV."
        )));
    }
    let mut out = Vec::with_capacity(mkv.len() + 512);
    ebml::write_element(&mut out, id::EBML, ebml_content);
    ebml::write_header(&mut out, id::SEGMENT, None);
    for child in ebml::children(segment_content) {
        let (header, content) = child.map_err(broken)?;
        if header.id == id::CLUSTER {
            out.extend_from_slice(&tags(&[
                ("AWS_KINESISVIDEO_FRAGMENT_NUMBER", number.to_owned()),
                ("AWS_KINESISVIDEO_SERVER_TIMESTAMP", seconds(meta.server_ms)),
                (
                    "AWS_KINESISVIDEO_PRODUCER_TIMESTAMP",
                    seconds(meta.producer_ms),
                ),
            ]));
        }
        ebml::write_element(&mut out, header.id, content);
    }
    out.extend_from_slice(&tags(&[
        ("AWS_KINESISVIDEO_CONTINUATION_TOKEN", number.to_owned()),
        (
            "AWS_KINESISVIDEO_MILLIS_BEHIND_NOW",
            millis_behind_now.max(0).to_string(),
        ),
    ]));
    Ok(out)
}

/// Epoch seconds with three decimals, as Kinesis Video writes timestamps in tags.
fn seconds(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// A Tags element of one Tag with these SimpleTags.
fn tags(pairs: &[(&str, String)]) -> Vec<u8> {
    const TAG: u32 = 0x7373;
    const SIMPLE_TAG: u32 = 0x67C8;
    const TAG_NAME: u32 = 0x45A3;
    const TAG_STRING: u32 = 0x4487;
    let mut tag = Vec::new();
    for (name, value) in pairs {
        let mut simple = Vec::new();
        ebml::write_element(&mut simple, TAG_NAME, name.as_bytes());
        ebml::write_element(&mut simple, TAG_STRING, value.as_bytes());
        ebml::write_element(&mut tag, SIMPLE_TAG, &simple);
    }
    let mut element = Vec::new();
    let mut tags = Vec::new();
    ebml::write_element(&mut tags, TAG, &tag);
    ebml::write_element(&mut element, id::TAGS, &tags);
    element
}
