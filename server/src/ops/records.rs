//! The data plane: PutRecord, PutRecords, GetShardIterator, GetRecords.

use crate::clock::now_ms;
use crate::cloudwatch::kinesis::{self, Datapoints};
use crate::reads::{ITERATOR_TYPES, RecordOut, child_shards, iterator_start, records_out};
use crate::shapes::ChildShard;
use crate::tenant::Tenant;
use crate::wire::bounded::BoundedVec;
use crate::wire::validate::{HASH_KEY_PATTERN, SEQUENCE_NUMBER_PATTERN};
use crate::wire::{ApiError, Blob, Incarnation, Tagged, Timestamp, Validate, Validator, messages};
use serde::{Deserialize, Serialize};
use sluice_core::{ErrorCode, PutError, PutRecord, ShardId};
use std::time::Instant;

/// Data plus key of one record, at most (the per-stream limit applies on top).
const RECORD_DATA_BYTES_MAX: usize = 10 * 1024 * 1024;

fn validate_record(
    v: &mut Validator,
    prefix: &str,
    data: &Option<Blob>,
    partition_key: &Option<String>,
    explicit_hash_key: &Option<String>,
) {
    // The common case, checked without building member names: a batch of 500 valid records
    // must not cost 2,000 small allocations.
    let plainly_valid = data
        .as_ref()
        .is_some_and(|d| d.0.len() <= RECORD_DATA_BYTES_MAX)
        && partition_key
            .as_ref()
            .is_some_and(|k| !k.is_empty() && k.chars().count() <= 256)
        && explicit_hash_key.as_ref().is_none_or(|k| is_hash_key(k));
    if plainly_valid {
        return;
    }
    v.required(&format!("{prefix}data"), data);
    v.blob_size(
        &format!("{prefix}data"),
        data.as_ref().map(|d| d.0.len()),
        RECORD_DATA_BYTES_MAX,
    );
    v.required(&format!("{prefix}partitionKey"), partition_key);
    v.length(&format!("{prefix}partitionKey"), partition_key, 1, 256);
    v.decimal(
        &format!("{prefix}explicitHashKey"),
        explicit_hash_key,
        39,
        HASH_KEY_PATTERN,
    );
}

/// The model's hash key pattern, `0|([1-9]\d{0,38})`.
fn is_hash_key(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 39
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordInput {
    pub(crate) stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: Option<String>,
    pub(crate) data: Option<Blob>,
    pub(crate) partition_key: Option<String>,
    pub(crate) explicit_hash_key: Option<String>,
    pub(crate) sequence_number_for_ordering: Option<String>,
}

impl Validate for PutRecordInput {
    fn validate(&self, v: &mut Validator) {
        v.stream(&self.stream_name, &self.stream_arn);
        validate_record(
            v,
            "",
            &self.data,
            &self.partition_key,
            &self.explicit_hash_key,
        );
        v.decimal(
            "sequenceNumberForOrdering",
            &self.sequence_number_for_ordering,
            129,
            SEQUENCE_NUMBER_PATTERN,
        );
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordOutput {
    pub(crate) shard_id: String,
    pub(crate) sequence_number: String,
    pub(crate) encryption_type: &'static str,
}

/// `"KMS"` or `"NONE"`, as Kinesis reports a record's encryption.
pub fn encryption_type(encrypted: bool) -> &'static str {
    match encrypted {
        true => "KMS",
        false => "NONE",
    }
}

/// The stream's KMS key, when StartStreamEncryption is in effect.
fn stream_kms_key(tenant: &Tenant, (name, created_ms): (&str, u64)) -> Option<String> {
    tenant.state.read(|state| {
        state
            .stream(name, created_ms)
            .and_then(|extras| extras.encryption.as_ref())
            .map(|(_, key)| key.clone())
    })
}

/// The records' envelopes when the stream encrypts (`None`: it does not).
async fn seal(
    tenant: &Tenant,
    (handle, stream): (&sluice_core::Stream, (&str, u64)),
    records: &[(&str, &[u8])],
) -> Result<Option<Vec<Vec<u8>>>, ApiError> {
    let Some(key) = stream_kms_key(tenant, stream) else {
        return Ok(None);
    };
    check_plaintext_sizes(handle, records)?;
    let data: Vec<&[u8]> = records.iter().map(|(_, data)| *data).collect();
    Ok(Some(
        tenant.data_keys.seal(tenant, stream, &key, &data).await?,
    ))
}

/// For an encrypted stream, a record and its envelope must fit the record size limit (the
/// limit less 33 bytes of plaintext): the engine's own error, for the plaintext's size.
fn check_plaintext_sizes(
    stream: &sluice_core::Stream,
    records: &[(&str, &[u8])],
) -> Result<(), ApiError> {
    let max_bytes = stream
        .summary()?
        .max_record_size_bytes
        .saturating_sub(crate::encryption::ENVELOPE_BYTES);
    for (index, (key, data)) in records.iter().enumerate() {
        let size_bytes = (key.len() + data.len()) as u64;
        if size_bytes > max_bytes {
            return Err(ApiError::from(sluice_core::PutError::RecordTooLarge {
                index,
                size_bytes,
                max_bytes,
            }));
        }
    }
    Ok(())
}

pub async fn put_record(
    tenant: &Tenant,
    input: PutRecordInput,
) -> Result<PutRecordOutput, ApiError> {
    let started = Instant::now();
    let name = tenant.resolve(&input.stream_name, &input.stream_arn)?;
    tenant.inject_fault(&name)?;
    let data = input.data.expect("validated");
    let key = input.partition_key.expect("validated");
    let stream = tenant.engine.stream(&name)?;
    let summary = stream.summary()?;
    let created_ms = summary.created_ms;
    let incarnation = Incarnation::of(created_ms);
    // The engine takes the number without its incarnation's tag.
    let ordering = match input.sequence_number_for_ordering.as_deref() {
        Some(text) => Some(
            incarnation
                .parse(text, "SequenceNumberForOrdering", &name)?
                .to_string(),
        ),
        None => None,
    };
    let sealed = seal(tenant, (&stream, (&name, created_ms)), &[(&key, &data.0)]).await?;
    let record = PutRecord {
        partition_key: &key,
        data: sealed.as_ref().map_or(&data.0, |sealed| &sealed[0]),
        explicit_hash_key: input.explicit_hash_key.as_deref(),
        sequence_number_for_ordering: ordering.as_deref(),
        encrypted: sealed.is_some(),
    };
    let put: Result<_, ApiError> = stream.put(record).await.map_err(Into::into);
    let mut points = Datapoints::new(tenant, &name);
    let bytes = data.0.len() as f64;
    if let Ok(put) = &put {
        let size = key.len() + data.0.len();
        tenant
            .usage
            .records_put(now_ms(), &name, summary.mode, &[size]);
        let shard = put.shard_id.to_string();
        points
            .stream("PutRecord.Bytes", "Bytes", bytes)
            .stream("IncomingBytes", "Bytes", bytes)
            .stream("IncomingRecords", "Count", 1.0)
            .shard(&shard, "IncomingBytes", "Bytes", bytes)
            .shard(&shard, "IncomingRecords", "Count", 1.0);
    }
    let throttles = kinesis::throttled(put.as_ref().err());
    points.stream("WriteProvisionedThroughputExceeded", "Count", throttles);
    points.finish(&tenant.cloudwatch.store, "PutRecord", started, put.is_ok());
    let put = put?;
    Ok(PutRecordOutput {
        shard_id: put.shard_id.to_string(),
        sequence_number: incarnation.tag(put.sequence_number).to_string(),
        encryption_type: encryption_type(sealed.is_some()),
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordsEntry {
    pub(crate) data: Option<Blob>,
    pub(crate) partition_key: Option<String>,
    pub(crate) explicit_hash_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordsInput {
    pub(crate) stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: Option<String>,
    pub(crate) records: Option<BoundedVec<PutRecordsEntry, 500>>,
}

impl Validate for PutRecordsInput {
    fn validate(&self, v: &mut Validator) {
        v.stream(&self.stream_name, &self.stream_arn);
        v.required("records", &self.records);
        v.size("records", self.records.as_ref().map(|r| r.count), 1, 500);
        for (i, entry) in self.records.iter().flat_map(|r| &r.items).enumerate() {
            let prefix = format!("records.{}.member.", i + 1);
            validate_record(
                v,
                &prefix,
                &entry.data,
                &entry.partition_key,
                &entry.explicit_hash_key,
            );
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct PutRecordsResultEntry {
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "display_option"
    )]
    pub(crate) sequence_number: Option<Tagged>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "display_option"
    )]
    pub(crate) shard_id: Option<ShardId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error_code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error_message: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordsOutput {
    pub(crate) failed_record_count: usize,
    pub(crate) records: Vec<PutRecordsResultEntry>,
    pub(crate) encryption_type: &'static str,
}

/// Writes an optional value through its `Display`, without an intermediate `String`
/// (sequence numbers and shard ids in PutRecords replies).
fn display_option<T: std::fmt::Display, S: serde::Serializer>(
    value: &Option<T>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => serializer.collect_str(value),
        None => serializer.serialize_none(),
    }
}

fn failed_entry(tenant: &Tenant, error: PutError) -> PutRecordsResultEntry {
    // A record of a batch fails only as a throttle or an internal failure (the model's
    // two per-record codes); everything else fails the whole call before anything is written.
    let code = match error.code() {
        ErrorCode::ProvisionedThroughputExceeded => "ProvisionedThroughputExceededException",
        _ => "InternalFailure",
    };
    PutRecordsResultEntry {
        sequence_number: None,
        shard_id: None,
        error_code: Some(code),
        error_message: Some(messages::put(&error, &tenant.account)),
    }
}

pub async fn put_records(
    tenant: &Tenant,
    input: PutRecordsInput,
) -> Result<PutRecordsOutput, ApiError> {
    let started = Instant::now();
    let name = tenant.resolve(&input.stream_name, &input.stream_arn)?;
    tenant.inject_fault(&name)?;
    let entries = input.records.expect("validated").into_items();
    let stream = tenant.engine.stream(&name)?;
    let summary = stream.summary()?;
    let created_ms = summary.created_ms;
    let incarnation = Incarnation::of(created_ms);
    let plain: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|entry| {
            let key = entry.partition_key.as_deref().expect("validated");
            (key, entry.data.as_ref().expect("validated").0.as_slice())
        })
        .collect();
    let sealed = seal(tenant, (&stream, (&name, created_ms)), &plain).await?;
    let records: Vec<PutRecord<'_>> = entries
        .iter()
        .enumerate()
        .map(|(i, entry)| PutRecord {
            partition_key: plain[i].0,
            data: sealed.as_ref().map_or(plain[i].1, |sealed| &sealed[i]),
            explicit_hash_key: entry.explicit_hash_key.as_deref(),
            sequence_number_for_ordering: None,
            encrypted: sealed.is_some(),
        })
        .collect();
    let results = stream.put_batch(&records).await?;
    let mut failed = 0;
    let mut tally = PutTally::new(tenant, &name);
    let mut sizes = Vec::with_capacity(plain.len());
    let records = results
        .into_iter()
        .zip(&plain)
        .map(|(result, (key, data))| match result {
            Ok(put) => {
                tally.put(put.shard_id, data.len());
                sizes.push(key.len() + data.len());
                PutRecordsResultEntry {
                    sequence_number: Some(incarnation.tag(put.sequence_number)),
                    shard_id: Some(put.shard_id),
                    error_code: None,
                    error_message: None,
                }
            }
            Err(error) => {
                failed += 1;
                tally.failed(error.code() == ErrorCode::ProvisionedThroughputExceeded);
                failed_entry(tenant, error)
            }
        })
        .collect();
    tally.finish(&tenant.cloudwatch.store, started);
    tenant
        .usage
        .records_put(now_ms(), &name, summary.mode, &sizes);
    Ok(PutRecordsOutput {
        failed_record_count: failed,
        records,
        encryption_type: encryption_type(sealed.is_some()),
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetShardIteratorInput {
    pub(crate) stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: Option<String>,
    pub(crate) shard_id: Option<String>,
    pub(crate) shard_iterator_type: Option<String>,
    pub(crate) starting_sequence_number: Option<String>,
    pub(crate) timestamp: Option<Timestamp>,
}

impl Validate for GetShardIteratorInput {
    fn validate(&self, v: &mut Validator) {
        v.stream(&self.stream_name, &self.stream_arn);
        v.required("shardId", &self.shard_id);
        v.name("shardId", &self.shard_id);
        v.required("shardIteratorType", &self.shard_iterator_type);
        v.one_of(
            "shardIteratorType",
            &self.shard_iterator_type,
            &ITERATOR_TYPES,
        );
        v.decimal(
            "startingSequenceNumber",
            &self.starting_sequence_number,
            129,
            SEQUENCE_NUMBER_PATTERN,
        );
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetShardIteratorOutput {
    pub(crate) shard_iterator: String,
}

pub async fn get_shard_iterator(
    tenant: &Tenant,
    input: GetShardIteratorInput,
) -> Result<GetShardIteratorOutput, ApiError> {
    let name = tenant.resolve(&input.stream_name, &input.stream_arn)?;
    let start = iterator_start(
        input.shard_iterator_type.as_deref().expect("validated"),
        input.starting_sequence_number.as_deref(),
        input.timestamp,
        (&name, Incarnation::of_stream(tenant, &name)?),
    )?;
    let shard = input.shard_id.as_deref().expect("validated");
    let iterator = tenant.engine.stream(&name)?.shard_iterator(shard, start)?;
    Ok(GetShardIteratorOutput {
        shard_iterator: tenant.engine.iterator_token(&iterator),
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetRecordsInput {
    pub(crate) shard_iterator: Option<String>,
    pub(crate) limit: Option<i64>,
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: Option<String>,
}

impl Validate for GetRecordsInput {
    fn validate(&self, v: &mut Validator) {
        v.required("shardIterator", &self.shard_iterator);
        v.length("shardIterator", &self.shard_iterator, 1, 512);
        // Above 10,000 is InvalidArgumentException (from the engine), as Kinesis answers.
        v.range("limit", self.limit, Some(1), None);
        v.stream_arn("streamARN", &self.stream_arn);
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetRecordsOutput<'a> {
    pub(crate) records: Vec<RecordOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) next_shard_iterator: Option<String>,
    pub(crate) millis_behind_latest: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) child_shards: Vec<ChildShard>,
}

/// GetRecords encodes its reply itself: the records borrow the read's mapping.
pub async fn get_records(
    tenant: &Tenant,
    input: GetRecordsInput,
    protocol: crate::wire::Protocol,
) -> Result<Vec<u8>, ApiError> {
    let started = Instant::now();
    let token = input.shard_iterator.expect("validated");
    let mut iterator = tenant.engine.iterator_from_token(&token)?;
    let stream = iterator.stream_name().to_owned();
    if let Some(arn) = &input.stream_arn
        && tenant.resolve(&None, &Some(arn.clone()))? != stream
    {
        return Err(ApiError::invalid_argument(format!(
            "StreamARN {arn} does not match the shard iterator's stream."
        )));
    }
    tenant.inject_fault(&stream)?;
    let limit = input
        .limit
        .map(|l| usize::try_from(l).unwrap_or(usize::MAX));
    let shard = iterator.shard_id().to_string();
    let read: Result<_, ApiError> = tenant
        .engine
        .get_records(&mut iterator, limit)
        .map_err(Into::into);
    let mut points = Datapoints::new(tenant, &stream);
    if let Ok(records) = &read {
        let read_bytes: usize = records.records().map(|r| r.data.len()).sum();
        if let Ok(summary) = tenant.engine.stream(&stream).and_then(|s| s.summary()) {
            tenant
                .usage
                .records_read(now_ms(), &stream, summary.mode, read_bytes);
        }
        let (count, bytes) = (records.len() as f64, read_bytes as f64);
        let age = records.millis_behind_latest as f64;
        points
            .stream("GetRecords.Records", "Count", count)
            .stream("GetRecords.Bytes", "Bytes", bytes)
            .stream("GetRecords.IteratorAgeMilliseconds", "Milliseconds", age)
            .shard(&shard, "OutgoingRecords", "Count", count)
            .shard(&shard, "OutgoingBytes", "Bytes", bytes)
            .shard(&shard, "IteratorAgeMilliseconds", "Milliseconds", age);
    }
    let throttles = kinesis::throttled(read.as_ref().err());
    points.stream("ReadProvisionedThroughputExceeded", "Count", throttles);
    points.shard(
        &shard,
        "ReadProvisionedThroughputExceeded",
        "Count",
        throttles,
    );
    points.finish(
        &tenant.cloudwatch.store,
        "GetRecords",
        started,
        read.is_ok(),
    );
    let records = read?;
    let output = GetRecordsOutput {
        records: records_out(
            tenant,
            (&stream, Incarnation::of_stream(tenant, &stream)?),
            &records,
        )?,
        next_shard_iterator: (!records.end_of_shard)
            .then(|| tenant.engine.iterator_token(&iterator)),
        millis_behind_latest: records.millis_behind_latest,
        child_shards: child_shards(tenant, &stream, &records)?,
    };
    Ok(crate::reads::encode_with_records(protocol, output))
}

impl<'a> crate::reads::WithRecords<'a> for GetRecordsOutput<'a> {
    fn records_mut(&mut self) -> &mut Vec<RecordOut<'a>> {
        &mut self.records
    }
}

/// A PutRecords call's metrics: records and bytes per shard, failures by kind.
pub(crate) struct PutTally<'a> {
    pub(crate) points: Datapoints<'a>,
    pub(crate) total: usize,
    pub(crate) ok: usize,
    pub(crate) throttled: usize,
    pub(crate) bytes: usize,
    pub(crate) per_shard: std::collections::BTreeMap<ShardId, (usize, usize)>,
}

impl<'a> PutTally<'a> {
    fn new(tenant: &Tenant, stream: &'a str) -> PutTally<'a> {
        PutTally {
            points: Datapoints::new(tenant, stream),
            total: 0,
            ok: 0,
            throttled: 0,
            bytes: 0,
            per_shard: std::collections::BTreeMap::new(),
        }
    }

    fn put(&mut self, shard: ShardId, bytes: usize) {
        self.total += 1;
        self.ok += 1;
        self.bytes += bytes;
        let entry = self.per_shard.entry(shard).or_default();
        entry.0 += 1;
        entry.1 += bytes;
    }

    fn failed(&mut self, throttled: bool) {
        self.total += 1;
        self.throttled += usize::from(throttled);
    }

    fn finish(mut self, store: &crate::cloudwatch::store::MetricStore, started: Instant) {
        let failed = self.total - self.ok - self.throttled;
        let (ok, bytes) = (self.ok as f64, self.bytes as f64);
        self.points
            .stream("PutRecords.TotalRecords", "Count", self.total as f64)
            .stream("PutRecords.SuccessfulRecords", "Count", ok)
            .stream("PutRecords.FailedRecords", "Count", failed as f64)
            .stream(
                "PutRecords.ThrottledRecords",
                "Count",
                self.throttled as f64,
            )
            .stream("PutRecords.Bytes", "Bytes", bytes)
            .stream("IncomingRecords", "Count", ok)
            .stream("IncomingBytes", "Bytes", bytes)
            .stream(
                "WriteProvisionedThroughputExceeded",
                "Count",
                self.throttled as f64,
            );
        for (shard, (records, bytes)) in &self.per_shard {
            let shard = shard.to_string();
            self.points
                .shard(&shard, "IncomingRecords", "Count", *records as f64)
                .shard(&shard, "IncomingBytes", "Bytes", *bytes as f64);
        }
        // Kinesis counts a PutRecords call a success when at least one record went in.
        self.points
            .finish(store, "PutRecords", started, self.ok > 0);
    }
}
