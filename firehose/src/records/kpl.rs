//! Firehose's `RecordDeAggregation` processor: one incoming record becomes the user records
//! it carries. `SubRecordType` `KPL` undoes the Kinesis Producer Library's aggregation,
//! `DELIMITED` splits on a delimiter, and `JSON` splits concatenated JSON objects.
//!
//! A KPL aggregated record is the magic `F3 89 9A C2`, then a protobuf `AggregatedRecord`,
//! then the MD5 of that protobuf (16 bytes). The messages are the KPL's own
//! (`aws/kinesis/protobuf/messages.proto`), written out below with prost's derive so that no
//! build script or `protoc` is needed.

use base64::Engine as _;
use md5::{Digest as _, Md5};
use prost::Message as _;

/// The first four bytes of every KPL aggregated record.
const KPL_MAGIC: [u8; 4] = [0xf3, 0x89, 0x9a, 0xc2];
/// The MD5 trailer's length.
const DIGEST_LEN: usize = 16;

/// `message AggregatedRecord` of the KPL's `messages.proto`.
#[derive(Clone, PartialEq, prost::Message)]
struct AggregatedRecord {
    /// `repeated string partition_key_table = 1;`
    #[prost(string, repeated, tag = "1")]
    partition_key_table: Vec<String>,
    /// `repeated string explicit_hash_key_table = 2;`
    #[prost(string, repeated, tag = "2")]
    explicit_hash_key_table: Vec<String>,
    /// `repeated Record records = 3;`
    #[prost(message, repeated, tag = "3")]
    records: Vec<Record>,
}

/// `message Record`. Its required fields are declared optional here (the wire form is the
/// same) so that a record lacking one is refused rather than read as index 0 or empty data:
/// prost does not check `required`.
#[derive(Clone, PartialEq, prost::Message)]
struct Record {
    /// `required uint64 partition_key_index = 1;`
    #[prost(uint64, optional, tag = "1")]
    partition_key_index: Option<u64>,
    /// `optional uint64 explicit_hash_key_index = 2;`
    #[prost(uint64, optional, tag = "2")]
    explicit_hash_key_index: Option<u64>,
    /// `required bytes data = 3;`
    #[prost(bytes = "vec", optional, tag = "3")]
    data: Option<Vec<u8>>,
    /// `repeated Tag tags = 4;` (decoded so that damage there is caught, then not used, as by
    /// the KCL).
    #[prost(message, repeated, tag = "4")]
    tags: Vec<Tag>,
}

/// `message Tag`.
#[derive(Clone, PartialEq, prost::Message)]
struct Tag {
    /// `required string key = 1;`
    #[prost(string, required, tag = "1")]
    key: String,
    /// `optional string value = 2;`
    #[prost(string, optional, tag = "2")]
    value: Option<String>,
}

/// One user record out of a KPL aggregated record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SubRecord {
    /// The record's data.
    pub(crate) data: Vec<u8>,
    /// The partition key the producer gave it (empty for a record that was not aggregated).
    pub(crate) partition_key: String,
    /// The explicit hash key the producer gave it, if any.
    pub(crate) explicit_hash_key: Option<String>,
}

/// De-aggregates a KPL record into its user records, in order.
///
/// A record that does not start with the KPL magic was not aggregated: it comes back whole as
/// one sub-record with an empty partition key, as the KCL returns it. A record with the magic
/// is an error if it is too short to hold the MD5 trailer, if the trailer is not the MD5 of the
/// protobuf, if the protobuf does not decode, or if a record lacks its partition key index or
/// data or points past a key table; the message says which (and which record).
pub(crate) fn deaggregate_kpl(data: &[u8]) -> Result<Vec<SubRecord>, String> {
    let Some(rest) = data.strip_prefix(&KPL_MAGIC) else {
        return Ok(vec![SubRecord {
            data: data.to_vec(),
            partition_key: String::new(),
            explicit_hash_key: None,
        }]);
    };
    let Some(split) = rest.len().checked_sub(DIGEST_LEN) else {
        return Err(format!(
            "truncated KPL aggregated record: {} bytes, shorter than the magic and MD5 trailer",
            data.len()
        ));
    };
    let (protobuf, digest) = rest.split_at(split);
    if Md5::digest(protobuf).as_slice() != digest {
        return Err("KPL aggregated record's MD5 trailer does not match its contents".to_owned());
    }
    let aggregated = AggregatedRecord::decode(protobuf)
        .map_err(|e| format!("KPL aggregated record's protobuf does not decode: {e}"))?;
    aggregated
        .records
        .into_iter()
        .enumerate()
        .map(|(i, record)| {
            sub_record(
                i,
                record,
                &aggregated.partition_key_table,
                &aggregated.explicit_hash_key_table,
            )
        })
        .collect()
}

/// Resolves record `i`'s keys through the aggregated record's tables.
fn sub_record(
    i: usize,
    record: Record,
    partition_keys: &[String],
    explicit_hash_keys: &[String],
) -> Result<SubRecord, String> {
    let lookup = |table: &[String], index: u64, what: &str| {
        usize::try_from(index)
            .ok()
            .and_then(|index| table.get(index))
            .cloned()
            .ok_or_else(|| {
                format!(
                    "KPL record {i}'s {what} index {index} is out of range ({} in the table)",
                    table.len()
                )
            })
    };
    let index = record
        .partition_key_index
        .ok_or_else(|| format!("KPL record {i} has no partition_key_index"))?;
    let partition_key = lookup(partition_keys, index, "partition key")?;
    let explicit_hash_key = record
        .explicit_hash_key_index
        .map(|index| lookup(explicit_hash_keys, index, "explicit hash key"))
        .transpose()?;
    let data = record
        .data
        .ok_or_else(|| format!("KPL record {i} has no data"))?;
    Ok(SubRecord {
        data,
        partition_key,
        explicit_hash_key,
    })
}

/// Decodes the `Delimiter` parameter of a `DELIMITED` de-aggregation, which AWS's API takes
/// as base64 of the delimiter's bytes (`Cg==` is a newline). An empty delimiter is refused:
/// it would split nothing.
pub(crate) fn parse_delimiter(base64: &str) -> Result<Vec<u8>, String> {
    let delimiter = base64::engine::general_purpose::STANDARD
        .decode(base64)
        .map_err(|e| format!("Delimiter is not base64: {e}"))?;
    if delimiter.is_empty() {
        return Err("Delimiter must not be empty".to_owned());
    }
    Ok(delimiter)
}

/// Splits a record at every occurrence of `delimiter` (the delimiter itself is dropped).
/// A trailing delimiter ends the last record rather than starting an empty one, so
/// `"a\nb\n"` and `"a\nb"` are both `a`, `b`; empty records between two delimiters are kept,
/// and empty data is no records. An empty `delimiter` (refused by [`parse_delimiter`]) leaves
/// the data whole.
pub(crate) fn split_delimited(data: &[u8], delimiter: &[u8]) -> Vec<Vec<u8>> {
    if delimiter.is_empty() {
        return if data.is_empty() {
            Vec::new()
        } else {
            vec![data.to_vec()]
        };
    }
    let mut records = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        match rest
            .windows(delimiter.len())
            .position(|window| window == delimiter)
        {
            Some(at) => {
                records.push(rest[..at].to_vec());
                rest = &rest[at + delimiter.len()..];
            }
            None => {
                records.push(rest.to_vec());
                rest = &[];
            }
        }
    }
    records
}

/// Splits a record of JSON objects written one after another (`{"a":1}{"a":2}`, whitespace
/// between them allowed) into one record per object, each exactly as it was written. Data that
/// is not such a sequence is an error naming the byte where it goes wrong.
pub(crate) fn split_json(data: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut records = Vec::new();
    let mut start = 0;
    let mut stream =
        serde_json::Deserializer::from_slice(data).into_iter::<serde::de::IgnoredAny>();
    while let Some(value) = stream.next() {
        value.map_err(|e| format!("not a sequence of JSON objects: {e}"))?;
        let end = stream.byte_offset();
        let object = data.get(start..end).unwrap_or_default().trim_ascii_start();
        if !object.starts_with(b"{") {
            return Err(format!(
                "not a sequence of JSON objects: a value at byte {start} is not an object"
            ));
        }
        records.push(object.to_vec());
        start = end;
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The KPL's framing around protobuf bytes: magic, the bytes, their MD5.
    fn frame(protobuf: &[u8]) -> Vec<u8> {
        [&KPL_MAGIC[..], protobuf, Md5::digest(protobuf).as_slice()].concat()
    }

    fn sub(data: &[u8], partition_key: &str, explicit_hash_key: Option<&str>) -> SubRecord {
        SubRecord {
            data: data.to_vec(),
            partition_key: partition_key.to_owned(),
            explicit_hash_key: explicit_hash_key.map(str::to_owned),
        }
    }

    /// An aggregated record written out byte by byte from the protobuf wire format (a field's
    /// key is `tag << 3 | wire type`; wire type 0 is a varint, 2 is length-delimited), with
    /// its MD5 computed by Python's `hashlib.md5` — nothing here comes from prost or the md5
    /// crate, so the decoder is checked against the format rather than against itself.
    #[test]
    fn decodes_a_record_written_from_the_wire_format() {
        let z130 = [b'z'; 130];
        let record: Vec<u8> = [
            &[0xf3, 0x89, 0x9a, 0xc2][..], // KPL magic
            // AggregatedRecord
            &[0x0a, 0x02, b'p', b'k'], // 1: partition_key_table[0] = "pk"
            &[0x0a, 0x05, b'o', b't', b'h', b'e', b'r'], // 1: partition_key_table[1] = "other"
            &[0x12, 0x03, b'1', b'2', b'3'], // 2: explicit_hash_key_table[0] = "123"
            &[0x1a, 0x06],             // 3: records[0], 6 bytes:
            &[0x08, 0x00],             //   1: partition_key_index = 0
            &[0x1a, 0x02, b'h', b'i'], //   3: data = "hi"
            &[0x1a, 0x10],             // 3: records[1], 16 bytes:
            &[0x08, 0x01],             //   1: partition_key_index = 1
            &[0x10, 0x00],             //   2: explicit_hash_key_index = 0
            &[0x1a, 0x02, 0x00, 0xff], //   3: data = 00 ff
            &[0x22, 0x06],             //   4: tags[0], 6 bytes:
            &[0x0a, 0x01, b'k'],       //     1: key = "k"
            &[0x12, 0x01, b'v'],       //     2: value = "v"
            &[0x1a, 0x87, 0x01],       // 3: records[2], 135 = 0x07 + 0x01 * 128 bytes:
            &[0x08, 0x00],             //   1: partition_key_index = 0
            &[0x1a, 0x82, 0x01],       //   3: data, 130 = 0x02 + 0x01 * 128 bytes:
            &z130,                     //      "zzz...z"
            // MD5 of the 180 protobuf bytes above (hashlib: 44127649a713024fee57776085b68702)
            &[0x44, 0x12, 0x76, 0x49, 0xa7, 0x13, 0x02, 0x4f],
            &[0xee, 0x57, 0x77, 0x60, 0x85, 0xb6, 0x87, 0x02],
        ]
        .concat();
        assert_eq!(record.len(), 4 + 180 + 16);
        assert_eq!(
            deaggregate_kpl(&record).unwrap(),
            vec![
                sub(b"hi", "pk", None),
                sub(&[0x00, 0xff], "other", Some("123")),
                sub(&z130, "pk", None),
            ]
        );
    }

    #[test]
    fn round_trips_what_prost_encodes() {
        let aggregated = AggregatedRecord {
            partition_key_table: vec!["user-1".into(), "user-2".into()],
            explicit_hash_key_table: vec!["170141183460469231731687303715884105728".into()],
            records: (0..500u64)
                .map(|i| Record {
                    partition_key_index: Some(i % 2),
                    explicit_hash_key_index: (i % 3 == 0).then_some(0),
                    data: Some(format!("{{\"seq\":{i}}}").into_bytes()),
                    tags: Vec::new(),
                })
                .collect(),
        };
        let subs = deaggregate_kpl(&frame(&aggregated.encode_to_vec())).unwrap();
        assert_eq!(subs.len(), 500);
        for (i, sub) in subs.iter().enumerate() {
            assert_eq!(sub.data, format!("{{\"seq\":{i}}}").into_bytes());
            assert_eq!(
                sub.partition_key,
                if i % 2 == 0 { "user-1" } else { "user-2" }
            );
            let ehk = (i % 3 == 0).then_some("170141183460469231731687303715884105728");
            assert_eq!(sub.explicit_hash_key.as_deref(), ehk);
        }
    }

    #[test]
    fn an_aggregated_record_of_no_records_is_no_records() {
        assert_eq!(deaggregate_kpl(&frame(&[])).unwrap(), Vec::new());
    }

    #[test]
    fn a_record_without_the_magic_is_passed_through() {
        for data in [
            &b""[..],
            b"{\"plain\":true}",
            &[0xf3, 0x89, 0x9a],
            &[0xf3, 0x89, 0x9a, 0xc3, 0],
        ] {
            assert_eq!(deaggregate_kpl(data).unwrap(), vec![sub(data, "", None)]);
        }
    }

    #[test]
    fn a_mismatched_md5_is_refused() {
        let protobuf = AggregatedRecord {
            partition_key_table: vec!["pk".into()],
            explicit_hash_key_table: Vec::new(),
            records: vec![Record {
                partition_key_index: Some(0),
                explicit_hash_key_index: None,
                data: Some(b"payload".to_vec()),
                tags: Vec::new(),
            }],
        }
        .encode_to_vec();
        let good = frame(&protobuf);
        // A flipped bit in the contents, and one in the trailer.
        for at in [KPL_MAGIC.len() + 3, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x01;
            let err = deaggregate_kpl(&bad).unwrap_err();
            assert!(err.contains("MD5"), "{err}");
        }
    }

    #[test]
    fn truncated_records_are_refused() {
        // Too short for the trailer: the magic alone, and the magic with 15 bytes.
        for len in [0, 15] {
            let record = [&KPL_MAGIC[..], &vec![0u8; len]].concat();
            let err = deaggregate_kpl(&record).unwrap_err();
            assert!(err.starts_with("truncated"), "{err}");
        }
        // Cut anywhere else, the trailer is no longer the MD5 of what precedes it.
        let good = frame(&[0x0a, 0x02, b'p', b'k', 0x1a, 0x04, 0x08, 0x00, 0x1a, 0x00]);
        for cut in KPL_MAGIC.len() + DIGEST_LEN..good.len() {
            assert!(deaggregate_kpl(&good[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn bad_protobuf_is_refused_even_with_a_good_md5() {
        for protobuf in [
            &[0x0a, 0x05, b'a'][..],   // a string running past the end
            &[0x1a, 0x03, 0x08],       // a record running past the end
            &[0x0a, 0x02, 0xff, 0xfe], // a partition key that is not UTF-8
            // An unknown field 5 (skipped) whose varint runs to 11 bytes; 10 is the most.
            &[
                0x28, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
            &[0x0f], // wire type 7 does not exist
        ] {
            let err = deaggregate_kpl(&frame(protobuf)).unwrap_err();
            assert!(
                err.contains("protobuf does not decode"),
                "{protobuf:02x?}: {err}"
            );
        }
    }

    #[test]
    fn bad_indexes_and_missing_fields_are_named() {
        let cases: [(&[u8], &str); 5] = [
            // records[0] points at partition key 1 of a table of 1.
            (
                &[0x0a, 0x01, b'a', 0x1a, 0x04, 0x08, 0x01, 0x1a, 0x00],
                "record 0's partition key index 1",
            ),
            // records[0] has an explicit hash key index and the table is empty.
            (
                &[
                    0x0a, 0x01, b'a', 0x1a, 0x06, 0x08, 0x00, 0x10, 0x00, 0x1a, 0x00,
                ],
                "record 0's explicit hash key index 0",
            ),
            // records[1] has no partition_key_index.
            (
                &[
                    0x0a, 0x01, b'a', 0x1a, 0x04, 0x08, 0x00, 0x1a, 0x00, 0x1a, 0x02, 0x1a, 0x00,
                ],
                "record 1 has no partition_key_index",
            ),
            // records[0] has no data.
            (
                &[0x0a, 0x01, b'a', 0x1a, 0x02, 0x08, 0x00],
                "record 0 has no data",
            ),
            // A partition key index past u64 range is not possible; past usize on 32-bit is.
            (
                &[
                    0x1a, 0x0d, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                    0x1a, 0x00,
                ],
                "out of range",
            ),
        ];
        for (protobuf, expected) in cases {
            let err = deaggregate_kpl(&frame(protobuf)).unwrap_err();
            assert!(err.contains(expected), "{expected}: {err}");
        }
    }

    #[test]
    fn delimiter_parameter_is_base64_and_not_empty() {
        assert_eq!(parse_delimiter("Cg==").unwrap(), b"\n");
        assert_eq!(parse_delimiter("fHw=").unwrap(), b"||");
        assert_eq!(parse_delimiter("DQo=").unwrap(), b"\r\n");
        assert!(parse_delimiter("").unwrap_err().contains("empty"));
        assert!(
            parse_delimiter("not base64!")
                .unwrap_err()
                .contains("not base64")
        );
        assert!(parse_delimiter("Cg").unwrap_err().contains("not base64"));
    }

    #[test]
    fn splits_on_a_delimiter() {
        let split = |data: &[u8], delimiter: &[u8]| split_delimited(data, delimiter);
        let records = |r: &[&str]| r.iter().map(|r| r.as_bytes().to_vec()).collect::<Vec<_>>();
        assert_eq!(split(b"a\nb\nc", b"\n"), records(&["a", "b", "c"]));
        assert_eq!(split(b"a\nb\nc\n", b"\n"), records(&["a", "b", "c"]));
        assert_eq!(split(b"a\n\nb", b"\n"), records(&["a", "", "b"]));
        assert_eq!(split(b"\na", b"\n"), records(&["", "a"]));
        assert_eq!(split(b"\n", b"\n"), records(&[""]));
        assert_eq!(split(b"", b"\n"), records(&[]));
        assert_eq!(split(b"no delimiter", b"\n"), records(&["no delimiter"]));
        // Multi-byte delimiters, including one that overlaps itself and a partial match.
        assert_eq!(split(b"a\r\nb\rc\r\n", b"\r\n"), records(&["a", "b\rc"]));
        assert_eq!(split(b"x|||y", b"||"), records(&["x", "|y"]));
        assert_eq!(split(b"x|", b"||"), records(&["x|"]));
        // Binary data, and a delimiter longer than the data.
        assert_eq!(split(&[0, 0xff, 0, 1], &[0xff, 0]), vec![vec![0], vec![1]]);
        assert_eq!(split(b"ab", b"abc"), records(&["ab"]));
        // An empty delimiter (never configured) leaves the data whole.
        assert_eq!(split(b"abc", b""), records(&["abc"]));
        assert_eq!(split(b"", b""), records(&[]));
    }

    #[test]
    fn splits_concatenated_json_objects() {
        let records = split_json(b"{\"a\":1}{\"b\":[1,{\"c\":\"}{\"}]}\n {\"d\":null}\n").unwrap();
        let expected: [&[u8]; 3] = [b"{\"a\":1}", b"{\"b\":[1,{\"c\":\"}{\"}]}", b"{\"d\":null}"];
        assert_eq!(records, expected.map(<[u8]>::to_vec));
        assert_eq!(split_json(b"").unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(split_json(b" \n").unwrap(), Vec::<Vec<u8>>::new());
        for bad in [
            &b"{\"a\":1}garbage"[..],
            b"{\"a\":",
            b"{\"a\":1} 42",
            b"[1]{}",
        ] {
            let err = split_json(bad).unwrap_err();
            assert!(err.starts_with("not a sequence of JSON objects"), "{err}");
        }
    }
}
