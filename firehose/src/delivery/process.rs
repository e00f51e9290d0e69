//! A delivery stream's Lambda transform applied to the records of one object, as Firehose
//! does: in calls of at most `BufferSizeInMBs` of records, each call retried on failure;
//! Ok records delivered as the function changed them, Dropped ones not, and failed ones
//! (ProcessingFailed, missing from the answer, or in a call that kept failing) written to
//! the error output in Firehose's envelope.

use super::buffer::Records;
use super::retry::Failure;
use super::{Interrupted, RETRY_MAX, failed, now_ms, sleep};
use crate::naming::{Keys, lambda_key};
use crate::transform::{InputRecord, Invocation, OutputRecord, RecordResult, Transforms};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A failed call is retried after this, doubling.
const RETRY_FIRST: Duration = Duration::from_millis(100);

/// The transform of one delivery stream.
#[derive(Clone)]
pub(super) struct Lambda {
    /// `None` when the `Firehose` has none (restarted without them): the flush fails and
    /// is retried, its records kept in the source, rather than failing them.
    pub(super) transforms: Option<Arc<dyn Transforms>>,
    /// The function (its Lambda ARN).
    pub(super) function: String,
    /// Retries of a failed call before its records go to the error output.
    pub(super) retries: u32,
    /// Most record bytes per call.
    pub(super) call_bytes: usize,
    pub(super) delivery_stream: String,
    /// Asked to stop: calls and pauses between them give way.
    pub(super) stop: watch::Receiver<bool>,
}

/// What became of an object's records.
#[derive(Default)]
pub(super) struct Processed {
    /// The records that go on.
    pub(super) records: Records,
    /// With dynamic partitioning, each record's partition keys; otherwise empty.
    pub(super) keys: Vec<Keys>,
    pub(super) dropped: u64,
    /// The error output: one JSON envelope per failed record, a line each.
    pub(super) failed: Vec<u8>,
    pub(super) failed_records: u64,
}

impl Processed {
    /// What a later step made of these records: its records, and both steps' drops and
    /// failures.
    pub(super) fn then(mut self, later: Processed) -> Processed {
        self.failed.extend_from_slice(&later.failed);
        Processed {
            records: later.records,
            keys: later.keys,
            dropped: self.dropped + later.dropped,
            failed: self.failed,
            failed_records: self.failed_records + later.failed_records,
        }
    }
}

/// One record to the error output, in Firehose's processing-failed envelope (a line of
/// JSON; `lambdaArn` for the transform's failures).
pub(super) fn envelope(
    out: &mut Vec<u8>,
    failure: &Failure,
    data: &[u8],
    arrival: u64,
    lambda_arn: Option<&str>,
) {
    let mut envelope = json!({
        "attemptsMade": failure.attempts,
        "arrivalTimestamp": arrival,
        "errorCode": failure.code,
        "errorMessage": failure.message,
        "attemptEndingTimestamp": now_ms(),
        "rawData": STANDARD.encode(data),
    });
    if let Some(arn) = lambda_arn {
        envelope["lambdaArn"] = json!(arn);
    }
    serde_json::to_writer(&mut *out, &envelope).expect("JSON into a Vec");
    out.push(b'\n');
}

impl Lambda {
    /// Hands every record to the function and sorts the answers.
    pub(super) async fn process(&self, records: &Records) -> Result<Processed, Interrupted> {
        let Some(transforms) = &self.transforms else {
            return Err(failed(
                "transform",
                "no transform functions are configured here (sluice serve: --firehose-lambda-endpoint)",
            ));
        };
        let records: Vec<(&[u8], u64)> = records.iter().collect();
        let mut processed = Processed::default();
        let mut rest = &records[..];
        while !rest.is_empty() {
            let mut bytes = 0;
            let count = rest
                .iter()
                .take_while(|(data, _)| {
                    bytes += data.len();
                    bytes <= self.call_bytes
                })
                .count()
                .max(1);
            let (call, after) = rest.split_at(count);
            self.call(transforms, call, &mut processed).await?;
            rest = after;
        }
        Ok(processed)
    }

    /// One call (and its retries) for `records`.
    async fn call(
        &self,
        transforms: &Arc<dyn Transforms>,
        records: &[(&[u8], u64)],
        out: &mut Processed,
    ) -> Result<(), Interrupted> {
        let invocation = Invocation {
            invocation_id: uuid::Uuid::new_v4().to_string(),
            delivery_stream: self.delivery_stream.clone(),
            records: records
                .iter()
                .enumerate()
                .map(|(i, (data, arrival))| InputRecord {
                    record_id: i.to_string(),
                    approximate_arrival_timestamp: *arrival,
                    data: data.to_vec(),
                })
                .collect(),
        };
        let (answer, attempts) = self.invoke(transforms, invocation).await?;
        match answer {
            Ok(answers) => self.sort(records, &answers, attempts, out),
            Err(message) => {
                let failure = Failure {
                    code: "Lambda.FunctionError",
                    message,
                    attempts,
                };
                for (data, arrival) in records {
                    self.fail(out, data, *arrival, &failure);
                }
            }
        }
        Ok(())
    }

    /// Calls the function, retrying a failed call; the last outcome and the attempts made.
    /// A stop request ends it at once (the flush is dropped, its records read again).
    async fn invoke(
        &self,
        transforms: &Arc<dyn Transforms>,
        invocation: Invocation,
    ) -> Result<(Result<Vec<OutputRecord>, String>, u32), Interrupted> {
        let mut stop = self.stop.clone();
        let (mut attempts, mut pause) = (0, RETRY_FIRST);
        loop {
            attempts += 1;
            if *stop.borrow() {
                return Err(Interrupted::Stop);
            }
            let outcome = tokio::select! {
                outcome = transforms.invoke(&self.function, invocation.clone()) => outcome,
                _ = stop.changed() => return Err(Interrupted::Stop),
            };
            if outcome.is_ok() || attempts > self.retries {
                return Ok((outcome, attempts));
            }
            sleep(&mut stop, pause).await?;
            pause = (pause * 2).min(RETRY_MAX);
        }
    }

    /// Sorts a call's records by the function's answers: each input id answered once (a
    /// missing or repeated one fails its record).
    fn sort(
        &self,
        records: &[(&[u8], u64)],
        answers: &[OutputRecord],
        attempts: u32,
        out: &mut Processed,
    ) {
        type Answer<'a> = (&'a RecordResult, &'a BTreeMap<String, String>);
        let mut by_id: HashMap<&str, Option<Answer<'_>>> = HashMap::new();
        for answer in answers {
            by_id
                .entry(answer.record_id.as_str())
                .and_modify(|seen| *seen = None)
                .or_insert(Some((&answer.result, &answer.partition_keys)));
        }
        for (i, (data, arrival)) in records.iter().enumerate() {
            let failed = |code, message: &str| Failure {
                code,
                message: message.to_owned(),
                attempts,
            };
            let failure = match by_id.get(i.to_string().as_str()) {
                Some(Some((RecordResult::Ok(new), keys))) => {
                    out.records.push(new, *arrival);
                    // Held apart from the query's keys (`lambda_key`).
                    out.keys.push(
                        keys.iter()
                            .map(|(k, v)| (lambda_key(k), v.clone()))
                            .collect(),
                    );
                    continue;
                }
                Some(Some((RecordResult::Dropped, _))) => {
                    out.dropped += 1;
                    continue;
                }
                Some(Some((RecordResult::ProcessingFailed, _))) => failed(
                    "Lambda.ProcessingFailed",
                    "The function answered ProcessingFailed.",
                ),
                Some(None) => failed(
                    "Lambda.DuplicatedRecordId",
                    "The function answered this record more than once.",
                ),
                None => failed(
                    "Lambda.MissingRecordId",
                    "The function's answer left this record out.",
                ),
            };
            self.fail(out, data, *arrival, &failure);
        }
    }

    /// One record to the error output, in Firehose's processing-failed envelope.
    fn fail(&self, out: &mut Processed, data: &[u8], arrival: u64, failure: &Failure) {
        envelope(
            &mut out.failed,
            failure,
            data,
            arrival,
            Some(&self.function),
        );
        out.failed_records += 1;
    }
}
