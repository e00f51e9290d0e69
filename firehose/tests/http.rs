//! The HTTP endpoint destination against a real engine and a scripted local HTTP server:
//! requests as Firehose makes them (headers, gzip, base64 records), 5xx and timeouts tried
//! again under the same request id, a 413 not, and records the endpoint did not take in the
//! error output.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use serde_json::Value;
use sluice_firehose::*;
use std::collections::VecDeque;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[path = "support/local.rs"]
mod local;
use local::{Local, open, until};

/// What the endpoint answers, request by request; after the script, 200.
#[derive(Clone, Copy, Debug)]
enum Answer {
    Ok,
    Status(u16),
    /// Never answers (the attempt times out).
    Hang,
    /// 200 with another request id.
    WrongId,
}

/// A request as the endpoint saw it.
#[derive(Debug, Clone)]
struct Seen {
    headers: hyper::HeaderMap,
    /// The body, gunzipped when it came gzipped.
    body: Value,
}

#[derive(Default)]
struct Script {
    answers: VecDeque<Answer>,
    seen: Vec<Seen>,
}

/// A local endpoint following `script`; its `http://` URL.
async fn endpoint(script: Arc<Mutex<Script>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ingest?token=1", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let script = script.clone();
            let service =
                hyper::service::service_fn(move |request| answer(script.clone(), request));
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
            );
        }
    });
    url
}

async fn answer(
    script: Arc<Mutex<Script>>,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let headers = request.headers().clone();
    let raw = request.into_body().collect().await?.to_bytes();
    let gzipped = headers.get("content-encoding").is_some_and(|v| v == "gzip");
    let json = if gzipped { gunzip(&raw) } else { raw.to_vec() };
    let body: Value = serde_json::from_slice(&json).unwrap();
    let id = body["requestId"].as_str().unwrap().to_owned();
    let next = {
        let mut script = script.lock().unwrap();
        script.seen.push(Seen { headers, body });
        script.answers.pop_front().unwrap_or(Answer::Ok)
    };
    let reply = |status: u16, id: &str| {
        let body = format!(r#"{{"requestId":"{id}","timestamp":1}}"#);
        Ok(Response::builder()
            .status(StatusCode::from_u16(status).unwrap())
            .body(Full::new(Bytes::from(body)))
            .unwrap())
    };
    match next {
        Answer::Ok => reply(200, &id),
        Answer::Status(status) => reply(status, &id),
        Answer::WrongId => reply(200, "not-the-id"),
        Answer::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            reply(200, &id)
        }
    }
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn setup() -> Local {
    Local::new()
}

fn spec(name: &str, endpoint: HttpEndpoint) -> DeliveryStreamSpec {
    DeliveryStreamSpec {
        name: name.into(),
        source: Source::DirectPut,
        destination: Destination {
            bucket: "backup".into(),
            prefix: String::new(),
            buffering: BufferingHints::new(1, 0).unwrap(),
            compression: Compression::Uncompressed,
            processors: Vec::new(),
            error_output_prefix: String::new(),
            target: Target::Http(endpoint),
            conversion: None,
            backup: None,
        },
        metadata: Default::default(),
    }
}

/// The records a request carried, decoded.
fn records(seen: &Seen) -> Vec<Vec<u8>> {
    seen.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| STANDARD.decode(r["data"].as_str().unwrap()).unwrap())
        .collect()
}

/// The error output's envelopes, by object key.
fn error_output(root: &Path) -> Vec<(String, Vec<Value>)> {
    local::files(root)
        .into_iter()
        .map(|(key, data)| {
            let text = String::from_utf8(data).unwrap();
            let envelopes = text.lines().map(|l| serde_json::from_str(l).unwrap());
            (key, envelopes.collect())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_arrive_as_firehose_requests_under_one_id_across_retries() {
    let setup = setup();
    let script = Arc::new(Mutex::new(Script::default()));
    script.lock().unwrap().answers = [
        Answer::Status(500),
        Answer::Hang,
        Answer::WrongId,
        Answer::Status(503),
    ]
    .into();
    let mut endpoint = HttpEndpoint::new(endpoint(script.clone()).await);
    endpoint.gzip = true;
    endpoint.access_key = Some("secret-key".into());
    endpoint.common_attributes = [("env".to_owned(), "test".to_owned())].into();
    endpoint.request_timeout_ms = 1500;
    endpoint.source_arn = "arn:aws:firehose:us-east-1:123456789012:deliverystream/web".into();
    setup.firehose.create(spec("web", endpoint)).await.unwrap();
    let puts: Vec<Vec<u8>> = (0..10)
        .map(|i| format!("{{\"n\":{i}}}").into_bytes())
        .collect();
    let refs: Vec<&[u8]> = puts.iter().map(Vec::as_slice).collect();
    let failed = setup.firehose.put_record_batch("web", &refs).await.unwrap();
    assert!(failed.iter().all(Result::is_ok));
    let stats = || setup.firehose.describe("web").unwrap().stats;
    until("delivery", || stats().delivered_records == 10).await;

    let seen = script.lock().unwrap().seen.clone();
    assert_eq!(seen.len(), 5, "500, a timeout, a wrong id, 503, then 200");
    let id = seen[0].headers["x-amz-firehose-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    for request in &seen {
        let header = |name: &str| request.headers[name].to_str().unwrap().to_owned();
        assert_eq!(
            header("x-amz-firehose-request-id"),
            id,
            "the same id on every attempt"
        );
        assert_eq!(request.body["requestId"], id.as_str());
        assert_eq!(header("x-amz-firehose-access-key"), "secret-key");
        assert_eq!(header("x-amz-firehose-protocol-version"), "1.0");
        assert_eq!(header("content-type"), "application/json");
        assert_eq!(header("content-encoding"), "gzip");
        assert_eq!(
            header("x-amz-firehose-source-arn"),
            "arn:aws:firehose:us-east-1:123456789012:deliverystream/web"
        );
        let attributes: Value =
            serde_json::from_str(&header("x-amz-firehose-common-attributes")).unwrap();
        assert_eq!(attributes["commonAttributes"]["env"], "test");
        assert!(request.body["timestamp"].as_u64().unwrap() > 1_700_000_000_000);
        assert_eq!(records(request), puts, "every record, in order");
    }
    let stats = stats();
    assert_eq!((stats.undelivered_records, stats.objects), (0, 1));
    assert_eq!(
        stats.failures, 4,
        "each failed attempt is reported while retried"
    );
    assert!(stats.last_error.unwrap().contains("503"));
    assert!(error_output(&setup.dir.path().join("buckets")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_413_is_not_retried_and_its_records_go_to_the_error_output() {
    let setup = setup();
    let script = Arc::new(Mutex::new(Script::default()));
    script.lock().unwrap().answers = [Answer::Status(413)].into();
    let endpoint = HttpEndpoint::new(endpoint(script.clone()).await);
    setup.firehose.create(spec("big", endpoint)).await.unwrap();
    let refs: [&[u8]; 3] = [b"one", b"two", b"three"];
    setup.firehose.put_record_batch("big", &refs).await.unwrap();
    let stats = || setup.firehose.describe("big").unwrap().stats;
    until("the error output", || stats().undelivered_records == 3).await;
    assert_eq!(script.lock().unwrap().seen.len(), 1, "a 413 is tried once");

    let found = error_output(&setup.dir.path().join("buckets").join("backup"));
    assert_eq!(found.len(), 1, "{found:?}");
    let (key, envelopes) = &found[0];
    assert!(key.starts_with("http-endpoint-failed/20"), "{key}");
    let raw: Vec<Vec<u8>> = envelopes
        .iter()
        .map(|e| STANDARD.decode(e["rawData"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(raw, refs.map(<[u8]>::to_vec));
    for envelope in envelopes {
        assert_eq!(envelope["errorCode"], "HttpEndpoint.DestinationException");
        assert_eq!(envelope["attemptsMade"], 1);
        assert!(envelope["errorMessage"].as_str().unwrap().contains("413"));
        assert!(envelope["arrivalTimestamp"].as_u64().unwrap() > 1_700_000_000_000);
    }

    // The endpoint takes the next records: delivery goes on.
    setup.firehose.put_record("big", b"four").await.unwrap();
    until("the next request", || stats().delivered_records == 1).await;
    assert_eq!(
        records(&script.lock().unwrap().seen[1]),
        vec![b"four".to_vec()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_past_the_retry_duration_land_in_the_error_output() {
    let setup = setup();
    let script = Arc::new(Mutex::new(Script::default()));
    script.lock().unwrap().answers = std::iter::repeat_n(Answer::Status(503), 1000).collect();
    let mut endpoint = HttpEndpoint::new(endpoint(script.clone()).await);
    endpoint.retry_ms = 1500;
    let mut spec = spec("down", endpoint);
    spec.destination.error_output_prefix = "failed/!{firehose:error-output-type}/".into();
    setup.firehose.create(spec).await.unwrap();
    setup.firehose.put_record("down", b"lost?").await.unwrap();
    let stats = || setup.firehose.describe("down").unwrap().stats;
    until("the error output", || stats().undelivered_records == 1).await;

    let seen = script.lock().unwrap().seen.clone();
    assert!(
        seen.len() >= 2,
        "tried again within the duration: {}",
        seen.len()
    );
    let ids: Vec<&Value> = seen.iter().map(|s| &s.body["requestId"]).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let found = error_output(&setup.dir.path().join("buckets").join("backup"));
    assert_eq!(found.len(), 1);
    assert!(
        found[0].0.starts_with("failed/http-endpoint-failed/"),
        "{}",
        found[0].0
    );
    assert_eq!(found[0].1[0]["attemptsMade"], seen.len());
    assert_eq!(found[0].1[0]["rawData"], STANDARD.encode(b"lost?"));
    assert!(stats().last_error.unwrap().contains("503"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_endpoints_are_refused_at_creation() {
    let setup = setup();
    let bad = [
        HttpEndpoint::new("https://user@example.com/"),
        HttpEndpoint::new("ftp://example.com/"),
        HttpEndpoint::new("http:///path"),
        HttpEndpoint {
            retry_ms: HTTP_RETRY_MS_MAX + 1000,
            ..HttpEndpoint::new("http://127.0.0.1:9/")
        },
        HttpEndpoint {
            access_key: Some("line\nbreak".into()),
            ..HttpEndpoint::new("http://127.0.0.1:9/")
        },
        HttpEndpoint::new("http://127.0.0.1:99999/"),
        HttpEndpoint::new("http://user:pw@127.0.0.1:9/"),
        HttpEndpoint::new("http://127.0.0.1:9/a path"),
        HttpEndpoint {
            common_attributes: [("k".to_owned(), "del\u{7f}".to_owned())].into(),
            ..HttpEndpoint::new("http://127.0.0.1:9/")
        },
    ];
    for endpoint in bad {
        let error = setup.firehose.create(spec("bad", endpoint.clone())).await;
        assert!(
            matches!(error, Err(FirehoseError::InvalidArgument(_))),
            "{endpoint:?}: {error:?}"
        );
    }
    let mut large = spec("bad", HttpEndpoint::new("http://127.0.0.1:9/"));
    large.destination.buffering = BufferingHints::new(65, 60).unwrap();
    assert!(matches!(
        setup.firehose.create(large).await,
        Err(FirehoseError::InvalidArgument(_))
    ));
    assert!(
        setup.firehose.list(10, None, None).0.is_empty(),
        "nothing was created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_a_restart_interrupted_is_sent_again_and_counted() {
    let setup = setup();
    let script = Arc::new(Mutex::new(Script::default()));
    script.lock().unwrap().answers = [Answer::Hang].into();
    let mut endpoint = HttpEndpoint::new(endpoint(script.clone()).await);
    endpoint.request_timeout_ms = 3_600_000;
    setup.firehose.create(spec("web", endpoint)).await.unwrap();
    let refs: [&[u8]; 4] = [b"a", b"b", b"c", b"d"];
    setup.firehose.put_record_batch("web", &refs).await.unwrap();
    until("the first request", || {
        !script.lock().unwrap().seen.is_empty()
    })
    .await;
    // Stopped while the endpoint holds the request: whether it took the records is
    // unknown, as after a kill.
    setup.firehose.close().await;
    drop(setup.firehose);

    let firehose = open(setup.dir.path(), &setup.engine);
    let stats = || firehose.describe("web").unwrap().stats;
    until("delivery after the restart", || {
        stats().delivered_records == 4
    })
    .await;
    let stats = stats();
    assert_eq!(stats.redelivered_records, 4, "counted as sent again");
    let seen = script.lock().unwrap().seen.clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        records(&seen[1]),
        refs.map(<[u8]>::to_vec),
        "the same records again"
    );
    assert!(error_output(&setup.dir.path().join("buckets")).is_empty());
}
