//! Stream administration: create, delete, describe, list, retention, record size, mode,
//! limits.

use crate::reshard_limits::check_descriptors;
use crate::shapes::{Empty, STREAM_MODES, Shard, StreamModeDetails, status_name, timestamp};
use crate::tenant::Tenant;
use crate::wire::bounded::TagMap;
use crate::wire::{ApiError, Incarnation, Timestamp, Validate, Validator};
use serde::{Deserialize, Serialize};
use sluice_core::limits::{ON_DEMAND_SHARDS_INITIAL, RETENTION_HOURS_MAX, RETENTION_HOURS_MIN};
use sluice_core::{AdminError, CreateStream, StreamMode, StreamStatus};

/// Names a stream by StreamName or StreamARN. (Inputs with more members repeat the two
/// fields: `#[serde(flatten)]` would hide the protocol from blobs and timestamps.)
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamRef {
    /// `[a-zA-Z0-9_.-]{1,128}`.
    pub stream_name: Option<String>,
    /// `arn:aws:kinesis:<region>:<account>:stream/<name>`.
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
}

impl Validate for StreamRef {
    fn validate(&self, v: &mut Validator) {
        v.stream(&self.stream_name, &self.stream_arn);
    }
}

impl StreamRef {
    /// The stream's name.
    pub fn resolve(&self, tenant: &Tenant) -> Result<String, ApiError> {
        tenant.resolve(&self.stream_name, &self.stream_arn)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateStreamInput {
    pub(crate) stream_name: Option<String>,
    pub(crate) shard_count: Option<i64>,
    pub(crate) stream_mode_details: Option<StreamModeDetails>,
    pub(crate) tags: Option<TagMap>,
    pub(crate) warm_throughput_mi_bps: Option<i64>,
    pub(crate) max_record_size_in_ki_b: Option<i64>,
}

impl Validate for CreateStreamInput {
    fn validate(&self, v: &mut Validator) {
        v.required("streamName", &self.stream_name);
        v.name("streamName", &self.stream_name);
        // The model's bound; the account's shard limit is a LimitExceededException.
        v.range("shardCount", self.shard_count, Some(1), Some(100_000));
        if let Some(details) = &self.stream_mode_details {
            v.required("streamModeDetails.streamMode", &details.stream_mode);
            v.one_of(
                "streamModeDetails.streamMode",
                &details.stream_mode,
                &STREAM_MODES,
            );
        }
        v.size("tags", self.tags.as_ref().map(|t| t.count), 1, 200);
        v.range(
            "warmThroughputMiBps",
            self.warm_throughput_mi_bps,
            Some(0),
            None,
        );
        v.range(
            "maxRecordSizeInKiB",
            self.max_record_size_in_ki_b,
            Some(1024),
            Some(10240),
        );
    }
}

pub async fn create_stream(tenant: &Tenant, input: CreateStreamInput) -> Result<Empty, ApiError> {
    let name = input.stream_name.expect("validated");
    let mode = input
        .stream_mode_details
        .as_ref()
        .and_then(StreamModeDetails::mode)
        .unwrap_or(StreamMode::Provisioned);
    let mut request = match mode {
        StreamMode::OnDemand => CreateStream::on_demand(&name),
        StreamMode::Provisioned => {
            let Some(count) = input.shard_count else {
                return Err(ApiError::invalid_argument(
                    "ShardCount is required for a PROVISIONED stream.",
                ));
            };
            CreateStream::provisioned(&name, u32::try_from(count).expect("validated"))
        }
    };
    request.max_record_size_bytes = input.max_record_size_in_ki_b.map(|kib| kib as u64 * 1024);
    request.tags = input
        .tags
        .map(|t| t.entries)
        .unwrap_or_default()
        .into_iter()
        .collect();
    // Past the account's quota the engine refuses it anyway, saying so.
    let _changing = tenant.shard_changes.lock().await;
    let shards = request.shard_count.max(ON_DEMAND_SHARDS_INITIAL);
    if shards <= tenant.config.shards_max {
        check_descriptors(u64::from(shards))?;
    }
    tenant.engine.create_stream(request).await?;
    tenant.begin_transition(&name, StreamStatus::Creating);
    if let Some(mibps) = input.warm_throughput_mi_bps {
        store_warm_throughput(tenant, &name, mibps as u64).await?;
    }
    Ok(Empty {})
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteStreamInput {
    pub(crate) stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: Option<String>,
    pub(crate) enforce_consumer_deletion: Option<bool>,
}

impl Validate for DeleteStreamInput {
    fn validate(&self, v: &mut Validator) {
        v.stream(&self.stream_name, &self.stream_arn);
    }
}

pub async fn delete_stream(tenant: &Tenant, input: DeleteStreamInput) -> Result<Empty, ApiError> {
    let name = tenant.resolve(&input.stream_name, &input.stream_arn)?;
    // One handle: the delete acts on the incarnation whose consumers were counted.
    let stream = tenant.engine.stream(&name)?;
    let created_ms = stream.summary()?.created_ms;
    let consumers = tenant
        .state
        .read(|s| s.stream(&name, created_ms).map_or(0, |e| e.consumers.len()));
    if consumers > 0 && input.enforce_consumer_deletion != Some(true) {
        return Err(ApiError::in_use(format!(
            "Stream {name} under account {} has registered consumers. Deregister them, or set EnforceConsumerDeletion.",
            tenant.account
        )));
    }
    stream.delete().await?;
    tenant.leases.revoke_stream(&name, created_ms);
    tenant
        .state
        .update(|state| {
            state.forget_stream(&name, created_ms);
            Ok(())
        })
        .await?;
    Ok(Empty {})
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStreamInput {
    pub(crate) stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: Option<String>,
    pub(crate) limit: Option<i64>,
    pub(crate) exclusive_start_shard_id: Option<String>,
}

impl Validate for DescribeStreamInput {
    fn validate(&self, v: &mut Validator) {
        v.stream(&self.stream_name, &self.stream_arn);
        v.range("limit", self.limit, Some(1), Some(10000));
        v.name("exclusiveStartShardId", &self.exclusive_start_shard_id);
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EnhancedMetrics {
    pub(crate) shard_level_metrics: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct StreamDescription {
    pub(crate) stream_name: String,
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: String,
    pub(crate) stream_status: &'static str,
    pub(crate) stream_mode_details: StreamModeDetails,
    pub(crate) shards: Vec<Shard>,
    pub(crate) has_more_shards: bool,
    pub(crate) retention_period_hours: u32,
    pub(crate) stream_creation_timestamp: Timestamp,
    pub(crate) enhanced_monitoring: Vec<EnhancedMetrics>,
    pub(crate) encryption_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) key_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStreamOutput {
    pub(crate) stream_description: StreamDescription,
}

/// What the server adds to the engine's description of a stream.
pub(crate) struct Extras {
    pub(crate) encryption_type: String,
    pub(crate) key_id: Option<String>,
    pub(crate) metrics: Vec<String>,
    pub(crate) consumers: usize,
    pub(crate) warm_throughput_mibps: Option<u64>,
}

fn extras(tenant: &Tenant, name: &str, created_ms: u64) -> Extras {
    tenant.state.read(|state| {
        let extras = state.stream(name, created_ms);
        let encryption = extras.and_then(|e| e.encryption.clone());
        Extras {
            encryption_type: encryption
                .as_ref()
                .map_or("NONE".to_owned(), |e| e.0.clone()),
            key_id: encryption.map(|e| e.1),
            metrics: extras.map_or_else(Vec::new, |e| {
                e.shard_level_metrics.iter().cloned().collect()
            }),
            consumers: extras.map_or(0, |e| e.consumers.len()),
            warm_throughput_mibps: extras.and_then(|e| e.warm_throughput_mibps),
        }
    })
}

pub async fn describe_stream(
    tenant: &Tenant,
    input: DescribeStreamInput,
) -> Result<DescribeStreamOutput, ApiError> {
    let name = tenant.resolve(&input.stream_name, &input.stream_arn)?;
    let limit = input.limit.map(|l| l.min(100) as usize);
    let description = tenant
        .engine
        .stream(&name)?
        .describe(limit, input.exclusive_start_shard_id.as_deref())?;
    let extras = extras(tenant, &name, description.created_ms);
    Ok(DescribeStreamOutput {
        stream_description: StreamDescription {
            stream_arn: tenant.stream_arn(&name),
            stream_status: status_name(tenant.status(&name)),
            stream_mode_details: StreamModeDetails::of(description.mode),
            shards: description
                .shards
                .iter()
                .map(|shard| Shard::of(shard, Incarnation::of(description.created_ms)))
                .collect(),
            has_more_shards: description.has_more_shards,
            retention_period_hours: description.retention_hours,
            stream_creation_timestamp: timestamp(description.created_ms),
            enhanced_monitoring: vec![EnhancedMetrics {
                shard_level_metrics: extras.metrics,
            }],
            encryption_type: extras.encryption_type,
            key_id: extras.key_id,
            stream_name: name,
        },
    })
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct WarmThroughput {
    #[serde(rename = "TargetMiBps")]
    pub(crate) target_mibps: u64,
    #[serde(rename = "CurrentMiBps")]
    pub(crate) current_mibps: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct StreamDescriptionSummary {
    pub(crate) stream_name: String,
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: String,
    pub(crate) stream_status: &'static str,
    pub(crate) stream_mode_details: StreamModeDetails,
    pub(crate) retention_period_hours: u32,
    pub(crate) stream_creation_timestamp: Timestamp,
    pub(crate) enhanced_monitoring: Vec<EnhancedMetrics>,
    pub(crate) encryption_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) key_id: Option<String>,
    pub(crate) open_shard_count: usize,
    pub(crate) consumer_count: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) warm_throughput: Option<WarmThroughput>,
    #[serde(rename = "MaxRecordSizeInKiB")]
    pub(crate) max_record_size_kib: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStreamSummaryOutput {
    pub(crate) stream_description_summary: StreamDescriptionSummary,
}

pub async fn describe_stream_summary(
    tenant: &Tenant,
    input: StreamRef,
) -> Result<DescribeStreamSummaryOutput, ApiError> {
    let name = input.resolve(tenant)?;
    let summary = tenant.engine.stream(&name)?.summary()?;
    let extras = extras(tenant, &name, summary.created_ms);
    Ok(DescribeStreamSummaryOutput {
        stream_description_summary: StreamDescriptionSummary {
            stream_arn: tenant.stream_arn(&name),
            stream_status: status_name(tenant.status(&name)),
            stream_mode_details: StreamModeDetails::of(summary.mode),
            retention_period_hours: summary.retention_hours,
            stream_creation_timestamp: timestamp(summary.created_ms),
            enhanced_monitoring: vec![EnhancedMetrics {
                shard_level_metrics: extras.metrics,
            }],
            encryption_type: extras.encryption_type,
            key_id: extras.key_id,
            open_shard_count: summary.open_shard_count,
            consumer_count: extras.consumers,
            warm_throughput: extras.warm_throughput_mibps.map(|mibps| WarmThroughput {
                target_mibps: mibps,
                current_mibps: mibps,
            }),
            max_record_size_kib: summary.max_record_size_bytes / 1024,
            stream_name: name,
        },
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListStreamsInput {
    pub(crate) limit: Option<i64>,
    pub(crate) exclusive_start_stream_name: Option<String>,
    pub(crate) next_token: Option<String>,
}

impl Validate for ListStreamsInput {
    fn validate(&self, v: &mut Validator) {
        v.range("limit", self.limit, Some(1), Some(10000));
        v.name(
            "exclusiveStartStreamName",
            &self.exclusive_start_stream_name,
        );
        v.length("nextToken", &self.next_token, 1, 1_048_576);
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct StreamSummaryEntry {
    pub(crate) stream_name: String,
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: String,
    pub(crate) stream_status: &'static str,
    pub(crate) stream_mode_details: StreamModeDetails,
    pub(crate) stream_creation_timestamp: Timestamp,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListStreamsOutput {
    pub(crate) stream_names: Vec<String>,
    pub(crate) has_more_streams: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) next_token: Option<String>,
    pub(crate) stream_summaries: Vec<StreamSummaryEntry>,
}

/// How long a ListStreams NextToken may be used (as ListShards' tokens).
const LIST_STREAMS_TOKEN_LIFETIME_MS: u64 = 300_000;

/// ListStreams' NextToken: opaque to clients, as Kinesis' is: URL-safe base64 of when it
/// was issued (8 bytes, big-endian ms) and the last name of the page.
pub(crate) fn list_streams_token(last_name: &str) -> String {
    use base64::Engine as _;
    let mut raw = crate::clock::now_ms().to_be_bytes().to_vec();
    raw.extend_from_slice(last_name.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// The name a NextToken continues after: InvalidArgument for one this server did not
/// issue, ExpiredNextToken past its lifetime.
pub(crate) fn list_streams_token_name(token: &str) -> Result<String, AdminError> {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| AdminError::InvalidNextToken)?;
    let (issued, name) = raw
        .split_at_checked(8)
        .ok_or(AdminError::InvalidNextToken)?;
    let issued_ms = u64::from_be_bytes(issued.try_into().expect("8 bytes"));
    let name = String::from_utf8(name.to_vec()).map_err(|_| AdminError::InvalidNextToken)?;
    let now_ms = crate::clock::now_ms();
    // Issued in the future (more than a clock step), or naming no possible stream: not ours.
    if issued_ms > now_ms + 60_000 || name.is_empty() || name.len() > 128 {
        return Err(AdminError::InvalidNextToken);
    }
    if now_ms.saturating_sub(issued_ms) > LIST_STREAMS_TOKEN_LIFETIME_MS {
        return Err(AdminError::ExpiredNextToken { issued_ms });
    }
    Ok(name)
}

pub async fn list_streams(
    tenant: &Tenant,
    input: ListStreamsInput,
) -> Result<ListStreamsOutput, ApiError> {
    let limit = input.limit.map_or(100, |l| l as usize);
    let after = match &input.next_token {
        Some(token) => Some(list_streams_token_name(token)?),
        None => input.exclusive_start_stream_name,
    };
    let page = tenant.engine.list_streams(Some(limit), after.as_deref())?;
    let mut summaries = Vec::with_capacity(page.names.len());
    for name in &page.names {
        // A stream deleted since the listing is left out of the summaries.
        if let Ok(summary) = tenant.engine.stream(name).and_then(|s| s.summary()) {
            summaries.push(StreamSummaryEntry {
                stream_arn: tenant.stream_arn(name),
                stream_status: status_name(tenant.status(name)),
                stream_mode_details: StreamModeDetails::of(summary.mode),
                stream_creation_timestamp: timestamp(summary.created_ms),
                stream_name: name.clone(),
            });
        }
    }
    Ok(ListStreamsOutput {
        next_token: page
            .has_more
            .then(|| page.names.last().map(|name| list_streams_token(name)))
            .flatten(),
        has_more_streams: page.has_more,
        stream_names: page.names,
        stream_summaries: summaries,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RetentionInput {
    pub(crate) stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: Option<String>,
    pub(crate) retention_period_hours: Option<i64>,
}

impl Validate for RetentionInput {
    fn validate(&self, v: &mut Validator) {
        v.stream(&self.stream_name, &self.stream_arn);
        v.required("retentionPeriodHours", &self.retention_period_hours);
    }
}

/// The hours asked for, saturated into `u32` (the engine names the range when it refuses).
fn retention_hours(hours: Option<i64>) -> u32 {
    let hours = hours.expect("validated");
    u32::try_from(hours.max(0)).unwrap_or(u32::MAX)
}

/// The hours a retention change asks for, refused outside 24..=8760 (Kinesis checks the
/// range before it looks the stream up).
pub(crate) fn retention_asked(input: &RetentionInput) -> Result<u32, ApiError> {
    let hours = retention_hours(input.retention_period_hours);
    let (min, max) = (RETENTION_HOURS_MIN, RETENTION_HOURS_MAX);
    if !(min..=max).contains(&hours) {
        return Err(AdminError::RetentionOutOfRange { hours, min, max }.into());
    }
    Ok(hours)
}

async fn change_retention(
    tenant: &Tenant,
    input: RetentionInput,
    increase: bool,
) -> Result<Empty, ApiError> {
    let name = tenant.resolve(&input.stream_name, &input.stream_arn)?;
    tenant.require_active(&name)?;
    let hours = retention_asked(&input)?;
    if increase {
        tenant
            .engine
            .stream(&name)?
            .increase_retention(hours)
            .await?;
    } else {
        tenant
            .engine
            .stream(&name)?
            .decrease_retention(hours)
            .await?;
    }
    tenant.begin_transition(&name, StreamStatus::Updating);
    Ok(Empty {})
}

pub async fn increase_retention(tenant: &Tenant, input: RetentionInput) -> Result<Empty, ApiError> {
    change_retention(tenant, input, true).await
}

pub async fn decrease_retention(tenant: &Tenant, input: RetentionInput) -> Result<Empty, ApiError> {
    change_retention(tenant, input, false).await
}

/// Records the WarmThroughputMiBps asked for (Sluice has no warm-up to do; it reports it).
pub async fn store_warm_throughput(
    tenant: &Tenant,
    name: &str,
    mibps: u64,
) -> Result<(), ApiError> {
    let created_ms = tenant.engine.stream(name)?.summary()?.created_ms;
    tenant
        .state
        .update(|state| {
            state.stream_mut(name, created_ms)?.warm_throughput_mibps = Some(mibps);
            Ok(())
        })
        .await
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateMaxRecordSizeInput {
    pub(crate) stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: Option<String>,
    pub(crate) max_record_size_in_ki_b: Option<i64>,
}

impl Validate for UpdateMaxRecordSizeInput {
    fn validate(&self, v: &mut Validator) {
        v.stream(&self.stream_name, &self.stream_arn);
        v.required("maxRecordSizeInKiB", &self.max_record_size_in_ki_b);
        v.range(
            "maxRecordSizeInKiB",
            self.max_record_size_in_ki_b,
            Some(1024),
            Some(10240),
        );
    }
}

pub async fn update_max_record_size(
    tenant: &Tenant,
    input: UpdateMaxRecordSizeInput,
) -> Result<Empty, ApiError> {
    let name = tenant.resolve(&input.stream_name, &input.stream_arn)?;
    tenant.require_active(&name)?;
    let bytes = input.max_record_size_in_ki_b.expect("validated") as u64 * 1024;
    tenant
        .engine
        .stream(&name)?
        .update_max_record_size(bytes)
        .await?;
    Ok(Empty {})
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateStreamModeInput {
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: Option<String>,
    pub(crate) stream_mode_details: Option<StreamModeDetails>,
    pub(crate) warm_throughput_mi_bps: Option<i64>,
}

impl Validate for UpdateStreamModeInput {
    fn validate(&self, v: &mut Validator) {
        v.required("streamARN", &self.stream_arn);
        v.stream_arn("streamARN", &self.stream_arn);
        v.required("streamModeDetails", &self.stream_mode_details);
        if let Some(details) = &self.stream_mode_details {
            v.required("streamModeDetails.streamMode", &details.stream_mode);
            v.one_of(
                "streamModeDetails.streamMode",
                &details.stream_mode,
                &STREAM_MODES,
            );
        }
        v.range(
            "warmThroughputMiBps",
            self.warm_throughput_mi_bps,
            Some(0),
            None,
        );
    }
}

pub async fn update_stream_mode(
    tenant: &Tenant,
    input: UpdateStreamModeInput,
) -> Result<Empty, ApiError> {
    let name = tenant.resolve(&None, &input.stream_arn)?;
    tenant.require_active(&name)?;
    let mode = input
        .stream_mode_details
        .as_ref()
        .and_then(StreamModeDetails::mode)
        .expect("validated");
    tenant.engine.stream(&name)?.update_mode(mode).await?;
    if let Some(mibps) = input.warm_throughput_mi_bps {
        store_warm_throughput(tenant, &name, mibps as u64).await?;
    }
    tenant.begin_transition(&name, StreamStatus::Updating);
    Ok(Empty {})
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeLimitsOutput {
    pub(crate) shard_limit: u32,
    pub(crate) open_shard_count: usize,
    pub(crate) on_demand_stream_count: usize,
    pub(crate) on_demand_stream_count_limit: usize,
}

/// Streams in on-demand mode allowed (Kinesis' default quota).
pub(crate) const ON_DEMAND_STREAMS_MAX: usize = 50;

pub async fn describe_limits(
    tenant: &Tenant,
    _input: Empty,
) -> Result<DescribeLimitsOutput, ApiError> {
    let (mut open_shards, mut on_demand) = (0, 0);
    let mut after: Option<String> = None;
    loop {
        let page = tenant.engine.list_streams(Some(1000), after.as_deref())?;
        for name in &page.names {
            if let Ok(summary) = tenant.engine.stream(name).and_then(|s| s.summary()) {
                open_shards += summary.open_shard_count;
                on_demand += usize::from(summary.mode == StreamMode::OnDemand);
            }
        }
        if !page.has_more {
            break;
        }
        after = page.names.last().cloned();
    }
    Ok(DescribeLimitsOutput {
        shard_limit: tenant.config.shards_max,
        open_shard_count: open_shards,
        on_demand_stream_count: on_demand,
        on_demand_stream_count_limit: ON_DEMAND_STREAMS_MAX,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn token(issued_ms: u64, name: &str) -> String {
        let mut raw = issued_ms.to_be_bytes().to_vec();
        raw.extend_from_slice(name.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    #[test]
    fn list_streams_tokens_continue_expire_and_refuse_garbage() {
        assert_eq!(
            list_streams_token_name(&list_streams_token("orders")).unwrap(),
            "orders"
        );
        let now = crate::clock::now_ms();
        assert_eq!(
            list_streams_token_name(&token(now - 1_000, "a")).unwrap(),
            "a"
        );
        let stale = now - LIST_STREAMS_TOKEN_LIFETIME_MS - 1_000;
        assert!(matches!(
            list_streams_token_name(&token(stale, "a")),
            Err(AdminError::ExpiredNextToken { issued_ms }) if issued_ms == stale
        ));
        for garbage in [
            "garbage",
            "",
            "!!",
            &token(now + 3_600_000, "a"),
            &token(now, ""),
        ] {
            assert!(
                matches!(
                    list_streams_token_name(garbage),
                    Err(AdminError::InvalidNextToken)
                ),
                "{garbage:?}"
            );
        }
    }
}
