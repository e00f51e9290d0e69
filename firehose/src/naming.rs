//! Object keys as Firehose writes them: `<prefix>YYYY/MM/DD/HH/<stream>-<version>-
//! YYYY-MM-DD-HH-MM-SS-<uuid>[.ext]`, in UTC of the flush.

use crate::spec::Compression;
use time::OffsetDateTime;

/// The key of an object flushed at `now_ms`.
pub(crate) fn object_key(
    prefix: &str,
    stream: &str,
    version: u64,
    now_ms: u64,
    compression: Compression,
) -> String {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let (y, mo, d, h) = (at.year(), u8::from(at.month()), at.day(), at.hour());
    let (mi, s) = (at.minute(), at.second());
    let id = uuid::Uuid::new_v4();
    let ext = compression.extension();
    format!(
        "{prefix}{y:04}/{mo:02}/{d:02}/{h:02}/{stream}-{version}-{y:04}-{mo:02}-{d:02}-{h:02}-{mi:02}-{s:02}-{id}{ext}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_the_hour_prefix_the_version_and_the_flush_time() {
        // 2026-12-05 04:52:07.123 UTC
        let key = object_key("logs/", "orders", 3, 1_796_446_327_123, Compression::Gzip);
        let (head, tail) = key.split_at("logs/2026/12/05/04/orders-3-2026-12-05-04-52-07-".len());
        assert_eq!(head, "logs/2026/12/05/04/orders-3-2026-12-05-04-52-07-");
        let id = tail.strip_suffix(".gz").unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{key}");
        let plain = object_key("", "s", 1, 0, Compression::Uncompressed);
        assert!(
            plain.starts_with("1970/01/01/00/s-1-1970-01-01-00-00-00-"),
            "{plain}"
        );
        assert!(!plain.ends_with(".gz"));
    }
}
