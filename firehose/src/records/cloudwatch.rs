//! Firehose's `CloudWatchLogProcessing` processor with `DataMessageExtraction` `true`: a
//! CloudWatch Logs subscription record (already decompressed) becomes its log events' messages,
//! one output record each.

use serde::Deserialize;

/// A subscription filter's record. Its `messageType` picks the variant; fields that are not
/// read here (`policyLevel`, ...) are ignored, as CloudWatch Logs adds some over time.
#[derive(Deserialize)]
#[serde(tag = "messageType")]
enum Message {
    /// Log events of one log stream.
    #[serde(rename = "DATA_MESSAGE")]
    Data(DataMessage),
    /// CloudWatch Logs checking that the destination is reachable; it carries no log data.
    #[serde(rename = "CONTROL_MESSAGE")]
    Control {},
}

/// The body of a `DATA_MESSAGE`. Every field is required: a record missing one is not what a
/// subscription filter sends, and is failed rather than guessed at.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(
    dead_code,
    reason = "owner and the others are read only to require them"
)]
struct DataMessage {
    owner: String,
    log_group: String,
    log_stream: String,
    subscription_filters: Vec<String>,
    log_events: Vec<LogEvent>,
}

/// One log event.
#[derive(Deserialize)]
#[allow(dead_code, reason = "id and timestamp are read only to require them")]
struct LogEvent {
    id: String,
    timestamp: i64,
    message: String,
}

/// Extracts the log messages of a CloudWatch Logs subscription record: for a `DATA_MESSAGE`,
/// each log event's `message` in order, as its own record, with no delimiter added (the caller
/// adds one if the delivery stream asks); for a `CONTROL_MESSAGE`, nothing (Firehose drops
/// it). Anything else — not JSON, another `messageType`, a missing or mistyped field — is an
/// error naming what is wrong.
pub(crate) fn extract_messages(record: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let message: Message = serde_json::from_slice(record)
        .map_err(|e| format!("not a CloudWatch Logs subscription record: {e}"))?;
    Ok(match message {
        Message::Data(data) => data
            .log_events
            .into_iter()
            .map(|event| event.message.into_bytes())
            .collect(),
        Message::Control {} => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;
    use serde_json::json;

    use super::*;
    use crate::records::gunzip;

    /// A `DATA_MESSAGE` as a subscription filter on a Lambda function's log group sends it.
    fn data_message() -> serde_json::Value {
        json!({
            "messageType": "DATA_MESSAGE",
            "owner": "123456789012",
            "logGroup": "/aws/lambda/checkout",
            "logStream": "2024/05/01/[$LATEST]0f1e2d3c4b5a69788796a5b4c3d2e1f0",
            "subscriptionFilters": ["checkout-to-firehose"],
            "logEvents": [
                {
                    "id": "37920112419400941592049127843276126428447286542186840064",
                    "timestamp": 1_714_521_600_000_i64,
                    "message": "START RequestId: 6f3c Version: $LATEST\n"
                },
                {
                    "id": "37920112419400941592049127843276126428447286542186840065",
                    "timestamp": 1_714_521_600_012_i64,
                    "message": "{\"level\":\"info\",\"msg\":\"paid\",\"amount\":12.5}"
                },
                {
                    "id": "37920112419400941592049127843276126428447286542186840066",
                    "timestamp": 1_714_521_600_020_i64,
                    "message": "naïve ☃ unicode"
                }
            ]
        })
    }

    #[test]
    fn a_gzipped_data_message_becomes_its_messages() {
        // As Firehose gets it from CloudWatch Logs: gzipped, then Decompression, then this.
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder
            .write_all(&serde_json::to_vec(&data_message()).unwrap())
            .unwrap();
        let record = encoder.finish().unwrap();
        let json = gunzip(&record, 1 << 20).unwrap();
        assert_eq!(
            extract_messages(&json).unwrap(),
            vec![
                b"START RequestId: 6f3c Version: $LATEST\n".to_vec(),
                br#"{"level":"info","msg":"paid","amount":12.5}"#.to_vec(),
                "naïve ☃ unicode".as_bytes().to_vec(),
            ]
        );
    }

    #[test]
    fn a_control_message_is_dropped() {
        let control = json!({
            "messageType": "CONTROL_MESSAGE",
            "owner": "CloudwatchLogs",
            "logGroup": "",
            "logStream": "",
            "subscriptionFilters": [],
            "logEvents": [{
                "id": "",
                "timestamp": 1_714_521_600_000_i64,
                "message": "CWL CONTROL MESSAGE: Checking health of destination Firehose."
            }]
        });
        let record = serde_json::to_vec(&control).unwrap();
        assert_eq!(extract_messages(&record).unwrap(), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn unknown_fields_are_ignored_and_no_events_is_no_records() {
        let mut message = data_message();
        message["policyLevel"] = json!("ACCOUNT_LEVEL_POLICY");
        message["logEvents"] = json!([]);
        let record = serde_json::to_vec(&message).unwrap();
        assert_eq!(extract_messages(&record).unwrap(), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn every_missing_field_is_named() {
        for field in [
            "messageType",
            "owner",
            "logGroup",
            "logStream",
            "subscriptionFilters",
        ] {
            let mut message = data_message();
            message.as_object_mut().unwrap().remove(field);
            let err = extract_messages(&serde_json::to_vec(&message).unwrap()).unwrap_err();
            assert!(err.contains(field), "{field}: {err}");
        }
        for field in ["id", "timestamp", "message"] {
            let mut message = data_message();
            message["logEvents"][1]
                .as_object_mut()
                .unwrap()
                .remove(field);
            let err = extract_messages(&serde_json::to_vec(&message).unwrap()).unwrap_err();
            assert!(err.contains(field), "{field}: {err}");
        }
        let mut message = data_message();
        message.as_object_mut().unwrap().remove("logEvents");
        let err = extract_messages(&serde_json::to_vec(&message).unwrap()).unwrap_err();
        assert!(err.contains("logEvents"), "{err}");
    }

    #[test]
    fn wrong_types_and_other_message_types_are_refused() {
        let mut message = data_message();
        message["logEvents"][0]["message"] = json!(42);
        assert!(extract_messages(&serde_json::to_vec(&message).unwrap()).is_err());
        let mut message = data_message();
        message["messageType"] = json!("AUDIT_MESSAGE");
        let err = extract_messages(&serde_json::to_vec(&message).unwrap()).unwrap_err();
        assert!(err.contains("AUDIT_MESSAGE"), "{err}");
    }

    #[test]
    fn data_that_is_not_json_is_refused() {
        for record in [
            &b""[..],
            b"\x1f\x8b\x08\x00",
            b"plain log line",
            b"[1,2]",
            b"{\"a\":",
        ] {
            let err = extract_messages(record).unwrap_err();
            assert!(
                err.starts_with("not a CloudWatch Logs subscription record"),
                "{err}"
            );
        }
    }
}
