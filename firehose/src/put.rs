//! PutRecord and PutRecordBatch into a backing stream: Firehose's limits, durable puts.

use crate::error::FirehoseError;
use crate::service::RecordFailure;
use crate::spec::{BATCH_BYTES_MAX, BATCH_RECORDS_MAX, RECORD_BYTES_MAX};
use sluice_core::{Durability, PutError, PutRecord, Stream};

/// Firehose's limits on a batch: 1 to 500 records, 4 MiB, each record 1 to 1,000 KiB.
pub(crate) fn check_batch(records: &[&[u8]]) -> Result<(), FirehoseError> {
    if records.is_empty() || records.len() > BATCH_RECORDS_MAX {
        return Err(FirehoseError::invalid(format!(
            "A batch holds 1 to {BATCH_RECORDS_MAX} records, not {}.",
            records.len()
        )));
    }
    if let Some((index, record)) = records
        .iter()
        .enumerate()
        .find(|(_, r)| r.is_empty() || r.len() > RECORD_BYTES_MAX)
    {
        return Err(FirehoseError::invalid(format!(
            "Record {index} has {} bytes of data; a record holds 1 to {RECORD_BYTES_MAX}.",
            record.len()
        )));
    }
    let total: usize = records.iter().map(|r| r.len()).sum();
    if total > BATCH_BYTES_MAX {
        return Err(FirehoseError::invalid(format!(
            "The batch holds {total} bytes of data; at most {BATCH_BYTES_MAX} are allowed."
        )));
    }
    Ok(())
}

/// Puts `records` durably, with partition keys counted from `first_key` (Firehose records
/// have none; distinct keys spread them over the backing stream's shards). A record's id is
/// its sequence number. `sealed`: the records are envelopes (flagged so in the log).
pub(crate) async fn put(
    backing: &Stream,
    first_key: u64,
    records: &[&[u8]],
    sealed: bool,
) -> Result<Vec<Result<String, RecordFailure>>, FirehoseError> {
    let keys: Vec<String> = (0..records.len() as u64)
        .map(|i| (first_key + i).to_string())
        .collect();
    let puts: Vec<PutRecord<'_>> = records
        .iter()
        .zip(&keys)
        .map(|(data, key)| PutRecord {
            encrypted: sealed,
            ..PutRecord::new(key, data)
        })
        .collect();
    let results = backing
        .put_batch(&puts)
        .durability(Durability::Durable)
        .await
        .map_err(put_failed)?;
    Ok(results
        .into_iter()
        .map(|result| {
            result
                .map(|put| put.sequence_number.to_string())
                .map_err(|e| RecordFailure {
                    code: "ServiceUnavailableException",
                    message: e.to_string(),
                })
        })
        .collect())
}

/// A put that failed as a whole: nothing was acknowledged.
fn put_failed(error: PutError) -> FirehoseError {
    match error {
        PutError::StreamNotFound { .. } => {
            FirehoseError::Unavailable("The delivery stream's storage is being deleted.".into())
        }
        PutError::RecordTooLarge { .. } => FirehoseError::invalid(error.to_string()),
        other => FirehoseError::Unavailable(other.to_string()),
    }
}
