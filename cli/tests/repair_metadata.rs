//! `sluice repair-metadata` on a data directory whose metadata log is damaged before its end:
//! `sluice serve` refuses the directory, the command reports without changing anything, and
//! `--apply` keeps the damaged file aside and rewrites the log with every valid entry, after
//! which the server opens and a deleted stream is still deleted.

mod common;

use common::TestServer;
use serde_json::{Value, json};
use sluice_core::{CreateStream, Engine, EngineConfig};
use sluice_loadgen::client::KinesisClient;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long `sluice serve` may take to give up on a damaged directory.
const REFUSAL_WAIT_MS: u64 = 20_000;

/// Offsets of the metadata log's frames, by its documented layout: a 16-byte header, then
/// `[len u32][magic u32][checksum u64][payload padded to 8]`.
fn frame_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut pos = 16;
    while pos + 16 <= bytes.len() {
        offsets.push(pos);
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        pos += 16 + len.div_ceil(8) * 8;
    }
    offsets
}

/// Streams alpha, beta and gamma, then beta deleted; gamma's entry (the one before the
/// delete) damaged. Returns the damaged log's bytes and the damaged frame's offset.
fn damaged_data_dir(dir: &Path) -> (Vec<u8>, usize) {
    {
        let mut config = EngineConfig::new(dir);
        config.cores = 1;
        config.segment_size_bytes = 1 << 20;
        let engine = Engine::open(config).unwrap();
        for name in ["alpha", "beta", "gamma"] {
            engine
                .create_stream(CreateStream::provisioned(name, 1))
                .wait()
                .unwrap();
        }
        engine.stream("beta").unwrap().delete().wait().unwrap();
    }
    let meta = dir.join("meta.log");
    let mut bytes = std::fs::read(&meta).unwrap();
    let frames = frame_offsets(&bytes);
    assert_eq!(frames.len(), 4);
    bytes[frames[2] + 20] ^= 0x0f;
    std::fs::write(&meta, &bytes).unwrap();
    (bytes, frames[2])
}

fn sluice(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .expect("running sluice")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// `sluice serve` on `dir` must exit with an error; returns its stderr.
fn serve_refuses(dir: &Path) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--listen", "127.0.0.1:0", "--cores", "1", "--dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting sluice serve");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_millis(REFUSAL_WAIT_MS) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("sluice serve is serving a data directory whose metadata log is damaged");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success());
    String::from_utf8(output.stderr).unwrap()
}

fn damaged_copies(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("meta.log.damaged-"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_metadata_reports_then_repairs_and_the_deleted_stream_stays_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let meta = dir.path().join("meta.log");
    let (damaged, at) = damaged_data_dir(dir.path());

    let refusal = serve_refuses(dir.path());
    assert!(
        refusal.contains(&format!("damaged at byte {at}")),
        "{refusal}"
    );
    assert!(refusal.contains("sluice repair-metadata"), "{refusal}");
    assert_eq!(std::fs::read(&meta).unwrap(), damaged, "left as found");

    let report = stdout(&sluice(&["repair-metadata"], dir.path()));
    assert!(report.contains("3 valid entries"), "{report}");
    assert!(
        report.contains(&format!("damaged: bytes {at}..")),
        "{report}"
    );
    assert!(report.contains("--apply"), "{report}");
    assert_eq!(
        std::fs::read(&meta).unwrap(),
        damaged,
        "a report changes nothing"
    );
    assert!(damaged_copies(dir.path()).is_empty());

    let repair = stdout(&sluice(&["repair-metadata", "--apply"], dir.path()));
    assert!(repair.contains("copied the damaged log to"), "{repair}");
    assert!(repair.contains("with 3 valid entries"), "{repair}");
    let copies = damaged_copies(dir.path());
    assert_eq!(copies.len(), 1, "{repair}");
    assert_eq!(std::fs::read(&copies[0]).unwrap(), damaged);

    let again = stdout(&sluice(&["repair-metadata"], dir.path()));
    assert!(again.contains("no damage before the end"), "{again}");

    let server = TestServer::start(dir.path(), &[]);
    let mut client = KinesisClient::connect(server.address).await.unwrap();
    let listed: Value = client.call("ListStreams", &json!({})).await.unwrap();
    assert_eq!(
        listed["StreamNames"],
        json!(["alpha"]),
        "beta stays deleted; gamma's only entry was the damaged one"
    );
}

#[test]
fn repair_metadata_refuses_a_directory_an_engine_has_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path());
    config.cores = 1;
    let engine = Engine::open(config).unwrap();
    let output = sluice(&["repair-metadata", "--apply"], dir.path());
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("already open"), "{stderr}");
    drop(engine);
}
