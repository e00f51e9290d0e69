//! Kinesis Video against its baselines, same run (the video issue's targets):
//! - ingest: a PutMedia session parsing an H.264/AAC body and storing each fragment durably
//!   (one fdatasync'd append per fragment, as PutMedia acknowledges PERSISTED), against the
//!   engine's durable appends of the very same records, in alternating pairs: target ≥ 0.8
//!   (the median pair's ratio);
//! - remux: stored fragments to fragmented MP4 media segments (HLS's, DASH's, GetClip's) and
//!   to MPEG-TS segments (HLS's other container), in ms per MB: target under 10 ms;
//! - an HLS media playlist and a DASH manifest of 5,000 fragments (the most one holds) over
//!   a stream of 10,000: target under 5 ms.
//!
//! The source is made by ffmpeg (scripts/setup installs it): 640x480 at 25 fps with AAC, a key
//! frame every second, 30 s by default and 120 s with `SLUICE_BENCH_FULL=1`. Each figure is the
//! best of three runs.

use sluice_benches::full_mode;
use sluice_core::{Durability, Engine, EngineConfig, Log};
use sluice_video::remux::playlist::{self, Discontinuity, MediaPlaylistSpec};
use sluice_video::remux::{Timing, demux, fmp4, mpd, ts};
use sluice_video::{
    Event, FragmentLog, FragmentMeta, PutMediaSession, ReceivedFragment, SessionOptions, TimeKind,
    TimecodeType,
};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn source(dir: &Path) -> Vec<u8> {
    let seconds = if full_mode() { "120" } else { "30" };
    let path = dir.join("source.mkv");
    #[rustfmt::skip]
    let status = Command::new("ffmpeg")
        .args([
            "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=640x480:rate=25",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", seconds,
            "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "4M", "-g", "25", "-bf", "2",
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-cluster_time_limit", "2000",
            "-f", "matroska",
        ])
        .arg(&path)
        .status()
        .expect("ffmpeg is needed by this bench; scripts/setup installs it");
    assert!(status.success());
    std::fs::read(path).unwrap()
}

fn session() -> PutMediaSession {
    PutMediaSession::new(SessionOptions {
        timecode_type: TimecodeType::Relative,
        producer_start_ms: 1_700_000_000_000,
        fragment_bytes_max: 10 << 20,
        fragment_duration_max_ms: sluice_video::FRAGMENT_DURATION_MAX_MS,
    })
}

fn log(dir: &Path, name: &str) -> (Engine, Log) {
    let mut config = EngineConfig::new(dir.join(name));
    config.cores = 1;
    config.segment_size_bytes = 256 << 20;
    let engine = Engine::open(config).unwrap();
    let mut create = sluice_core::CreateStream::provisioned("video", 1);
    create.max_record_size_bytes = Some(10 << 20);
    engine.create_stream(create).wait().unwrap();
    let log = engine.log("video").wait().unwrap();
    (engine, log)
}

/// The body fed in 64 KiB pieces, each fragment appended durably as it comes.
fn ingest(body: &[u8], log: &Log) -> (Duration, Vec<ReceivedFragment>) {
    let started = Instant::now();
    let mut session = session();
    let mut stored = Vec::new();
    let mut events = Vec::new();
    for piece in body.chunks(64 << 10) {
        events.extend(session.feed(piece, 0));
        store(log, &mut events, &mut stored);
    }
    events.extend(session.finish(0));
    store(log, &mut events, &mut stored);
    (started.elapsed(), stored)
}

fn store(log: &Log, events: &mut Vec<Event>, stored: &mut Vec<ReceivedFragment>) {
    for event in events.drain(..) {
        if let Event::Fragment(fragment) = event {
            log.append(&fragment.record)
                .durability(Durability::Durable)
                .wait()
                .unwrap();
            stored.push(fragment);
        }
    }
}

fn best(mut run: impl FnMut() -> Duration) -> Duration {
    (0..3).map(|_| run()).min().unwrap()
}

fn mb_per_s(bytes: usize, took: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / took.as_secs_f64()
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let body = source(dir.path());
    let records = bench_ingest(dir.path(), &body);
    bench_remux(&records);
    bench_playlist(dir.path(), &records);
}

/// Session + durable appends against the engine's durable appends of the same records, in
/// pairs (each on fresh engines, made before either side runs, the side that goes first
/// alternating) so both sides see the same disk: the ratio is each pair's, their median
/// reported with the range (one slow fdatasync moves a pair's).
fn bench_ingest(dir: &Path, body: &[u8]) -> Vec<Vec<u8>> {
    const PAIRS: usize = 7;
    let mut records: Vec<Vec<u8>> = Vec::new();
    let (mut session_best, mut engine_best) = (Duration::MAX, Duration::MAX);
    let mut ratios = Vec::with_capacity(PAIRS);
    for pair in 0..PAIRS {
        // Both engines made before either side runs, the side that goes first alternating.
        let (_session_engine, session_log) = log(dir, &format!("session-{pair}"));
        let (_engine, engine_log) = log(dir, &format!("engine-{pair}"));
        let run_session = || {
            let (took, stored) = ingest(body, &session_log);
            (took, stored.into_iter().map(|f| f.record).collect())
        };
        let run_engine = |records: &[Vec<u8>]| {
            let started = Instant::now();
            for record in records {
                engine_log
                    .append(record)
                    .durability(Durability::Durable)
                    .wait()
                    .unwrap();
            }
            started.elapsed()
        };
        let (session_time, engine_time) = if pair % 2 == 0 || records.is_empty() {
            let session_time;
            (session_time, records) = run_session();
            (session_time, run_engine(&records))
        } else {
            let engine_time = run_engine(&records);
            let session_time;
            (session_time, records) = run_session();
            (session_time, engine_time)
        };
        ratios.push(engine_time.as_secs_f64() / session_time.as_secs_f64());
        session_best = session_best.min(session_time);
        engine_best = engine_best.min(engine_time);
    }
    ratios.sort_by(f64::total_cmp);
    // The session alone (parsing, each fragment's record built), nothing stored.
    let parse_time = best(|| {
        let started = Instant::now();
        let mut session = session();
        let mut events = 0;
        for piece in body.chunks(64 << 10) {
            events += session.feed(piece, 0).len();
        }
        events += session.finish(0).len();
        assert!(events >= records.len());
        started.elapsed()
    });
    println!(
        "video/session: parsing alone {:.0} MB/s ({:.2} ms for the body)",
        mb_per_s(body.len(), parse_time),
        parse_time.as_secs_f64() * 1000.0
    );
    let n = records.len();
    println!(
        "video/ingest: {n} fragments, {:.1} MB: PutMedia session + durable {:.1} MB/s ({:.1} fragments/s); engine durable, same records {:.1} MB/s (best of {PAIRS}); ratio median {:.2} of {PAIRS} pairs ({:.2}..{:.2})",
        body.len() as f64 / 1e6,
        mb_per_s(body.len(), session_best),
        n as f64 / session_best.as_secs_f64(),
        mb_per_s(body.len(), engine_best),
        ratios[PAIRS / 2],
        ratios[0],
        ratios[PAIRS - 1],
    );
    records
}

/// Stored fragments to fMP4 and to MPEG-TS media segments.
fn bench_remux(records: &[Vec<u8>]) {
    let stored: Vec<(FragmentMeta, Vec<u8>)> = records
        .iter()
        .map(|r| {
            let (meta, mkv) = FragmentMeta::decode(r).unwrap();
            (meta, mkv.to_vec())
        })
        .collect();
    let timing = Timing::of(&demux(&stored[0].1).unwrap(), stored[0].0.producer_ms);
    let in_mb = stored.iter().map(|(_, m)| m.len()).sum::<usize>() as f64 / (1 << 20) as f64;
    for container in ["fMP4", "MPEG-TS"] {
        let mut out_bytes = 0;
        let remux_time = best(|| {
            let started = Instant::now();
            out_bytes = 0;
            for (i, (meta, mkv)) in stored.iter().enumerate() {
                let mut demuxed = demux(mkv).unwrap();
                demuxed.start_at(timing.start_of(meta.producer_ms));
                out_bytes += match container {
                    "fMP4" => fmp4::media_segment(&demuxed, i as u32 + 1, &timing),
                    _ => ts::media_segment(&demuxed, &timing),
                }
                .unwrap()
                .len();
            }
            started.elapsed()
        });
        println!(
            "video/remux {container}: {:.2} ms per MB ({in_mb:.1} MB of fragments, {:.1} MB of segments)",
            remux_time.as_secs_f64() * 1000.0 / in_mb,
            out_bytes as f64 / (1 << 20) as f64
        );
    }
}

/// A media playlist of 5,000 fragments over a stream of 10,000.
fn bench_playlist(dir: &Path, records: &[Vec<u8>]) {
    // A stream of 10,000 small fragments (one 1-second cluster repeated, stamped a second
    // apart), then a media playlist of 5,000 of them: the index's list and the writing.
    let (_engine, log10k) = log(dir, "playlist");
    let small = FragmentMeta::decode(&records[0]).unwrap().1.to_vec();
    for i in 0..10_000i64 {
        let meta = FragmentMeta {
            producer_ms: 1_700_000_000_000 + i * 1000,
            server_ms: 1_700_000_000_000 + i * 1000,
            ..FragmentMeta::decode(&records[0]).unwrap().0
        };
        log10k
            .append(&meta.encode(&small))
            .durability(Durability::Visible)
            .wait()
            .unwrap();
    }
    let index = FragmentLog::open(log10k).unwrap();
    let mut playlist_bytes = 0;
    let playlist_time = best(|| {
        let started = Instant::now();
        for _ in 0..100 {
            let (fragments, _) = index.list(
                Some((TimeKind::Producer, 1_700_000_000_000, 1_700_004_999_000)),
                0,
                5_000,
            );
            let spec = MediaPlaylistSpec {
                fragments,
                media_sequence: 0,
                ended: true,
                program_date_time: Some(TimeKind::Producer),
                discontinuity: Discontinuity::Always,
                init_uri: Some("getMP4InitFragment.mp4?SessionToken=token".into()),
            };
            playlist_bytes = playlist::media_playlist(&spec, |f| {
                format!(
                    "getMP4MediaFragment.mp4?SessionToken=token&FragmentNumber={}",
                    f.number()
                )
            })
            .len();
        }
        started.elapsed() / 100
    });
    println!(
        "video/playlist: 5,000 of 10,000 fragments in {:.2} ms ({} KB)",
        playlist_time.as_secs_f64() * 1000.0,
        playlist_bytes / 1000
    );
    bench_manifest(&index, &small);
}

/// A DASH manifest of the same 5,000 fragments (an adaptation set per track, each with its
/// timeline).
fn bench_manifest(index: &FragmentLog, small: &[u8]) {
    let tracks = demux(small).unwrap().track_entries();
    let timing = Timing {
        base_ms: 1_700_000_000_000,
        shifts: Vec::new(),
    };
    let mut manifest_bytes = 0;
    let manifest_time = best(|| {
        let started = Instant::now();
        for _ in 0..100 {
            let (fragments, _) = index.list(
                Some((TimeKind::Producer, 1_700_000_000_000, 1_700_004_999_000)),
                0,
                5_000,
            );
            let spec = mpd::ManifestSpec {
                fragments: &fragments,
                tracks: &tracks,
                timing: &timing,
                dynamic: false,
                now_ms: 1_700_005_000_000,
                availability_ms: 1_700_000_000_000,
                fragment_numbers: true,
                fragment_times: Some(TimeKind::Producer),
            };
            manifest_bytes = mpd::manifest(
                &spec,
                |t| format!("getMP4InitFragment.mp4?SessionToken=token&TrackNumber={t}"),
                |t| {
                    format!(
                        "getMP4MediaFragment.mp4?SessionToken=token&TrackNumber={t}&FragmentIndex=$Number$"
                    )
                },
            )
            .len();
        }
        started.elapsed() / 100
    });
    println!(
        "video/manifest: DASH, 5,000 of 10,000 fragments in {:.2} ms ({} KB)",
        manifest_time.as_secs_f64() * 1000.0,
        manifest_bytes / 1000
    );
}
