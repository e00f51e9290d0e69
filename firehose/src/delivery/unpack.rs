//! The processors that run no user code, applied to a flush's records: before the transform,
//! de-aggregation, decompression and CloudWatch Logs message extraction (one record in,
//! any number out); after it, the partition keys of dynamic partitioning. A record a step
//! cannot process goes to the error output in Firehose's envelope, and the others go on.

use super::buffer::Records;
use super::process::{Processed, envelope};
use super::retry::Failure;
use crate::naming::{Keys, Prefix};
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
            match self.one(data) {
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

/// The longest prefix partition keys may make: an object key is at most 1,024 bytes, and
/// the name after the prefix takes up to 64 + 77.
const PARTITIONED_PREFIX_BYTES_MAX: usize = 1024 - 64 - 77;

/// Dynamic partitioning: each record's partition keys by the `MetadataExtraction` query.
pub(super) struct Partitioning {
    pub(super) query: Query,
    /// The prefix the keys go into (checked to stay a valid key).
    pub(super) prefix: Prefix,
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
            keys: _,
        } = processed;
        let mut kept = Records::default();
        let mut keys: Vec<Keys> = Vec::with_capacity(records.ends.len());
        for (data, arrival) in records.iter() {
            let found = self.query.keys(data).and_then(|found| {
                let evaluated = self.prefix.evaluate(arrival, "", &found);
                if !found.values().all(|v| key_value_fits(v)) {
                    Err(format!("A partition key of {found:?} has a character an object key cannot hold (/, \\, {{, }}, ^, %, `, [, ], \", <, >, ~, #, |, or a control character)."))
                } else if evaluated.len() > PARTITIONED_PREFIX_BYTES_MAX {
                    Err(format!("The partition keys make a prefix of {} bytes, more than {PARTITIONED_PREFIX_BYTES_MAX}.", evaluated.len()))
                } else {
                    Ok(found)
                }
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
