//! Stored fragments remuxed for playback: fragmented MP4 (HLS's and DASH's segments,
//! GetClip's file) read by ffmpeg with the source's packets and decoded to the source's
//! pictures, for H.264 with and without B-frames and with AAC.

mod common;

use common::{Source, decoded_frames, packets_by_stream};
use sluice_video::remux::{demux, fmp4};
use sluice_video::{Event, FragmentMeta, PutMediaSession, SessionOptions, TimecodeType};

/// The stored MKV of every fragment of `mkv`.
fn stored(mkv: &[u8]) -> Vec<Vec<u8>> {
    let mut session = PutMediaSession::new(SessionOptions {
        timecode_type: TimecodeType::Relative,
        producer_start_ms: 0,
        fragment_bytes_max: 10 << 20,
        fragment_duration_max_ms: sluice_video::FRAGMENT_DURATION_MAX_MS,
    });
    let mut events = session.feed(mkv, 0);
    events.extend(session.finish(0));
    events
        .into_iter()
        .filter_map(|e| match e {
            Event::Fragment(f) => Some(FragmentMeta::decode(&f.record).unwrap().1.to_vec()),
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
        let first = demux(&fragments[0]).unwrap();
        let timing = fmp4::Timing::of(&first);
        let mut mp4 = fmp4::init_segment(&first.track_entries(), &timing).unwrap();
        for (i, fragment) in fragments.iter().enumerate() {
            let demuxed = demux(fragment).unwrap();
            let sequence = u32::try_from(i + 1).unwrap();
            mp4.extend(fmp4::media_segment(&demuxed, sequence, &timing).unwrap());
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("clip.mp4");
        std::fs::write(&file, &mp4).unwrap();
        assert_eq!(
            packets_by_stream(&file),
            packets_by_stream(&path),
            "{source:?}: packets"
        );
        let pictures = decoded_frames(&path);
        assert_eq!(pictures.len(), 25 * source.seconds as usize);
        assert_eq!(
            decoded_frames(&file),
            pictures,
            "{source:?}: decoded pictures"
        );
    }
}
