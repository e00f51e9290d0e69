//! Shards: ListShards, SplitShard, MergeShards, UpdateShardCount.

use crate::clock::now_ms;
use crate::reshard_limits::check_descriptors;
use crate::shapes::{Empty, Shard};
use crate::tenant::Tenant;
use crate::wire::validate::HASH_KEY_PATTERN;
use crate::wire::{ApiError, Incarnation, Timestamp, Validate, Validator};
use serde::{Deserialize, Serialize};
use sluice_core::{ListShards, ShardFilter, StreamStatus};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ShardFilterInput {
    pub(crate) r#type: Option<String>,
    pub(crate) shard_id: Option<String>,
    pub(crate) timestamp: Option<Timestamp>,
}

const SHARD_FILTER_TYPES: [&str; 6] = [
    "AFTER_SHARD_ID",
    "AT_TRIM_HORIZON",
    "FROM_TRIM_HORIZON",
    "AT_LATEST",
    "AT_TIMESTAMP",
    "FROM_TIMESTAMP",
];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListShardsInput {
    pub(crate) stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: Option<String>,
    pub(crate) next_token: Option<String>,
    pub(crate) exclusive_start_shard_id: Option<String>,
    pub(crate) max_results: Option<i64>,
    pub(crate) stream_creation_timestamp: Option<Timestamp>,
    pub(crate) shard_filter: Option<ShardFilterInput>,
}

impl Validate for ListShardsInput {
    fn validate(&self, v: &mut Validator) {
        v.stream(&self.stream_name, &self.stream_arn);
        v.length("nextToken", &self.next_token, 1, 1_048_576);
        v.name("exclusiveStartShardId", &self.exclusive_start_shard_id);
        v.range("maxResults", self.max_results, Some(1), Some(10000));
        if let Some(filter) = &self.shard_filter {
            v.required("shardFilter.type", &filter.r#type);
            v.one_of("shardFilter.type", &filter.r#type, &SHARD_FILTER_TYPES);
            v.name("shardFilter.shardId", &filter.shard_id);
        }
    }
}

pub(crate) fn shard_filter(input: &ShardFilterInput) -> Result<ShardFilter, ApiError> {
    let timestamp = || {
        input.timestamp.map(|t| t.ms).ok_or_else(|| {
            ApiError::invalid_argument(
                "ShardFilter of type AT_TIMESTAMP or FROM_TIMESTAMP needs a Timestamp.",
            )
        })
    };
    Ok(match input.r#type.as_deref().expect("validated") {
        "AFTER_SHARD_ID" => ShardFilter::AfterShardId(input.shard_id.clone().ok_or_else(|| {
            ApiError::invalid_argument("ShardFilter of type AFTER_SHARD_ID needs a ShardId.")
        })?),
        "AT_TRIM_HORIZON" => ShardFilter::AtTrimHorizon,
        "FROM_TRIM_HORIZON" => ShardFilter::FromTrimHorizon,
        "AT_LATEST" => ShardFilter::AtLatest,
        "AT_TIMESTAMP" => ShardFilter::AtTimestamp(timestamp()?),
        "FROM_TIMESTAMP" => ShardFilter::FromTimestamp(timestamp()?),
        other => unreachable!("validated shard filter {other}"),
    })
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListShardsOutput {
    pub(crate) shards: Vec<Shard>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) next_token: Option<String>,
}

pub async fn list_shards(
    tenant: &Tenant,
    input: ListShardsInput,
) -> Result<ListShardsOutput, ApiError> {
    let stream = match (&input.stream_name, &input.stream_arn, &input.next_token) {
        (None, None, Some(_)) => None,
        (_, _, Some(_)) => {
            return Err(ApiError::invalid_argument(
                "NextToken and StreamName cannot be provided together.",
            ));
        }
        _ => Some(tenant.resolve(&input.stream_name, &input.stream_arn)?),
    };
    if let (Some(name), Some(created)) = (&stream, input.stream_creation_timestamp) {
        // The timestamp tells two streams of the same name apart.
        let actual = tenant.engine.stream(name)?.summary()?.created_ms;
        if actual / 1000 != created.ms / 1000 {
            return Err(ApiError::not_found(format!(
                "Stream {name} under account {} with creation time {} not found.",
                tenant.account, created.ms
            )));
        }
    }
    let page = tenant.engine.list_shards(&ListShards {
        stream,
        next_token: input.next_token,
        exclusive_start_shard_id: input.exclusive_start_shard_id,
        max_results: input.max_results.map(|m| m.min(1000) as usize),
        filter: input.shard_filter.as_ref().map(shard_filter).transpose()?,
    })?;
    Ok(ListShardsOutput {
        shards: page
            .shards
            .iter()
            .map(|shard| Shard::of(shard, Incarnation::of(page.stream_created_ms)))
            .collect(),
        next_token: page.next_token,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SplitShardInput {
    pub(crate) stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: Option<String>,
    pub(crate) shard_to_split: Option<String>,
    pub(crate) new_starting_hash_key: Option<String>,
}

impl Validate for SplitShardInput {
    fn validate(&self, v: &mut Validator) {
        v.stream(&self.stream_name, &self.stream_arn);
        v.required("shardToSplit", &self.shard_to_split);
        v.name("shardToSplit", &self.shard_to_split);
        v.required("newStartingHashKey", &self.new_starting_hash_key);
        v.decimal(
            "newStartingHashKey",
            &self.new_starting_hash_key,
            39,
            HASH_KEY_PATTERN,
        );
    }
}

pub async fn split_shard(tenant: &Tenant, input: SplitShardInput) -> Result<Empty, ApiError> {
    let name = tenant.resolve(&input.stream_name, &input.stream_arn)?;
    tenant.require_active(&name)?;
    let _changing = tenant.shard_changes.lock().await;
    tenant.reshards.check_rate(now_ms(), &tenant.account)?;
    check_descriptors(2)?;
    let shard = input.shard_to_split.as_deref().expect("validated");
    let key = input.new_starting_hash_key.as_deref().expect("validated");
    tenant.engine.stream(&name)?.split_shard(shard, key).await?;
    tenant.reshards.record_call(now_ms());
    tenant.begin_transition(&name, StreamStatus::Updating);
    Ok(Empty {})
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MergeShardsInput {
    pub(crate) stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: Option<String>,
    pub(crate) shard_to_merge: Option<String>,
    pub(crate) adjacent_shard_to_merge: Option<String>,
}

impl Validate for MergeShardsInput {
    fn validate(&self, v: &mut Validator) {
        v.stream(&self.stream_name, &self.stream_arn);
        v.required("shardToMerge", &self.shard_to_merge);
        v.name("shardToMerge", &self.shard_to_merge);
        v.required("adjacentShardToMerge", &self.adjacent_shard_to_merge);
        v.name("adjacentShardToMerge", &self.adjacent_shard_to_merge);
    }
}

pub async fn merge_shards(tenant: &Tenant, input: MergeShardsInput) -> Result<Empty, ApiError> {
    let name = tenant.resolve(&input.stream_name, &input.stream_arn)?;
    tenant.require_active(&name)?;
    let _changing = tenant.shard_changes.lock().await;
    tenant.reshards.check_rate(now_ms(), &tenant.account)?;
    check_descriptors(1)?;
    let a = input.shard_to_merge.as_deref().expect("validated");
    let b = input.adjacent_shard_to_merge.as_deref().expect("validated");
    tenant.engine.stream(&name)?.merge_shards(a, b).await?;
    tenant.reshards.record_call(now_ms());
    tenant.begin_transition(&name, StreamStatus::Updating);
    Ok(Empty {})
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateShardCountInput {
    pub(crate) stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: Option<String>,
    pub(crate) target_shard_count: Option<i64>,
    pub(crate) scaling_type: Option<String>,
}

impl Validate for UpdateShardCountInput {
    fn validate(&self, v: &mut Validator) {
        v.stream(&self.stream_name, &self.stream_arn);
        v.required("targetShardCount", &self.target_shard_count);
        v.range("targetShardCount", self.target_shard_count, Some(1), None);
        v.required("scalingType", &self.scaling_type);
        v.one_of("scalingType", &self.scaling_type, &["UNIFORM_SCALING"]);
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateShardCountOutput {
    pub(crate) stream_name: String,
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: String,
    pub(crate) current_shard_count: u32,
    pub(crate) target_shard_count: u32,
}

pub async fn update_shard_count(
    tenant: &Tenant,
    input: UpdateShardCountInput,
) -> Result<UpdateShardCountOutput, ApiError> {
    let name = tenant.resolve(&input.stream_name, &input.stream_arn)?;
    tenant.require_active(&name)?;
    let target = u32::try_from(input.target_shard_count.expect("validated")).unwrap_or(u32::MAX);
    let _changing = tenant.shard_changes.lock().await;
    let stream = tenant.engine.stream(&name)?;
    let summary = stream.summary()?;
    let per_day = tenant.config.update_shard_count_per_day_max;
    let (created_ms, account) = (summary.created_ms, &tenant.account);
    tenant
        .reshards
        .check_update(&name, created_ms, now_ms(), per_day, account)?;
    tenant.reshards.check_rate(now_ms(), account)?;
    // Scaling creates at most as many shards as it closes and opens together; a target out
    // of Kinesis' range (more than double, less than half) is the engine's error to give.
    let open = summary.open_shard_count as u64;
    if u64::from(target) <= 2 * open && 2 * u64::from(target) >= open {
        check_descriptors(open + u64::from(target))?;
    }
    let update = stream.update_shard_count(target).await?;
    tenant.reshards.record_update(&name, created_ms, now_ms());
    tenant.reshards.record_call(now_ms());
    tenant.begin_transition(&name, StreamStatus::Updating);
    Ok(UpdateShardCountOutput {
        stream_arn: tenant.stream_arn(&name),
        stream_name: name,
        current_shard_count: update.current_shard_count,
        target_shard_count: update.target_shard_count,
    })
}
