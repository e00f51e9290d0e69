//! Firehose's Lambda contract: records handed to a function in batches, each answered Ok
//! (with its new data), Dropped or ProcessingFailed. The embedder supplies the function:
//! a closure in the library, or (in `sluice serve`) an endpoint speaking Lambda's Invoke API,
//! which `Invocation::lambda_event` and `parse_lambda_response` put on the wire.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use std::future::Future;
use std::pin::Pin;

/// One call of a transform function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// Distinct per call, the same across its retries.
    pub invocation_id: String,
    /// The delivery stream whose records these are (its name; the embedder makes the ARN).
    pub delivery_stream: String,
    /// The records, in order.
    pub records: Vec<InputRecord>,
}

/// A record handed to a transform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputRecord {
    /// Unique within the invocation; the answer names each record by it.
    pub record_id: String,
    /// When the record reached Sluice (ms since the epoch).
    pub approximate_arrival_timestamp: u64,
    /// Its data.
    pub data: Vec<u8>,
}

/// A transform's answer for one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputRecord {
    /// The input record's id.
    pub record_id: String,
    /// What became of it.
    pub result: RecordResult,
    /// Dynamic partitioning's keys for an Ok record (`metadata.partitionKeys` in Lambda's
    /// answer), which a prefix names as `!{partitionKeyFromLambda:NAME}`; empty for none.
    pub partition_keys: std::collections::BTreeMap<String, String>,
}

impl OutputRecord {
    /// The answer `result` for record `record_id`, with no partition keys.
    pub fn new(record_id: impl Into<String>, result: RecordResult) -> OutputRecord {
        OutputRecord {
            record_id: record_id.into(),
            result,
            partition_keys: Default::default(),
        }
    }
}

/// `result` in Firehose's contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordResult {
    /// Delivered, as this data.
    Ok(Vec<u8>),
    /// Not delivered, on purpose.
    Dropped,
    /// Not delivered: written to the error output with the original data.
    ProcessingFailed,
}

/// What a transform returns: every record's result, or why the call failed as a whole (the
/// call is retried, then its records go to the error output).
pub type TransformFuture = Pin<Box<dyn Future<Output = Result<Vec<OutputRecord>, String>> + Send>>;

/// Transform functions by name (a Lambda ARN, as `LambdaArn` gives it).
pub trait Transforms: Send + Sync + 'static {
    /// Calls `function` on `invocation`.
    fn invoke(&self, function: &str, invocation: Invocation) -> TransformFuture;
}

/// A closure is a transform: `|function, invocation| Ok(results)`.
impl<F> Transforms for F
where
    F: Fn(&str, Invocation) -> Result<Vec<OutputRecord>, String> + Send + Sync + 'static,
{
    fn invoke(&self, function: &str, invocation: Invocation) -> TransformFuture {
        Box::pin(std::future::ready(self(function, invocation)))
    }
}

impl Invocation {
    /// The event a Lambda function receives (Firehose's data-transformation event; data in
    /// base64).
    pub fn lambda_event(&self, delivery_stream_arn: &str, region: &str) -> Vec<u8> {
        let records: Vec<Value> = self
            .records
            .iter()
            .map(|r| {
                json!({
                    "recordId": r.record_id,
                    "approximateArrivalTimestamp": r.approximate_arrival_timestamp,
                    "data": STANDARD.encode(&r.data),
                })
            })
            .collect();
        serde_json::to_vec(&json!({
            "invocationId": self.invocation_id,
            "deliveryStreamArn": delivery_stream_arn,
            "region": region,
            "records": records,
        }))
        .expect("JSON of strings and numbers")
    }
}

/// A Lambda function's answer: `{"records": [{"recordId", "result", "data", "metadata":
/// {"partitionKeys": {...}}}]}`. A record whose result is not one of the three, or whose Ok
/// data is not base64, fails the whole answer (the function is broken: retried, then the
/// error output). Partition keys never do: a null one (or `partitionKeys` not an object) is
/// no key, a number or boolean is its JSON text, an object or array its JSON text too, which
/// no object key takes, so it fails only its record, and only if a prefix names it.
pub fn parse_lambda_response(body: &[u8]) -> Result<Vec<OutputRecord>, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the answer is not JSON: {e}"))?;
    let records = value
        .get("records")
        .and_then(Value::as_array)
        .ok_or("the answer has no records array")?;
    records
        .iter()
        .map(|record| {
            let field = |name: &str| record.get(name).and_then(Value::as_str);
            let record_id = field("recordId").ok_or("a record has no recordId")?.to_owned();
            let result = match field("result") {
                Some("Ok") => {
                    let data = field("data").ok_or("an Ok record has no data")?;
                    RecordResult::Ok(
                        STANDARD
                            .decode(data)
                            .map_err(|e| format!("record {record_id}: data is not base64: {e}"))?,
                    )
                }
                Some("Dropped") => RecordResult::Dropped,
                Some("ProcessingFailed") => RecordResult::ProcessingFailed,
                other => {
                    return Err(format!(
                        "record {record_id}: result {other:?} is not Ok, Dropped or ProcessingFailed"
                    ));
                }
            };
            let partition_keys = partition_keys(record);
            Ok(OutputRecord {
                record_id,
                result,
                partition_keys,
            })
        })
        .collect()
}

/// A record's `metadata.partitionKeys` (see [`parse_lambda_response`]).
fn partition_keys(record: &Value) -> std::collections::BTreeMap<String, String> {
    let keys = record
        .get("metadata")
        .and_then(|m| m.get("partitionKeys"))
        .and_then(Value::as_object);
    keys.into_iter()
        .flatten()
        .filter_map(|(name, value)| {
            let text = match value {
                Value::Null => return None,
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            Some((name.clone(), text))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_and_answers_take_lambdas_wire_form() {
        let invocation = Invocation {
            invocation_id: "inv-1".into(),
            delivery_stream: "s".into(),
            records: vec![InputRecord {
                record_id: "r0".into(),
                approximate_arrival_timestamp: 7,
                data: b"hi".to_vec(),
            }],
        };
        let event: Value = serde_json::from_slice(
            &invocation.lambda_event("arn:aws:firehose:us-east-1:1:deliverystream/s", "us-east-1"),
        )
        .unwrap();
        assert_eq!(event["records"][0]["data"], "aGk=");
        assert_eq!(event["records"][0]["approximateArrivalTimestamp"], 7);
        assert_eq!(event["invocationId"], "inv-1");
        let answer = br#"{"records":[{"recordId":"a","result":"Ok","data":"SEk="},
            {"recordId":"b","result":"Dropped"},{"recordId":"c","result":"ProcessingFailed"}]}"#;
        assert_eq!(
            parse_lambda_response(answer).unwrap(),
            vec![
                OutputRecord::new("a", RecordResult::Ok(b"HI".to_vec())),
                OutputRecord::new("b", RecordResult::Dropped),
                OutputRecord::new("c", RecordResult::ProcessingFailed),
            ]
        );
        let keyed = br#"{"records":[{"recordId":"a","result":"Ok","data":"",
            "metadata":{"partitionKeys":{"customer":"c-1","year":2026,"vip":true,"gone":null,
            "odd":{"x":1}}}},
            {"recordId":"b","result":"Ok","data":"","metadata":{"partitionKeys":[]}}]}"#;
        let answers = parse_lambda_response(keyed).unwrap();
        assert!(answers[1].partition_keys.is_empty());
        let keys = &answers[0].partition_keys;
        let expected = [
            ("customer", "c-1"),
            ("odd", r#"{"x":1}"#),
            ("vip", "true"),
            ("year", "2026"),
        ];
        assert_eq!(
            keys.iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
            expected
        );
        for broken in [
            &b"nope"[..],
            br#"{"records":[{"recordId":"a","result":"Maybe"}]}"#,
            br#"{"records":[{"recordId":"a","result":"Ok","data":"***"}]}"#,
            br#"{"records":[{"result":"Ok","data":""}]}"#,
            br#"{}"#,
        ] {
            assert!(parse_lambda_response(broken).is_err(), "{broken:?}");
        }
    }
}
