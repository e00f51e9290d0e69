//! A stored fragment: a fixed metadata prefix, then a whole MKV file of one cluster
//! (docs/design/video.md, "A stored fragment").

/// The first four bytes of every stored fragment.
const MAGIC: &[u8; 4] = b"KVF1";
/// Bytes of metadata this version writes after the magic and its length.
const META_LEN: usize = 40;
/// Bytes before a record's MKV: the magic, the metadata's length, the metadata.
pub(crate) const PREFIX_LEN: usize = 8 + META_LEN;
/// "No key frame in this fragment".
const NO_KEY_FRAME: u32 = u32::MAX;

/// What a fragment's record says about it without reading its media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentMeta {
    /// The producer's time of its cluster, ms since the epoch.
    pub producer_ms: i64,
    /// When the server had it whole, ms since the epoch.
    pub server_ms: i64,
    /// Its duration in ms.
    pub duration_ms: u64,
    /// Frames in it, every track's.
    pub frames: u32,
    /// ms from its start to its first key frame, if it has one.
    pub key_frame_ms: Option<u32>,
    /// A bit per track number 1..=32 that has frames in it.
    pub tracks: u32,
}

/// Why a record is not a stored fragment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a record of a video stream's log is not a stored fragment: {0}")]
pub struct NotAFragment(&'static str);

impl FragmentMeta {
    /// The record for a fragment with this metadata and this MKV.
    pub fn encode(&self, mkv: &[u8]) -> Vec<u8> {
        let mut record = Vec::with_capacity(PREFIX_LEN + mkv.len());
        self.write_prefix(&mut record);
        record.extend_from_slice(mkv);
        record
    }

    /// Writes the record's prefix (magic, length, metadata); the MKV follows it.
    pub(crate) fn write_prefix(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(META_LEN as u32).to_le_bytes());
        out.extend_from_slice(&self.producer_ms.to_le_bytes());
        out.extend_from_slice(&self.server_ms.to_le_bytes());
        out.extend_from_slice(&self.duration_ms.to_le_bytes());
        out.extend_from_slice(&self.frames.to_le_bytes());
        out.extend_from_slice(&self.key_frame_ms.unwrap_or(NO_KEY_FRAME).to_le_bytes());
        out.extend_from_slice(&self.tracks.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
    }

    /// A record's metadata and its MKV. A later version's longer metadata is skipped.
    pub fn decode(record: &[u8]) -> Result<(FragmentMeta, &[u8]), NotAFragment> {
        if record.len() < 8 || &record[..4] != MAGIC {
            return Err(NotAFragment("no KVF1 magic"));
        }
        let len = u32::from_le_bytes(record[4..8].try_into().expect("4 bytes")) as usize;
        if len < META_LEN || record.len() < 8 + len {
            return Err(NotAFragment("its metadata is cut off"));
        }
        let meta = &record[8..8 + len];
        let u64_at = |at: usize| u64::from_le_bytes(meta[at..at + 8].try_into().expect("8 bytes"));
        let u32_at = |at: usize| u32::from_le_bytes(meta[at..at + 4].try_into().expect("4 bytes"));
        let key_frame = u32_at(28);
        Ok((
            FragmentMeta {
                producer_ms: u64_at(0) as i64,
                server_ms: u64_at(8) as i64,
                duration_ms: u64_at(16),
                frames: u32_at(24),
                key_frame_ms: (key_frame != NO_KEY_FRAME).then_some(key_frame),
                tracks: u32_at(32),
            },
            &record[8 + len..],
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_and_bad_records_are_refused() {
        let meta = FragmentMeta {
            producer_ms: 1_700_000_000_123,
            server_ms: 1_700_000_000_456,
            duration_ms: 1_000,
            frames: 72,
            key_frame_ms: Some(0),
            tracks: 0b110,
        };
        let record = meta.encode(b"mkv bytes");
        assert_eq!(FragmentMeta::decode(&record), Ok((meta, &b"mkv bytes"[..])));
        let none = FragmentMeta {
            key_frame_ms: None,
            ..meta
        };
        assert_eq!(
            FragmentMeta::decode(&none.encode(b""))
                .unwrap()
                .0
                .key_frame_ms,
            None
        );
        assert!(FragmentMeta::decode(b"KVF2....").is_err());
        assert!(FragmentMeta::decode(&record[..20]).is_err());
    }
}
