//! MPEG-TS media segments for HLS players that need them (ContainerFormat `MPEG_TS`),
//! written with mpeg2ts's packets: a PAT and a PMT, then each sample as a PES packet cut
//! into 188-byte packets, the tracks interleaved in the order of the decode times written.
//! Each segment stands alone (its own tables; each PID's first packet flags a
//! discontinuity, so counters may restart). The clock (PCR) has a PID of its own, in
//! packets with no payload every 40 ms of decode time, running 700 ms behind the decode
//! times (a decoder's buffering time), which are 1.4 s ahead of the media times (as
//! ffmpeg's HLS muxer offsets them), so neither is ever below zero.
//!
//! The elementary streams are what MPEG-TS carries, not Matroska's: H.264 in Annex B (an
//! access unit delimiter unless the frame begins with one, the parameter sets before every
//! key frame, the NAL units with start codes instead of length prefixes) and AAC with an
//! ADTS header per frame (ADTS names only AAC Main, LC, SSR and LTP, a rate from its table
//! and 1 to 7 channels: other configurations are refused, as is a frame over ADTS's 13-bit
//! length). Those two conversions are a few lines each and written here: no crate of the
//! field does just that without bringing a whole media framework.

use super::{Demuxed, RemuxError, Sample, Timing};
use crate::mkv::Track;
use mp4_atom::Avcc;
use mpeg2ts::es::{StreamId, StreamType};
use mpeg2ts::pes::PesHeader;
use mpeg2ts::time::{ClockReference, Timestamp};
use mpeg2ts::ts::payload::{Bytes, Pat, Pes, Pmt};
use mpeg2ts::ts::{
    AdaptationField, ContinuityCounter, EsInfo, Pid, ProgramAssociation,
    TransportScramblingControl, TsHeader, TsPacket, TsPacketWriter, TsPayload, VersionNumber,
    WriteTsPacket,
};

/// The PMT's PID, the clock's, and the first elementary stream's (the others follow it).
const PMT_PID: u16 = 0x1000;
const PCR_PID: u16 = 0x1001;
const FIRST_STREAM_PID: u16 = 0x100;
/// How far the written times are ahead of the media times, and the clock behind them.
const TIME_OFFSET_MS: i64 = 1_400;
const PCR_LEAD_MS: i64 = 700;
/// The clock is written at least this often (MPEG-TS asks for 100 ms at most).
const PCR_EVERY_MS: i64 = 40;
/// Ticks per ms of MPEG-TS's 90 kHz clock.
const TICKS_PER_MS: i64 = 90;
/// PTS and DTS are 33 bits: times wrap there, as every MPEG-TS player expects.
const TIMESTAMP_MODULO: u64 = 1 << 33;
/// A TS packet's payload room (after its 4-byte header).
const PAYLOAD: usize = TsPacket::SIZE - 4;
/// A PES header with PTS and DTS: start code, stream id, length, flags, header length, 2 × 5.
const PES_HEADER: usize = 6 + 3 + 10;
/// An adaptation field with its length and flags only.
const FLAGS_FIELD: usize = 2;

/// How one track is carried.
struct Stream<'t> {
    track: &'t Track,
    pid: Pid,
    stream_id: StreamId,
    kind: Kind,
    counter: ContinuityCounter,
    started: bool,
}

enum Kind {
    /// H.264: the NAL length size and the parameter sets, each with a start code.
    Video {
        length_size: usize,
        parameter_sets: Vec<u8>,
    },
    /// AAC: the ADTS header's fixed fields (profile, rate index, channels).
    Audio {
        profile: u8,
        rate_index: u8,
        channels: u8,
    },
}

/// The MPEG-TS segment of one demuxed fragment (placed on the session's timeline).
pub fn media_segment(demuxed: &Demuxed<'_>, timing: &Timing) -> Result<Vec<u8>, RemuxError> {
    let mut streams = Vec::with_capacity(demuxed.tracks.len());
    for (i, track) in demuxed.tracks.iter().enumerate() {
        let index = u8::try_from(i).map_err(|_| RemuxError::NotMkv("too many tracks"))?;
        let kind = kind(&track.track)?;
        let stream_id = match kind {
            Kind::Video { .. } => StreamId::new(StreamId::VIDEO_MIN),
            Kind::Audio { .. } => StreamId::new(StreamId::AUDIO_MIN.saturating_add(index)),
        };
        streams.push(Stream {
            track: &track.track,
            pid: pid(FIRST_STREAM_PID + u16::from(index))?,
            stream_id,
            kind,
            counter: ContinuityCounter::new(),
            started: false,
        });
    }
    // Presentation times move forward by the largest reorder delay, so that every decode
    // time (a B-frame's is before its presentation) stays at or after zero; one delay for
    // every track keeps them in step. A decode time is never after its presentation: a
    // track reordering more here than in the session's first fragment has all its decode
    // times moved back by the difference (each track keeps its own order; the merge by
    // decode time is stable).
    let delay = i64::from(timing.shifts.iter().map(|(_, s)| *s).max().unwrap_or(0));
    let mut samples: Vec<(usize, &Sample, i64, i64)> = Vec::new();
    for (i, t) in demuxed.tracks.iter().enumerate() {
        let shift = i64::from(timing.shift(t.track.number));
        let most_early = t.samples.iter().map(|s| s.dts_ms - s.pts_ms).max();
        let back = shift + (most_early.unwrap_or(0) - shift).max(0);
        samples.extend(t.samples.iter().map(|s| {
            let pts = s.pts_ms + delay + TIME_OFFSET_MS;
            (i, s, pts, s.dts_ms + delay - back + TIME_OFFSET_MS)
        }));
    }
    samples.sort_by_key(|&(i, _, _, dts)| (dts, i));
    let mut writer = TsPacketWriter::new(Vec::new());
    write_tables(&mut writer, &streams)?;
    let mut clock: Option<i64> = None;
    for (index, sample, pts, dts) in samples {
        write_clock(&mut writer, &mut clock, dts - PCR_LEAD_MS)?;
        let stream = &mut streams[index];
        let payload = elementary(stream, sample, &demuxed.cluster[sample.data.clone()])?;
        write_pes(&mut writer, stream, &payload, (pts, dts), sample.keyframe)?;
    }
    Ok(writer.into_stream())
}

/// The clock up to `now_ms`: a PCR packet at the segment's first time, then one for every
/// 40 ms passed since the last.
fn write_clock(
    writer: &mut TsPacketWriter<Vec<u8>>,
    clock: &mut Option<i64>,
    now_ms: i64,
) -> Result<(), RemuxError> {
    let mut write = |ms: i64| {
        let ticks = ms
            .saturating_mul(TICKS_PER_MS)
            .rem_euclid(TIMESTAMP_MODULO as i64);
        let packet = TsPacket {
            header: TsHeader {
                transport_error_indicator: false,
                transport_priority: false,
                pid: pid(PCR_PID)?,
                transport_scrambling_control: TransportScramblingControl::NotScrambled,
                // Not counted: a packet with no payload leaves the counter as it is.
                continuity_counter: ContinuityCounter::new(),
            },
            adaptation_field: Some(AdaptationField {
                // The clock runs on from segment to segment.
                discontinuity_indicator: false,
                random_access_indicator: false,
                es_priority_indicator: false,
                pcr: Some(ClockReference::new(ticks as u64 * 300).expect("under 2^33 × 300")),
                opcr: None,
                splice_countdown: None,
                transport_private_data: Vec::new(),
                extension: None,
            }),
            payload: None,
        };
        writer.write_ts_packet(&packet).map_err(encoding)
    };
    match *clock {
        None => {
            write(now_ms)?;
            *clock = Some(now_ms);
        }
        Some(mut last) => {
            while now_ms - last >= PCR_EVERY_MS {
                last += PCR_EVERY_MS;
                write(last)?;
            }
            *clock = Some(last);
        }
    }
    Ok(())
}

/// Each track's kind, or why it cannot be carried.
fn kind(track: &Track) -> Result<Kind, RemuxError> {
    let invalid = || RemuxError::InvalidCodecPrivate(track.number);
    match track.codec_id.as_str() {
        "V_MPEG4/ISO/AVC" => {
            let mut private = track.codec_private.as_slice();
            let avcc =
                <Avcc as mp4_atom::Atom>::decode_body(&mut private).map_err(|_| invalid())?;
            let mut parameter_sets = Vec::new();
            for set in avcc
                .sequence_parameter_sets
                .iter()
                .chain(&avcc.picture_parameter_sets)
            {
                parameter_sets.extend_from_slice(&[0, 0, 0, 1]);
                parameter_sets.extend_from_slice(set);
            }
            Ok(Kind::Video {
                length_size: usize::from(avcc.length_size),
                parameter_sets,
            })
        }
        "A_AAC" | "A_AAC/MPEG4/LC" | "A_AAC/MPEG2/LC" => {
            let asc = &track.codec_private;
            if asc.len() < 2 {
                return Err(invalid());
            }
            let (object_type, rate_index, channels) = (
                asc[0] >> 3,
                ((asc[0] & 0x07) << 1) | (asc[1] >> 7),
                (asc[1] >> 3) & 0x0F,
            );
            let refused = |why: String| RemuxError::NotInMpegTs {
                track: track.number,
                why,
            };
            if !(1..=4).contains(&object_type) {
                return Err(refused(format!(
                    "AAC object type {object_type} has no ADTS profile (Main, LC, SSR and LTP do)"
                )));
            }
            if rate_index > 12 || !(1..=7).contains(&channels) {
                return Err(refused(format!(
                    "ADTS cannot say its rate (index {rate_index}) or channels ({channels})"
                )));
            }
            Ok(Kind::Audio {
                profile: object_type - 1,
                rate_index,
                channels,
            })
        }
        other => Err(RemuxError::UnsupportedCodec {
            track: track.number,
            codec: other.to_owned(),
        }),
    }
}

fn pid(n: u16) -> Result<Pid, RemuxError> {
    Pid::new(n).map_err(|_| RemuxError::NotMkv("a PID out of range"))
}

fn encoding(_: mpeg2ts::Error) -> RemuxError {
    RemuxError::NotMkv("encoding MPEG-TS")
}

fn write_tables(
    writer: &mut TsPacketWriter<Vec<u8>>,
    streams: &[Stream<'_>],
) -> Result<(), RemuxError> {
    let header = |pid: Pid| TsHeader {
        transport_error_indicator: false,
        transport_priority: false,
        pid,
        transport_scrambling_control: TransportScramblingControl::NotScrambled,
        continuity_counter: ContinuityCounter::new(),
    };
    let pat = TsPacket {
        header: header(pid(Pid::PAT)?),
        adaptation_field: None,
        payload: Some(TsPayload::Pat(Pat {
            transport_stream_id: 1,
            version_number: VersionNumber::new(),
            table: vec![ProgramAssociation {
                program_num: 1,
                program_map_pid: pid(PMT_PID)?,
            }],
        })),
    };
    let pmt = TsPacket {
        header: header(pid(PMT_PID)?),
        adaptation_field: None,
        payload: Some(TsPayload::Pmt(Pmt {
            program_num: 1,
            pcr_pid: Some(pid(PCR_PID)?),
            version_number: VersionNumber::new(),
            program_info: Vec::new(),
            es_info: streams
                .iter()
                .map(|s| EsInfo {
                    stream_type: match s.kind {
                        Kind::Video { .. } => StreamType::H264,
                        Kind::Audio { .. } => StreamType::AdtsAac,
                    },
                    elementary_pid: s.pid,
                    descriptors: Vec::new(),
                })
                .collect(),
        })),
    };
    writer.write_ts_packet(&pat).map_err(encoding)?;
    writer.write_ts_packet(&pmt).map_err(encoding)
}

/// A sample's bytes as its MPEG-TS elementary stream carries them.
fn elementary(stream: &Stream<'_>, sample: &Sample, frame: &[u8]) -> Result<Vec<u8>, RemuxError> {
    let invalid = || RemuxError::InvalidCodecPrivate(stream.track.number);
    match &stream.kind {
        Kind::Video {
            length_size,
            parameter_sets,
        } => {
            let mut out = Vec::with_capacity(frame.len() + parameter_sets.len() + 16);
            let mut rest = frame;
            let mut first = true;
            while !rest.is_empty() {
                let (size, body) = rest.split_at_checked(*length_size).ok_or_else(invalid)?;
                let length = size.iter().fold(0usize, |n, b| n << 8 | usize::from(*b));
                let (nal, after) = body.split_at_checked(length).ok_or_else(invalid)?;
                let delimiter = nal.first().is_some_and(|header| header & 0x1F == 9);
                if first && !delimiter {
                    // An access unit delimiter (any slice type), as Apple's HLS asks.
                    out.extend_from_slice(&[0, 0, 0, 1, 0x09, 0xF0]);
                }
                if first && sample.keyframe && !delimiter {
                    out.extend_from_slice(parameter_sets);
                }
                out.extend_from_slice(&[0, 0, 0, 1]);
                out.extend_from_slice(nal);
                if first && sample.keyframe && delimiter {
                    out.extend_from_slice(parameter_sets);
                }
                first = false;
                rest = after;
            }
            Ok(out)
        }
        Kind::Audio {
            profile,
            rate_index,
            channels,
        } => {
            // ADTS's frame length is 13 bits and counts its own 7-byte header.
            let length = frame.len() + 7;
            if length >= 1 << 13 {
                return Err(RemuxError::NotInMpegTs {
                    track: stream.track.number,
                    why: format!("an AAC frame of {} bytes is over ADTS's 8,184", frame.len()),
                });
            }
            let mut out = Vec::with_capacity(length);
            out.extend_from_slice(&[
                0xFF,
                0xF1, // MPEG-4, layer 0, no CRC
                (profile << 6) | (rate_index << 2) | (channels >> 2),
                ((channels & 0x03) << 6) | (length >> 11) as u8,
                (length >> 3) as u8,
                (((length & 0x07) as u8) << 5) | 0x1F,
                0xFC, // buffer fullness 0x7FF (variable rate), one raw data block
            ]);
            out.extend_from_slice(frame);
            Ok(out)
        }
    }
}

fn timestamp(ms: i64) -> Result<Timestamp, RemuxError> {
    let ticks = ms
        .saturating_mul(TICKS_PER_MS)
        .rem_euclid(TIMESTAMP_MODULO as i64);
    Timestamp::new(ticks as u64).map_err(encoding)
}

/// One sample as a PES packet: its header and first bytes in a packet (flagged as a
/// random access point on a key frame, and as a discontinuity on the stream's first
/// packet), the rest in packets of 184 bytes (the last padded by mpeg2ts's stuffing).
fn write_pes(
    writer: &mut TsPacketWriter<Vec<u8>>,
    stream: &mut Stream<'_>,
    payload: &[u8],
    (pts_ms, dts_ms): (i64, i64),
    keyframe: bool,
) -> Result<(), RemuxError> {
    let first_time = !stream.started;
    stream.started = true;
    let adaptation = (keyframe || first_time).then(|| AdaptationField {
        discontinuity_indicator: first_time,
        random_access_indicator: keyframe,
        es_priority_indicator: false,
        pcr: None,
        opcr: None,
        splice_countdown: None,
        transport_private_data: Vec::new(),
        extension: None,
    });
    let adaptation_len = adaptation.as_ref().map_or(0, |_| FLAGS_FIELD);
    let first_room = PAYLOAD - PES_HEADER - adaptation_len;
    let (first, mut rest) = payload.split_at(first_room.min(payload.len()));
    let pes_len = PES_HEADER - 6 + payload.len();
    let header = PesHeader {
        stream_id: stream.stream_id,
        priority: false,
        data_alignment_indicator: true,
        copyright: false,
        original_or_copy: false,
        pts: Some(timestamp(pts_ms)?),
        dts: Some(timestamp(dts_ms)?),
        escr: None,
    };
    let packet = TsPacket {
        header: ts_header(stream),
        adaptation_field: adaptation,
        payload: Some(TsPayload::PesStart(Pes {
            header,
            // Video may be longer than the field holds: 0 says "unbounded", as allowed.
            pes_packet_len: u16::try_from(pes_len).unwrap_or(0),
            data: Bytes::new(first).map_err(encoding)?,
        })),
    };
    writer.write_ts_packet(&packet).map_err(encoding)?;
    while !rest.is_empty() {
        let (chunk, after) = rest.split_at(PAYLOAD.min(rest.len()));
        let packet = TsPacket {
            header: ts_header(stream),
            adaptation_field: None,
            payload: Some(TsPayload::PesContinuation(
                Bytes::new(chunk).map_err(encoding)?,
            )),
        };
        writer.write_ts_packet(&packet).map_err(encoding)?;
        rest = after;
    }
    Ok(())
}

/// The next packet's header on the stream's PID, its counter moved on.
fn ts_header(stream: &mut Stream<'_>) -> TsHeader {
    let header = TsHeader {
        transport_error_indicator: false,
        transport_priority: false,
        pid: stream.pid,
        transport_scrambling_control: TransportScramblingControl::NotScrambled,
        continuity_counter: stream.counter,
    };
    stream.counter.increment();
    header
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remux::TrackSamples;

    fn track(number: u64, codec_id: &str, codec_private: Vec<u8>, video: bool) -> Track {
        Track {
            number,
            uid: number,
            kind: if video { 1 } else { 2 },
            codec_id: codec_id.into(),
            codec_private,
            default_duration_ns: None,
            pixels: video.then_some((320, 240)),
            audio: (!video).then_some((48_000.0, 2)),
        }
    }

    /// An avcC with one SPS (`67 01 02`) and one PPS (`68 03`), 4-byte NAL lengths.
    fn avcc() -> Vec<u8> {
        vec![
            1, 0x64, 0, 0x1E, 0xFF, 0xE1, 0, 3, 0x67, 1, 2, 1, 0, 2, 0x68, 3,
        ]
    }

    fn sample(pts_ms: i64, dts_ms: i64, keyframe: bool, data: std::ops::Range<usize>) -> Sample {
        Sample {
            pts_ms,
            dts_ms,
            duration_ms: 40,
            keyframe,
            data,
        }
    }

    /// Every payload byte of `pid`'s packets, in order (headers and stuffing dropped).
    fn payload_of(ts: &[u8], pid: u16) -> Vec<u8> {
        let mut out = Vec::new();
        for packet in ts.chunks(TsPacket::SIZE) {
            assert_eq!(packet.len(), TsPacket::SIZE);
            assert_eq!(packet[0], 0x47, "every packet starts with the sync byte");
            if (u16::from(packet[1] & 0x1F) << 8 | u16::from(packet[2])) != pid {
                continue;
            }
            let start = if packet[3] & 0x20 != 0 {
                5 + usize::from(packet[4])
            } else {
                4
            };
            out.extend_from_slice(&packet[start..]);
        }
        out
    }

    #[test]
    fn h264_goes_out_in_annex_b_with_parameter_sets_before_key_frames() {
        // Two frames: a key frame of one NAL (65 AA BB), then one of two NALs (41 CC, 41 DD).
        let cluster = [
            0, 0, 0, 3, 0x65, 0xAA, 0xBB, 0, 0, 0, 2, 0x41, 0xCC, 0, 0, 0, 2, 0x41, 0xDD,
        ];
        let demuxed = Demuxed {
            cluster: &cluster,
            cluster_ms: 0,
            tracks: vec![TrackSamples {
                track: track(1, "V_MPEG4/ISO/AVC", avcc(), true),
                samples: vec![sample(0, 0, true, 0..7), sample(40, 40, false, 7..19)],
            }],
        };
        let timing = Timing::of(&demuxed, 0);
        let ts = media_segment(&demuxed, &timing).unwrap();
        assert_eq!(ts.len() % TsPacket::SIZE, 0);
        assert_eq!(&ts[1..3], &[0x40, 0x00], "the PAT comes first");
        let video = payload_of(&ts, FIRST_STREAM_PID);
        let start = [0u8, 0, 0, 1];
        let expected: Vec<u8> = [
            &start[..],
            &[0x09, 0xF0],
            &start,
            &[0x67, 1, 2],
            &start,
            &[0x68, 3],
            &start,
            &[0x65, 0xAA, 0xBB],
        ]
        .concat();
        // Each PES: its 19-byte header (start code, stream id, length, flags, PTS and DTS).
        assert_eq!(&video[..4], &[0, 0, 1, 0xE0]);
        assert_eq!(&video[19..19 + expected.len()], &expected[..]);
        let second: Vec<u8> = [
            &start[..],
            &[0x09, 0xF0],
            &start,
            &[0x41, 0xCC],
            &start,
            &[0x41, 0xDD],
        ]
        .concat();
        let rest = &video[19 + expected.len()..];
        assert_eq!(&rest[..4], &[0, 0, 1, 0xE0]);
        assert_eq!(
            &rest[19..19 + second.len()],
            &second[..],
            "no parameter sets before a delta frame"
        );
    }

    /// A 33-bit PTS or DTS as a PES header holds it (5 bytes, marker bits between).
    fn timestamp_at(b: &[u8]) -> u64 {
        (u64::from(b[0] >> 1 & 0x07) << 30)
            | (u64::from(b[1]) << 22)
            | (u64::from(b[2] >> 1) << 15)
            | (u64::from(b[3]) << 7)
            | u64::from(b[4] >> 1)
    }

    #[test]
    fn times_run_ahead_of_a_clock_of_its_own_and_counters_count() {
        // 100 frames of one NAL each, 40 ms apart: 4 s of video, 23 packets per frame.
        let nal: Vec<u8> = [&[0u8, 0, 16, 0][..], &[0x41; 4096]].concat();
        let cluster: Vec<u8> = nal.iter().copied().cycle().take(nal.len() * 100).collect();
        let samples = (0..100)
            .map(|i| {
                let at = i * nal.len();
                sample(
                    i as i64 * 40,
                    i as i64 * 40,
                    i % 25 == 0,
                    at..at + nal.len(),
                )
            })
            .collect();
        let demuxed = Demuxed {
            cluster: &cluster,
            cluster_ms: 0,
            tracks: vec![TrackSamples {
                track: track(1, "V_MPEG4/ISO/AVC", avcc(), true),
                samples,
            }],
        };
        let ts = media_segment(&demuxed, &Timing::of(&demuxed, 0)).unwrap();
        let (mut pts, mut dts, mut clock, mut counters) = (vec![], vec![], vec![], vec![]);
        for packet in ts.chunks(TsPacket::SIZE) {
            let pid = u16::from(packet[1] & 0x1F) << 8 | u16::from(packet[2]);
            let has_field = packet[3] & 0x20 != 0;
            let payload_at = if has_field {
                5 + usize::from(packet[4])
            } else {
                4
            };
            if pid == PCR_PID {
                assert_eq!(
                    packet[3] & 0x30,
                    0x20,
                    "the clock's packets have no payload"
                );
                assert!(packet[5] & 0x10 != 0, "a PCR is flagged");
                let base = (u64::from(packet[6]) << 25)
                    | (u64::from(packet[7]) << 17)
                    | (u64::from(packet[8]) << 9)
                    | (u64::from(packet[9]) << 1)
                    | u64::from(packet[10] >> 7);
                clock.push(base);
            } else if pid == FIRST_STREAM_PID {
                counters.push(packet[3] & 0x0F);
                if packet[1] & 0x40 != 0 {
                    let pes = &packet[payload_at..];
                    assert_eq!(pes[7] >> 6, 0b11, "PTS and DTS");
                    assert_eq!(usize::from(pes[8]), 10, "the PES header's data length");
                    pts.push(timestamp_at(&pes[9..14]));
                    dts.push(timestamp_at(&pes[14..19]));
                }
            }
        }
        let expected: Vec<u64> = (0..100).map(|i| (i * 40 + 1_400) * 90).collect();
        assert_eq!(pts, expected);
        assert_eq!(dts, expected);
        // The clock: from 700 ms behind the first decode time, every 40 ms, never ahead.
        let expected_clock: Vec<u64> = (0..100).map(|i| (i * 40 + 700) * 90).collect();
        assert_eq!(clock, expected_clock);
        // Counters go up by one per packet of the PID, wrapping at 16.
        assert!(counters.len() > 100 * 22);
        for pair in counters.windows(2) {
            assert_eq!(pair[1], (pair[0] + 1) % 16);
        }
    }

    #[test]
    fn more_reordering_than_the_session_expected_keeps_decode_order() {
        // I P B b b in decode order, shown at 0 160 80 40 120; the session's timing (from
        // a fragment without B-frames) has no shift for it.
        let cluster = [0, 0, 0, 1, 0x65, 0, 0, 0, 1, 0x41];
        let shown = [0, 160, 80, 40, 120];
        let samples = shown
            .iter()
            .enumerate()
            .map(|(i, &pts)| {
                sample(
                    pts,
                    i as i64 * 40,
                    i == 0,
                    if i == 0 { 0..5 } else { 5..10 },
                )
            })
            .collect();
        let demuxed = Demuxed {
            cluster: &cluster,
            cluster_ms: 0,
            tracks: vec![TrackSamples {
                track: track(1, "V_MPEG4/ISO/AVC", avcc(), true),
                samples,
            }],
        };
        let timing = Timing {
            base_ms: 0,
            shifts: vec![(1, 0)],
        };
        let ts = media_segment(&demuxed, &timing).unwrap();
        let (mut pts, mut dts) = (Vec::new(), Vec::new());
        for packet in ts.chunks(TsPacket::SIZE) {
            let pid = u16::from(packet[1] & 0x1F) << 8 | u16::from(packet[2]);
            if pid == FIRST_STREAM_PID && packet[1] & 0x40 != 0 {
                let at = if packet[3] & 0x20 != 0 {
                    5 + usize::from(packet[4])
                } else {
                    4
                };
                pts.push(timestamp_at(&packet[at + 9..at + 14]) / 90);
                dts.push(timestamp_at(&packet[at + 14..at + 19]) / 90);
            }
        }
        // Written in decode order, every frame shown at its time, decoded no later.
        let offset = 1_400;
        assert_eq!(pts, shown.map(|p| (p + offset) as u64));
        assert!(dts.windows(2).all(|d| d[0] < d[1]), "{dts:?}");
        assert!(dts.iter().zip(&pts).all(|(d, p)| d <= p), "{dts:?} {pts:?}");
    }

    #[test]
    fn a_frame_with_its_own_delimiter_gets_no_second_one() {
        // A key frame that begins with an access unit delimiter, then a slice.
        let cluster = [0, 0, 0, 2, 0x09, 0x10, 0, 0, 0, 2, 0x65, 0xAA];
        let demuxed = Demuxed {
            cluster: &cluster,
            cluster_ms: 0,
            tracks: vec![TrackSamples {
                track: track(1, "V_MPEG4/ISO/AVC", avcc(), true),
                samples: vec![sample(0, 0, true, 0..12)],
            }],
        };
        let ts = media_segment(&demuxed, &Timing::of(&demuxed, 0)).unwrap();
        let video = payload_of(&ts, FIRST_STREAM_PID);
        let start = [0u8, 0, 0, 1];
        let expected: Vec<u8> = [
            &start[..],
            &[0x09, 0x10],
            &start,
            &[0x67, 1, 2],
            &start,
            &[0x68, 3],
            &start,
            &[0x65, 0xAA],
        ]
        .concat();
        assert_eq!(&video[19..19 + expected.len()], &expected[..]);
    }

    #[test]
    fn aac_configurations_adts_cannot_name_are_refused() {
        // HE-AAC signalled explicitly (object type 5), and 8 channels (configuration 8+).
        for asc in [vec![0x2B, 0x92, 0x08, 0x00], vec![0x11, 0xC0]] {
            let cluster = [0x21];
            let demuxed = Demuxed {
                cluster: &cluster,
                cluster_ms: 0,
                tracks: vec![TrackSamples {
                    track: track(2, "A_AAC", asc, false),
                    samples: vec![sample(0, 0, true, 0..1)],
                }],
            };
            assert!(matches!(
                media_segment(&demuxed, &Timing::of(&demuxed, 0)),
                Err(RemuxError::NotInMpegTs { track: 2, .. })
            ));
        }
    }

    #[test]
    fn aac_frames_get_adts_headers() {
        // AAC LC (object type 2), 48 kHz (index 3), stereo: AudioSpecificConfig 0x11 0x90.
        let cluster = [0x21, 0x22, 0x23];
        let demuxed = Demuxed {
            cluster: &cluster,
            cluster_ms: 0,
            tracks: vec![TrackSamples {
                track: track(2, "A_AAC", vec![0x11, 0x90], false),
                samples: vec![sample(0, 0, true, 0..3)],
            }],
        };
        let ts = media_segment(&demuxed, &Timing::of(&demuxed, 0)).unwrap();
        let audio = payload_of(&ts, FIRST_STREAM_PID);
        assert_eq!(&audio[..4], &[0, 0, 1, 0xC0]);
        let frame = &audio[19..19 + 10];
        // Sync word, MPEG-4, no CRC; profile LC (1), rate index 3, 2 channels; length 10.
        assert_eq!(frame[0], 0xFF);
        assert_eq!(frame[1], 0xF1);
        assert_eq!(frame[2], (1 << 6) | (3 << 2));
        assert_eq!(frame[3] >> 6, 2);
        let length = (usize::from(frame[3] & 0x03) << 11)
            | (usize::from(frame[4]) << 3)
            | usize::from(frame[5] >> 5);
        assert_eq!(length, 10);
        assert_eq!(&frame[7..], &cluster);
    }

    #[test]
    fn a_nal_length_past_the_frame_and_an_unknown_codec_are_refused() {
        let cluster = [0, 0, 0, 9, 0x65];
        let mut demuxed = Demuxed {
            cluster: &cluster,
            cluster_ms: 0,
            tracks: vec![TrackSamples {
                track: track(1, "V_MPEG4/ISO/AVC", avcc(), true),
                samples: vec![sample(0, 0, true, 0..5)],
            }],
        };
        let timing = Timing::of(&demuxed, 0);
        assert_eq!(
            media_segment(&demuxed, &timing),
            Err(RemuxError::InvalidCodecPrivate(1))
        );
        demuxed.tracks[0].track.codec_id = "V_VP9".into();
        assert!(matches!(
            media_segment(&demuxed, &timing),
            Err(RemuxError::UnsupportedCodec { track: 1, .. })
        ));
    }
}
