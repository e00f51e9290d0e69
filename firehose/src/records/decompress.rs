//! Firehose's `Decompression` processor with `CompressionFormat` `GZIP`: CloudWatch Logs
//! subscription filters deliver each record gzipped, and this turns it back into JSON.

use std::io::Read;

use flate2::read::MultiGzDecoder;

/// The two bytes every gzip member starts with (RFC 1952, ID1 and ID2).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Decompresses one gzip record, which may be several gzip members one after another (RFC 1952
/// allows it, and `gzip -c a b` makes it); the result is their contents concatenated.
///
/// Output over `limit` bytes is refused without ever holding more than `limit + 1` bytes, so a
/// decompression bomb (a few KiB that inflate to GiBs) cannot exhaust memory. Data that does
/// not start with gzip's magic, or whose deflate stream or trailer is damaged or cut short, is
/// an error that says which.
pub(crate) fn gunzip(data: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    if !data.starts_with(&GZIP_MAGIC) {
        return Err(format!(
            "not gzip data: it does not start with the gzip magic 1f 8b ({} bytes)",
            data.len()
        ));
    }
    // One byte past the limit tells "exactly at the limit" from "over it".
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::new();
    MultiGzDecoder::new(data)
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| format!("damaged gzip data: {e}"))?;
    if out.len() > limit {
        return Err(format!(
            "decompressed record is over the limit of {limit} bytes"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).expect("writing to a Vec");
        encoder.finish().expect("writing to a Vec")
    }

    /// A CloudWatch Logs subscription record as Firehose receives it: gzipped JSON.
    const LOGS_JSON: &str = concat!(
        r#"{"messageType":"DATA_MESSAGE","owner":"123456789012","#,
        r#""logGroup":"/aws/lambda/checkout","logStream":"2024/05/01/[$LATEST]0f1e2d3c","#,
        r#""subscriptionFilters":["to-firehose"],"logEvents":[{"#,
        r#""id":"37920112419400941592049127843276126428447286542186840064","#,
        r#""timestamp":1714521600000,"message":"START RequestId: 6f3c Version: $LATEST"}]}"#,
    );

    #[test]
    fn decompresses_a_cloudwatch_logs_record() {
        let record = gzip(LOGS_JSON.as_bytes());
        assert_eq!(gunzip(&record, 1 << 20).unwrap(), LOGS_JSON.as_bytes());
    }

    #[test]
    fn concatenated_members_are_one_record() {
        let mut record = gzip(b"first half, ");
        record.extend(gzip(b"second half"));
        assert_eq!(
            gunzip(&record, 1 << 20).unwrap(),
            b"first half, second half"
        );
    }

    #[test]
    fn empty_contents_are_an_empty_record() {
        assert_eq!(gunzip(&gzip(b""), 0).unwrap(), b"");
    }

    #[test]
    fn output_exactly_at_the_limit_is_kept_one_byte_over_is_refused() {
        let data = vec![b'x'; 1000];
        let record = gzip(&data);
        assert_eq!(gunzip(&record, 1000).unwrap(), data);
        let err = gunzip(&record, 999).unwrap_err();
        assert!(err.contains("over the limit of 999 bytes"), "{err}");
    }

    #[test]
    fn a_decompression_bomb_is_refused() {
        // 64 MiB of zeros compress to about 64 KiB; with a 1 MiB limit the decoder stops
        // after 1 MiB + 1 bytes instead of inflating it all.
        let zeros = vec![0u8; 64 << 20];
        let bomb = gzip(&zeros);
        drop(zeros);
        assert!(bomb.len() < 1 << 17, "{} bytes", bomb.len());
        let err = gunzip(&bomb, 1 << 20).unwrap_err();
        assert!(err.contains("over the limit"), "{err}");
    }

    #[test]
    fn a_huge_limit_does_not_overflow() {
        assert_eq!(gunzip(&gzip(b"abc"), usize::MAX).unwrap(), b"abc");
    }

    #[test]
    fn data_that_is_not_gzip_is_refused() {
        for data in [
            &b""[..],
            b"\x1f",
            b"{\"messageType\":\"DATA_MESSAGE\"}",
            b"PK\x03\x04",
        ] {
            let err = gunzip(data, 1 << 20).unwrap_err();
            assert!(err.starts_with("not gzip data"), "{err}");
        }
    }

    #[test]
    fn truncated_gzip_is_refused() {
        let record = gzip(LOGS_JSON.as_bytes());
        // Cut inside the header, the deflate stream and the CRC/size trailer.
        for cut in [5, record.len() / 2, record.len() - 4, record.len() - 1] {
            let err = gunzip(&record[..cut], 1 << 20).unwrap_err();
            assert!(err.starts_with("damaged gzip data"), "cut at {cut}: {err}");
        }
    }

    #[test]
    fn a_damaged_crc_is_refused() {
        let mut record = gzip(LOGS_JSON.as_bytes());
        // The trailer is CRC-32 then ISIZE, four bytes each.
        let crc = record.len() - 8;
        record[crc] ^= 0xff;
        let err = gunzip(&record, 1 << 20).unwrap_err();
        assert!(err.starts_with("damaged gzip data"), "{err}");
    }

    #[test]
    fn garbage_after_a_member_is_refused() {
        let mut record = gzip(b"payload");
        record.extend_from_slice(b"trailing garbage");
        let err = gunzip(&record, 1 << 20).unwrap_err();
        assert!(err.starts_with("damaged gzip data"), "{err}");
    }
}
