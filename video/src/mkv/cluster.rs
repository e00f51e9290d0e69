//! A whole cluster's content: its timecode and its blocks (SimpleBlock and BlockGroup's
//! Block, read with webm-iterable, lacing included).

use super::ebml::{self, NotEbml, id};
use webm_iterable::matroska_spec::{Block, SimpleBlock};

/// One block of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockInfo {
    /// The track it belongs to.
    pub track: u64,
    /// Its time relative to the cluster's, in timecode units.
    pub relative_time: i16,
    /// Whether it is a key frame (SimpleBlock's flag; a BlockGroup without ReferenceBlock).
    pub keyframe: bool,
    /// BlockGroup's BlockDuration, in timecode units.
    pub duration: Option<u64>,
    /// Frames in it (more than one when laced).
    pub frames: usize,
    /// Where its frame data lies in the cluster's content, and how long it is (laced data
    /// whole).
    pub data: std::ops::Range<usize>,
}

/// A decoded cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    /// The cluster's Timecode, in timecode units.
    pub timecode: u64,
    /// Its blocks, in the order they came.
    pub blocks: Vec<BlockInfo>,
}

/// Decodes a whole cluster's content (its header excluded).
pub(crate) fn decode(content: &[u8]) -> Result<ClusterInfo, NotEbml> {
    let mut timecode = None;
    let mut blocks = Vec::new();
    let base = content.as_ptr() as usize;
    for child in ebml::children(content) {
        let (header, body) = child?;
        match header.id {
            id::TIMECODE => timecode = ebml::uint(body),
            id::SIMPLE_BLOCK => {
                let block = simple_block(body)?;
                blocks.push(BlockInfo {
                    data: offset(base, block.raw_frame_data()),
                    track: block.track,
                    relative_time: block.timestamp,
                    keyframe: block.keyframe,
                    duration: None,
                    frames: frame_count(block.read_frame_data().map(|f| f.len()))?,
                });
            }
            id::BLOCK_GROUP => blocks.push(block_group(base, body)?),
            _ => {}
        }
    }
    let timecode = timecode.ok_or(NotEbml("a cluster without a Timecode"))?;
    Ok(ClusterInfo { timecode, blocks })
}

fn offset(base: usize, data: &[u8]) -> std::ops::Range<usize> {
    let start = data.as_ptr() as usize - base;
    start..start + data.len()
}

fn frame_count(
    frames: Result<usize, webm_iterable::errors::WebmCoercionError>,
) -> Result<usize, NotEbml> {
    frames.map_err(|_| NotEbml("a block's lacing does not add up"))
}

/// webm-iterable indexes the flags byte without checking it is there: too short is refused
/// here first.
fn simple_block(body: &[u8]) -> Result<SimpleBlock<'_>, NotEbml> {
    if !block_header_fits(body) {
        return Err(NotEbml("a SimpleBlock shorter than its header"));
    }
    SimpleBlock::try_from(body).map_err(|_| NotEbml("a SimpleBlock that is not valid"))
}

fn block_header_fits(body: &[u8]) -> bool {
    let Some(&first) = body.first() else {
        return false;
    };
    let track_len = first.leading_zeros() as usize + 1;
    track_len <= 8 && body.len() > track_len + 2
}

fn block_group(base: usize, group: &[u8]) -> Result<BlockInfo, NotEbml> {
    let mut block = None;
    let mut referenced = false;
    let mut duration = None;
    for child in ebml::children(group) {
        let (header, body) = child?;
        match header.id {
            id::BLOCK => {
                if !block_header_fits(body) {
                    return Err(NotEbml("a Block shorter than its header"));
                }
                block =
                    Some(Block::try_from(body).map_err(|_| NotEbml("a Block that is not valid"))?);
            }
            id::REFERENCE_BLOCK => referenced = true,
            id::BLOCK_DURATION => duration = ebml::uint(body),
            _ => {}
        }
    }
    let block = block.ok_or(NotEbml("a BlockGroup without a Block"))?;
    Ok(BlockInfo {
        data: offset(base, block.raw_frame_data()),
        track: block.track,
        relative_time: block.timestamp,
        keyframe: !referenced,
        duration,
        frames: frame_count(block.read_frame_data().map(|f| f.len()))?,
    })
}
