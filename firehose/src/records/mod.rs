//! Firehose's record processors that run no user code: each is a pure, synchronous function
//! from one record's bytes to its output records (or partition keys), and an error message
//! (a `String`) for a record it cannot process, which the delivery pipeline sends to the
//! error output as Firehose does.
//!
//! * [`decompress`]: `Decompression` (gzip, as CloudWatch Logs delivers);
//! * [`cloudwatch`]: `CloudWatchLogProcessing` with `DataMessageExtraction`;
//! * [`kpl`]: `RecordDeAggregation` (`KPL`, `DELIMITED` and `JSON` sub-records);
//! * [`extract`]: `MetadataExtraction`, the jq query of dynamic partitioning.

mod cloudwatch;
mod decompress;
mod extract;
mod kpl;

pub(crate) use cloudwatch::extract_messages;
pub(crate) use decompress::gunzip;
pub(crate) use extract::{EXTRACTION_FAILED_CODE, Query, valid_key_value};
#[cfg(test)]
use kpl::SubRecord;
pub(crate) use kpl::{deaggregate_kpl, parse_delimiter, split_delimited, split_json};

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;
    use md5::{Digest as _, Md5};

    use super::*;

    /// CloudWatch Logs to a partitioned bucket, as the pipeline will chain them: gunzip, take
    /// the log events' messages, then partition each message by a query.
    #[test]
    fn cloudwatch_logs_to_partition_keys() {
        let message = serde_json::json!({
            "messageType": "DATA_MESSAGE",
            "owner": "123456789012",
            "logGroup": "/ecs/orders",
            "logStream": "orders/web/3f9c",
            "subscriptionFilters": ["orders-to-firehose"],
            "logEvents": [
                {"id": "1", "timestamp": 1_714_557_600_000_i64,
                 "message": "{\"tenant\":\"acme\",\"level\":\"error\"}"},
                {"id": "2", "timestamp": 1_714_557_600_001_i64,
                 "message": "{\"tenant\":\"globex\",\"level\":\"info\"}"},
                {"id": "3", "timestamp": 1_714_557_600_002_i64, "message": "not json"},
            ]
        });
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(message.to_string().as_bytes()).unwrap();
        let record = encoder.finish().unwrap();

        let messages = extract_messages(&gunzip(&record, 1 << 20).unwrap()).unwrap();
        let query = Query::parse("{tenant: .tenant, level: .level}").unwrap();
        let keys: Vec<_> = messages.iter().map(|m| query.keys(m)).collect();
        assert_eq!(keys[0].as_ref().unwrap()["tenant"], "acme");
        assert_eq!(keys[1].as_ref().unwrap()["level"], "info");
        // The third fails alone, as Firehose fails it with this code.
        assert!(keys[2].is_err());
        assert_eq!(
            EXTRACTION_FAILED_CODE,
            "DynamicPartitioning.MetadataExtractionFailed"
        );
        assert!(valid_key_value("acme"));
    }

    /// A KPL aggregated record (one sub-record) whose data holds newline-delimited records and
    /// another holding concatenated JSON.
    #[test]
    fn kpl_then_delimited_and_json_sub_records() {
        let protobuf: Vec<u8> = [
            &[0x0a, 0x01, b'k'][..], // partition_key_table[0] = "k"
            // records[0], 9 bytes: partition_key_index = 0, data = "a\nb\nc"
            &[0x1a, 0x09, 0x08, 0x00, 0x1a, 0x05],
            b"a\nb\nc",
            // records[1], 15 bytes: partition_key_index = 0, data = `{"x":1}{"y"` (cut short)
            &[0x1a, 0x0f, 0x08, 0x00, 0x1a, 0x0b],
            br#"{"x":1}{"y""#,
        ]
        .concat();
        let record = [
            &[0xf3, 0x89, 0x9a, 0xc2][..],
            &protobuf,
            Md5::digest(&protobuf).as_slice(),
        ]
        .concat();
        let subs: Vec<SubRecord> = deaggregate_kpl(&record).unwrap();
        assert_eq!(subs.len(), 2);
        let delimiter = parse_delimiter("Cg==").unwrap();
        let lines = split_delimited(&subs[0].data, &delimiter);
        assert_eq!(lines, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        assert!(split_json(&subs[1].data).is_err());
        assert_eq!(split_json(b"{\"x\":1}").unwrap(), [b"{\"x\":1}".to_vec()]);
    }
}
