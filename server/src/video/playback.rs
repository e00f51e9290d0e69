//! HLS and DASH sessions and clips: GetHLSStreamingSessionURL and
//! GetDASHStreamingSessionURL seal what a session may play, and where its segments sit in
//! time, into a token (HMAC-SHA256 under a key of this process: the URL is the capability,
//! as Kinesis Video's are, and dies with the server or at its expiry); the playlists,
//! manifests and segments are made on request from the stored fragments.

use super::shapes::{ClipSelector, SessionRequest};
use super::{error, now_ms, seconds_to_ms};
use crate::wire::ApiError;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use sluice_video::remux::playlist::{self, Discontinuity, MediaPlaylistSpec};
use sluice_video::remux::{Demuxed, Timing, demux, fmp4, mpd, ts};
use sluice_video::{FragmentEntry, FragmentLog, TimeKind, VideoStreams};
use std::sync::{Arc, OnceLock};

/// Which session URL a session came from: its segments are served under that prefix only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    /// GetHLSStreamingSessionURL: `/hls/v1/`.
    Hls,
    /// GetDASHStreamingSessionURL: `/dash/v1/`.
    Dash,
}

/// What a playback session may play, sealed in its token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlaybackSession {
    /// HLS or DASH.
    pub protocol: Protocol,
    /// HLS's segments as MPEG-TS rather than fragmented MP4.
    pub mpeg_ts: bool,
    /// The account of the stream's tenant.
    pub account: String,
    /// The region of the stream's tenant.
    pub region: String,
    /// The stream.
    pub stream: String,
    /// The log the stream had when the session began (a stream made again is not it).
    pub log: String,
    /// LIVE, LIVE_REPLAY or ON_DEMAND.
    pub mode: String,
    /// The selector's time: producer's (true) or server's.
    pub producer: bool,
    /// The range's start, in ms (LIVE has none).
    pub start_ms: Option<i64>,
    /// The range's end, in ms (LIVE and LIVE_REPLAY have none).
    pub end_ms: Option<i64>,
    /// ALWAYS, NEVER or ON_DISCONTINUITY.
    pub discontinuity: String,
    /// EXT-X-PROGRAM-DATE-TIME on every segment (HLS), `kvs:ts` on every one (DASH).
    pub display_timestamps: bool,
    /// `kvs:fn` on every segment (DASH).
    pub display_numbers: bool,
    /// Fragments in a media playlist at most.
    pub max_results: usize,
    /// Epoch seconds after which the token is refused.
    pub expires_s: i64,
    /// The first fragment's index when the session began: a LIVE session plays none older,
    /// and its tracks are the session's (its init segments, its manifest's).
    pub from_offset: u64,
    /// The server's time at which media time 0 was available (a DASH manifest's
    /// `availabilityStartTime`), from the first fragment's arrival.
    pub availability_ms: i64,
    /// Where the session's segments sit in time (from its first fragment).
    pub timing: Timing,
}

type HmacSha256 = Hmac<Sha256>;

/// This process's key for session tokens.
fn key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut key = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
            .expect("the system's random source");
        key
    })
}

fn mac(payload: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key()).expect("any key length");
    mac.update(payload);
    mac.finalize().into_bytes().to_vec()
}

/// The session's token.
pub fn seal(session: &PlaybackSession) -> String {
    let payload = serde_json::to_vec(session).expect("a session serializes");
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!("{}.{}", b64.encode(&payload), b64.encode(mac(&payload)))
}

/// The session a token names, if it is one this process sealed and it has not expired.
pub fn open(token: &str) -> Result<PlaybackSession, ApiError> {
    let refused = || {
        ApiError::with_status(
            "InvalidArgumentException",
            400,
            "The SessionToken is not valid.",
        )
    };
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (payload, signature) = token.split_once('.').ok_or_else(refused)?;
    let payload = b64.decode(payload).map_err(|_| refused())?;
    let signature = b64.decode(signature).map_err(|_| refused())?;
    let mut check = HmacSha256::new_from_slice(key()).expect("any key length");
    check.update(&payload);
    check.verify_slice(&signature).map_err(|_| refused())?;
    let session: PlaybackSession = serde_json::from_slice(&payload).map_err(|_| refused())?;
    if session.expires_s < now_ms() / 1000 {
        return Err(ApiError::with_status(
            "ExpiredSessionToken",
            403,
            "The SessionToken has expired.",
        ));
    }
    Ok(session)
}

/// A session URL's session, checked, its timing left for `begin` (which needs the log).
pub fn new_session(
    streams: &VideoStreams,
    (account, region): (&str, &str),
    protocol: Protocol,
    input: &SessionRequest,
) -> Result<PlaybackSession, ApiError> {
    let invalid = |message: String| ApiError::with_status("InvalidArgumentException", 400, message);
    let info = streams
        .describe(input.at.name(), input.at.arn())
        .map_err(|e| error(&e))?;
    let mode = input.playback_mode.clone().unwrap_or_else(|| "LIVE".into());
    if !["LIVE", "LIVE_REPLAY", "ON_DEMAND"].contains(&mode.as_str()) {
        return Err(invalid(format!(
            "PlaybackMode {mode:?} is not LIVE, LIVE_REPLAY or ON_DEMAND."
        )));
    }
    let mpeg_ts = mpeg_ts(protocol, input.container_format.as_deref())?;
    if protocol == Protocol::Dash && input.discontinuity_mode.is_some() {
        return Err(invalid(
            "DiscontinuityMode is HLS's; a DASH manifest begins a period at each discontinuity."
                .into(),
        ));
    }
    let selector = input.fragment_selector.as_ref();
    let producer =
        selector.is_some_and(|s| s.fragment_selector_type.as_deref() == Some("PRODUCER_TIMESTAMP"));
    let range = selector.and_then(|s| s.timestamp_range.as_ref());
    let start_ms = range.and_then(|r| r.start_timestamp).map(seconds_to_ms);
    let end_ms = range.and_then(|r| r.end_timestamp).map(seconds_to_ms);
    match mode.as_str() {
        "ON_DEMAND" if start_ms.is_none() || end_ms.is_none() => {
            return Err(invalid(
                "ON_DEMAND needs a TimestampRange with StartTimestamp and EndTimestamp.".into(),
            ));
        }
        "LIVE_REPLAY" if start_ms.is_none() => {
            return Err(invalid(
                "LIVE_REPLAY needs a TimestampRange with a StartTimestamp.".into(),
            ));
        }
        "LIVE" if range.is_some() => {
            return Err(invalid("LIVE takes no TimestampRange.".into()));
        }
        _ => {}
    }
    let expires = input.expires.unwrap_or(300);
    if !(300..=43_200).contains(&expires) {
        return Err(invalid(format!(
            "Expires {expires} is not 300 to 43200 seconds."
        )));
    }
    let default_results = if mode == "LIVE" { 5 } else { 1_000 };
    let max_results = input
        .max_media_playlist_fragment_results
        .unwrap_or(default_results);
    if !(1..=5_000).contains(&max_results) {
        return Err(invalid(format!(
            "MaxMediaPlaylistFragmentResults {max_results} is not 1 to 5000."
        )));
    }
    Ok(PlaybackSession {
        protocol,
        mpeg_ts,
        account: account.to_owned(),
        region: region.to_owned(),
        stream: info.stream_name,
        log: info.log,
        mode,
        producer,
        start_ms,
        end_ms,
        discontinuity: input
            .discontinuity_mode
            .clone()
            .unwrap_or_else(|| "ALWAYS".into()),
        display_timestamps: input.display_fragment_timestamp.as_deref() == Some("ALWAYS"),
        display_numbers: input.display_fragment_number.as_deref() == Some("ALWAYS"),
        max_results,
        expires_s: now_ms() / 1000 + i64::from(expires),
        from_offset: 0,
        availability_ms: 0,
        timing: Timing {
            base_ms: 0,
            shifts: Vec::new(),
        },
    })
}

/// Whether a session's segments are MPEG-TS (HLS's ContainerFormat; fragmented MP4 else).
fn mpeg_ts(protocol: Protocol, container: Option<&str>) -> Result<bool, ApiError> {
    match container {
        None | Some("FRAGMENTED_MP4") => Ok(false),
        Some("MPEG_TS") if protocol == Protocol::Hls => Ok(true),
        Some(other) => Err(ApiError::with_status(
            "InvalidArgumentException",
            400,
            format!("ContainerFormat {other:?} is not FRAGMENTED_MP4 or MPEG_TS (HLS only)."),
        )),
    }
}

/// Begins a session on its log: refused when it has nothing to play; else its first
/// fragment fixes its timeline (media time 0 at that fragment's producer time, the
/// tracks' reorder delays from its frames).
pub fn begin(log: &FragmentLog, session: &mut PlaybackSession) -> Result<(), ApiError> {
    let fragments = window(log, session);
    check_has_fragments(&fragments, session)?;
    let first = fragments.first().ok_or_else(no_fragments)?;
    let (meta, mkv) = read(log, first.offset)?;
    session.timing = Timing::of(&demux(&mkv).map_err(remux_error)?, meta.producer_ms);
    session.from_offset = first.offset;
    // The earliest any fragment of the window was available, on the server's clock, less
    // its end's media time (a fragment that came late, in a backlog, does not hold the
    // others back).
    let timing = &session.timing;
    session.availability_ms = fragments
        .iter()
        .map(|f| {
            let end = timing
                .start_of(f.meta.producer_ms)
                .saturating_add(i64::try_from(f.meta.duration_ms).unwrap_or(0));
            f.meta.server_ms.saturating_sub(end)
        })
        .min()
        .unwrap_or(meta.server_ms);
    Ok(())
}

/// The tracks of the session (its first fragment's).
fn session_tracks(
    log: &FragmentLog,
    session: &PlaybackSession,
) -> Result<Vec<sluice_video::mkv::Track>, ApiError> {
    let (_, mkv) = read(log, first_fragment(log, session)?)?;
    Ok(demux(&mkv).map_err(remux_error)?.track_entries())
}

/// The session's first fragment (its tracks are the session's), or the window's first if
/// retention has taken it.
fn first_fragment(log: &FragmentLog, session: &PlaybackSession) -> Result<u64, ApiError> {
    if log.entry(session.from_offset).is_some() {
        return Ok(session.from_offset);
    }
    window(log, session)
        .first()
        .map(|f| f.offset)
        .ok_or_else(no_fragments)
}

/// The session's stream log, if the stream is still the one the session began on.
pub async fn session_log(
    streams: &VideoStreams,
    session: &PlaybackSession,
) -> Result<Arc<FragmentLog>, ApiError> {
    let (info, log) = streams
        .log(Some(&session.stream), None)
        .await
        .map_err(|e| error(&e))?;
    if info.log != session.log {
        return Err(ApiError::with_status(
            "ResourceNotFoundException",
            404,
            format!("The stream {} was deleted.", session.stream),
        ));
    }
    Ok(log)
}

/// The fragments a media playlist of the session holds now, and the first one's index.
pub fn window(log: &FragmentLog, session: &PlaybackSession) -> Vec<FragmentEntry> {
    let kind = time_kind(session);
    match session.mode.as_str() {
        "LIVE" => {
            let mut latest = log.latest(session.max_results);
            latest.retain(|f| f.offset >= session.from_offset);
            latest
        }
        _ => {
            let start = session.start_ms.unwrap_or(i64::MIN);
            let end = session.end_ms.unwrap_or(i64::MAX);
            log.list(Some((kind, start, end)), 0, session.max_results).0
        }
    }
}

/// The time the session's selector (and its displayed timestamps) are on.
fn time_kind(session: &PlaybackSession) -> TimeKind {
    if session.producer {
        TimeKind::Producer
    } else {
        TimeKind::Server
    }
}

/// Kinesis Video refuses a session with nothing to play: no fragment in the range, or (LIVE)
/// none in the last 30 seconds.
fn check_has_fragments(
    fragments: &[FragmentEntry],
    session: &PlaybackSession,
) -> Result<(), ApiError> {
    let recent = |f: &FragmentEntry| now_ms() - f.meta.server_ms <= 30_000;
    let playable = match session.mode.as_str() {
        "LIVE" => fragments.last().is_some_and(recent),
        _ => !fragments.is_empty(),
    };
    if playable {
        Ok(())
    } else {
        Err(no_fragments())
    }
}

/// Whether the fragment at `offset` is one the session may play.
pub fn in_session(
    log: &FragmentLog,
    session: &PlaybackSession,
    offset: u64,
) -> Option<FragmentEntry> {
    let entry = log.entry(offset)?;
    let time = if session.producer {
        entry.meta.producer_ms
    } else {
        entry.meta.server_ms
    };
    let within =
        session.start_ms.is_none_or(|s| time >= s) && session.end_ms.is_none_or(|e| time <= e);
    let playable = match session.mode.as_str() {
        "LIVE" => offset >= session.from_offset,
        _ => within,
    };
    playable.then_some(entry)
}

/// The media playlist of the session, its URIs carrying `token`.
pub fn media_playlist(log: &FragmentLog, session: &PlaybackSession, token: &str) -> Vec<u8> {
    let fragments = window(log, session);
    let spec = MediaPlaylistSpec {
        media_sequence: fragments.first().map_or(0, |f| f.offset),
        ended: session.mode == "ON_DEMAND",
        program_date_time: session.display_timestamps.then_some(time_kind(session)),
        discontinuity: match session.discontinuity.as_str() {
            "NEVER" => Discontinuity::Never,
            "ON_DISCONTINUITY" => Discontinuity::OnDiscontinuity,
            _ => Discontinuity::Always,
        },
        init_uri: (!session.mpeg_ts)
            .then(|| format!("getMP4InitFragment.mp4?SessionToken={token}")),
        fragments,
    };
    let segment = if session.mpeg_ts {
        "getTSFragment.ts"
    } else {
        "getMP4MediaFragment.mp4"
    };
    playlist::media_playlist(&spec, |f| {
        format!(
            "{segment}?SessionToken={token}&FragmentNumber={}",
            f.number()
        )
    })
}

/// The DASH manifest of the session: an adaptation set per track of the session's first
/// fragment, segments named by their fragment's index.
pub fn dash_manifest(
    log: &FragmentLog,
    session: &PlaybackSession,
    token: &str,
) -> Result<Vec<u8>, ApiError> {
    let fragments = window(log, session);
    let tracks = session_tracks(log, session)?;
    let spec = mpd::ManifestSpec {
        fragments: &fragments,
        tracks: &tracks,
        timing: &session.timing,
        dynamic: session.mode != "ON_DEMAND",
        now_ms: now_ms(),
        availability_ms: session.availability_ms,
        fragment_numbers: session.display_numbers,
        fragment_times: session.display_timestamps.then_some(time_kind(session)),
    };
    Ok(mpd::manifest(
        &spec,
        |track| format!("getMP4InitFragment.mp4?SessionToken={token}&TrackNumber={track}"),
        |track| {
            format!(
                "getMP4MediaFragment.mp4?SessionToken={token}&TrackNumber={track}&FragmentIndex=$Number$"
            )
        },
    ))
}

/// The master playlist: one variant, the tracks of the session's first fragment.
pub fn master_playlist(
    log: &FragmentLog,
    session: &PlaybackSession,
    token: &str,
) -> Result<Vec<u8>, ApiError> {
    let fragments = window(log, session);
    let tracks = session_tracks(log, session)?;
    let bits: u64 = fragments.iter().map(|f| f.size * 8).sum();
    let ms: u64 = fragments
        .iter()
        .map(|f| f.meta.duration_ms)
        .sum::<u64>()
        .max(1);
    let media = format!("getHLSMediaPlaylist.m3u8?SessionToken={token}");
    Ok(playlist::master_playlist(&media, &tracks, bits * 1000 / ms))
}

/// The init segment of the session (the tracks of its first fragment): every track (HLS),
/// or the one numbered `track` (DASH).
pub fn init_segment(
    log: &FragmentLog,
    session: &PlaybackSession,
    track: Option<u64>,
) -> Result<Vec<u8>, ApiError> {
    let (_, mkv) = read(log, first_fragment(log, session)?)?;
    let mut demuxed = demux(&mkv).map_err(remux_error)?;
    if let Some(track) = track {
        only_track(&mut demuxed, track)?;
    }
    fmp4::init_segment(&demuxed.track_entries(), &session.timing).map_err(remux_error)
}

/// One fragment as a media segment on the session's timeline: fragmented MP4 of every
/// track, or of the one numbered `track`, or MPEG-TS.
pub fn media_segment(
    log: &FragmentLog,
    session: &PlaybackSession,
    offset: u64,
    track: Option<u64>,
) -> Result<Vec<u8>, ApiError> {
    let (meta, mkv) = read(log, offset)?;
    let mut demuxed = placed(&mkv, meta.producer_ms, &session.timing)?;
    if let Some(track) = track {
        only_track(&mut demuxed, track)?;
    }
    if session.mpeg_ts {
        return ts::media_segment(&demuxed, &session.timing).map_err(remux_error);
    }
    let sequence = u32::try_from(offset % u64::from(u32::MAX)).unwrap_or(0) + 1;
    fmp4::media_segment(&demuxed, sequence, &session.timing).map_err(remux_error)
}

/// A stored fragment read for remuxing, placed on a timeline.
fn placed<'m>(mkv: &'m [u8], producer_ms: i64, timing: &Timing) -> Result<Demuxed<'m>, ApiError> {
    let mut demuxed = demux(mkv).map_err(remux_error)?;
    demuxed.start_at(timing.start_of(producer_ms));
    Ok(demuxed)
}

fn only_track(demuxed: &mut Demuxed<'_>, track: u64) -> Result<(), ApiError> {
    if demuxed.retain_track(track) {
        Ok(())
    } else {
        Err(ApiError::with_status(
            "ResourceNotFoundException",
            404,
            format!("The fragment has no track {track}."),
        ))
    }
}

/// GetClip: an MP4 of the fragments in the range (fragmented: an init segment, then a
/// fragment per stored fragment), at most 100 MiB.
pub fn clip(log: &FragmentLog, selector: &ClipSelector) -> Result<Vec<u8>, ApiError> {
    const CLIP_BYTES_MAX: usize = 100 << 20;
    let kind = super::time_kind(&selector.fragment_selector_type)?;
    let range = &selector.timestamp_range;
    let (start, end) = (
        seconds_to_ms(range.start_timestamp),
        seconds_to_ms(range.end_timestamp),
    );
    if start >= end {
        return Err(ApiError::with_status(
            "InvalidArgumentException",
            400,
            "StartTimestamp must be before EndTimestamp.",
        ));
    }
    let (fragments, _) = log.list(Some((kind, start, end)), 0, usize::MAX);
    // Refused before any work when the fragments alone are over the limit.
    if fragments.iter().map(|f| f.size).sum::<u64>() > CLIP_BYTES_MAX as u64 {
        return Err(ApiError::with_status(
            "ClientLimitExceededException",
            400,
            "The clip would be over 100 MiB; ask for a shorter range.",
        ));
    }
    let first = fragments.first().ok_or_else(no_fragments)?;
    let (meta, mkv) = read(log, first.offset)?;
    let demuxed = demux(&mkv).map_err(remux_error)?;
    // The clip's time 0 is its first fragment's start.
    let timing = Timing::of(&demuxed, meta.producer_ms);
    let mut out = fmp4::init_segment(&demuxed.track_entries(), &timing).map_err(remux_error)?;
    for (i, fragment) in fragments.iter().enumerate() {
        let (meta, mkv) = read(log, fragment.offset)?;
        let demuxed = placed(&mkv, meta.producer_ms, &timing)?;
        let sequence = u32::try_from(i + 1).unwrap_or(u32::MAX);
        out.extend(fmp4::media_segment(&demuxed, sequence, &timing).map_err(remux_error)?);
        if out.len() > CLIP_BYTES_MAX {
            return Err(ApiError::with_status(
                "ClientLimitExceededException",
                400,
                "The clip would be over 100 MiB; ask for a shorter range.",
            ));
        }
    }
    Ok(out)
}

fn read(log: &FragmentLog, offset: u64) -> Result<(sluice_video::FragmentMeta, Vec<u8>), ApiError> {
    log.read(offset).map_err(|e| error(&e))?.ok_or_else(|| {
        ApiError::with_status(
            "ResourceNotFoundException",
            404,
            "The fragment is no longer retained.",
        )
    })
}

fn no_fragments() -> ApiError {
    ApiError::with_status(
        "ResourceNotFoundException",
        404,
        "No fragments found in the stream for the streaming request.",
    )
}

fn remux_error(e: sluice_video::remux::RemuxError) -> ApiError {
    match e {
        sluice_video::remux::RemuxError::UnsupportedCodec { .. }
        | sluice_video::remux::RemuxError::NotInMpegTs { .. } => {
            ApiError::with_status("UnsupportedStreamMediaTypeException", 400, e.to_string())
        }
        sluice_video::remux::RemuxError::InvalidCodecPrivate(_) => {
            ApiError::with_status("InvalidCodecPrivateDataException", 400, e.to_string())
        }
        sluice_video::remux::RemuxError::NotMkv(_) => ApiError::internal(e.to_string()),
    }
}
