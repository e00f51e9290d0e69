//! `sluice agent` against a real `sluice serve`: an access log written, rotated by rename and
//! by copy and truncate, its agent killed with SIGKILL and started again, and every line is
//! in the stream, converted by LOGTOJSON, with duplicates bounded by one batch; puts signed
//! for a server that verifies signatures; a CSV file delivered by a delivery stream as JSON.

mod common;

use common::TestServer;
use serde_json::{Value, json};
use sluice_loadgen::client::KinesisClient;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Records a put may hold: the bound on the lines a kill may send twice.
const BATCH: usize = 100;

fn agent_json(server: &TestServer, logs: &Path, secret: &str) -> PathBuf {
    let config = json!({
        "kinesis.endpoint": server.endpoint(),
        "awsAccessKeyId": "AKIDAGENT",
        "awsSecretAccessKey": secret,
        "cloudwatch.emitMetrics": false,
        "flows": [{
            "filePattern": format!("{}/access.log*", logs.display()),
            "kinesisStream": "weblogs",
            "initialPosition": "START_OF_FILE",
            "maxBufferAgeMillis": 1000,
            "maxBufferSizeRecords": BATCH,
            "minTimeBetweenFilePollsMillis": 20,
            "retryInitialBackoffMillis": 50,
            "retryMaxBackoffMillis": 500,
            "dataProcessingOptions": [{"optionName": "LOGTOJSON", "logFormat": "COMMONAPACHELOG"}]
        }]
    });
    let path = logs.join("agent.json");
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

/// `sluice agent` on `config`; killed when dropped.
struct AgentProcess(Child);

impl AgentProcess {
    fn start(config: &Path) -> AgentProcess {
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["agent", "--report-seconds", "1", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting sluice agent");
        AgentProcess(child)
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Appends access-log lines `ids` (each names its id in the request's path), and a line
/// that is not one every 50 (LOGTOJSON drops it).
fn write_lines(path: &Path, ids: std::ops::Range<usize>) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for id in ids {
        writeln!(
            file,
            "10.0.0.{} - - [05/Dec/2026:21:00:00 +0000] \"GET /page/{id} HTTP/1.1\" 200 {}",
            id % 250,
            100 + id
        )
        .unwrap();
        if id % 50 == 0 {
            writeln!(file, "not an access log line {id}").unwrap();
        }
    }
}

async fn create_stream(server: &TestServer, name: &str, shards: u32) {
    let mut client = KinesisClient::connect(server.address).await.unwrap();
    let _: Value = client
        .call(
            "CreateStream",
            &json!({"StreamName": name, "ShardCount": shards}),
        )
        .await
        .unwrap();
}

/// The ids of the page requests the stream holds, and how often each.
async fn ids_in_stream(server: &TestServer, stream: &str) -> BTreeMap<usize, usize> {
    let mut client = KinesisClient::connect(server.address).await.unwrap();
    let shards: Value = client
        .call("ListShards", &json!({"StreamName": stream}))
        .await
        .unwrap();
    let mut ids = BTreeMap::new();
    for shard in shards["Shards"].as_array().unwrap() {
        let iterator: Value = client
            .call(
                "GetShardIterator",
                &json!({"StreamName": stream, "ShardId": shard["ShardId"], "ShardIteratorType": "TRIM_HORIZON"}),
            )
            .await
            .unwrap();
        let mut iterator = iterator["ShardIterator"].clone();
        loop {
            let got: Value = match client
                .call(
                    "GetRecords",
                    &json!({"ShardIterator": iterator, "Limit": 10000}),
                )
                .await
            {
                Ok(got) => got,
                Err(e) if e.name.contains("ProvisionedThroughputExceeded") => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                }
                Err(e) => panic!("{e}"),
            };
            let records = got["Records"].as_array().unwrap();
            for record in records {
                let data = base64_decode(record["Data"].as_str().unwrap());
                let row: Value = serde_json::from_slice(&data).unwrap();
                let request = row["request"].as_str().unwrap();
                assert_eq!(row["ident"], Value::Null, "LOGTOJSON wrote - as null");
                let id = request
                    .split('/')
                    .nth(2)
                    .unwrap()
                    .split(' ')
                    .next()
                    .unwrap();
                *ids.entry(id.parse().unwrap()).or_insert(0) += 1;
            }
            if records.is_empty() {
                break;
            }
            iterator = got["NextShardIterator"].clone();
        }
    }
    ids
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

/// Waits until the stream holds at least `count` lines.
async fn wait_for_some(server: &TestServer, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while ids_in_stream(server, "weblogs").await.len() < count {
        assert!(
            Instant::now() < deadline,
            "fewer than {count} lines reached the stream"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the stream holds every id below `count`.
async fn wait_for_all(server: &TestServer, count: usize) -> BTreeMap<usize, usize> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ids = ids_in_stream(server, "weblogs").await;
        if (0..count).all(|id| ids.contains_key(&id)) {
            return ids;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {count} lines reached the stream",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The lines written before the agent is killed, and all of them.
const ROTATED: usize = 6_500;
const ALL: usize = ROTATED + 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_reaches_the_stream_through_rotations_and_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    // Limits enforced on one shard: puts are throttled, and retried.
    let server = TestServer::start(&dir.path().join("data"), &["--enforce-limits"]);
    create_stream(&server, "weblogs", 1).await;
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let log = logs.join("access.log");
    let config = agent_json(&server, &logs, "secret");
    write_lines(&log, 0..1_500);
    let agent = AgentProcess::start(&config);
    // Rotated by rename while the agent reads; the writer goes on in the new file.
    wait_for_some(&server, 100).await;
    std::fs::rename(&log, logs.join("access.log.1")).unwrap();
    // Enough lines that the kill below lands in the middle of the work also when a loaded
    // machine is slow to see the stream pass 800 (puts are throttled to 1,000 records a
    // second: these take the agent about 5 s).
    write_lines(&log, 1_500..ROTATED);
    wait_for_some(&server, 800).await;
    drop(agent);
    let before = ids_in_stream(&server, "weblogs").await;
    assert!(
        !before.is_empty() && before.len() < ROTATED,
        "the kill came after {} of {ROTATED} lines: make it earlier",
        before.len()
    );
    // Rotated by copy and truncate while the agent is down, and written on.
    write_lines(&log, ROTATED..ROTATED + 500);
    std::fs::copy(&log, logs.join("access.log.2")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    write_lines(&log, ROTATED + 500..ALL);
    let _agent = AgentProcess::start(&config);
    let ids = wait_for_all(&server, ALL).await;
    let twice: Vec<usize> = ids
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| *id)
        .collect();
    eprintln!(
        "{} lines in the stream after the kill and restart, {} of them twice",
        ids.len(),
        twice.len()
    );
    assert_eq!(ids.len(), ALL, "only page lines, each at least once");
    assert!(
        twice.len() <= BATCH && ids.values().all(|n| *n <= 2),
        "more sent twice than one batch: {twice:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_are_signed_for_a_server_that_verifies_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = TestServer::start(&data, &[]);
    create_stream(&server, "weblogs", 2).await;
    server.stop("TERM");
    let server = TestServer::start(&data, &["--credential", "AKIDAGENT:agentsecret"]);
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    write_lines(&logs.join("access.log"), 0..200);
    // A wrong secret: every put refused, retried; nothing arrives.
    let wrong = AgentProcess::start(&agent_json(&server, &logs, "not-the-secret"));
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    drop(wrong);
    let right = AgentProcess::start(&agent_json(&server, &logs, "agentsecret"));
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    drop(right);
    server.stop("TERM");
    let server = TestServer::start(&data, &[]);
    let ids = wait_for_all(&server, 200).await;
    assert_eq!(ids.len(), 200);
}

/// The JSON lines of every object delivered into `bucket`'s directory.
fn delivered_lines(bucket: &Path) -> Vec<Value> {
    let mut lines = Vec::new();
    for path in common::delivered_objects(bucket) {
        let text = std::fs::read_to_string(&path).unwrap();
        lines.extend(
            text.lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap()),
        );
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_stream_flow_delivers_csv_lines_as_json_objects() {
    let dir = tempfile::tempdir().unwrap();
    let buckets = dir.path().join("buckets");
    let server = TestServer::start(
        &dir.path().join("data"),
        &["--firehose-bucket-dir", buckets.to_str().unwrap()],
    );
    let mut client = KinesisClient::connect(server.address).await.unwrap();
    let _: Value = client
        .call(
            "Firehose_20150804.CreateDeliveryStream",
            &json!({
                "DeliveryStreamName": "app-to-lake",
                "ExtendedS3DestinationConfiguration": {
                    "BucketARN": "arn:aws:s3:::lake",
                    "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 1},
                }
            }),
        )
        .await
        .unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let mut csv = String::from("when;what;count\n");
    for i in 0..300 {
        csv.push_str(&format!("2026-12-05T21:{:02}:00;job-{i};{i}\n", i % 60));
    }
    std::fs::write(logs.join("app.csv"), csv).unwrap();
    let config = json!({
        "firehose.endpoint": server.endpoint(),
        "awsAccessKeyId": "AKIDAGENT",
        "awsSecretAccessKey": "secret",
        "flows": [{
            "filePattern": format!("{}/*.csv", logs.display()),
            "deliveryStream": "app-to-lake",
            "initialPosition": "START_OF_FILE",
            "skipHeaderLines": 1,
            "maxBufferAgeMillis": 1000,
            "dataProcessingOptions": [{
                "optionName": "CSVTOJSON",
                "customFieldNames": ["when", "what", "count"],
                "delimiter": ";"
            }]
        }]
    });
    let path = logs.join("agent.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let _agent = AgentProcess::start(&path);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = delivered_lines(&buckets.join("lake"));
    while lines.len() < 300 {
        assert!(
            Instant::now() < deadline,
            "{} of 300 lines delivered",
            lines.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        lines = delivered_lines(&buckets.join("lake"));
    }
    lines.sort_by_key(|l| l["count"].as_str().unwrap().parse::<u32>().unwrap());
    assert_eq!(lines.len(), 300, "the header skipped, each line once");
    assert_eq!(
        lines[7],
        json!({"when": "2026-12-05T21:07:00", "what": "job-7", "count": "7"})
    );
}

/// The first line in which `agent` says a put failed (read as it comes, for 30 s at most).
fn first_put_failure(agent: &mut Child) -> String {
    let stderr = agent.stderr.take().expect("stderr piped");
    let (said_tx, said_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = said_tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let line = said_rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the agent did not say why it could not put");
        if line.contains("put failed, will retry") {
            return line;
        }
    }
}

/// The agent.json of the HTTPS test: one flow of `logs`' access log into `weblogs`.
fn tls_agent_json(endpoint: &str, logs: &Path) -> PathBuf {
    let config = json!({
        "kinesis.endpoint": endpoint,
        "awsAccessKeyId": "AKIDAGENT", "awsSecretAccessKey": "secret",
        "cloudwatch.emitMetrics": false,
        "flows": [{
            "filePattern": format!("{}/access.log*", logs.display()),
            "kinesisStream": "weblogs", "initialPosition": "START_OF_FILE",
            "maxBufferAgeMillis": 1000,
            "dataProcessingOptions": [{"optionName": "LOGTOJSON", "logFormat": "COMMONAPACHELOG"}]
        }]
    });
    let path = logs.join("agent.json");
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

/// A Kinesis call over HTTPS with curl, trusting `ca`: its JSON answer.
fn curl_call(endpoint: &str, ca: &Path, operation: &str, input: &Value) -> Value {
    let output = Command::new("curl")
        .args(["-sS", "--fail-with-body", "--cacert"])
        .arg(ca)
        .args(["-H", &format!("X-Amz-Target: Kinesis_20131202.{operation}")])
        .args(["-H", "Content-Type: application/x-amz-json-1.1"])
        .args(["--data-binary", &input.to_string(), endpoint])
        .output()
        .expect("running curl");
    assert!(
        output.status.success(),
        "{operation}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
}

/// Records in the one-shard stream `stream`, over HTTPS.
fn records_over_tls(endpoint: &str, ca: &Path, stream: &str) -> usize {
    let iterator = curl_call(
        endpoint,
        ca,
        "GetShardIterator",
        &json!({"StreamName": stream, "ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"}),
    );
    let records = curl_call(
        endpoint,
        ca,
        "GetRecords",
        &json!({"ShardIterator": iterator["ShardIterator"]}),
    );
    records["Records"].as_array().map_or(0, Vec::len)
}

#[test]
fn an_https_endpoint_is_used_when_its_certificate_is_trusted_and_refused_when_not() {
    if !(common::needs_openssl() && common::needs_curl()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A CA and a certificate it signed for 127.0.0.1: the agent trusts the CA.
    common::certificates(dir.path());
    let (ca, cert, key) = (
        dir.path().join("ca.pem"),
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
    );
    let server = TestServer::start(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let endpoint = server.tls_endpoint();
    curl_call(
        &endpoint,
        &ca,
        "CreateStream",
        &json!({"StreamName": "weblogs", "ShardCount": 1}),
    );
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    write_lines(&logs.join("access.log"), 0..200);
    let path = tls_agent_json(&endpoint, &logs);
    let agent = |trust: Option<&Path>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
        command
            .args(["agent", "--config"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // An empty trust store for the untrusting run: the system's roots do not hold the
        // test's certificate either way, this keeps it so on any machine.
        let empty = dir.path().join("no-roots.pem");
        std::fs::write(&empty, "").unwrap();
        command.env("SSL_CERT_FILE", trust.unwrap_or(&empty));
        command.spawn().expect("starting sluice agent")
    };
    // Not trusting the server's certificate: nothing is sent, and it says why (read until
    // it does, or a deadline).
    let mut untrusting = agent(None);
    let said = first_put_failure(&mut untrusting);
    assert!(
        said.contains("TLS") || said.contains("trust roots"),
        "{said}"
    );
    untrusting.kill().unwrap();
    untrusting.wait().unwrap();
    assert_eq!(records_over_tls(&endpoint, &ca, "weblogs"), 0);
    // Trusting its CA (SSL_CERT_FILE), every line goes in. The untrusting run checkpointed
    // none.
    let mut trusting = AgentProcess(agent(Some(&ca)));
    let deadline = Instant::now() + Duration::from_secs(60);
    while records_over_tls(&endpoint, &ca, "weblogs") < 200 {
        assert!(
            Instant::now() < deadline,
            "the lines did not arrive over HTTPS"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(records_over_tls(&endpoint, &ca, "weblogs"), 200);
    let _ = trusting.0.kill();
}
