//! agent.json as the Kinesis Agent's users write it: the documentation's keys, comments,
//! numbers as strings; wrong values refused naming their key.

use sluice_agent::config::{AgentConfig, Destination, PartitionKeyOption};
use sluice_agent::process::process;
use std::path::Path;

const AGENT_JSON: &str = r#"{
  // Where the streams are.
  "cloudwatch.emitMetrics": true,
  "kinesis.endpoint": "http://127.0.0.1:4567",
  "firehose.endpoint": "http://127.0.0.1:4567",
  "awsAccessKeyId": "AKIDEXAMPLE",
  "awsSecretAccessKey": "secret",
  "flows": [
    {
      "filePattern": "/var/log/nginx/access.log*",
      "kinesisStream": "weblogs",
      "partitionKeyOption": "DETERMINISTIC",
      "initialPosition": "START_OF_FILE",
      "maxBufferSizeRecords": "250",
      "dataProcessingOptions": [
        {"optionName": "LOGTOJSON", "logFormat": "COMBINEDAPACHELOG"}
      ]
    },
    {
      "filePattern": "/var/log/app/*.csv",
      "deliveryStream": "app-to-s3",
      "skipHeaderLines": 1,
      "multiLineStartPattern": "\\d{4}-",
      "aggregatedRecordSizeBytes": 1000,
      "dataProcessingOptions": [
        {"optionName": "CSVTOJSON", "customFieldNames": ["when", "what"], "delimiter": ";"}
      ]
    }
  ]
}"#;

fn parse(text: &str) -> Result<AgentConfig, String> {
    AgentConfig::parse(text, Path::new("/etc/agent-checkpoints.json")).map_err(|e| e.to_string())
}

#[test]
fn the_documentations_keys_are_read_with_their_defaults() {
    let config = parse(AGENT_JSON).unwrap();
    assert_eq!(
        config.credentials,
        Some(("AKIDEXAMPLE".into(), "secret".into()))
    );
    assert_eq!(
        config.kinesis_endpoint.as_deref(),
        Some("http://127.0.0.1:4567")
    );
    assert_eq!(
        config.checkpoint_file,
        Path::new("/etc/agent-checkpoints.json")
    );
    let [web, app] = &config.flows[..] else {
        panic!("two flows");
    };
    assert_eq!(web.id, "kinesis:weblogs:/var/log/nginx/access.log*");
    assert_eq!(web.destination, Destination::Stream("weblogs".into()));
    assert_eq!(web.partition_key, PartitionKeyOption::Deterministic);
    assert!(!web.start_at_end);
    assert_eq!(
        (web.max_buffer_records, web.max_buffer_bytes),
        (250, 5 * 1024 * 1024)
    );
    assert_eq!(web.max_buffer_age_ms, 60_000);
    assert_eq!(app.id, "fh:app-to-s3:/var/log/app/*.csv");
    assert!(app.start_at_end, "END_OF_FILE by default");
    assert_eq!(
        (app.skip_header_lines, app.max_buffer_bytes),
        (1, 4 * 1024 * 1024)
    );
    assert!(
        app.multi_line_start
            .as_ref()
            .unwrap()
            .is_match(b"2026-12-05;x")
    );
    assert_eq!(
        String::from_utf8(process(&app.processors, b"2026;up\n".to_vec()).unwrap()).unwrap(),
        "{\"when\":\"2026\",\"what\":\"up\"}\n"
    );
    assert_eq!(
        config.ignored,
        [
            "cloudwatch.emitMetrics",
            "flows[1].aggregatedRecordSizeBytes"
        ]
    );
}

#[test]
fn wrong_values_are_refused_naming_their_key() {
    for (from, to, message) in [
        (
            "\"250\"",
            "\"600\"",
            "flows[0].maxBufferSizeRecords: 600 is not a whole number from 1 to 500",
        ),
        (
            "DETERMINISTIC",
            "HASHED",
            "flows[0].partitionKeyOption: HASHED is not RANDOM or DETERMINISTIC",
        ),
        (
            "COMBINEDAPACHELOG",
            "W3C",
            "flows[0].dataProcessingOptions[0].logFormat: W3C is not",
        ),
        (
            "\"CSVTOJSON\", \"customFieldNames\": [\"when\", \"what\"],",
            "\"CSVTOJSON\",",
            "flows[1].dataProcessingOptions[0].customFieldNames: CSVTOJSON names its fields",
        ),
        (
            "\"delimiter\": \";\"",
            "\"delimiter\": \"(\"",
            "flows[1].dataProcessingOptions[0].delimiter",
        ),
        (
            "\"kinesisStream\": \"weblogs\",",
            "",
            "flows[0].kinesisStream: a flow names a kinesisStream or a deliveryStream",
        ),
        (
            "\"awsSecretAccessKey\": \"secret\",",
            "",
            "awsAccessKeyId: is given with awsSecretAccessKey",
        ),
        (
            "\"/var/log/app/*.csv\",\n      \"deliveryStream\": \"app-to-s3\"",
            "\"/var/log/nginx/access.log*\",\n      \"kinesisStream\": \"weblogs\"",
            "the same flow as one before it",
        ),
    ] {
        assert!(AGENT_JSON.contains(from), "{from}");
        let refused = parse(&AGENT_JSON.replacen(from, to, 1)).unwrap_err();
        assert!(refused.contains(message), "{from} -> {to}: {refused}");
    }
    assert!(parse("[]").unwrap_err().contains("is not a JSON object"));
    assert!(
        parse("{}")
            .unwrap_err()
            .contains("flows: lists at least one flow")
    );
}
