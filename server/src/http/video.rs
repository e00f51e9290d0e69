//! Kinesis Video requests (`POST /<operation>`, signatures scoped to `kinesisvideo`): the
//! JSON operations answered whole; PutMedia read as it comes with its acknowledgements
//! streamed back; GetMedia and GetMediaForFragmentList streamed out.

use super::connection::Connection;
use super::{ChannelBody, ReplyBody, body, error_reply, whole, with_ids};
use crate::service::Service;
use crate::tenant::Tenant;
use crate::video::{self, playback, shapes};
use crate::wire::{ApiError, Protocol};
use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::{Response, StatusCode};
use sluice_video::{
    Ack, AckError, AckEvent, Event, FragmentLog, GetMediaStart, PutMediaSession, SessionOptions,
    TimecodeType,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;

/// The name Kinesis Video's signatures are scoped to (all three clients').
const SIGNING_NAME: &str = "kinesisvideo";
/// Largest JSON request body.
const BODY_MAX: usize = 1 << 20;
/// GetMedia ends after this long without a new fragment; the client goes on with its
/// continuation token.
const GET_MEDIA_IDLE: Duration = Duration::from_secs(3);

/// The Kinesis Video operation a path names, if it names one.
pub(super) fn operation(path: &str) -> Option<&'static str> {
    let name = path.strip_prefix('/')?;
    video::OPERATIONS
        .iter()
        .chain(video::STREAMING)
        .find(|op| **op == name)
        .copied()
}

/// Answers one Kinesis Video request.
pub(super) async fn serve(
    service: Arc<Service>,
    connection: &Arc<Connection>,
    (parts, body): (hyper::http::request::Parts, Incoming),
    operation: &'static str,
) -> Response<ReplyBody> {
    match answer(&service, connection, (&parts, body), operation).await {
        Ok(response) => response,
        Err(error) => {
            metrics::counter!("sluice_request_errors_total", "operation" => operation, "error" => error.name)
                .increment(1);
            error_reply(Protocol::Json, &error)
        }
    }
}

async fn answer(
    service: &Arc<Service>,
    connection: &Arc<Connection>,
    (parts, body): (&hyper::http::request::Parts, Incoming),
    operation: &'static str,
) -> Result<Response<ReplyBody>, ApiError> {
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let tenant = match &service.verifier {
        // Media bodies stream: their signature covers the headers (the payload's hash is
        // the client's x-amz-content-sha256, as for S3's streaming uploads).
        Some(verifier) => {
            let scope = verifier.verify_headers(
                &super::signed_request(parts, &[], SIGNING_NAME),
                SystemTime::now(),
            )?;
            service.tenant(Some(scope)).await?
        }
        None => service.tenant(None).await?,
    };
    if operation == "putMedia" {
        return put_media(&tenant, parts, body).await;
    }
    let declared_len = header("content-length").and_then(|v| v.parse().ok());
    let limit = BODY_MAX.min(service.config.body_bytes_max);
    let read = body::read(body, declared_len, limit, &service.body_budget, connection);
    let (body, _reservation) = read.await?;
    match operation {
        "getMedia" => get_media(&tenant, &body).await,
        "getClip" => {
            let input: shapes::GetClip = video::decode(&body)?;
            let streams = tenant.video().await?;
            let (_, log) = streams
                .log(input.at.name(), input.at.arn())
                .await
                .map_err(|e| video::error(&e))?;
            // Remuxing is CPU work: off the runtime's workers.
            let selector = input.clip_fragment_selector;
            let permit = remux_permit().await;
            let clip = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                playback::clip(&log, &selector)
            })
            .await
            .map_err(|e| ApiError::internal(format!("GetClip did not finish: {e}")))??;
            let response = Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "video/mp4");
            Ok(with_ids(response)
                .body(whole(clip))
                .expect("a valid response"))
        }
        "getMediaForFragmentList" => media_for_fragment_list(&tenant, &body).await,
        _ => {
            let scheme = if connection.transport.secure {
                "https"
            } else {
                "http"
            };
            let endpoint = format!("{scheme}://{}", header("host").unwrap_or("127.0.0.1"));
            let reply = video::call(&tenant, operation, &body, &endpoint).await?;
            let response = Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/json");
            Ok(with_ids(response)
                .body(whole(reply))
                .expect("a valid response"))
        }
    }
}

/// PutMedia: the body fed to a session as it arrives; each fragment stored durably, then
/// acknowledged; acknowledgements streamed as JSON lines.
async fn put_media(
    tenant: &Arc<Tenant>,
    parts: &hyper::http::request::Parts,
    body: Incoming,
) -> Result<Response<ReplyBody>, ApiError> {
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let streams = tenant.video().await?;
    let (info, log) = streams
        .log(header("x-amzn-stream-name"), header("x-amzn-stream-arn"))
        .await
        .map_err(|e| video::error(&e))?;
    let timecode_type = match header("x-amzn-fragment-timecode-type") {
        Some("ABSOLUTE") => TimecodeType::Absolute,
        Some("RELATIVE") | None => TimecodeType::Relative,
        Some(other) => {
            return Err(ApiError::with_status(
                "InvalidArgumentException",
                400,
                format!("x-amzn-fragment-timecode-type {other:?} is not ABSOLUTE or RELATIVE."),
            ));
        }
    };
    let start = header("x-amzn-producer-start-timestamp").map(|v| v.parse::<f64>());
    let (tx, rx) = mpsc::channel::<Bytes>(ACKS_PENDING_MAX);
    let producer_start_ms = match start {
        None => video::now_ms(),
        Some(Ok(seconds)) if seconds.is_finite() && seconds >= 0.0 => video::seconds_to_ms(seconds),
        Some(_) => {
            // Answered as Kinesis Video does: an ERROR acknowledgement, not an HTTP error.
            let _ = tx.try_send(Bytes::from(
                Ack::error(AckError::InvalidProducerTimestamp, None).line(),
            ));
            return Ok(ack_stream(rx));
        }
    };
    let options = SessionOptions {
        timecode_type,
        producer_start_ms,
        fragment_bytes_max: usize::try_from(sluice_video::FRAGMENT_BYTES_MAX).expect("10 MiB"),
        fragment_duration_max_ms: sluice_video::FRAGMENT_DURATION_MAX_MS,
    };
    let session = PutMediaSession::new(options);
    let stream_name = info.stream_name.clone();
    let streams = streams.clone();
    // On a task of its own: a fragment received whole is stored even if the producer goes.
    tokio::spawn(async move {
        ingest(session, body, log, tx, (streams, stream_name)).await;
    });
    Ok(ack_stream(rx))
}

/// A response whose body is what `rx` gives, as it comes.
fn channel_response(rx: mpsc::Receiver<Bytes>, content_type: &str) -> Response<ReplyBody> {
    let response = Response::builder()
        .status(StatusCode::OK)
        .header("content-type", content_type);
    with_ids(response)
        .body(
            ChannelBody {
                frames: rx,
                stalled: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            }
            .boxed(),
        )
        .expect("a valid response")
}

fn ack_stream(rx: mpsc::Receiver<Bytes>) -> Response<ReplyBody> {
    channel_response(rx, "application/json")
}

/// Feeds the body to the session as fast as it comes, and hands whole fragments to a
/// storing task: reading never waits for an fdatasync, so a producer that sends its body
/// and hangs up at once (ffmpeg, which never reads its acknowledgements) has been read
/// whole before its socket closes.
async fn ingest(
    mut session: PutMediaSession,
    mut body: Incoming,
    log: Arc<FragmentLog>,
    tx: mpsc::Sender<Bytes>,
    (streams, name): (Arc<sluice_video::VideoStreams>, String),
) {
    let tx = AckGate::new(tx);
    let _open = OpenOnDrop(tx.clone());
    let (fragments, received) = mpsc::channel(16);
    let storing = tokio::spawn(store(received, log, tx.clone(), (streams, name)));
    loop {
        let events = match body.frame().await {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => session.feed(&data, video::now_ms()),
                Err(_) => continue,
            },
            Some(Err(_)) => vec![Event::Ack(Ack::error(AckError::StreamReadError, None))],
            None => session.finish(video::now_ms()),
        };
        let ended = session.is_ended()
            || events
                .iter()
                .any(|e| matches!(e, Event::Ack(a) if a.error_id == Some(4000)));
        for event in events {
            match event {
                Event::Ack(ack) => tx.send(ack),
                Event::Fragment(fragment) => {
                    tx.send(Ack::new(AckEvent::Received, Some(fragment.timecode_ms)));
                    if fragments.send(fragment).await.is_err() {
                        return;
                    }
                }
            }
        }
        if ended {
            break;
        }
    }
    drop(fragments);
    let _ = storing.await;
}

/// Stores fragments in the order received and acknowledges each once durable.
async fn store(
    mut fragments: mpsc::Receiver<sluice_video::ReceivedFragment>,
    log: Arc<FragmentLog>,
    tx: Arc<AckGate>,
    (streams, name): (Arc<sluice_video::VideoStreams>, String),
) {
    while let Some(fragment) = fragments.recv().await {
        let timecode = Some(fragment.timecode_ms);
        // A stream deleted meanwhile (or deleted and made again) takes nothing more.
        if !streams.is_current(&name, &log) {
            tx.send(Ack::error(AckError::StreamNotActive, timecode));
            return;
        }
        match log.append(&fragment).await {
            Ok(entry) => tx.send(Ack {
                fragment_number: Some(entry.number()),
                ..Ack::new(AckEvent::Persisted, timecode)
            }),
            Err(_) => tx.send(Ack::error(AckError::InternalError, timecode)),
        }
    }
}

/// PutMedia's acknowledgements on their way out. They are held for the body's first
/// second, or until it ends if sooner: a producer that uploads a file and hangs up without
/// reading them (ffmpeg) would otherwise have unread bytes when it closes, and its reset
/// would throw away the end of its body before the server read it.
struct AckGate {
    tx: mpsc::Sender<Bytes>,
    held: std::sync::Mutex<Option<Vec<Ack>>>,
    opens_at: std::time::Instant,
}

/// How long acknowledgements are held at the start of a PutMedia body.
const ACK_HOLD: Duration = Duration::from_secs(1);
/// Acknowledgements a producer may leave unread before newer ones are dropped (about three
/// per fragment: a producer that never reads loses them, not its memory).
const ACKS_PENDING_MAX: usize = 4096;

/// Opens the gate when the ingest ends, however it ends.
struct OpenOnDrop(Arc<AckGate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

impl AckGate {
    fn new(tx: mpsc::Sender<Bytes>) -> Arc<AckGate> {
        Arc::new(AckGate {
            tx,
            held: std::sync::Mutex::new(Some(Vec::new())),
            opens_at: std::time::Instant::now() + ACK_HOLD,
        })
    }

    fn send(&self, ack: Ack) {
        let mut held = self.held.lock().expect("ack gate lock");
        if let Some(waiting) = held.as_mut() {
            waiting.push(ack);
            if std::time::Instant::now() < self.opens_at {
                return;
            }
        } else {
            // A full or closed channel: the producer is not reading; the ack is dropped.
            let _ = self.tx.try_send(Bytes::from(ack.line()));
            return;
        }
        drop(held);
        self.open();
    }

    fn open(&self) {
        let waiting = self.held.lock().expect("ack gate lock").take();
        for ack in waiting.into_iter().flatten() {
            let _ = self.tx.try_send(Bytes::from(ack.line()));
        }
    }
}

/// GetMedia: fragments from the start selector's, then new ones as they arrive, until a
/// few seconds pass without one.
async fn get_media(tenant: &Arc<Tenant>, body: &[u8]) -> Result<Response<ReplyBody>, ApiError> {
    let input: shapes::GetMedia = video::decode(body)?;
    let streams = tenant.video().await?;
    let (_, log) = streams
        .log(input.at.name(), input.at.arn())
        .await
        .map_err(|e| video::error(&e))?;
    let start = start_of(&input.start_selector)?;
    let from = start.offset(&log).map_err(|e| video::error(&e))?;
    let mut tail = log.tail(from).map_err(|e| video::error(&e))?;
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        let mut next = from;
        loop {
            while next < log.next_offset() {
                let Ok(Some(chunk)) = media_chunk(&log, next) else {
                    next += 1;
                    continue;
                };
                if tx.send(chunk).await.is_err() {
                    return;
                }
                next += 1;
            }
            match tokio::time::timeout(GET_MEDIA_IDLE, tail.next()).await {
                Ok(Some(Ok(_))) => {}
                _ => return,
            }
        }
    });
    Ok(media_stream(rx))
}

fn start_of(selector: &shapes::StartSelector) -> Result<GetMediaStart, ApiError> {
    let missing = |field: &str| {
        ApiError::with_status(
            "InvalidArgumentException",
            400,
            format!(
                "StartSelectorType {} needs {field}.",
                selector.start_selector_type
            ),
        )
    };
    Ok(match selector.start_selector_type.as_str() {
        "EARLIEST" => GetMediaStart::Earliest,
        "NOW" => GetMediaStart::Now,
        "FRAGMENT_NUMBER" => GetMediaStart::FragmentNumber(
            selector
                .after_fragment_number
                .clone()
                .ok_or_else(|| missing("AfterFragmentNumber"))?,
        ),
        "SERVER_TIMESTAMP" => GetMediaStart::ServerTimestamp(video::seconds_to_ms(
            selector
                .start_timestamp
                .ok_or_else(|| missing("StartTimestamp"))?,
        )),
        "PRODUCER_TIMESTAMP" => GetMediaStart::ProducerTimestamp(video::seconds_to_ms(
            selector
                .start_timestamp
                .ok_or_else(|| missing("StartTimestamp"))?,
        )),
        "CONTINUATION_TOKEN" => GetMediaStart::ContinuationToken(
            selector
                .continuation_token
                .clone()
                .ok_or_else(|| missing("ContinuationToken"))?,
        ),
        other => {
            return Err(ApiError::with_status(
                "InvalidArgumentException",
                400,
                format!(
                    "StartSelectorType {other:?} is not EARLIEST, NOW, FRAGMENT_NUMBER, SERVER_TIMESTAMP, PRODUCER_TIMESTAMP or CONTINUATION_TOKEN."
                ),
            ));
        }
    })
}

/// The fragment at `offset` as GetMedia sends it.
fn media_chunk(log: &FragmentLog, offset: u64) -> Result<Option<Bytes>, ApiError> {
    let Some((meta, mkv)) = log.read(offset).map_err(|e| video::error(&e))? else {
        return Ok(None);
    };
    let behind = video::now_ms() - meta.server_ms;
    let number = sluice_video::fragment_number(offset);
    let chunk =
        sluice_video::media_of(&mkv, &number, &meta, behind).map_err(|e| video::error(&e))?;
    Ok(Some(Bytes::from(chunk)))
}

fn media_stream(rx: mpsc::Receiver<Bytes>) -> Response<ReplyBody> {
    channel_response(rx, "video/webm")
}

/// GetMediaForFragmentList: the named fragments in the order named; every one must exist.
async fn media_for_fragment_list(
    tenant: &Arc<Tenant>,
    body: &[u8],
) -> Result<Response<ReplyBody>, ApiError> {
    let input: shapes::GetMediaForFragmentList = video::decode(body)?;
    if input.fragments.is_empty() || input.fragments.len() > 1000 {
        return Err(ApiError::with_status(
            "InvalidArgumentException",
            400,
            "Fragments must name 1 to 1,000 fragments.",
        ));
    }
    let streams = tenant.video().await?;
    let (_, log) = streams
        .log(input.at.name(), input.at.arn())
        .await
        .map_err(|e| video::error(&e))?;
    let mut offsets = Vec::with_capacity(input.fragments.len());
    for number in &input.fragments {
        let offset = sluice_video::fragment_offset(number).filter(|&o| log.entry(o).is_some());
        offsets.push(offset.ok_or_else(|| {
            ApiError::with_status(
                "ResourceNotFoundException",
                404,
                format!("The fragment {number} does not exist in this stream."),
            )
        })?);
    }
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        for offset in offsets {
            let Ok(Some(chunk)) = media_chunk(&log, offset) else {
                return;
            };
            if tx.send(chunk).await.is_err() {
                return;
            }
        }
    });
    Ok(media_stream(rx))
}

/// Where HLS and DASH sessions' playlists, manifests and segments are served (`GET`, the
/// session token in the query: no signature, the token is the capability).
pub(super) const HLS_PREFIX: &str = "/hls/v1/";
pub(super) const DASH_PREFIX: &str = "/dash/v1/";

/// A playback request: a playlist, a manifest or a segment of the session its token names.
pub(super) async fn playback(
    service: &Arc<Service>,
    request: &hyper::Request<Incoming>,
) -> Response<ReplyBody> {
    match playback_reply(service, request).await {
        Ok((content_type, body)) => {
            let response = Response::builder()
                .status(StatusCode::OK)
                .header("content-type", content_type);
            with_ids(response)
                .body(whole(body))
                .expect("a valid response")
        }
        Err(error) => error_reply(Protocol::Json, &error),
    }
}

async fn playback_reply(
    service: &Arc<Service>,
    request: &hyper::Request<Incoming>,
) -> Result<(&'static str, Vec<u8>), ApiError> {
    let query: HashMap<String, String> =
        form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let token = query.get("SessionToken").ok_or_else(|| {
        ApiError::with_status("MissingParameter", 400, "SessionToken is missing.")
    })?;
    let session = playback::open(token)?;
    let path = request.uri().path();
    let (protocol, name) = match path.strip_prefix(HLS_PREFIX) {
        Some(name) => (playback::Protocol::Hls, name),
        None => (
            playback::Protocol::Dash,
            path.strip_prefix(DASH_PREFIX).unwrap_or_default(),
        ),
    };
    if session.protocol != protocol {
        return Err(not_a_resource(name));
    }
    let scope = crate::auth::Scope {
        account: session.account.clone(),
        region: session.region.clone(),
    };
    let tenant = service
        .tenant(service.verifier.as_ref().map(|_| scope))
        .await?;
    let streams = tenant.video().await?;
    let log = playback::session_log(streams, &session).await?;
    let (token, name) = (token.clone(), name.to_owned());
    let ask = PlaybackAsk {
        query,
        log,
        session,
    };
    // Remuxing and writing playlists is CPU work: off the runtime's workers.
    let permit = remux_permit().await;
    tokio::task::spawn_blocking(move || {
        // Held by the work itself: a client that leaves does not free its turn early.
        let _permit = permit;
        ask.serve(&token, &name)
    })
    .await
    .map_err(|e| ApiError::internal(format!("the playback request did not finish: {e}")))?
}

/// A turn to remux: twice as many at once as there are CPUs (a segment holds a fragment of
/// up to 10 MiB read and remuxed, a clip up to 100 MiB); more wait for one.
async fn remux_permit() -> tokio::sync::OwnedSemaphorePermit {
    static PERMITS: std::sync::OnceLock<Arc<tokio::sync::Semaphore>> = std::sync::OnceLock::new();
    let permits = PERMITS.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(2, usize::from);
        Arc::new(tokio::sync::Semaphore::new(cpus * 2))
    });
    Arc::clone(permits)
        .acquire_owned()
        .await
        .expect("the semaphore is never closed")
}

fn not_a_resource(name: &str) -> ApiError {
    ApiError::with_status(
        "ResourceNotFoundException",
        404,
        format!("{name:?} is not a resource of this session."),
    )
}

/// A playback request of an open session.
struct PlaybackAsk {
    query: HashMap<String, String>,
    log: Arc<sluice_video::FragmentLog>,
    session: playback::PlaybackSession,
}

impl PlaybackAsk {
    /// The playlist, manifest or segment `name`, with its content type.
    fn serve(&self, token: &str, name: &str) -> Result<(&'static str, Vec<u8>), ApiError> {
        const PLAYLIST: &str = "application/vnd.apple.mpegurl";
        let (log, session) = (self.log.as_ref(), &self.session);
        match (session.protocol, name) {
            (playback::Protocol::Hls, "getHLSMasterPlaylist.m3u8") => {
                Ok((PLAYLIST, playback::master_playlist(log, session, token)?))
            }
            (playback::Protocol::Hls, "getHLSMediaPlaylist.m3u8") => {
                Ok((PLAYLIST, playback::media_playlist(log, session, token)))
            }
            (playback::Protocol::Dash, "getDASHManifest.mpd") => Ok((
                "application/dash+xml",
                playback::dash_manifest(log, session, token)?,
            )),
            (_, "getMP4InitFragment.mp4") if !session.mpeg_ts => Ok((
                "video/mp4",
                playback::init_segment(log, session, self.track()?)?,
            )),
            (_, "getMP4MediaFragment.mp4") if !session.mpeg_ts => Ok((
                "video/mp4",
                playback::media_segment(log, session, self.fragment()?, self.track()?)?,
            )),
            (playback::Protocol::Hls, "getTSFragment.ts") if session.mpeg_ts => Ok((
                "video/mp2t",
                playback::media_segment(log, session, self.fragment()?, None)?,
            )),
            _ => Err(not_a_resource(name)),
        }
    }

    /// The query's number `key`, if it is there.
    fn number(&self, key: &str) -> Result<Option<u64>, ApiError> {
        self.query
            .get(key)
            .map(|n| {
                n.parse().map_err(|_| {
                    ApiError::with_status(
                        "InvalidArgumentException",
                        400,
                        format!("{key} {n:?} is not a number."),
                    )
                })
            })
            .transpose()
    }

    /// The fragment a segment request names, if the session may play it: by number (HLS)
    /// or by index (DASH's `$Number$`).
    fn fragment(&self) -> Result<u64, ApiError> {
        let offset = match self.session.protocol {
            playback::Protocol::Hls => self
                .query
                .get("FragmentNumber")
                .and_then(|n| sluice_video::fragment_offset(n)),
            playback::Protocol::Dash => self.number("FragmentIndex")?,
        };
        offset
            .and_then(|offset| playback::in_session(&self.log, &self.session, offset))
            .map(|entry| entry.offset)
            .ok_or_else(|| {
                ApiError::with_status(
                    "ResourceNotFoundException",
                    404,
                    "The fragment is not in this session.",
                )
            })
    }

    /// The track a DASH segment is of (an adaptation set's); HLS's segments hold all.
    fn track(&self) -> Result<Option<u64>, ApiError> {
        match self.session.protocol {
            playback::Protocol::Dash => Ok(Some(self.number("TrackNumber")?.ok_or_else(|| {
                ApiError::with_status("MissingParameter", 400, "TrackNumber is missing.")
            })?)),
            playback::Protocol::Hls => Ok(None),
        }
    }
}
