//! Kinesis Video Streams through `sluice serve`: boto3's three video clients, ffmpeg as the
//! producer and as the checker (cli/tests/clients/video_suite.py). The source is made here
//! by ffmpeg (H.264 with B-frames and AAC, a key frame every second); mkvinfo counts its
//! clusters, which are the fragments the server must keep. ffmpeg and mkvinfo come from
//! scripts/setup; a missing one fails the test, saying so.

mod common;

use common::TestServer;
use std::process::Command;

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

#[test]
fn video_streams_through_boto3_and_ffmpeg() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source.mkv");
    let source = source.to_str().unwrap();
    #[rustfmt::skip]
    tool("ffmpeg", &[
        "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "6",
        "-c:v", "libx264", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0", "-bf", "2",
        "-pix_fmt", "yuv420p", "-c:a", "aac",
        "-cluster_time_limit", "2000", "-cluster_size_limit", "2000000", "-f", "matroska", source,
    ]);
    let clusters = tool("mkvinfo", &["-v", source])
        .lines()
        .filter(|line| line.contains("Cluster timestamp"))
        .count();
    assert!(clusters >= 5, "{clusters} clusters");
    let data = dir.path().join("data");
    let server = TestServer::start(&data, &[]);
    common::run_suite_with(
        &server.endpoint(),
        "video_suite.py",
        &[source, &clusters.to_string()],
    );
}
