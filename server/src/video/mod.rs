//! Kinesis Video Streams on the same endpoint: the `kinesisvideo` control plane and
//! ListFragments (REST-JSON: `POST /<operation>` with a JSON body), answered from the
//! tenant's `VideoStreams`; PutMedia and GetMedia stream and live in `http/video.rs`.

pub(crate) mod playback;
pub(crate) mod shapes;

use crate::tenant::Tenant;
use crate::wire::ApiError;
use shapes::*;
use sluice_core::{Engine, EngineConfig};
use sluice_video::{CreateVideoStream, StreamInfo, TimeKind, VideoError, VideoStreams};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::OnceCell;

/// Segments of the video engine: a fragment of 10 MiB fits.
const SEGMENT_BYTES: u64 = 32 << 20;

/// The JSON operations, by path.
pub const OPERATIONS: &[&str] = &[
    "createStream",
    "describeStream",
    "listStreams",
    "deleteStream",
    "updateStream",
    "updateDataRetention",
    "tagStream",
    "untagStream",
    "listTagsForStream",
    "getDataEndpoint",
    "listFragments",
    "getHLSStreamingSessionURL",
    "getDASHStreamingSessionURL",
    "getImages",
];

/// The streaming operations, by path.
pub const STREAMING: &[&str] = &["putMedia", "getMedia", "getMediaForFragmentList", "getClip"];

/// A tenant's video streams, opened on first use (an engine of their own under
/// `<tenant>/video`, as Firehose's backing streams have).
#[derive(Debug)]
pub struct VideoHolder {
    dir: PathBuf,
    account: String,
    region: String,
    streams: OnceCell<Arc<VideoStreams>>,
}

impl VideoHolder {
    /// For the tenant in `data_dir`.
    pub fn new(data_dir: &std::path::Path, account: &str, region: &str) -> VideoHolder {
        VideoHolder {
            dir: data_dir.join("video"),
            account: account.to_owned(),
            region: region.to_owned(),
            streams: OnceCell::new(),
        }
    }

    /// The tenant's video streams.
    pub async fn get(&self) -> Result<&Arc<VideoStreams>, ApiError> {
        self.streams
            .get_or_try_init(|| async {
                let dir = self.dir.clone();
                let (account, region) = (self.account.clone(), self.region.clone());
                tokio::task::spawn_blocking(move || {
                    let mut config = EngineConfig::new(dir.join("engine"));
                    config.cores = 1;
                    config.segment_size_bytes = SEGMENT_BYTES;
                    let engine = Engine::open(config).map_err(|e| {
                        ApiError::internal(format!("opening the video engine: {e}"))
                    })?;
                    VideoStreams::open(dir, engine, &region, &account)
                        .map(Arc::new)
                        .map_err(|e| error(&e))
                })
                .await
                .map_err(|_| ApiError::internal("opening the video streams failed"))?
            })
            .await
    }
}

/// A video error as the wire says it.
pub fn error(error: &VideoError) -> ApiError {
    ApiError::with_status(error.name(), error.status(), error.to_string())
}

/// Answers a JSON operation (`operation` is its path without the slash); `endpoint` is this
/// server's URL as the client reached it.
pub async fn call(
    tenant: &Arc<Tenant>,
    operation: &str,
    body: &[u8],
    endpoint: &str,
) -> Result<Vec<u8>, ApiError> {
    if let Some(refusal) = not_served(operation) {
        return Err(refusal);
    }
    let streams = tenant.video().await?;
    let reply = match operation {
        "createStream" => create(streams, decode(body)?).await,
        "describeStream" => {
            let input: StreamRef = decode(body)?;
            let info = streams
                .describe(input.name(), input.arn())
                .map_err(|e| error(&e))?;
            Ok(serde_json::json!({ "StreamInfo": described(&info) }))
        }
        "listStreams" => list(streams, decode(body)?),
        "deleteStream" => {
            let input: Delete = decode(body)?;
            streams
                .delete(&input.stream_arn, input.current_version.as_deref())
                .await
                .map_err(|e| error(&e))?;
            Ok(serde_json::json!({}))
        }
        "updateStream" => {
            let input: Update = decode(body)?;
            streams
                .update(
                    (input.at.name(), input.at.arn()),
                    input.current_version.as_deref(),
                    |info| {
                        if input.device_name.is_some() {
                            info.device_name.clone_from(&input.device_name);
                        }
                        if input.media_type.is_some() {
                            info.media_type.clone_from(&input.media_type);
                        }
                        Ok(())
                    },
                )
                .map_err(|e| error(&e))?;
            Ok(serde_json::json!({}))
        }
        "updateDataRetention" => update_retention(streams, decode(body)?).await,
        "tagStream" | "untagStream" | "listTagsForStream" => tags(streams, operation, body),
        "getDataEndpoint" => {
            let input: DataEndpoint = decode(body)?;
            streams
                .describe(input.at.name(), input.at.arn())
                .map_err(|e| error(&e))?;
            if !API_NAMES.contains(&input.api_name.as_str()) {
                return Err(ApiError::with_status(
                    "InvalidArgumentException",
                    400,
                    format!(
                        "APIName {:?} is not one of {}.",
                        input.api_name,
                        API_NAMES.join(", ")
                    ),
                ));
            }
            Ok(serde_json::json!({ "DataEndpoint": endpoint }))
        }
        "listFragments" => list_fragments(streams, decode(body)?).await,
        "getHLSStreamingSessionURL" => {
            session_url(tenant, streams, body, endpoint, playback::Protocol::Hls).await
        }
        "getDASHStreamingSessionURL" => {
            session_url(tenant, streams, body, endpoint, playback::Protocol::Dash).await
        }
        _ => Err(ApiError::with_status(
            "UnknownOperationException",
            404,
            format!("/{operation} is not a Kinesis Video operation."),
        )),
    }?;
    Ok(serde_json::to_vec(&reply).expect("a reply serializes"))
}

/// The operations named but not served, each refused saying why (rather than as unknown).
fn not_served(operation: &str) -> Option<ApiError> {
    let why = match operation {
        "getImages" => {
            "GetImages needs an H.264 decoder, which this server does not build: images are not supported."
        }
        _ => return None,
    };
    Some(ApiError::with_status("NotImplementedException", 501, why))
}

/// GetHLSStreamingSessionURL and GetDASHStreamingSessionURL: the session checked and
/// begun, sealed into the URL's token.
async fn session_url(
    tenant: &Arc<Tenant>,
    streams: &VideoStreams,
    body: &[u8],
    endpoint: &str,
    protocol: playback::Protocol,
) -> Result<serde_json::Value, ApiError> {
    let input: SessionRequest = decode(body)?;
    let mut session =
        playback::new_session(streams, (&tenant.account, &tenant.region), protocol, &input)?;
    let log = playback::session_log(streams, &session).await?;
    playback::begin(&log, &mut session)?;
    let token = playback::seal(&session);
    Ok(match protocol {
        playback::Protocol::Hls => serde_json::json!({
            "HLSStreamingSessionURL":
                format!("{endpoint}/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken={token}")
        }),
        playback::Protocol::Dash => serde_json::json!({
            "DASHStreamingSessionURL":
                format!("{endpoint}/dash/v1/getDASHManifest.mpd?SessionToken={token}")
        }),
    })
}

/// The input of a JSON operation.
pub fn decode<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    let body = if body.is_empty() {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        ApiError::with_status(
            "InvalidArgumentException",
            400,
            format!("The request is not valid: {e}"),
        )
    })
}

async fn create(streams: &VideoStreams, input: Create) -> Result<serde_json::Value, ApiError> {
    let now = now_ms();
    let info = streams
        .create(
            CreateVideoStream {
                name: input.stream_name,
                device_name: input.device_name,
                media_type: input.media_type,
                kms_key_id: input.kms_key_id,
                retention_hours: input.data_retention_in_hours.unwrap_or(0),
                tags: input.tags.unwrap_or_default(),
            },
            now,
        )
        .await
        .map_err(|e| error(&e))?;
    Ok(serde_json::json!({ "StreamARN": info.stream_arn }))
}

fn list(streams: &VideoStreams, input: List) -> Result<serde_json::Value, ApiError> {
    let limit = input.max_results.unwrap_or(10_000).clamp(1, 10_000);
    let prefix = input
        .stream_name_condition
        .as_ref()
        .map(|c| c.comparison_value.as_str());
    let (page, next) = streams.list(prefix, input.next_token.as_deref(), limit);
    let infos: Vec<_> = page.iter().map(described).collect();
    Ok(match next {
        Some(token) => serde_json::json!({ "StreamInfoList": infos, "NextToken": token }),
        None => serde_json::json!({ "StreamInfoList": infos }),
    })
}

async fn update_retention(
    streams: &VideoStreams,
    input: Retention,
) -> Result<serde_json::Value, ApiError> {
    let change = input.data_retention_change_in_hours;
    let increase = match input.operation.as_str() {
        "INCREASE_DATA_RETENTION" => true,
        "DECREASE_DATA_RETENTION" => false,
        other => {
            return Err(ApiError::with_status(
                "InvalidArgumentException",
                400,
                format!(
                    "Operation {other:?} is not INCREASE_DATA_RETENTION or DECREASE_DATA_RETENTION."
                ),
            ));
        }
    };
    let before = streams
        .update(
            (input.at.name(), input.at.arn()),
            Some(&input.current_version),
            |info| {
                let hours = if increase {
                    info.data_retention_in_hours.checked_add(change)
                } else {
                    info.data_retention_in_hours.checked_sub(change)
                };
                let hours = hours.ok_or_else(|| {
                    VideoError::InvalidArgument(format!(
                        "DataRetentionChangeInHours {change} takes the retention out of 0..=87600."
                    ))
                })?;
                sluice_video::check_retention(hours)?;
                info.data_retention_in_hours = hours;
                Ok(())
            },
        )
        .map_err(|e| error(&e))?;
    let after = streams
        .describe(Some(&before.stream_name), None)
        .map_err(|e| error(&e))?;
    streams
        .apply_retention(&after)
        .await
        .map_err(|e| error(&e))?;
    Ok(serde_json::json!({}))
}

fn tags(
    streams: &VideoStreams,
    operation: &str,
    body: &[u8],
) -> Result<serde_json::Value, ApiError> {
    let input: Tags = decode(body)?;
    let at = (input.at.name(), input.at.arn());
    match operation {
        "tagStream" => {
            let new = input.tags.unwrap_or_default();
            streams.update(at, None, |info| {
                info.tags.extend(new);
                Ok(())
            })
        }
        "untagStream" => {
            let keys = input.tag_key_list.unwrap_or_default();
            streams.update(at, None, |info| {
                info.tags.retain(|k, _| !keys.contains(k));
                Ok(())
            })
        }
        _ => {
            let info = streams.describe(at.0, at.1).map_err(|e| error(&e))?;
            return Ok(serde_json::json!({ "Tags": info.tags }));
        }
    }
    .map_err(|e| error(&e))?;
    Ok(serde_json::json!({}))
}

async fn list_fragments(
    streams: &VideoStreams,
    input: ListFragments,
) -> Result<serde_json::Value, ApiError> {
    let (_, log) = streams
        .log(input.at.name(), input.at.arn())
        .await
        .map_err(|e| error(&e))?;
    let limit = input
        .max_results
        .unwrap_or(100)
        .clamp(1, sluice_video::LIST_LIMIT_MAX);
    let range = match &input.fragment_selector {
        None => None,
        Some(selector) => {
            let kind = time_kind(&selector.fragment_selector_type)?;
            let range = &selector.timestamp_range;
            let (start, end) = (
                seconds_to_ms(range.start_timestamp),
                seconds_to_ms(range.end_timestamp),
            );
            if start > end {
                return Err(ApiError::with_status(
                    "InvalidArgumentException",
                    400,
                    "StartTimestamp is after EndTimestamp.",
                ));
            }
            Some((kind, start, end))
        }
    };
    let from = match &input.next_token {
        None => 0,
        Some(token) => sluice_video::fragment_offset(token).ok_or_else(|| {
            ApiError::with_status(
                "InvalidArgumentException",
                400,
                format!("NextToken {token:?} is not one ListFragments gave."),
            )
        })?,
    };
    let (page, next) = log.list(range, from, limit);
    let fragments: Vec<_> = page
        .iter()
        .map(|f| {
            serde_json::json!({
                "FragmentNumber": f.number(),
                "FragmentSizeInBytes": f.size,
                "ProducerTimestamp": f.meta.producer_ms as f64 / 1000.0,
                "ServerTimestamp": f.meta.server_ms as f64 / 1000.0,
                "FragmentLengthInMilliseconds": f.meta.duration_ms,
            })
        })
        .collect();
    Ok(match next {
        Some(offset) => {
            serde_json::json!({ "Fragments": fragments, "NextToken": sluice_video::fragment_number(offset) })
        }
        None => serde_json::json!({ "Fragments": fragments }),
    })
}

/// A FragmentSelectorType's time.
pub(crate) fn time_kind(selector_type: &str) -> Result<TimeKind, ApiError> {
    match selector_type {
        "PRODUCER_TIMESTAMP" => Ok(TimeKind::Producer),
        "SERVER_TIMESTAMP" => Ok(TimeKind::Server),
        other => Err(ApiError::with_status(
            "InvalidArgumentException",
            400,
            format!(
                "FragmentSelectorType {other:?} is not PRODUCER_TIMESTAMP or SERVER_TIMESTAMP."
            ),
        )),
    }
}

/// DescribeStream's StreamInfo.
fn described(info: &StreamInfo) -> serde_json::Value {
    let mut value = serde_json::json!({
        "StreamName": info.stream_name,
        "StreamARN": info.stream_arn,
        "Version": info.version,
        "Status": info.status,
        "CreationTime": info.creation_ms as f64 / 1000.0,
        "DataRetentionInHours": info.data_retention_in_hours,
    });
    for (key, field) in [
        ("DeviceName", &info.device_name),
        ("MediaType", &info.media_type),
        ("KmsKeyId", &info.kms_key_id),
    ] {
        if let Some(field) = field {
            value[key] = serde_json::json!(field);
        }
    }
    value
}

/// Epoch seconds (as REST-JSON sends timestamps) in ms.
pub fn seconds_to_ms(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

/// Now, in ms since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
