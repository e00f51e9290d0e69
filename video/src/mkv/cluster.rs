//! A whole cluster's content: its timecode and its blocks (SimpleBlock and BlockGroup's
//! Block, lacing included), every size checked against the bytes there.

use super::ebml::{self, NotEbml, id};

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
    /// Where each of its frames lies in the cluster's content (more than one when laced).
    pub frames: Vec<std::ops::Range<usize>>,
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
    for child in ebml::children(content) {
        let (header, body) = child?;
        match header.id {
            id::TIMECODE => timecode = ebml::uint(body),
            id::SIMPLE_BLOCK => {
                let block = block(content, body)?;
                blocks.push(BlockInfo {
                    keyframe: block.flags & 0x80 != 0,
                    duration: None,
                    ..block.info
                });
            }
            id::BLOCK_GROUP => blocks.push(block_group(content, body)?),
            _ => {}
        }
    }
    let timecode = timecode.ok_or(NotEbml("a cluster without a Timecode"))?;
    Ok(ClusterInfo { timecode, blocks })
}

/// A Block or SimpleBlock: its fields and its flags byte.
struct Parsed {
    info: BlockInfo,
    flags: u8,
}

/// Reads a block's header and its frames (laced or not), every size checked against what
/// is there: the layout Matroska gives SimpleBlock and Block alike.
fn block(content: &[u8], body: &[u8]) -> Result<Parsed, NotEbml> {
    let short = NotEbml("a block shorter than its header");
    let first = *body.first().ok_or(NotEbml("an empty block"))?;
    let track_len = first.leading_zeros() as usize + 1;
    if track_len > 8 || body.len() < track_len + 3 {
        return Err(short);
    }
    let track = body[..track_len]
        .iter()
        .fold(0u64, |v, &b| (v << 8) | u64::from(b))
        & (u64::MAX >> (64 - 7 * track_len));
    let relative_time = i16::from_be_bytes([body[track_len], body[track_len + 1]]);
    let flags = body[track_len + 2];
    let data_start = track_len + 3;
    let offset = body.as_ptr() as usize - content.as_ptr() as usize;
    let sizes = lace_sizes(flags, &body[data_start..])?;
    let mut at = offset + data_start + sizes.header;
    let mut frames = Vec::with_capacity(sizes.frames.len());
    for size in sizes.frames {
        frames.push(at..at + size);
        at += size;
    }
    Ok(Parsed {
        info: BlockInfo {
            track,
            relative_time,
            keyframe: false,
            duration: None,
            frames,
        },
        flags,
    })
}

/// The lacing header's length and each frame's size; they add up to the data exactly.
struct Laces {
    header: usize,
    frames: Vec<usize>,
}

fn lace_sizes(flags: u8, data: &[u8]) -> Result<Laces, NotEbml> {
    let bad = NotEbml("a block's lacing does not add up");
    if flags & 0x06 == 0 {
        return Ok(Laces {
            header: 0,
            frames: vec![data.len()],
        });
    }
    let count = usize::from(
        *data
            .first()
            .ok_or(NotEbml("a laced block without its count"))?,
    ) + 1;
    let mut at = 1;
    let mut sizes = Vec::with_capacity(count);
    match flags & 0x06 {
        // Xiph: each size but the last as bytes of 255 and a final byte under 255.
        0x02 => {
            for _ in 1..count {
                let mut size = 0usize;
                loop {
                    let byte = *data.get(at).ok_or(NotEbml("a block's lacing is cut off"))?;
                    at += 1;
                    size += usize::from(byte);
                    if byte != 255 {
                        break;
                    }
                }
                sizes.push(size);
            }
        }
        // Fixed: the data split evenly.
        0x04 => {
            let rest = data.len() - at;
            if !rest.is_multiple_of(count) {
                return Err(bad);
            }
            return Ok(Laces {
                header: at,
                frames: vec![rest / count; count],
            });
        }
        // EBML: the first size, then signed differences.
        _ => {
            let mut size: i64 = 0;
            for i in 1..count {
                let (raw, len) = vint(&data[at..]).ok_or(NotEbml("a block's lacing is cut off"))?;
                at += len;
                let value = i64::try_from(raw).map_err(|_| NotEbml("a lace size too large"))?;
                size = if i == 1 {
                    value
                } else {
                    let bias = (1i64 << (7 * len - 1)) - 1;
                    size.checked_add(value - bias)
                        .ok_or(NotEbml("a lace size too large"))?
                };
                sizes.push(usize::try_from(size).map_err(|_| NotEbml("a negative lace size"))?);
            }
        }
    }
    let used = sizes
        .iter()
        .try_fold(at, |sum, &s| sum.checked_add(s))
        .ok_or(NotEbml("a lace size too large"))?;
    let last = data.len().checked_sub(used).ok_or(bad)?;
    sizes.push(last);
    Ok(Laces {
        header: at,
        frames: sizes,
    })
}

/// A variable-length integer without its marker bit, and its length.
fn vint(bytes: &[u8]) -> Option<(u64, usize)> {
    let first = *bytes.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 || bytes.len() < len {
        return None;
    }
    let value = bytes[..len]
        .iter()
        .fold(0u64, |v, &b| (v << 8) | u64::from(b));
    Some((value & (u64::MAX >> (64 - 7 * len)), len))
}

fn block_group(content: &[u8], group: &[u8]) -> Result<BlockInfo, NotEbml> {
    let mut block_info = None;
    let mut referenced = false;
    let mut duration = None;
    for child in ebml::children(group) {
        let (header, body) = child?;
        match header.id {
            id::BLOCK => block_info = Some(block(content, body)?.info),
            id::REFERENCE_BLOCK => referenced = true,
            id::BLOCK_DURATION => duration = ebml::uint(body),
            _ => {}
        }
    }
    let block_info = block_info.ok_or(NotEbml("a BlockGroup without a Block"))?;
    Ok(BlockInfo {
        keyframe: !referenced,
        duration,
        ..block_info
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn laces_add_up_or_are_refused() {
        // Xiph: 3 frames, sizes 2 and 256 (255 + 1), the last what is left (3).
        let mut data = vec![2, 2, 255, 1];
        data.extend(std::iter::repeat_n(0, 2 + 256 + 3));
        let laces = lace_sizes(0x02, &data).unwrap();
        assert_eq!((laces.header, laces.frames), (4, vec![2, 256, 3]));
        // Fixed: 2 frames of 3.
        assert_eq!(
            lace_sizes(0x04, &[1, 0, 0, 0, 0, 0, 0]).unwrap().frames,
            vec![3, 3]
        );
        assert!(
            lace_sizes(0x04, &[1, 0, 0, 0]).is_err(),
            "3 bytes do not split in 2"
        );
        // EBML: 3 frames: 4, then 4 + 1 (a one-byte signed vint: 0x40 - 63), the rest 2.
        let mut data = vec![2, 0x84, 0xC0];
        data.extend(std::iter::repeat_n(0, 4 + 5 + 2));
        assert_eq!(lace_sizes(0x06, &data).unwrap().frames, vec![4, 5, 2]);
        // Negative and overlong sizes, empty and cut-off headers.
        assert!(
            lace_sizes(0x06, &[2, 0x81, 0x81]).is_err(),
            "1 then 1 - 62: negative"
        );
        assert!(
            lace_sizes(0x06, &[1, 0x85, 0xAA]).is_err(),
            "5 bytes declared, 1 there"
        );
        assert!(lace_sizes(0x02, &[]).is_err());
        assert!(lace_sizes(0x02, &[3, 255, 255]).is_err());
        assert!(
            lace_sizes(0x02, &[1, 200, 0]).is_err(),
            "200 bytes declared, 1 there"
        );
    }

    #[test]
    fn blocks_shorter_than_their_header_are_refused() {
        let content = [0x81u8, 0x00, 0x00, 0x86];
        assert!(block(&content, &content[..3]).is_err());
        assert!(
            block(&content, &content).is_err(),
            "EBML-laced without a count"
        );
    }
}
