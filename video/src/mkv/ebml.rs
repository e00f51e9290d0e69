//! EBML element headers, read from a buffer that may still be filling.
//!
//! Hand-written, as the rest of `mkv/`: the Matroska crates (webm-iterable over
//! ebml-iterable) pull from a `Read` and cannot stop mid-element and resume when more bytes
//! come, nor say where an element began, which a PutMedia session needs to cut clusters out
//! of a live body; and on hostile input (a PutMedia body is anyone's bytes) they recurse
//! once per nested element and index past the end of a block with bad lacing. The walker
//! here is iterative and every size is checked against the bytes that are there.

/// Element IDs the framing needs (with their length marker bits, as Matroska writes them).
pub(crate) mod id {
    /// The EBML header.
    pub const EBML: u32 = 0x1A45_DFA3;
    /// The EBML header's DocType.
    pub const DOC_TYPE: u32 = 0x4282;
    /// The Segment.
    pub const SEGMENT: u32 = 0x1853_8067;
    /// The Segment's Info.
    pub const INFO: u32 = 0x1549_A966;
    /// The Segment's Tracks.
    pub const TRACKS: u32 = 0x1654_AE6B;
    /// A Cluster.
    pub const CLUSTER: u32 = 0x1F43_B675;
    /// A Tags element.
    pub const TAGS: u32 = 0x1254_C367;
    /// A Cluster's Timecode.
    pub const TIMECODE: u32 = 0xE7;
    /// A SimpleBlock.
    pub const SIMPLE_BLOCK: u32 = 0xA3;
    /// A BlockGroup.
    pub const BLOCK_GROUP: u32 = 0xA0;
    /// A BlockGroup's Block.
    pub const BLOCK: u32 = 0xA1;
    /// A BlockGroup's BlockDuration.
    pub const BLOCK_DURATION: u32 = 0x9B;
    /// A BlockGroup's ReferenceBlock (present: not a key frame).
    pub const REFERENCE_BLOCK: u32 = 0xFB;
}

/// An element's header: its ID, its content size (`None`: unknown, all ones on the wire)
/// and how many bytes the header took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub id: u32,
    pub size: Option<u64>,
    pub len: usize,
}

/// Why bytes are not EBML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NotEbml(pub &'static str);

/// Reads the element header at the start of `bytes`: `Ok(None)` if more bytes are needed.
pub(crate) fn header(bytes: &[u8]) -> Result<Option<Header>, NotEbml> {
    let Some((id, id_len)) = vint(bytes, 4, NotEbml("an element ID longer than 4 bytes"))? else {
        return Ok(None);
    };
    let Some((raw, size_len)) = vint(
        &bytes[id_len..],
        8,
        NotEbml("an element size longer than 8 bytes"),
    )?
    else {
        return Ok(None);
    };
    // The ID keeps its length marker (as the specs write IDs); the size drops it.
    let id = u32::try_from(id).expect("at most 4 bytes");
    let marker = 1u64 << (7 * size_len);
    let value = raw & (marker - 1);
    let size = (value != marker - 1).then_some(value);
    Ok(Some(Header {
        id,
        size,
        len: id_len + size_len,
    }))
}

/// A variable-length integer of at most `longest` bytes, marker bit included in the value;
/// `Ok(None)` if `bytes` ends first.
fn vint(bytes: &[u8], longest: usize, too_long: NotEbml) -> Result<Option<(u64, usize)>, NotEbml> {
    let Some(&first) = bytes.first() else {
        return Ok(None);
    };
    let len = first.leading_zeros() as usize + 1;
    if len > longest {
        return Err(too_long);
    }
    if bytes.len() < len {
        return Ok(None);
    }
    let value = bytes[..len]
        .iter()
        .fold(0u64, |value, &byte| (value << 8) | u64::from(byte));
    Ok(Some((value, len)))
}

/// An element's header with an 8-byte size (so a size can be filled in later in place).
pub(crate) fn write_header(out: &mut Vec<u8>, id: u32, size: Option<u64>) {
    let id_bytes = id.to_be_bytes();
    let skip = id_bytes.iter().take_while(|&&b| b == 0).count();
    out.extend_from_slice(&id_bytes[skip..]);
    out.extend_from_slice(&size_field(size));
}

/// An 8-byte size field: `None` is "unknown".
pub(crate) fn size_field(size: Option<u64>) -> [u8; 8] {
    let value = size.unwrap_or((1 << 56) - 1);
    let mut field = value.to_be_bytes();
    field[0] = 0x01;
    field
}

/// An unsigned integer element's content (big-endian, 0..=8 bytes).
pub(crate) fn uint(content: &[u8]) -> Option<u64> {
    (content.len() <= 8).then(|| {
        content
            .iter()
            .fold(0u64, |value, &byte| (value << 8) | u64::from(byte))
    })
}

/// Writes a whole element whose content is `content`.
pub(crate) fn write_element(out: &mut Vec<u8>, id: u32, content: &[u8]) {
    write_header(out, id, Some(content.len() as u64));
    out.extend_from_slice(content);
}

/// Writes an unsigned integer element (8 bytes of content).
#[cfg(test)]
pub(crate) fn write_uint(out: &mut Vec<u8>, id: u32, value: u64) {
    write_element(out, id, &value.to_be_bytes());
}

/// The children of a whole master element's content, each as (header, content); stops with
/// an error at the first child that runs past the end.
pub(crate) fn children(content: &[u8]) -> impl Iterator<Item = Result<(Header, &[u8]), NotEbml>> {
    let mut rest = content;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let item = match header(rest) {
            Ok(Some(Header {
                size: Some(size),
                len,
                id,
            })) => match usize::try_from(size).ok().and_then(|s| s.checked_add(len)) {
                Some(end) if end <= rest.len() => {
                    let child = &rest[len..end];
                    rest = &rest[end..];
                    Ok((
                        Header {
                            id,
                            size: Some(size),
                            len,
                        },
                        child,
                    ))
                }
                _ => Err(NotEbml("an element runs past its parent's end")),
            },
            Ok(Some(_)) => Err(NotEbml("an element of unknown size inside a sized one")),
            Ok(None) => Err(NotEbml("an element header cut off at its parent's end")),
            Err(error) => Err(error),
        };
        if item.is_err() {
            rest = &[];
        }
        Some(item)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_read_whole_or_ask_for_more() {
        // Cluster, size 0x1234 in two bytes.
        let bytes = [0x1F, 0x43, 0xB6, 0x75, 0x52, 0x34];
        for cut in 0..bytes.len() {
            assert_eq!(header(&bytes[..cut]), Ok(None), "cut at {cut}");
        }
        let whole = header(&bytes).unwrap().unwrap();
        assert_eq!(
            whole,
            Header {
                id: id::CLUSTER,
                size: Some(0x1234),
                len: 6
            }
        );
    }

    #[test]
    fn unknown_sizes_of_every_length_are_unknown() {
        for (bytes, len) in [
            (vec![0xA3, 0xFF], 2),
            (
                vec![0xA3, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
                9,
            ),
        ] {
            assert_eq!(
                header(&bytes).unwrap().unwrap(),
                Header {
                    id: 0xA3,
                    size: None,
                    len
                }
            );
        }
        let mut written = Vec::new();
        write_header(&mut written, id::SEGMENT, None);
        assert_eq!(header(&written).unwrap().unwrap().size, None);
        written.clear();
        write_header(&mut written, id::SEGMENT, Some(77));
        assert_eq!(header(&written).unwrap().unwrap().size, Some(77));
    }

    #[test]
    fn bad_headers_are_refused() {
        assert!(
            header(&[0x00, 0x81]).is_err(),
            "no marker bit in the ID's first byte"
        );
        assert!(header(&[0x08, 1, 2, 3, 0x81]).is_err(), "a 5-byte ID");
        assert!(header(&[0xA3, 0x00, 0x00]).is_err(), "a 9-byte size");
    }

    #[test]
    fn integers_decode_as_ebml_writes_them() {
        assert_eq!(uint(&[]), Some(0));
        assert_eq!(uint(&[0x0F, 0x42, 0x40]), Some(1_000_000));
        assert_eq!(uint(&[0; 9]), None);
    }

    #[test]
    fn children_stop_at_an_overrun() {
        let mut content = Vec::new();
        write_uint(&mut content, id::TIMECODE, 5);
        let good: Vec<_> = children(&content).collect();
        assert_eq!(good.len(), 1);
        assert_eq!(uint(good[0].as_ref().unwrap().1), Some(5));
        content.pop();
        let cut: Vec<_> = children(&content).collect();
        assert_eq!(cut.len(), 1);
        assert!(cut[0].is_err());
    }
}
