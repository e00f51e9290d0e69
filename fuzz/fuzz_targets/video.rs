//! PutMedia sessions fed arbitrary bytes in arbitrary pieces (the body is anyone's): no
//! panic, no runaway memory, and every fragment they accept reads back, remuxes to MP4 and
//! renders as GetMedia output without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_video::remux::{Timing, demux, fmp4, ts};
use sluice_video::{Event, FragmentMeta, PutMediaSession, SessionOptions, TimecodeType};

fuzz_target!(|data: &[u8]| {
    let Some((&split, body)) = data.split_first() else {
        return;
    };
    let mut session = PutMediaSession::new(SessionOptions {
        timecode_type: if split & 1 == 0 { TimecodeType::Relative } else { TimecodeType::Absolute },
        producer_start_ms: 1_700_000_000_000,
        // Small limits, so the refusal paths run too.
        fragment_bytes_max: 64 << 10,
        fragment_duration_max_ms: sluice_video::FRAGMENT_DURATION_MAX_MS,
    });
    let piece = usize::from(split >> 1).max(1);
    let mut events = Vec::new();
    for chunk in body.chunks(piece) {
        events.extend(session.feed(chunk, 1_800_000_000_000));
    }
    events.extend(session.finish(1_800_000_000_000));
    for event in events {
        let Event::Fragment(fragment) = event else {
            continue;
        };
        assert!(fragment.record.len() <= 64 << 10);
        let (meta, mkv) = FragmentMeta::decode(&fragment.record).expect("a stored fragment reads");
        let _ = sluice_video::media_of(mkv, "1", &meta, 0).expect("its GetMedia output renders");
        if let Ok(mut demuxed) = demux(mkv) {
            let timing = Timing::of(&demuxed, meta.producer_ms);
            demuxed.start_at(timing.start_of(meta.producer_ms));
            let _ = fmp4::init_segment(&demuxed.track_entries(), &timing);
            let _ = fmp4::media_segment(&demuxed, 1, &timing);
            let _ = ts::media_segment(&demuxed, &timing);
            if let Some(track) = demuxed.tracks.first().map(|t| t.track.number) {
                demuxed.retain_track(track);
                let _ = fmp4::media_segment(&demuxed, 1, &timing);
            }
        }
    }
});
