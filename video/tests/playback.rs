//! Stored fragments remuxed for playback: fragmented MP4 (HLS's segments, GetClip's file)
//! read by ffmpeg with the source's packets and decoded to the source's pictures, MPEG-TS
//! (HLS's other container) and per-track fragmented MP4 (DASH's) decoded to the source's
//! pictures and sound, for H.264 with and without B-frames and with AAC, from clusters of
//! known and of unknown size.

mod common;

use common::{Source, decoded, decoded_frames, packets_by_stream};
use sluice_video::remux::{Demuxed, Timing, demux, fmp4, ts};
use sluice_video::{Event, FragmentMeta, PutMediaSession, SessionOptions, TimecodeType};

/// The stored metadata and MKV of every fragment of `mkv`.
fn stored(mkv: &[u8]) -> Vec<(FragmentMeta, Vec<u8>)> {
    stored_from(mkv, 0)
}

/// The same, put by a producer whose session started at `producer_start_ms`.
fn stored_from(mkv: &[u8], producer_start_ms: i64) -> Vec<(FragmentMeta, Vec<u8>)> {
    let mut session = PutMediaSession::new(SessionOptions {
        timecode_type: TimecodeType::Relative,
        producer_start_ms,
        fragment_bytes_max: 10 << 20,
        fragment_duration_max_ms: sluice_video::FRAGMENT_DURATION_MAX_MS,
    });
    let mut events = session.feed(mkv, 0);
    events.extend(session.finish(0));
    events
        .into_iter()
        .filter_map(|e| match e {
            Event::Fragment(f) => {
                let (meta, mkv) = FragmentMeta::decode(&f.record).unwrap();
                Some((meta, mkv.to_vec()))
            }
            Event::Ack(_) => None,
        })
        .collect()
}

#[test]
fn fragmented_mp4_holds_the_sources_packets_and_pictures() {
    for source in [
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
    ] {
        let (mkv, path) = source.make();
        let fragments = stored(&mkv);
        // Unknown-size clusters (as live producers write them) store the same fragments, so
        // everything played below holds for them too.
        assert!(
            stored(&common::unknown_sized(&mkv)) == fragments,
            "{source:?}: unknown-size clusters"
        );
        let timing = Timing::of(&demux(&fragments[0].1).unwrap(), fragments[0].0.producer_ms);
        let dir = tempfile::tempdir().unwrap();
        let pictures = decoded_frames(&path);
        assert_eq!(pictures.len(), 25 * source.seconds as usize);
        // Fragmented MP4 of every track (HLS, GetClip): the source's packets and pictures.
        let first = demux(&fragments[0].1).unwrap();
        let mut mp4 = fmp4::init_segment(&first.track_entries(), &timing).unwrap();
        let mut mpeg_ts = Vec::new();
        for (i, (meta, fragment)) in fragments.iter().enumerate() {
            let demuxed = on_timeline(fragment, meta, &timing);
            let sequence = u32::try_from(i + 1).unwrap();
            mp4.extend(fmp4::media_segment(&demuxed, sequence, &timing).unwrap());
            mpeg_ts.extend(ts::media_segment(&demuxed, &timing).unwrap());
        }
        let file = dir.path().join("clip.mp4");
        std::fs::write(&file, &mp4).unwrap();
        assert_eq!(
            packets_by_stream(&file),
            packets_by_stream(&path),
            "{source:?}: packets"
        );
        assert_eq!(decoded_frames(&file), pictures, "{source:?}: pictures");
        // MPEG-TS (segments one after another, as a player reads them): the same pictures
        // and sound.
        let file = dir.path().join("segments.ts");
        std::fs::write(&file, &mpeg_ts).unwrap();
        assert_eq!(decoded_frames(&file), pictures, "{source:?}: TS pictures");
        if source.audio {
            assert_eq!(
                decoded(&file, "a"),
                decoded(&path, "a"),
                "{source:?}: TS sound"
            );
        }
        // A track alone (DASH's adaptation sets): the same pictures, or sound.
        for track in first.track_entries() {
            let mut alone = first.clone();
            assert!(alone.retain_track(track.number));
            let mut mp4 = fmp4::init_segment(&alone.track_entries(), &timing).unwrap();
            for (i, (meta, fragment)) in fragments.iter().enumerate() {
                let mut demuxed = on_timeline(fragment, meta, &timing);
                assert!(demuxed.retain_track(track.number));
                let sequence = u32::try_from(i + 1).unwrap();
                mp4.extend(fmp4::media_segment(&demuxed, sequence, &timing).unwrap());
            }
            let file = dir.path().join(format!("track-{}.mp4", track.number));
            std::fs::write(&file, &mp4).unwrap();
            let kind = if track.pixels.is_some() { "v" } else { "a" };
            assert_eq!(
                decoded(&file, kind),
                decoded(&path, kind),
                "{source:?}: track {} alone",
                track.number
            );
        }
    }
}

/// A stored fragment demuxed and placed on the session's timeline.
fn on_timeline<'m>(mkv: &'m [u8], meta: &FragmentMeta, timing: &Timing) -> Demuxed<'m> {
    let mut demuxed = demux(mkv).unwrap();
    demuxed.start_at(timing.start_of(meta.producer_ms));
    demuxed
}

/// Two PutMedia sessions of one source, ten seconds apart: their relative timecodes both
/// restart at 0, and on the session's timeline the second plays ten seconds after the
/// first began, every packet at its own time.
#[test]
fn fragments_of_restarted_sessions_follow_one_another_by_producer_time() {
    let source = Source {
        b_frames: true,
        audio: true,
        seconds: 4,
    };
    let (mkv, path) = source.make();
    let mut fragments = stored_from(&mkv, 0);
    fragments.extend(stored_from(&mkv, 10_000));
    let timing = Timing::of(&demux(&fragments[0].1).unwrap(), fragments[0].0.producer_ms);
    let first = demux(&fragments[0].1).unwrap();
    let mut mp4 = fmp4::init_segment(&first.track_entries(), &timing).unwrap();
    for (i, (meta, fragment)) in fragments.iter().enumerate() {
        let demuxed = on_timeline(fragment, meta, &timing);
        mp4.extend(fmp4::media_segment(&demuxed, u32::try_from(i + 1).unwrap(), &timing).unwrap());
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("twice.mp4");
    std::fs::write(&file, &mp4).unwrap();
    let mut expected = packets_by_stream(&path);
    for packets in expected.values_mut() {
        let later: Vec<String> = packets
            .iter()
            .map(|p| {
                let (pts, rest) = p.split_once(' ').unwrap();
                format!("{} {rest}", pts.parse::<i64>().unwrap() + 10_000)
            })
            .collect();
        packets.extend(later);
    }
    assert_eq!(packets_by_stream(&file), expected);
}
