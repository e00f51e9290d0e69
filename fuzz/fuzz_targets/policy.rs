//! IAM-style policy documents: arbitrary text parsed as an identity and as a resource
//! policy, and every one that parses evaluated against requests. Never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_server::iam::{Policy, Principal, Request, decide};
use std::time::{Duration, SystemTime};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let identity = Policy::parse(text).ok();
    let resource = Policy::parse_resource(text).ok();
    if identity.is_none() && resource.is_none() {
        return;
    }
    let principal = Principal {
        account: "000000000000".into(),
        user: "AKIDEXAMPLE".into(),
    };
    for (action, resource_arn) in [
        ("kinesis:PutRecord", "arn:aws:kinesis:us-east-1:000000000000:stream/orders"),
        ("kinesis:GetRecords", "arn:aws:kinesis:eu-west-1:111111111111:stream/x/consumer/c:1"),
        ("firehose:PutRecordBatch", "*"),
    ] {
        let request = Request {
            action,
            resource: resource_arn,
            principal: &principal,
            source_ip: Some("10.1.2.3".parse().unwrap()),
            secure_transport: data.len() % 2 == 0,
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_446_327),
            region: "us-east-1",
        };
        let _ = decide(identity.as_ref(), resource.as_ref(), "000000000000", &request);
    }
});
