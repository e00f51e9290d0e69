//! MPEG-TS media segments for HLS players that need them (ContainerFormat `MPEG_TS`),
//! written with mpeg2ts's packets: a PAT and a PMT, then each sample as a PES packet cut
//! into 188-byte packets, the tracks interleaved in decode order. Each segment stands
//! alone (its own tables; each stream's first packet flags a discontinuity, so counters
//! may restart). The elementary streams are what MPEG-TS carries, not Matroska's:
//! H.264 in Annex B (an access unit delimiter, then the parameter sets before every key
//! frame, then the frame's NAL units with start codes instead of length prefixes) and AAC
//! with an ADTS header per frame. Those two conversions are a few lines each and written
//! here: no crate of the field does just that without bringing a whole media framework.

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

/// The PMT's PID, and the first elementary stream's (the others follow it).
const PMT_PID: u16 = 0x1000;
const FIRST_STREAM_PID: u16 = 0x100;
/// Ticks per ms of MPEG-TS's 90 kHz clock.
const TICKS_PER_MS: i64 = 90;
/// PTS and DTS are 33 bits: times wrap there, as every MPEG-TS player expects.
const TIMESTAMP_MODULO: u64 = 1 << 33;
/// A TS packet's payload room (after its 4-byte header).
const PAYLOAD: usize = TsPacket::SIZE - 4;
/// A PES header with PTS and DTS: start code, stream id, length, flags, header length, 2 × 5.
const PES_HEADER: usize = 6 + 3 + 10;
/// An adaptation field with flags and a PCR.
const PCR_FIELD: usize = 2 + 6;

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
        let index = u16::try_from(i).map_err(|_| RemuxError::NotMkv("too many tracks"))?;
        let kind = kind(&track.track)?;
        let stream_id = match kind {
            Kind::Video { .. } => StreamId::new(StreamId::VIDEO_MIN),
            Kind::Audio { .. } => StreamId::new(StreamId::AUDIO_MIN.saturating_add(i as u8)),
        };
        streams.push(Stream {
            track: &track.track,
            pid: pid(FIRST_STREAM_PID + index)?,
            stream_id,
            kind,
            counter: ContinuityCounter::new(),
            started: false,
        });
    }
    // Presentation times move forward by the largest reorder delay, so that every decode
    // time (a B-frame's is before its presentation) stays at or after zero; one delay for
    // every track keeps them in step.
    let delay = i64::from(timing.shifts.iter().map(|(_, s)| *s).max().unwrap_or(0));
    let mut writer = TsPacketWriter::new(Vec::new());
    write_tables(&mut writer, &streams)?;
    for (index, sample) in in_decode_order(demuxed) {
        let stream = &mut streams[index];
        let (pts, dts) = (
            sample.pts_ms + delay,
            sample.dts_ms + delay - i64::from(timing.shift(stream.track.number)),
        );
        let payload = elementary(stream, sample, &demuxed.cluster[sample.data.clone()])?;
        write_pes(&mut writer, stream, &payload, pts, dts, sample.keyframe)?;
    }
    Ok(writer.into_stream())
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
            if asc.len() < 2 || asc[0] >> 3 == 0 {
                return Err(invalid());
            }
            Ok(Kind::Audio {
                profile: (asc[0] >> 3) - 1,
                rate_index: ((asc[0] & 0x07) << 1) | (asc[1] >> 7),
                channels: (asc[1] >> 3) & 0x0F,
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

/// Every track's samples, merged by decode time (the first track first on a tie).
fn in_decode_order<'d>(demuxed: &'d Demuxed<'_>) -> Vec<(usize, &'d Sample)> {
    let mut all: Vec<(usize, &Sample)> = demuxed
        .tracks
        .iter()
        .enumerate()
        .flat_map(|(i, t)| t.samples.iter().map(move |s| (i, s)))
        .collect();
    all.sort_by_key(|(i, s)| (s.dts_ms, *i));
    all
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
            pcr_pid: streams.first().map(|s| s.pid),
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
            // An access unit delimiter (any slice type), as Apple's HLS asks.
            out.extend_from_slice(&[0, 0, 0, 1, 0x09, 0xF0]);
            if sample.keyframe {
                out.extend_from_slice(parameter_sets);
            }
            let mut rest = frame;
            while !rest.is_empty() {
                let (size, body) = rest.split_at_checked(*length_size).ok_or_else(invalid)?;
                let length = size.iter().fold(0usize, |n, b| n << 8 | usize::from(*b));
                let (nal, after) = body.split_at_checked(length).ok_or_else(invalid)?;
                out.extend_from_slice(&[0, 0, 0, 1]);
                out.extend_from_slice(nal);
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
                return Err(invalid());
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

/// One sample as a PES packet: its header and first bytes in a packet (with the PCR when
/// the stream carries the clock, and a discontinuity flag on the stream's first packet),
/// the rest in packets of 184 bytes (the last padded by mpeg2ts's stuffing).
fn write_pes(
    writer: &mut TsPacketWriter<Vec<u8>>,
    stream: &mut Stream<'_>,
    payload: &[u8],
    pts_ms: i64,
    dts_ms: i64,
    keyframe: bool,
) -> Result<(), RemuxError> {
    let carries_clock = stream.pid.as_u16() == FIRST_STREAM_PID;
    let first_time = !stream.started;
    stream.started = true;
    let adaptation = (carries_clock || first_time).then(|| AdaptationField {
        discontinuity_indicator: first_time,
        random_access_indicator: keyframe,
        es_priority_indicator: false,
        pcr: carries_clock.then(|| {
            let ticks = (dts_ms.saturating_mul(TICKS_PER_MS)).rem_euclid(TIMESTAMP_MODULO as i64);
            ClockReference::new(ticks as u64 * 300).expect("under 2^33 × 300")
        }),
        opcr: None,
        splice_countdown: None,
        transport_private_data: Vec::new(),
        extension: None,
    });
    let adaptation_len = adaptation
        .as_ref()
        .map_or(0, |a| if a.pcr.is_some() { PCR_FIELD } else { 2 });
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
