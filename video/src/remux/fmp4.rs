//! Fragmented MP4 with mp4-atom's boxes: an init segment (`ftyp` + `moov`) from a
//! segment's tracks, and a media segment (`moof` + `mdat`) per stored fragment. Times are
//! in ms (timescale 1,000, Matroska's default resolution), so a frame keeps its exact time.

use super::{Demuxed, RemuxError, Timing};
use crate::mkv::Track;
use mp4_atom::esds::{DecoderConfig, DecoderSpecific, EsDescriptor, SLConfig};
use mp4_atom::{
    Audio, Avc1, Avcc, Codec, Dinf, Dref, DrefEntry, Edts, Elst, ElstEntry, Encode, Esds,
    FixedPoint, FourCC, Ftyp, Hdlr, Mdhd, Mdia, Mfhd, Minf, Moof, Moov, Mp4a, Mvex, Mvhd, Smhd,
    Stbl, Stsd, Tfdt, Tfhd, Tkhd, Traf, Trak, Trex, Trun, TrunEntry, TrunSamples, Url, Visual,
    Vmhd,
};

/// Ticks per second of every track.
const TIMESCALE: u32 = 1_000;
/// Sample flags: a sync sample; a sample that depends on others and is not a sync sample.
const SYNC: u32 = 0x0200_0000;
const NOT_SYNC: u32 = 0x0101_0000;

/// The init segment for these tracks (H.264 and AAC).
pub fn init_segment(tracks: &[Track], timing: &Timing) -> Result<Vec<u8>, RemuxError> {
    let mut traks = Vec::new();
    for track in tracks {
        let mut trak = trak(track)?;
        let shift = timing.shift(track.number);
        if shift > 0 {
            trak.edts = Some(Edts {
                elst: Some(Elst {
                    entries: vec![ElstEntry {
                        segment_duration: 0,
                        media_time: Some(u64::from(shift)),
                        media_rate: FixedPoint::new(1, 0),
                    }],
                }),
            });
        }
        traks.push(trak);
    }
    let moov = Moov {
        mvhd: Mvhd {
            timescale: TIMESCALE,
            rate: FixedPoint::new(1, 0),
            volume: FixedPoint::new(1, 0),
            next_track_id: tracks
                .iter()
                .map(track_id)
                .max()
                .unwrap_or(0)
                .saturating_add(1),
            ..Mvhd::default()
        },
        mvex: Some(Mvex {
            mehd: None,
            trex: tracks
                .iter()
                .map(|t| Trex {
                    track_id: track_id(t),
                    default_sample_description_index: 1,
                    ..Trex::default()
                })
                .collect(),
        }),
        trak: traks,
        ..Moov::default()
    };
    let mut out = Vec::new();
    ftyp()
        .encode(&mut out)
        .map_err(|_| RemuxError::NotMkv("encoding ftyp"))?;
    moov.encode(&mut out)
        .map_err(|_| RemuxError::NotMkv("encoding moov"))?;
    Ok(out)
}

fn ftyp() -> Ftyp {
    Ftyp {
        major_brand: FourCC::new(b"iso6"),
        minor_version: 0,
        compatible_brands: vec![FourCC::new(b"iso6"), FourCC::new(b"mp41")],
    }
}

fn track_id(track: &Track) -> u32 {
    u32::try_from(track.number).unwrap_or(u32::MAX)
}

fn trak(track: &Track) -> Result<Trak, RemuxError> {
    let (handler, name, codec) = match track.codec_id.as_str() {
        "V_MPEG4/ISO/AVC" => (b"vide", "VideoHandler", avc1(track)?),
        "A_AAC" | "A_AAC/MPEG4/LC" | "A_AAC/MPEG2/LC" => (b"soun", "SoundHandler", mp4a(track)?),
        other => {
            return Err(RemuxError::UnsupportedCodec {
                track: track.number,
                codec: other.to_owned(),
            });
        }
    };
    let video = handler == b"vide";
    let (width, height) = track.pixels.unwrap_or((0, 0));
    Ok(Trak {
        tkhd: Tkhd {
            track_id: track_id(track),
            enabled: true,
            in_movie: true,
            volume: FixedPoint::new(u8::from(!video), 0),
            width: FixedPoint::new(u16::try_from(width).unwrap_or(0), 0),
            height: FixedPoint::new(u16::try_from(height).unwrap_or(0), 0),
            ..Tkhd::default()
        },
        mdia: Mdia {
            mdhd: Mdhd {
                timescale: TIMESCALE,
                language: "und".into(),
                ..Mdhd::default()
            },
            hdlr: Hdlr {
                handler: FourCC::new(handler),
                name: name.into(),
            },
            minf: Minf {
                vmhd: video.then(Vmhd::default),
                smhd: (!video).then(Smhd::default),
                dinf: Dinf {
                    dref: Dref {
                        entries: vec![DrefEntry::Url(Url::default())],
                    },
                },
                stbl: Stbl {
                    stsd: Stsd {
                        codecs: vec![codec],
                    },
                    ..Stbl::default()
                },
                ..Minf::default()
            },
        },
        ..Trak::default()
    })
}

fn avc1(track: &Track) -> Result<Codec, RemuxError> {
    let invalid = || RemuxError::InvalidCodecPrivate(track.number);
    let mut private = track.codec_private.as_slice();
    let avcc = <Avcc as mp4_atom::Atom>::decode_body(&mut private).map_err(|_| invalid())?;
    let (width, height) = track.pixels.ok_or_else(invalid)?;
    Ok(Codec::Avc1(Avc1 {
        visual: Visual {
            data_reference_index: 1,
            width: u16::try_from(width).map_err(|_| invalid())?,
            height: u16::try_from(height).map_err(|_| invalid())?,
            horizresolution: FixedPoint::new(72, 0),
            vertresolution: FixedPoint::new(72, 0),
            frame_count: 1,
            depth: 0x18,
            ..Visual::default()
        },
        avcc,
        ..Avc1::default()
    }))
}

fn mp4a(track: &Track) -> Result<Codec, RemuxError> {
    let invalid = || RemuxError::InvalidCodecPrivate(track.number);
    // AudioSpecificConfig: 5 bits object type, 4 bits frequency index, 4 bits channels.
    let asc = &track.codec_private;
    if asc.len() < 2 {
        return Err(invalid());
    }
    let (rate, channels) = track.audio.unwrap_or((48_000.0, 2));
    Ok(Codec::Mp4a(Mp4a {
        audio: Audio {
            data_reference_index: 1,
            channel_count: u16::try_from(channels).map_err(|_| invalid())?,
            sample_size: 16,
            sample_rate: FixedPoint::new(rate as u16, 0),
        },
        esds: Esds {
            es_desc: EsDescriptor {
                es_id: u16::try_from(track.number).unwrap_or(1),
                dec_config: DecoderConfig {
                    object_type_indication: 0x40,
                    stream_type: 0x05,
                    dec_specific: Some(DecoderSpecific {
                        profile: asc[0] >> 3,
                        freq_index: ((asc[0] & 0x07) << 1) | (asc[1] >> 7),
                        chan_conf: (asc[1] >> 3) & 0x0F,
                        raw: asc.clone(),
                    }),
                    ..DecoderConfig::default()
                },
                sl_config: SLConfig::default(),
                ..EsDescriptor::default()
            },
        },
        btrt: None,
        taic: None,
    }))
}

/// A media segment (`moof` + `mdat`) of one demuxed fragment, numbered `sequence`.
pub fn media_segment(
    demuxed: &Demuxed<'_>,
    sequence: u32,
    timing: &Timing,
) -> Result<Vec<u8>, RemuxError> {
    let tracks: Vec<_> = demuxed
        .tracks
        .iter()
        .filter(|t| !t.samples.is_empty())
        .collect();
    let mut trafs = Vec::with_capacity(tracks.len());
    // Each track's samples follow one another in the mdat, the tracks in order.
    let mut starts = Vec::with_capacity(tracks.len());
    let mut mdat_len = 0usize;
    for track in &tracks {
        starts.push(mdat_len);
        let shift = i64::from(timing.shift(track.track.number));
        let entries = track
            .samples
            .iter()
            .map(|sample| {
                mdat_len += sample.data.len();
                TrunEntry {
                    duration: Some(sample.duration_ms),
                    size: Some(u32::try_from(sample.data.len()).unwrap_or(u32::MAX)),
                    flags: Some(if sample.keyframe { SYNC } else { NOT_SYNC }),
                    cts: Some(sample.pts_ms - sample.dts_ms + shift),
                }
            })
            .collect();
        trafs.push(Traf {
            tfhd: Tfhd {
                track_id: track_id(&track.track),
                default_base_is_moof: true,
                ..Tfhd::default()
            },
            tfdt: Some(Tfdt {
                base_media_decode_time: u64::try_from(track.samples[0].dts_ms).unwrap_or(0),
            }),
            trun: vec![Trun {
                data_offset: Some(0),
                samples: TrunSamples::Explicit(entries),
            }],
            ..Traf::default()
        });
    }
    let mut moof = Moof {
        mfhd: Mfhd {
            sequence_number: sequence,
        },
        traf: trafs,
    };
    // The offsets count from the moof's start: its size first (offsets do not change it).
    let mut sized = Vec::new();
    moof.encode(&mut sized)
        .map_err(|_| RemuxError::NotMkv("encoding moof"))?;
    let data_start = sized.len() + 8;
    for (traf, start) in moof.traf.iter_mut().zip(starts) {
        traf.trun[0].data_offset = Some(i32::try_from(data_start + start).unwrap_or(i32::MAX));
    }
    let mdat_box =
        u32::try_from(8 + mdat_len).map_err(|_| RemuxError::NotMkv("an mdat over 4 GiB"))?;
    let mut out = Vec::with_capacity(data_start + mdat_len);
    moof.encode(&mut out)
        .map_err(|_| RemuxError::NotMkv("encoding moof"))?;
    // The mdat written here: mp4-atom's would copy its data a byte at a time (measured:
    // two thirds of the segment's time).
    out.extend_from_slice(&mdat_box.to_be_bytes());
    out.extend_from_slice(b"mdat");
    for sample in tracks.iter().flat_map(|t| &t.samples) {
        out.extend_from_slice(&demuxed.cluster[sample.data.clone()]);
    }
    Ok(out)
}
