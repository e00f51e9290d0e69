//! PutMedia sessions fed MKV made by ffmpeg: fragments cut where mkvinfo and ffprobe see
//! clusters and key frames, each stored fragment playable alone with the source's frames,
//! unknown sizes, and bad input refused with the right error and nothing partial.

mod common;

use common::{
    Source, cluster_timestamps_ms, ffprobe_frames, key_frame_times_ms, packets, unknown_sized,
};
use sluice_video::{
    AckError, AckEvent, Event, FragmentMeta, PutMediaSession, SessionOptions, TimecodeType,
};

fn options() -> SessionOptions {
    SessionOptions {
        timecode_type: TimecodeType::Relative,
        producer_start_ms: 1_700_000_000_000,
        fragment_bytes_max: 10 << 20,
        fragment_duration_max_ms: sluice_video::FRAGMENT_DURATION_MAX_MS,
    }
}

/// Feeds `bytes` in chunks of varying sizes (1 byte to 5 KiB), then ends the body.
fn feed(session: &mut PutMediaSession, bytes: &[u8]) -> Vec<Event> {
    let mut events = Vec::new();
    let mut at = 0;
    let mut step = 1usize;
    while at < bytes.len() {
        let end = (at + step).min(bytes.len());
        events.extend(session.feed(&bytes[at..end], 1_800_000_000_000));
        at = end;
        step = step * 7 % 5_003 + 1;
    }
    events
}

fn fragments(events: &[Event]) -> Vec<(FragmentMeta, Vec<u8>, u64)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Fragment(f) => {
                let (meta, mkv) = FragmentMeta::decode(&f.record).unwrap();
                Some((meta, mkv.to_vec(), f.timecode_ms))
            }
            Event::Ack(_) => None,
        })
        .collect()
}

fn errors(events: &[Event]) -> Vec<AckError> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Ack(ack) if ack.event_type == AckEvent::Error => Some(match ack.error_id {
                Some(4001) => AckError::MaxFragmentSizeReached,
                Some(4004) => AckError::FragmentTimecodeLesserThanPrevious,
                Some(4006) => AckError::InvalidMkvData,
                Some(4010) => AckError::TrackNumberMismatch,
                other => panic!("unexpected error id {other:?}"),
            }),
            _ => None,
        })
        .collect()
}

/// Every variant the issue names: H.264 with and without B-frames, with an audio track.
fn sources() -> Vec<Source> {
    vec![
        Source {
            b_frames: true,
            audio: true,
            seconds: 5,
        },
        Source {
            b_frames: false,
            audio: true,
            seconds: 4,
        },
        Source {
            b_frames: true,
            audio: false,
            seconds: 4,
        },
    ]
}

#[test]
fn fragments_are_the_clusters_and_start_at_key_frames() {
    for source in sources() {
        let (mkv, path) = source.make();
        let mut session = PutMediaSession::new(options());
        let mut events = feed(&mut session, &mkv);
        events.extend(session.finish(1_800_000_000_000));
        assert!(errors(&events).is_empty(), "{source:?}: {events:?}");
        let fragments = fragments(&events);
        let clusters = cluster_timestamps_ms(&path);
        let timecodes: Vec<u64> = fragments.iter().map(|f| f.2).collect();
        assert_eq!(
            timecodes, clusters,
            "{source:?}: fragments are mkvinfo's clusters"
        );
        // Each fragment's first video key frame is one ffprobe reports, and every key frame
        // begins a fragment's video.
        let keys: Vec<u64> = fragments
            .iter()
            .map(|(meta, _, timecode)| {
                timecode + u64::from(meta.key_frame_ms.expect("a key frame"))
            })
            .collect();
        assert_eq!(keys, key_frame_times_ms(&path), "{source:?}");
        for (meta, _, timecode) in &fragments {
            assert_eq!(
                meta.producer_ms,
                1_700_000_000_000 + i64::try_from(*timecode).unwrap()
            );
        }
    }
}

#[test]
fn stored_fragments_play_alone_with_the_sources_frames() {
    for source in sources() {
        let (mkv, path) = source.make();
        for sized in [true, false] {
            let input = if sized {
                mkv.clone()
            } else {
                unknown_sized(&mkv)
            };
            let mut session = PutMediaSession::new(options());
            let mut events = feed(&mut session, &input);
            events.extend(session.finish(0));
            assert!(
                errors(&events).is_empty(),
                "{source:?} sized {sized}: {events:?}"
            );
            let mut played = Vec::new();
            let dir = tempfile::tempdir().unwrap();
            for (i, (meta, fragment, _)) in fragments(&events).iter().enumerate() {
                let file = dir.path().join(format!("{i}.mkv"));
                std::fs::write(&file, fragment).unwrap();
                let frames = packets(&file);
                assert_eq!(
                    frames.len() as u32,
                    meta.frames,
                    "{source:?}: fragment {i}'s frames"
                );
                played.extend(frames);
            }
            assert_eq!(
                played,
                packets(&path),
                "{source:?} sized {sized}: the same packets, in order"
            );
            assert!(ffprobe_frames(&path) > 0);
        }
    }
}

#[test]
fn garbage_and_cut_off_bodies_are_refused_and_nothing_partial_is_kept() {
    let mut session = PutMediaSession::new(options());
    let events = session.feed(b"GET / HTTP/1.1\r\n\r\nnot matroska at all", 0);
    assert_eq!(errors(&events), [AckError::InvalidMkvData]);
    assert!(session.is_ended());
    assert!(
        session.feed(b"more", 0).is_empty(),
        "an ended session reads nothing more"
    );

    let (mkv, _) = sources()[0].make();
    let whole = {
        let mut session = PutMediaSession::new(options());
        let mut events = feed(&mut session, &mkv);
        events.extend(session.finish(0));
        fragments(&events).len()
    };
    // Cut in the middle of the third cluster: two fragments, then INVALID_MKV_DATA.
    let cut = common::cluster_offsets(&mkv)[2] + 100;
    let mut session = PutMediaSession::new(options());
    let mut events = feed(&mut session, &mkv[..cut]);
    events.extend(session.finish(0));
    assert_eq!(fragments(&events).len(), 2);
    assert_eq!(errors(&events), [AckError::InvalidMkvData]);
    assert!(whole > 2);
}

#[test]
fn a_timecode_going_back_is_refused_and_the_session_goes_on() {
    let (first, _) = sources()[0].make();
    let mut session = PutMediaSession::new(options());
    let mut events = feed(&mut session, &first);
    let accepted = fragments(&events).len();
    // A shorter file is a second segment whose clusters restart at 0 and stay below the
    // first's last: each refused.
    let (second, _) = sources()[1].make();
    let clusters = common::cluster_offsets(&second).len();
    events = feed(&mut session, &second);
    assert!(
        fragments(&events).is_empty(),
        "{:?}",
        fragments(&events)
            .iter()
            .map(|f| (f.0, f.2))
            .collect::<Vec<_>>()
    );
    let refused = errors(&events);
    assert_eq!(refused.len(), clusters);
    assert!(accepted > clusters);
    assert!(
        refused
            .iter()
            .all(|e| *e == AckError::FragmentTimecodeLesserThanPrevious)
    );
    assert!(!session.is_ended());
}

#[test]
fn a_segment_with_other_tracks_is_refused_until_one_with_the_first_tracks() {
    let (audio_video, _) = sources()[0].make();
    let (video_only, _) = sources()[2].make();
    let mut session = PutMediaSession::new(SessionOptions {
        timecode_type: TimecodeType::Absolute,
        ..options()
    });
    let mut events = feed(&mut session, &video_only);
    let first = fragments(&events).len();
    assert!(first > 0);
    events = feed(&mut session, &audio_video);
    assert_eq!(errors(&events), [AckError::TrackNumberMismatch]);
    assert!(
        fragments(&events).is_empty(),
        "nothing of the refused segment is kept"
    );
    assert!(!session.is_ended());
}

#[test]
fn a_fragment_over_the_size_limit_is_refused_alone() {
    let (mkv, _) = sources()[0].make();
    let sizes = common::cluster_sizes(&mkv);
    let largest = *sizes.iter().max().unwrap();
    let smallest = *sizes.iter().min().unwrap();
    assert!(
        largest > smallest + 200,
        "the clusters differ in size: {sizes:?}"
    );
    for unknown in [false, true] {
        let input = if unknown {
            unknown_sized(&mkv)
        } else {
            mkv.clone()
        };
        let mut session = PutMediaSession::new(SessionOptions {
            // Room for the smallest cluster and its headers, not the largest.
            fragment_bytes_max: smallest + 1_000,
            ..options()
        });
        let mut events = feed(&mut session, &input);
        events.extend(session.finish(0));
        let refused = errors(&events);
        let kept = fragments(&events);
        assert!(
            !kept.is_empty() && !refused.is_empty(),
            "unknown {unknown}: {sizes:?}"
        );
        assert!(
            refused
                .iter()
                .all(|e| *e == AckError::MaxFragmentSizeReached)
        );
        assert_eq!(kept.len() + refused.len(), sizes.len());
        assert!(
            kept.iter()
                .all(|(_, mkv, _)| mkv.len() + 48 <= smallest + 1_000)
        );
    }
}

/// The EBML header, a Segment of unknown size and the source's Info and Tracks: a valid
/// start a hostile body can go on from.
fn header_of(mkv: &[u8]) -> Vec<u8> {
    mkv[..common::cluster_offsets(mkv)[0]].to_vec()
}

#[test]
fn hostile_sizes_and_floods_cost_little_and_get_the_right_error() {
    // An EBML header declaring 2^48 bytes: refused at once, nothing waited for.
    let mut session = PutMediaSession::new(options());
    let events = session.feed(
        &[0x1A, 0x45, 0xDF, 0xA3, 0x01, 0x00, 0x01, 0, 0, 0, 0, 0],
        0,
    );
    assert_eq!(errors(&events), [AckError::InvalidMkvData]);

    let (mkv, _) = sources()[0].make();
    let header = header_of(&mkv);
    // A cluster of unknown size whose block declares 2^50 bytes: over the limit before it
    // is whole, refused with 4001 while its bytes are dropped as they come.
    let mut body = header.clone();
    body.extend([
        0x1F, 0x43, 0xB6, 0x75, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    ]);
    body.extend([0xE7, 0x81, 0x00]);
    body.extend([0xA3, 0x01, 0x04, 0, 0, 0, 0, 0, 0]);
    let mut session = PutMediaSession::new(options());
    let mut events = session.feed(&body, 0);
    for _ in 0..64 {
        events.extend(session.feed(&[0u8; 1 << 16], 0));
    }
    assert_eq!(errors(&events), [AckError::MaxFragmentSizeReached]);

    // 4 MiB of 2-byte Void elements in one piece inside a segment: skipped one by one
    // without moving the rest each time (a copy per element would take hours here).
    let mut body = header.clone();
    body.extend(std::iter::repeat_n([0xEC, 0x80], 2 << 20).flatten());
    let mut session = PutMediaSession::new(options());
    let events = session.feed(&body, 0);
    assert!(errors(&events).is_empty() && fragments(&events).is_empty());

    // A block ID where a segment's element belongs (a cluster that ended early): 4006.
    let mut body = header;
    body.extend([0xA3, 0x84, 0x81, 0, 0, 0x80]);
    let mut session = PutMediaSession::new(options());
    assert_eq!(errors(&session.feed(&body, 0)), [AckError::InvalidMkvData]);
}
