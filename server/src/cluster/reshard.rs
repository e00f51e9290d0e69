//! Resharding in cluster mode: SplitShard, MergeShards and UpdateShardCount through the
//! controller, which answers once the stream is `UPDATING` with the reshard under way (as
//! Kinesis answers); the parents close and the children start behind it. Refusals carry the
//! single-node engine's wording and codes.

use super::ClusterFront;
use super::settings::settings_error;
use crate::ops::shards::{
    MergeShardsInput, SplitShardInput, UpdateShardCountInput, UpdateShardCountOutput,
};
use crate::shapes::Empty;
use crate::wire::ApiError;
use sluice_cluster::reshard::{ReshardChange, ReshardRefused};
use sluice_cluster::{AdminError as ClusterAdminError, Backend};
use sluice_core::hashkey::parse_hash_key;
use sluice_core::{HashKeyRange, ReshardError, ShardId};

/// The index of shard id `text` of stream `stream` (one that is no shard id is not found).
fn shard_index(stream: &str, text: &str) -> Result<u32, ApiError> {
    sluice_core::seqnum::parse_shard_id(text).ok_or_else(|| {
        ReshardError::ShardNotFound {
            stream: stream.to_owned(),
            shard: text.to_owned(),
        }
        .into()
    })
}

/// A reshard refused by the controller, as the single-node engine refuses it.
fn reshard_error(
    front: &ClusterFront<impl Backend>,
    stream: &str,
    error: ClusterAdminError,
) -> ApiError {
    let stream = stream.to_owned();
    let refused = match error {
        ClusterAdminError::Reshard(refused) => refused,
        other => return settings_error(front, &stream, other),
    };
    match refused {
        ReshardRefused::OnDemand => ReshardError::OnDemand { stream },
        ReshardRefused::ShardNotFound(index) => ReshardError::ShardNotFound {
            stream,
            shard: ShardId::new(index).to_string(),
        },
        ReshardRefused::ShardClosed(index) => ReshardError::ShardClosed {
            stream,
            shard: ShardId::new(index),
        },
        ReshardRefused::SplitKeyOutsideShard {
            shard,
            key,
            start,
            end,
        } => ReshardError::SplitKeyOutsideShard {
            stream,
            shard: ShardId::new(shard),
            key,
            range: HashKeyRange { start, end },
        },
        ReshardRefused::NotAdjacent(shard, adjacent) => ReshardError::NotAdjacent {
            stream,
            shard: ShardId::new(shard),
            adjacent: ShardId::new(adjacent),
        },
        ReshardRefused::ShardCountOutOfRange { target, current } => {
            ReshardError::ShardCountOutOfRange {
                stream,
                target,
                current,
            }
        }
        ReshardRefused::RateExceeded { per_second } => {
            return crate::reshard_limits::rate_exceeded(&front.tenant.account, per_second);
        }
        ReshardRefused::UpdatesPerDay {
            per_day,
            next_in_ms,
        } => {
            let account = &front.tenant.account;
            return crate::reshard_limits::updates_exceeded(&stream, account, per_day, next_in_ms);
        }
        other => return ApiError::internal(other.to_string()),
    }
    .into()
}

async fn reshard<B: Backend>(
    front: &ClusterFront<B>,
    name: &str,
    change: ReshardChange,
) -> Result<sluice_cluster::StreamPlacement, ApiError> {
    front
        .node
        .reshard(name, change)
        .await
        .map_err(|e| reshard_error(front, name, e))
}

pub async fn split_shard<B: Backend>(
    front: &ClusterFront<B>,
    input: SplitShardInput,
) -> Result<Empty, ApiError> {
    let name = front
        .tenant
        .resolve(&input.stream_name, &input.stream_arn)?;
    let stream = front.stream(&name).await?;
    let shard = shard_index(&name, input.shard_to_split.as_deref().expect("validated"))?;
    // The stream and the shard are checked before the key, as single-node mode checks them
    // (by this node's map; the controller checks again by its own).
    let refused = match stream.shards.iter().find(|s| s.index == shard) {
        _ if stream.settings.on_demand => Some(ReshardRefused::OnDemand),
        None => Some(ReshardRefused::ShardNotFound(shard)),
        Some(parent) if parent.closed => Some(ReshardRefused::ShardClosed(shard)),
        Some(_) => None,
    };
    if let Some(refused) = refused {
        return Err(reshard_error(
            front,
            &name,
            ClusterAdminError::Reshard(refused),
        ));
    }
    let key = input.new_starting_hash_key.as_deref().expect("validated");
    let key = parse_hash_key(key).map_err(|e| ApiError::from(ReshardError::InvalidHashKey(e)))?;
    let change = ReshardChange::Split {
        shard,
        new_starting_hash_key: key,
    };
    reshard(front, &name, change).await?;
    Ok(Empty {})
}

pub async fn merge_shards<B: Backend>(
    front: &ClusterFront<B>,
    input: MergeShardsInput,
) -> Result<Empty, ApiError> {
    let name = front
        .tenant
        .resolve(&input.stream_name, &input.stream_arn)?;
    front.stream(&name).await?;
    let shard = shard_index(&name, input.shard_to_merge.as_deref().expect("validated"))?;
    let adjacent = input.adjacent_shard_to_merge.as_deref().expect("validated");
    let adjacent = shard_index(&name, adjacent)?;
    reshard(front, &name, ReshardChange::Merge { shard, adjacent }).await?;
    Ok(Empty {})
}

pub async fn update_shard_count<B: Backend>(
    front: &ClusterFront<B>,
    input: UpdateShardCountInput,
) -> Result<UpdateShardCountOutput, ApiError> {
    let name = front
        .tenant
        .resolve(&input.stream_name, &input.stream_arn)?;
    let current = front
        .stream(&name)
        .await?
        .shards
        .iter()
        .filter(|s| !s.closed)
        .count() as u32;
    let target = u32::try_from(input.target_shard_count.expect("validated")).unwrap_or(u32::MAX);
    reshard(front, &name, ReshardChange::ScaleTo { target }).await?;
    Ok(UpdateShardCountOutput {
        stream_arn: front.tenant.stream_arn(&name),
        stream_name: name,
        current_shard_count: current,
        target_shard_count: target,
    })
}
