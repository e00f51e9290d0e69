//! Test videos made by ffmpeg, and what mkvinfo, ffprobe and ffmpeg say about them. The
//! tools are installed by scripts/setup; a missing one fails the test, saying so.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// A test video: testsrc at 25 fps, a key frame every second, explicit cluster limits.
#[derive(Debug, Clone, Copy)]
pub struct Source {
    pub b_frames: bool,
    pub audio: bool,
    pub seconds: u32,
}

impl Source {
    /// The video's bytes and its file. The file is made once in cargo's scratch folder for
    /// tests (target/tmp, not the system's temporary folder) and kept for later runs; its
    /// name carries a hash of ffmpeg's arguments, so changed arguments make a new one.
    pub fn make(&self) -> (Vec<u8>, PathBuf) {
        let mut args = self.ffmpeg_args();
        let hash = {
            use std::hash::{Hash as _, Hasher as _};
            let mut hasher = std::hash::DefaultHasher::new();
            args.hash(&mut hasher);
            hasher.finish()
        };
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "sluice-video-b{}-a{}-{}s-{hash:016x}.mkv",
            self.b_frames, self.audio, self.seconds
        ));
        if !path.exists() {
            // Written beside and renamed: a run that dies midway leaves no partial video.
            let writing = path.with_extension(
                format!(
                    "{}-{:?}.tmp",
                    std::process::id(),
                    std::thread::current().id()
                )
                .replace(['(', ')'], ""),
            );
            args.push(writing.display().to_string());
            run("ffmpeg", &args);
            std::fs::rename(&writing, &path).unwrap();
        }
        (std::fs::read(&path).unwrap(), path)
    }

    /// ffmpeg's arguments for this video, but the output file.
    fn ffmpeg_args(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25",
        ]
        .map(String::from)
        .to_vec();
        if self.audio {
            args.extend(
                ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"].map(String::from),
            );
        }
        args.extend(
            [
                "-t",
                &self.seconds.to_string(),
                "-c:v",
                "libx264",
                "-g",
                "25",
                "-keyint_min",
                "25",
                "-sc_threshold",
                "0",
                "-bf",
                if self.b_frames { "2" } else { "0" },
                "-pix_fmt",
                "yuv420p",
            ]
            .map(String::from),
        );
        if self.audio {
            args.extend(["-c:a", "aac"].map(String::from));
        }
        args.extend(
            [
                "-cluster_time_limit",
                "2000",
                "-cluster_size_limit",
                "2000000",
                "-f",
                "matroska",
            ]
            .map(String::from),
        );
        args
    }
}

/// Runs a tool, failing loudly when it is missing or fails; its stdout.
pub fn run(tool: &str, args: &[String]) -> String {
    let output = Command::new(tool).args(args).output().unwrap_or_else(|e| {
        panic!("{tool} is needed by this test ({e}); scripts/setup installs it (Debian: ffmpeg, mkvtoolnix)")
    });
    assert!(
        output.status.success(),
        "{tool} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The cluster timestamps mkvinfo reads, in ms.
pub fn cluster_timestamps_ms(path: &std::path::Path) -> Vec<u64> {
    let out = run("mkvinfo", &["-v".into(), path.display().to_string()]);
    out.lines()
        .filter_map(|line| line.split("Cluster timestamp: ").nth(1))
        .map(|time| {
            let mut parts = time.trim().split(':');
            let hours: u64 = parts.next().unwrap().parse().unwrap();
            let minutes: u64 = parts.next().unwrap().parse().unwrap();
            let seconds: f64 = parts.next().unwrap().parse().unwrap();
            (hours * 3600 + minutes * 60) * 1000 + (seconds * 1000.0).round() as u64
        })
        .collect()
}

/// The presentation times of the video key frames ffprobe reads, in ms.
pub fn key_frame_times_ms(path: &std::path::Path) -> Vec<u64> {
    let args = [
        "-v",
        "error",
        "-select_streams",
        "v",
        "-show_entries",
        "packet=pts_time,flags",
        "-of",
        "csv=p=0",
    ];
    let mut args: Vec<String> = args.map(String::from).to_vec();
    args.push(path.display().to_string());
    run("ffprobe", &args)
        .lines()
        .filter(|line| line.contains('K'))
        .map(|line| {
            (line.split(',').next().unwrap().parse::<f64>().unwrap() * 1000.0).round() as u64
        })
        .collect()
}

/// Every packet of a file as ffmpeg's framemd5 lists it (stream, pts, size, MD5), in order.
pub fn packets(path: &std::path::Path) -> Vec<String> {
    let args = [
        "-hide_banner",
        "-loglevel",
        "error",
        "-copyts",
        "-i",
        &path.display().to_string(),
        "-map",
        "0",
        "-c",
        "copy",
        "-f",
        "framemd5",
        "-",
    ]
    .map(String::from)
    .to_vec();
    run("ffmpeg", &args)
        .lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| {
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            format!("{} {} {} {}", fields[0], fields[2], fields[4], fields[5])
        })
        .collect()
}

/// Video frames ffprobe decodes from a file.
pub fn ffprobe_frames(path: &std::path::Path) -> u64 {
    let args = [
        "-v",
        "error",
        "-count_frames",
        "-select_streams",
        "v",
        "-show_entries",
        "stream=nb_read_frames",
        "-of",
        "csv=p=0",
    ];
    let mut args: Vec<String> = args.map(String::from).to_vec();
    args.push(path.display().to_string());
    run("ffprobe", &args).trim().parse().unwrap()
}

/// (id, header length, content size or None) of the element at `bytes[0]`.
fn element(bytes: &[u8]) -> (u32, usize, Option<u64>) {
    let id_len = bytes[0].leading_zeros() as usize + 1;
    let id = bytes[..id_len]
        .iter()
        .fold(0u32, |v, &b| (v << 8) | u32::from(b));
    let size_len = bytes[id_len].leading_zeros() as usize + 1;
    let raw = bytes[id_len..id_len + size_len]
        .iter()
        .fold(0u64, |v, &b| (v << 8) | u64::from(b));
    let value = raw & ((1u64 << (7 * size_len)) - 1);
    let unknown = value == (1u64 << (7 * size_len)) - 1;
    (id, id_len + size_len, (!unknown).then_some(value))
}

/// The top-level and segment-level elements of a file: (offset, id, header length, size).
fn level_one(mkv: &[u8]) -> Vec<(usize, u32, usize, u64)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < mkv.len() {
        let (id, len, size) = element(&mkv[at..]);
        if id == 0x1853_8067 {
            at += len; // into the Segment
            continue;
        }
        let size = size.expect("sized elements inside the segment");
        out.push((at, id, len, size));
        at += len + size as usize;
    }
    out
}

/// Where each Cluster starts.
pub fn cluster_offsets(mkv: &[u8]) -> Vec<usize> {
    level_one(mkv)
        .into_iter()
        .filter(|e| e.1 == 0x1F43_B675)
        .map(|e| e.0)
        .collect()
}

/// Each Cluster's size, header included.
pub fn cluster_sizes(mkv: &[u8]) -> Vec<usize> {
    level_one(mkv)
        .into_iter()
        .filter(|e| e.1 == 0x1F43_B675)
        .map(|e| e.2 + e.3 as usize)
        .collect()
}

/// The file with every Cluster's size made unknown (and the Segment's).
pub fn unknown_sized(mkv: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let segment_at = {
        let (_, len, size) = element(mkv);
        len + size.unwrap() as usize
    };
    out.extend_from_slice(&mkv[..segment_at]);
    out.extend_from_slice(&[
        0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    ]);
    for (at, id, len, size) in level_one(mkv) {
        if at < segment_at {
            continue;
        }
        let content = &mkv[at + len..at + len + size as usize];
        if id == 0x1F43_B675 {
            out.extend_from_slice(&[
                0x1F, 0x43, 0xB6, 0x75, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
            ]);
            out.extend_from_slice(content);
        } else if id != 0x1C53_BB6B {
            // Cues point at sized positions: left out, as a live producer has none.
            out.extend_from_slice(&mkv[at..at + len + size as usize]);
        }
    }
    out
}

/// The MD5 of every decoded video frame of a file, in order (ffmpeg's framemd5 after
/// decoding: the pictures themselves, whatever container carried them).
pub fn decoded_frames(path: &std::path::Path) -> Vec<String> {
    decoded(path, "v")
}

/// The MD5 of every decoded frame of a file's video (`"v"`) or audio (`"a"`), in order.
pub fn decoded(path: &std::path::Path, kind: &str) -> Vec<String> {
    let args = [
        "-hide_banner",
        "-loglevel",
        "error",
        "-i",
        &path.display().to_string(),
        "-map",
        &format!("0:{kind}"),
        "-f",
        "framemd5",
        "-",
    ]
    .map(String::from)
    .to_vec();
    run("ffmpeg", &args)
        .lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| line.rsplit(',').next().unwrap().trim().to_owned())
        .collect()
}

/// `packets`, grouped by stream (containers interleave streams differently).
pub fn packets_by_stream(
    path: &std::path::Path,
) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut streams = std::collections::BTreeMap::<String, Vec<String>>::new();
    for packet in packets(path) {
        let (stream, rest) = packet.split_once(' ').unwrap();
        streams
            .entry(stream.to_owned())
            .or_default()
            .push(rest.to_owned());
    }
    streams
}
