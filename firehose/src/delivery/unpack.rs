//! The processors that run no user code, applied to a flush's records: before the transform,
//! de-aggregation, decompression and CloudWatch Logs message extraction (one record in,
//! any number out); after it, the partition keys of dynamic partitioning. A record a step
//! cannot process goes to the error output in Firehose's envelope, and the others go on.

use super::buffer::Records;
use super::process::{Processed, envelope};
use super::retry::Failure;
use crate::naming::{Keys, LAMBDA_KEY_PREFIX, NO_KEYS, Prefix};
use crate::records::{self, Query};
use crate::spec::SubRecords;

/// A decompressed record is at most this large (a bomb fails its record, not the process).
const GUNZIPPED_BYTES_MAX: usize = 16 << 20;

/// The steps before the transform, in Firehose's order.
#[derive(Debug, Default)]
pub(super) struct Unpacking {
    /// `RecordDeAggregation`'s sub-records; with a stream source, KPL aggregates are undone
    /// whatever is configured (Firehose de-aggregates what the KPL aggregated).
    pub(super) sub_records: Option<SubRecords>,
    /// `Decompression` (gzip).
    pub(super) gunzip: bool,
    /// `CloudWatchLogProcessing` with `DataMessageExtraction`.
    pub(super) cloudwatch: bool,
    /// The most bytes a flush's records may unpack to: records past it fail (a flush of
    /// small gzip records could otherwise decompress to a thousand times its size).
    pub(super) output_max: usize,
}

impl Unpacking {
    /// Whether any step is configured.
    pub(super) fn any(&self) -> bool {
        self.sub_records.is_some() || self.gunzip || self.cloudwatch
    }

    /// Each record through the steps; the outputs keep their record's arrival.
    pub(super) fn unpack(&self, records: Records) -> Processed {
        let mut out = Processed::default();
        for (data, arrival) in records.iter() {
            let made = self.one(data).and_then(|outputs| {
                let bytes: usize = outputs.iter().map(Vec::len).sum();
                if out.records.data.len() + bytes > self.output_max {
                    return Err((
                        "Decompression.OutputTooLarge",
                        format!(
                            "The flush's records unpack to more than {} bytes.",
                            self.output_max
                        ),
                    ));
                }
                Ok(outputs)
            });
            match made {
                // A record that unpacks to nothing (a CloudWatch Logs control message) is
                // delivered as nothing: counted as dropped.
                Ok(outputs) if outputs.is_empty() => out.dropped += 1,
                Ok(outputs) => outputs
                    .iter()
                    .for_each(|output| out.records.push(output, arrival)),
                Err((code, message)) => {
                    let failure = Failure {
                        code,
                        message,
                        attempts: 1,
                    };
                    envelope(&mut out.failed, &failure, data, arrival, None);
                    out.failed_records += 1;
                }
            }
        }
        out
    }

    fn one(&self, data: &[u8]) -> Result<Vec<Vec<u8>>, (&'static str, String)> {
        let fail = |code| move |message| (code, message);
        let mut outputs = match &self.sub_records {
            None => vec![data.to_vec()],
            Some(SubRecords::Kpl) => records::deaggregate_kpl(data)
                .map_err(fail("RecordDeAggregation.InvalidKplRecord"))?
                .into_iter()
                .map(|sub| sub.data)
                .collect(),
            Some(SubRecords::Json) => {
                records::split_json(data).map_err(fail("RecordDeAggregation.InvalidJson"))?
            }
            Some(SubRecords::Delimited(delimiter)) => records::split_delimited(data, delimiter),
        };
        if self.gunzip {
            outputs = outputs
                .iter()
                .map(|o| records::gunzip(o, GUNZIPPED_BYTES_MAX))
                .collect::<Result<_, _>>()
                .map_err(fail("Decompression.Failed"))?;
        }
        if self.cloudwatch {
            let mut messages = Vec::new();
            for output in &outputs {
                messages.extend(
                    records::extract_messages(output)
                        .map_err(fail("CloudWatchLogProcessing.InvalidRecord"))?,
                );
            }
            outputs = messages;
        }
        Ok(outputs)
    }
}

/// An object key is at most this long (S3's limit).
const KEY_BYTES_MAX: usize = 1024;
/// A part of a key between slashes is at most this long: a file or directory name of a
/// local bucket (255 bytes), less room for the store's temporary suffix.
const KEY_PART_BYTES_MAX: usize = 240;
/// Distinct partitions one flush writes at most (Firehose's active partitions quota):
/// records of more go to the error output.
const PARTITIONS_MAX: usize = 500;

/// Dynamic partitioning: each record's partition keys by the `MetadataExtraction` query,
/// and those the transform gave it.
pub(super) struct Partitioning {
    /// The query, if there is one (else the keys are the transform's alone).
    pub(super) query: Option<Query>,
    /// The prefix the keys go into (checked to stay a valid key).
    pub(super) prefix: Prefix,
    /// How long an object's name after its prefix is.
    pub(super) tail: usize,
}

impl Partitioning {
    /// One record's partition keys, checked to make a valid object key (a query that
    /// panics, as jq's time functions can on overflow, fails its record).
    fn keys(&self, data: &[u8], arrival: u64, given: &Keys) -> Result<Keys, String> {
        // The transform's keys the prefix names (others would only split partitions).
        let mut found: Keys = self
            .prefix
            .partition_keys()
            .filter_map(|k| Some((k.to_owned(), given.get(k)?.clone())))
            .collect();
        if let Some(query) = &self.query {
            let queried =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| query.keys(data)));
            found.extend(
                queried.unwrap_or_else(|_| Err("The query failed on this record.".to_owned()))?,
            );
        }
        if let Some(missing) = self
            .prefix
            .partition_keys()
            .find(|k| !found.contains_key(*k))
        {
            return Err(match missing.strip_prefix(LAMBDA_KEY_PREFIX) {
                Some(name) => format!(
                    "The function's answer gave this record no partition key {name:?} (metadata.partitionKeys)."
                ),
                None => format!("The query gave this record no partition key {missing:?}."),
            });
        }
        // The function's values meet the rules the query's do (not empty, not `.` or `..`,
        // at most 512 bytes, no control characters).
        if let Some((name, value)) = found.iter().find(|(name, value)| {
            name.starts_with(LAMBDA_KEY_PREFIX) && !records::valid_key_value(value)
        }) {
            let name = name.strip_prefix(LAMBDA_KEY_PREFIX).unwrap_or(name);
            return Err(format!(
                "The function's partition key {name:?} is {value:?}: a key is 1 to 512 bytes, not . or .., with no control characters."
            ));
        }
        if !found.values().all(|v| key_value_fits(v)) {
            return Err(format!(
                "A partition key of {found:?} has a character an object key cannot hold (/, \\, {{, }}, ^, %, `, [, ], \", <, >, ~, #, |, or a control character)."
            ));
        }
        // The key as it will be: the prefix, the hour directories when it has no
        // timestamp, the name (its length known, its letters not).
        let mut key = self.prefix.evaluate(arrival, "", &found);
        if !self.prefix.has_timestamp() {
            key.push_str("2000/01/01/00/");
        }
        key.push_str(&"n".repeat(self.tail));
        if key.len() > KEY_BYTES_MAX || key.split('/').any(|part| part.len() > KEY_PART_BYTES_MAX) {
            return Err(format!(
                "The partition keys make an object key of {} bytes, too long (at most {KEY_BYTES_MAX}, and {KEY_PART_BYTES_MAX} between slashes).",
                key.len()
            ));
        }
        Ok(found)
    }
}

/// Whether a key value can be part of an object key: no `/` (a value is one part of the
/// key), none of the characters object stores escape (so the object is named as the key
/// says), no control characters.
fn key_value_fits(value: &str) -> bool {
    value
        .chars()
        .all(|c| !c.is_control() && !"/\\{}^%`[]\"<>~#|".contains(c))
}

impl Partitioning {
    /// Gives every record its keys; one whose keys cannot be extracted goes to the error
    /// output (`DynamicPartitioning.MetadataExtractionFailed`).
    pub(super) fn partition(&self, processed: Processed) -> Processed {
        let Processed {
            records,
            dropped,
            mut failed,
            mut failed_records,
            keys: given,
        } = processed;
        let mut kept = Records::default();
        let mut distinct = std::collections::BTreeSet::new();
        let mut keys: Vec<Keys> = Vec::with_capacity(records.ends.len());
        for (i, (data, arrival)) in records.iter().enumerate() {
            let given = given.get(i).unwrap_or(&NO_KEYS);
            let found = self.keys(data, arrival, given).and_then(|found| {
                if distinct.len() >= PARTITIONS_MAX && !distinct.contains(&found) {
                    return Err(format!(
                        "The flush has {PARTITIONS_MAX} partitions already (Firehose's active partitions quota)."
                    ));
                }
                distinct.insert(found.clone());
                Ok(found)
            });
            match found {
                Ok(found) => {
                    kept.push(data, arrival);
                    keys.push(found);
                }
                Err(message) => {
                    let failure = Failure {
                        code: records::EXTRACTION_FAILED_CODE,
                        message,
                        attempts: 1,
                    };
                    envelope(&mut failed, &failure, data, arrival, None);
                    failed_records += 1;
                }
            }
        }
        Processed {
            records: kept,
            dropped,
            failed,
            failed_records,
            keys,
        }
    }
}
