//! SigV4 verification of arbitrary requests: the Authorization header, the presigned query,
//! the headers and the dates come from the input. Every request is accepted or refused with
//! an AWS error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_server::auth::{SignedRequest, Verifier};
use sluice_server::config::Credential;
use sluice_server::regions::Regions;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

fn verifier() -> &'static Verifier {
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        let credential = |key: &str, account: Option<&str>, token: Option<&str>| Credential {
            access_key_id: key.into(),
            secret: "secret".into(),
            account: account.map(Into::into),
            session_token: token.map(Into::into),
            policy: None,
        };
        let credentials = [
            credential("AKIDEXAMPLE", None, None),
            credential("AKIDOTHER", Some("111111111111"), Some("token")),
        ];
        Verifier::new(&credentials, "000000000000", Regions::new(["us-east-1".to_owned()]))
            .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    // Lines: method, path, query (empty: none), then headers "name: value", an empty line,
    // then the body.
    let text = String::from_utf8_lossy(data);
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let method = lines.next().unwrap_or("POST");
    let path = lines.next().unwrap_or("/");
    let query = lines.next().filter(|q| !q.is_empty());
    let headers: Vec<(String, &str)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim()))
        .collect();
    let host = headers
        .iter()
        .find(|(name, _)| name == "host")
        .map(|(_, value)| *value);
    let request = SignedRequest {
        method,
        path,
        query,
        headers: headers.clone(),
        host,
        body: body.as_bytes(),
        service: "kinesis",
    };
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_446_327);
    let _ = verifier().verify(&request, now);
});
