//! Kinesis Video Streams through `sluice serve`: boto3's three video clients, ffmpeg as the
//! producer and as the checker (cli/tests/clients/video_suite.py). The source is made here
//! by ffmpeg (H.264 with B-frames and AAC, a key frame every second); mkvinfo counts its
//! clusters, which are the fragments the server must keep. ffmpeg and mkvinfo come from
//! scripts/setup; a missing one fails the test, saying so.

mod common;

use common::TestServer;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

fn tool(name: &str, args: &[&str]) -> String {
    let output = Command::new(name).args(args).output().unwrap_or_else(|e| {
        panic!("{name} is needed by this test ({e}); scripts/setup installs it (Debian: ffmpeg, mkvtoolnix)")
    });
    assert!(
        output.status.success(),
        "{name} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A 6-second H.264 + AAC source in `dir`; its path and its cluster count (mkvinfo's).
fn make_source(dir: &Path) -> (String, usize) {
    let source = dir.join("source.mkv").to_str().unwrap().to_owned();
    #[rustfmt::skip]
    tool("ffmpeg", &[
        "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "6",
        "-c:v", "libx264", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0", "-bf", "2",
        "-pix_fmt", "yuv420p", "-c:a", "aac",
        "-cluster_time_limit", "2000", "-cluster_size_limit", "2000000", "-f", "matroska", &source,
    ]);
    let clusters = tool("mkvinfo", &["-v", &source])
        .lines()
        .filter(|line| line.contains("Cluster timestamp"))
        .count();
    assert!(clusters >= 5, "{clusters} clusters");
    (source, clusters)
}

#[test]
fn video_streams_through_boto3_and_ffmpeg() {
    if !common::needs_python_clients() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (source, clusters) = make_source(dir.path());
    let data = dir.path().join("data");
    let server = TestServer::start(&data, &[]);
    common::run_suite_with(
        &server.endpoint(),
        "video_suite.py",
        &[&source, &clusters.to_string()],
    );
}

fn crash_client(args: &[&str]) -> Command {
    let clients = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients");
    let mut command = Command::new("python3");
    command
        .arg(clients.join("video_crash.py"))
        .args(args)
        .current_dir(clients);
    command
}

/// kill -9 while a producer is mid-body: every fragment acknowledged PERSISTED before the
/// kill is read back and played after a restart.
#[test]
fn fragments_acknowledged_persisted_survive_kill_9() {
    if !common::needs_python_clients() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (source, clusters) = make_source(dir.path());
    let data = dir.path().join("data");
    let server = TestServer::start(&data, &[]);
    let endpoint = server.endpoint();
    let status = crash_client(&["create", &endpoint, "door"])
        .status()
        .unwrap();
    assert!(status.success());
    let mut producer = crash_client(&["produce", &endpoint, "door", &source])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut persisted = Vec::new();
    for line in BufReader::new(producer.stdout.take().unwrap()).lines() {
        persisted.push(line.unwrap());
        if persisted.len() == 2 {
            break;
        }
    }
    server.kill();
    let _ = producer.kill();
    let _ = producer.wait();
    assert_eq!(
        persisted.len(),
        2,
        "the producer saw two fragments persisted"
    );
    let server = TestServer::start(&data, &[]);
    let mut args = vec!["check", &endpoint, "door"];
    let endpoint = server.endpoint();
    args[1] = &endpoint;
    args.extend(persisted.iter().map(String::as_str));
    let output = crash_client(&args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    let listed: usize = text
        .split("playable, ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!(text.contains("2 playable"), "{text}");
    // Killed mid-body: the stream holds the acknowledged fragments, maybe a few more whose
    // acknowledgements were not read, and not the whole source.
    assert!(
        (2..clusters).contains(&listed),
        "{listed} of {clusters} fragments: {text}"
    );
}
