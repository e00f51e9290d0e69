//! Streams in cluster mode: CreateStream and DeleteStream through the controller, and the
//! descriptions and listings from this node's map.

use super::{ClusterFront, incarnation, status_name};
use crate::ops::shards::{ListShardsInput, ListShardsOutput, shard_filter};
use crate::ops::streams::{
    CreateStreamInput, DeleteStreamInput, DescribeLimitsOutput, DescribeStreamInput,
    DescribeStreamOutput, DescribeStreamSummaryOutput, EnhancedMetrics, ListStreamsInput,
    ListStreamsOutput, ON_DEMAND_STREAMS_MAX, StreamDescription, StreamDescriptionSummary,
    StreamRef, StreamSummaryEntry, WarmThroughput, list_streams_token, list_streams_token_name,
};
use crate::shapes::{
    Empty, HashKeyRange, SequenceNumberRange, Shard, StreamModeDetails, timestamp,
};
use crate::wire::ApiError;
use sluice_cluster::settings::{self, SettingsChange, SettingsRefused};
use sluice_cluster::{
    AdminError as ClusterAdminError, Backend, ShardPlacement, StreamPlacement, StreamSettings,
};
use sluice_core::limits::{
    ON_DEMAND_SHARDS_INITIAL, TAG_KEY_CHARS_MAX, TAG_VALUE_CHARS_MAX, TAGS_MAX,
};
use sluice_core::{AdminError, SequenceNumber, ShardFilter, ShardId, ShardLimit, StreamMode};

/// `"KMS"` while StartStreamEncryption is in effect, else `"NONE"`.
fn encryption_type(stream: &StreamPlacement) -> &'static str {
    crate::ops::records::encryption_type(stream.settings.encryption_key.is_some())
}

/// A stream's capacity mode in reply form.
fn mode_of(stream: &StreamPlacement) -> StreamModeDetails {
    StreamModeDetails::of(match stream.settings.on_demand {
        true => StreamMode::OnDemand,
        false => StreamMode::Provisioned,
    })
}

/// A control plane refusal as Kinesis words it.
pub(super) fn admin_error(error: ClusterAdminError) -> ApiError {
    match error {
        ClusterAdminError::StreamExists(stream) => AdminError::StreamExists { stream }.into(),
        ClusterAdminError::StreamNotFound(stream) => AdminError::StreamNotFound { stream }.into(),
        ClusterAdminError::InvalidArgument(why) => ApiError::invalid_argument(why),
        ClusterAdminError::NotEnoughNodes(why) | ClusterAdminError::TooLarge(why) => {
            ApiError::limit_exceeded(why)
        }
        ClusterAdminError::ShardQuota { open, limit, added } => {
            AdminError::ShardLimit(ShardLimit { open, limit, added }).into()
        }
        other => ApiError::internal(other.to_string()),
    }
}

pub async fn create_stream<B: Backend>(
    front: &ClusterFront<B>,
    input: CreateStreamInput,
) -> Result<Empty, ApiError> {
    let mode = input
        .stream_mode_details
        .as_ref()
        .and_then(StreamModeDetails::mode)
        .unwrap_or(StreamMode::Provisioned);
    let shards = match (mode, input.shard_count) {
        (StreamMode::OnDemand, _) => ON_DEMAND_SHARDS_INITIAL,
        (StreamMode::Provisioned, Some(count)) => u32::try_from(count).expect("validated"),
        (StreamMode::Provisioned, None) => {
            return Err(ApiError::invalid_argument(
                "ShardCount is required for a PROVISIONED stream.",
            ));
        }
    };
    let name = input.stream_name.expect("validated");
    let mut settings = StreamSettings {
        on_demand: mode == StreamMode::OnDemand,
        warm_mibps: input.warm_throughput_mi_bps.map(|mibps| mibps as u64),
        ..StreamSettings::default()
    };
    if let Some(kib) = input.max_record_size_in_ki_b {
        settings.max_record_kib = u32::try_from(kib).expect("validated");
    }
    if let Some(tags) = input.tags {
        let tags = SettingsChange::AddTags(tags.entries.into_iter().collect());
        settings::apply(&mut settings, &tags).map_err(|refused| match refused {
            SettingsRefused::InvalidTag(key) => ApiError::from(AdminError::InvalidTag {
                key,
                key_chars_max: TAG_KEY_CHARS_MAX,
                value_chars_max: TAG_VALUE_CHARS_MAX,
            }),
            _ => AdminError::TooManyTags {
                stream: None,
                max: TAGS_MAX,
            }
            .into(),
        })?;
    }
    front
        .node
        .create_stream_with(&name, shards, settings)
        .await
        .map_err(admin_error)?;
    Ok(Empty {})
}

pub async fn delete_stream<B: Backend>(
    front: &ClusterFront<B>,
    input: DeleteStreamInput,
) -> Result<Empty, ApiError> {
    let name = front
        .tenant
        .resolve(&input.stream_name, &input.stream_arn)?;
    let stream = front.stream(&name).await?;
    let deleted = match input.enforce_consumer_deletion {
        Some(true) => front.node.delete_stream_and_consumers(&name).await,
        _ => front.node.delete_stream(&name).await,
    };
    deleted.map_err(|e| super::settings::settings_error(front, &name, e))?;
    // This node's subscriptions end now; other nodes' as their maps show it DELETING.
    (front.tenant.leases).revoke_stream(&name, stream.created_ms);
    Ok(Empty {})
}

/// The enhanced monitoring a stream reports (its shard-level metrics enabled).
fn monitoring(stream: &StreamPlacement) -> Vec<EnhancedMetrics> {
    let metrics = &stream.settings.shard_level_metrics;
    vec![EnhancedMetrics {
        shard_level_metrics: metrics.iter().cloned().collect(),
    }]
}

/// A shard of the map in reply form; a closed one ends at its last record (its start when
/// it never held one), as single-node mode reports it.
pub(super) fn shard_out(stream: &StreamPlacement, index: usize) -> Shard {
    let shard = &stream.shards[index];
    let parent = |at: usize| shard.parents.get(at).map(|p| ShardId::new(*p).to_string());
    Shard {
        shard_id: ShardId::new(shard.index).to_string(),
        parent_shard_id: parent(0),
        adjacent_parent_shard_id: parent(1),
        hash_key_range: HashKeyRange {
            starting_hash_key: shard.starting_hash_key.to_string(),
            ending_hash_key: shard.ending_hash_key.to_string(),
        },
        sequence_number_range: SequenceNumberRange {
            starting_sequence_number: incarnation(stream)
                .tag(SequenceNumber::shard_start(shard.index))
                .to_string(),
            ending_sequence_number: shard.ending_seq.map(|end| {
                incarnation(stream)
                    .tag(SequenceNumber::last_before(shard.index, end))
                    .to_string()
            }),
        },
    }
}

/// The index in `stream.shards` after shard id `after` (all of them without one).
fn shards_after(stream: &StreamPlacement, after: Option<&str>) -> Result<usize, ApiError> {
    let Some(after) = after else { return Ok(0) };
    let index = sluice_core::seqnum::parse_shard_id(after).ok_or_else(|| {
        ApiError::from(AdminError::InvalidExclusiveStartShardId { id: after.into() })
    })?;
    Ok(stream.shards.partition_point(|s| s.index <= index))
}

pub async fn describe_stream<B: Backend>(
    front: &ClusterFront<B>,
    input: DescribeStreamInput,
) -> Result<DescribeStreamOutput, ApiError> {
    let name = front
        .tenant
        .resolve(&input.stream_name, &input.stream_arn)?;
    let stream = front.stream(&name).await?;
    let limit = input.limit.map_or(100, |l| l.min(100) as usize);
    let from = shards_after(&stream, input.exclusive_start_shard_id.as_deref())?;
    // A shard whose records may all have expired (retention passed since it closed, or
    // marked expired) is described no more, as single-node mode leaves it out.
    let now = crate::clock::now_ms();
    let mut described =
        (from..stream.shards.len()).filter(|&i| retained(&stream, &stream.shards[i], now));
    let shards = described
        .by_ref()
        .take(limit)
        .map(|i| shard_out(&stream, i))
        .collect();
    let has_more_shards = described.next().is_some();
    Ok(DescribeStreamOutput {
        stream_description: StreamDescription {
            stream_arn: front.tenant.stream_arn(&name),
            stream_status: status_name(stream.status),
            stream_mode_details: mode_of(&stream),
            shards,
            has_more_shards,
            retention_period_hours: stream.settings.retention_hours,
            stream_creation_timestamp: timestamp(stream.created_ms),
            enhanced_monitoring: monitoring(&stream),
            encryption_type: encryption_type(&stream).into(),
            key_id: stream.settings.encryption_key.clone(),
            stream_name: name,
        },
    })
}

pub async fn describe_stream_summary<B: Backend>(
    front: &ClusterFront<B>,
    input: StreamRef,
) -> Result<DescribeStreamSummaryOutput, ApiError> {
    let name = input.resolve(&front.tenant)?;
    let stream = front.stream(&name).await?;
    Ok(DescribeStreamSummaryOutput {
        stream_description_summary: StreamDescriptionSummary {
            stream_arn: front.tenant.stream_arn(&name),
            stream_status: status_name(stream.status),
            stream_mode_details: mode_of(&stream),
            retention_period_hours: stream.settings.retention_hours,
            stream_creation_timestamp: timestamp(stream.created_ms),
            enhanced_monitoring: monitoring(&stream),
            encryption_type: encryption_type(&stream).into(),
            key_id: stream.settings.encryption_key.clone(),
            open_shard_count: stream.shards.iter().filter(|s| !s.closed).count(),
            consumer_count: stream.settings.consumers.len(),
            warm_throughput: stream.settings.warm_mibps.map(|mibps| WarmThroughput {
                target_mibps: mibps,
                current_mibps: mibps,
            }),
            max_record_size_kib: u64::from(stream.settings.max_record_kib),
            stream_name: name,
        },
    })
}

pub async fn list_streams<B: Backend>(
    front: &ClusterFront<B>,
    input: ListStreamsInput,
) -> Result<ListStreamsOutput, ApiError> {
    let limit = input.limit.map_or(100, |l| l as usize);
    let after = match &input.next_token {
        Some(token) => Some(list_streams_token_name(token)?),
        None => input.exclusive_start_stream_name,
    };
    let streams = front.streams().await;
    let mut listed = streams
        .range::<str, _>((
            after
                .as_deref()
                .map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded),
            std::ops::Bound::Unbounded,
        ))
        .map(|(_, stream)| &stream.value);
    let page: Vec<&StreamPlacement> = listed.by_ref().take(limit).collect();
    let has_more = listed.next().is_some();
    Ok(ListStreamsOutput {
        next_token: has_more
            .then(|| page.last().map(|s| list_streams_token(&s.name)))
            .flatten(),
        has_more_streams: has_more,
        stream_names: page.iter().map(|s| s.name.clone()).collect(),
        stream_summaries: page
            .iter()
            .map(|s| StreamSummaryEntry {
                stream_name: s.name.clone(),
                stream_arn: front.tenant.stream_arn(&s.name),
                stream_status: status_name(s.status),
                stream_mode_details: mode_of(s),
                stream_creation_timestamp: timestamp(s.created_ms),
            })
            .collect(),
    })
}

/// ListShards' NextToken here: the last shard listed, the filter and the stream, as
/// URL-safe base64 (a page goes on with the filter of the first).
fn shards_token(stream: &str, last: u32, filter: Option<&ShardFilter>) -> String {
    use base64::Engine as _;
    let (kind, time) = match filter {
        Some(ShardFilter::AtTrimHorizon) => (1, 0),
        Some(ShardFilter::AtLatest) => (2, 0),
        Some(ShardFilter::AtTimestamp(t)) => (3, *t),
        Some(ShardFilter::FromTimestamp(t)) => (4, *t),
        _ => (0, 0),
    };
    let text = format!("{last}/{kind}/{time}/{stream}");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

/// A NextToken's stream, last shard listed and filter.
pub(super) fn open_shards_token(
    token: &str,
) -> Result<(String, u32, Option<ShardFilter>), ApiError> {
    use base64::Engine as _;
    let invalid = || ApiError::from(AdminError::InvalidNextToken);
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| invalid())?;
    let text = String::from_utf8(raw).map_err(|_| invalid())?;
    let mut parts = text.splitn(4, '/');
    let mut next = || parts.next().ok_or_else(invalid);
    let last = next()?.parse().map_err(|_| invalid())?;
    let kind: u8 = next()?.parse().map_err(|_| invalid())?;
    let time: u64 = next()?.parse().map_err(|_| invalid())?;
    let stream = next()?.to_owned();
    let filter = match kind {
        0 => None,
        1 => Some(ShardFilter::AtTrimHorizon),
        2 => Some(ShardFilter::AtLatest),
        3 => Some(ShardFilter::AtTimestamp(time)),
        4 => Some(ShardFilter::FromTimestamp(time)),
        _ => return Err(invalid()),
    };
    Ok((stream, last, filter))
}

/// Whether a closed shard may still hold records at `now` (retention not yet passed since
/// it closed, and not expired: a longer retention brings none back). Open shards are. The
/// one rule of DescribeStream, ListShards, GetShardIterator and GetRecords: a shard the
/// controller has not marked expired yet is already gone for them once this node's clock
/// says so, so they agree, also while this node's map is a moment behind its replicas'.
pub(super) fn retained(stream: &StreamPlacement, shard: &ShardPlacement, now: u64) -> bool {
    let retention = stream.settings.retention_ms();
    !shard.expired
        && shard
            .closed_ms
            .is_none_or(|closed| closed.saturating_add(retention) > now)
}

/// Whether `shard` is listed under `filter`, as single-node mode decides: a shard whose
/// records may all have expired is left out whatever the filter; AT_TRIM_HORIZON
/// lists the shards none of whose parents still holds records, AT_LATEST the open ones,
/// AT_TIMESTAMP those open at the time, FROM_TIMESTAMP those not closed before it. A child
/// opened when its parents closed; a shard with no parent with the stream.
fn listed(stream: &StreamPlacement, shard: &ShardPlacement, filter: Option<&ShardFilter>) -> bool {
    let parent = |index: &u32| stream.shards.iter().find(|s| s.index == *index);
    let opened_ms = || {
        shard
            .parents
            .iter()
            .filter_map(|p| parent(p).and_then(|p| p.closed_ms))
            .max()
    };
    let now = crate::clock::now_ms();
    if !retained(stream, shard, now) {
        return false;
    }
    match filter {
        None | Some(ShardFilter::AfterShardId(_) | ShardFilter::FromTrimHorizon) => true,
        Some(ShardFilter::AtTrimHorizon) => !shard
            .parents
            .iter()
            .filter_map(parent)
            .any(|p| retained(stream, p, now)),
        Some(ShardFilter::AtLatest) => !shard.closed,
        Some(ShardFilter::AtTimestamp(t)) => {
            opened_ms().is_none_or(|opened| opened <= *t)
                && shard.closed_ms.is_none_or(|closed| closed >= *t)
        }
        Some(ShardFilter::FromTimestamp(t)) => shard.closed_ms.is_none_or(|closed| closed >= *t),
    }
}

pub async fn list_shards<B: Backend>(
    front: &ClusterFront<B>,
    input: ListShardsInput,
) -> Result<ListShardsOutput, ApiError> {
    let (name, after, filter) = match (&input.stream_name, &input.stream_arn, &input.next_token) {
        (None, None, Some(token)) => {
            let (name, last, filter) = open_shards_token(token)?;
            (name, Some(ShardId::new(last).to_string()), filter)
        }
        (_, _, Some(_)) => {
            return Err(ApiError::invalid_argument(
                "NextToken and StreamName cannot be provided together.",
            ));
        }
        _ => (
            front
                .tenant
                .resolve(&input.stream_name, &input.stream_arn)?,
            input.exclusive_start_shard_id.clone(),
            input.shard_filter.as_ref().map(shard_filter).transpose()?,
        ),
    };
    let stream = front.stream(&name).await?;
    if let Some(created) = input.stream_creation_timestamp
        && created.ms / 1000 != stream.created_ms / 1000
    {
        return Err(ApiError::not_found(format!(
            "Stream {name} under account {} with creation time {} not found.",
            front.tenant.account, created.ms
        )));
    }
    let after = match &filter {
        Some(ShardFilter::AfterShardId(id)) if after.is_none() => Some(id.clone()),
        _ => after,
    };
    let from = shards_after(&stream, after.as_deref())?;
    let limit = input.max_results.map_or(1000, |m| m.min(1000) as usize);
    let mut matching = (from..stream.shards.len())
        .filter(|&i| listed(&stream, &stream.shards[i], filter.as_ref()))
        .peekable();
    let mut shards = Vec::new();
    let mut last = None;
    while shards.len() < limit
        && let Some(i) = matching.next()
    {
        shards.push(shard_out(&stream, i));
        last = Some(stream.shards[i].index);
    }
    let more = matching.peek().is_some();
    Ok(ListShardsOutput {
        shards,
        next_token: last
            .filter(|_| more)
            .map(|last| shards_token(&name, last, filter.as_ref())),
    })
}

/// DescribeLimits: the quota every node's controller enforces, the open shards and on-demand
/// streams of the streams not being deleted, as the store has them.
pub async fn describe_limits<B: Backend>(
    front: &ClusterFront<B>,
    _input: Empty,
) -> Result<DescribeLimitsOutput, ApiError> {
    let streams = front.streams().await;
    let live = streams
        .values()
        .map(|s| &s.value)
        .filter(|s| s.status != sluice_cluster::StreamStatus::Deleting);
    let (mut open_shards, mut on_demand) = (0, 0);
    for stream in live {
        open_shards += stream.shards.iter().filter(|s| !s.closed).count();
        on_demand += usize::from(stream.settings.on_demand);
    }
    Ok(DescribeLimitsOutput {
        shard_limit: front.tenant.config.shards_max,
        open_shard_count: open_shards,
        on_demand_stream_count: on_demand,
        on_demand_stream_count_limit: ON_DEMAND_STREAMS_MAX,
    })
}
