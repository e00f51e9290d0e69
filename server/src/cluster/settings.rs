//! A stream's settings in cluster mode: retention (enforced by every replica), the capacity
//! mode and enhanced monitoring (reported), tags and resource policies (of streams and
//! consumers; policies are evaluated before every call), changed through the controller, which checks each change
//! against the stream's map entry as it writes it; read from this node's map.

use super::{ClusterFront, store_unavailable};
use crate::ops::settings::{
    AccountSettingsInput, AccountSettingsOutput, EncryptionInput, GetPolicyOutput, MonitoringInput,
    MonitoringOutput, PolicyInput, WarmThroughputInput, WarmThroughputOutput, account_settings,
    account_settings_updated, checked_policy,
};
use crate::ops::streams::{
    RetentionInput, UpdateMaxRecordSizeInput, UpdateStreamModeInput, retention_asked,
};
use crate::ops::tags::{
    AddTagsInput, ListTagsForResourceInput, ListTagsForResourceOutput, ListTagsForStreamInput,
    ListTagsForStreamOutput, RemoveTagsInput, Resource, TagResourceInput, UntagResourceInput,
    resource, resource_tags, tag_page,
};
use crate::shapes::{Empty, StreamModeDetails};
use crate::wire::ApiError;
use sluice_cluster::settings::{
    CONSUMERS_PER_STREAM_MAX, ConsumerEntry, SettingsChange, SettingsRefused,
};
use sluice_cluster::{AdminError as ClusterAdminError, Backend};
use sluice_core::limits::{
    RETENTION_HOURS_MAX, RETENTION_HOURS_MIN, TAG_KEY_CHARS_MAX, TAG_VALUE_CHARS_MAX, TAGS_MAX,
};
use sluice_core::{AdminError, StreamMode};

/// A refusal of a change to stream `stream`, worded as the single-node server words it.
pub(super) fn settings_error(
    front: &ClusterFront<impl Backend>,
    stream: &str,
    error: ClusterAdminError,
) -> ApiError {
    match error {
        ClusterAdminError::Settings(refused) => refusal(front, stream, refused),
        ClusterAdminError::NotActive(_, status) => ApiError::in_use(format!(
            "Stream {stream} under account {} not ACTIVE, instead in state {}",
            front.tenant.account,
            super::status_name(status)
        )),
        other => super::admin::admin_error(other),
    }
}

/// A change the controller checked and refused, worded as the single-node server words it.
fn refusal(front: &ClusterFront<impl Backend>, stream: &str, refused: SettingsRefused) -> ApiError {
    let account = &front.tenant.account;
    let stream = stream.to_owned();
    let worded = match refused {
        SettingsRefused::RetentionOutOfRange(hours) => AdminError::RetentionOutOfRange {
            hours,
            min: RETENTION_HOURS_MIN,
            max: RETENTION_HOURS_MAX,
        },
        SettingsRefused::RetentionBelowCurrent { requested, current } => {
            AdminError::RetentionBelowCurrent {
                stream,
                requested_hours: requested,
                current_hours: current,
            }
        }
        SettingsRefused::RetentionAboveCurrent { requested, current } => {
            AdminError::RetentionAboveCurrent {
                stream,
                requested_hours: requested,
                current_hours: current,
            }
        }
        SettingsRefused::InvalidTag(key) => AdminError::InvalidTag {
            key,
            key_chars_max: TAG_KEY_CHARS_MAX,
            value_chars_max: TAG_VALUE_CHARS_MAX,
        },
        SettingsRefused::TooManyTags => AdminError::TooManyTags {
            stream: Some(stream),
            max: TAGS_MAX,
        },
        SettingsRefused::ConsumerExists(name) => {
            return ApiError::in_use(format!(
                "Consumer {name} under stream {stream} already exists for account {account}."
            ));
        }
        SettingsRefused::TooManyConsumers => {
            return ApiError::limit_exceeded(format!(
                "Stream {stream} has the maximum of {CONSUMERS_PER_STREAM_MAX} registered consumers."
            ));
        }
        SettingsRefused::ConsumerNotFound(name) => {
            return ApiError::not_found(format!(
                "Consumer {name} under stream {} not found.",
                front.tenant.stream_arn(&stream)
            ));
        }
        SettingsRefused::TooManyConsumerTags => {
            return ApiError::limit_exceeded(format!(
                "A resource can have at most {TAGS_MAX} tags."
            ));
        }
        SettingsRefused::NoPolicy => {
            return ApiError::not_found(format!("No resource policy found for {stream}."));
        }
        SettingsRefused::NotOnDemand => return crate::ops::settings::not_on_demand(),
        SettingsRefused::RecordSizeOutOfRange(kib) => {
            return ApiError::validation(format!(
                "MaxRecordSizeInKiB {kib} is outside 1024 to 10240."
            ));
        }
        SettingsRefused::HasConsumers => {
            return ApiError::in_use(format!(
                "Stream {stream} under account {account} has registered consumers. Deregister them, or set EnforceConsumerDeletion."
            ));
        }
    };
    worded.into()
}

/// Sends `change` of stream `name` to the controller.
pub(super) async fn change<B: Backend>(
    front: &ClusterFront<B>,
    name: &str,
    change: SettingsChange,
) -> Result<Empty, ApiError> {
    front
        .node
        .configure(name, change)
        .await
        .map_err(|e| settings_error(front, name, e))?;
    Ok(Empty {})
}

pub async fn increase_retention<B: Backend>(
    front: &ClusterFront<B>,
    input: RetentionInput,
) -> Result<Empty, ApiError> {
    let name = front
        .tenant
        .resolve(&input.stream_name, &input.stream_arn)?;
    let hours = retention_asked(&input)?;
    change(front, &name, SettingsChange::IncreaseRetention(hours)).await
}

pub async fn decrease_retention<B: Backend>(
    front: &ClusterFront<B>,
    input: RetentionInput,
) -> Result<Empty, ApiError> {
    let name = front
        .tenant
        .resolve(&input.stream_name, &input.stream_arn)?;
    let hours = retention_asked(&input)?;
    change(front, &name, SettingsChange::DecreaseRetention(hours)).await
}

pub async fn update_stream_mode<B: Backend>(
    front: &ClusterFront<B>,
    input: UpdateStreamModeInput,
) -> Result<Empty, ApiError> {
    let name = front.tenant.resolve(&None, &input.stream_arn)?;
    let mode = input
        .stream_mode_details
        .as_ref()
        .and_then(StreamModeDetails::mode)
        .expect("validated");
    let on_demand = mode == StreamMode::OnDemand;
    let warm_mibps = input.warm_throughput_mi_bps.map(|mibps| mibps as u64);
    let mode = SettingsChange::Mode {
        on_demand,
        warm_mibps,
    };
    change(front, &name, mode).await
}

pub async fn update_warm_throughput<B: Backend>(
    front: &ClusterFront<B>,
    input: WarmThroughputInput,
) -> Result<WarmThroughputOutput, ApiError> {
    let name = front
        .tenant
        .resolve(&input.stream_name, &input.stream_arn)?;
    let mibps = input.warm_throughput_mi_bps.expect("validated") as u64;
    change(front, &name, SettingsChange::WarmThroughput(mibps)).await?;
    Ok(WarmThroughputOutput::new(
        front.tenant.stream_arn(&name),
        name,
        mibps,
    ))
}

pub async fn update_max_record_size<B: Backend>(
    front: &ClusterFront<B>,
    input: UpdateMaxRecordSizeInput,
) -> Result<Empty, ApiError> {
    let name = front
        .tenant
        .resolve(&input.stream_name, &input.stream_arn)?;
    let kib = input.max_record_size_in_ki_b.expect("validated");
    let kib = u32::try_from(kib).expect("validated");
    change(front, &name, SettingsChange::MaxRecordSize(kib)).await
}

pub async fn add_tags_to_stream<B: Backend>(
    front: &ClusterFront<B>,
    input: AddTagsInput,
) -> Result<Empty, ApiError> {
    let name = front
        .tenant
        .resolve(&input.stream_name, &input.stream_arn)?;
    let tags = input.tags.expect("validated").entries.into_iter().collect();
    change(front, &name, SettingsChange::AddTags(tags)).await
}

pub async fn remove_tags_from_stream<B: Backend>(
    front: &ClusterFront<B>,
    input: RemoveTagsInput,
) -> Result<Empty, ApiError> {
    let name = front
        .tenant
        .resolve(&input.stream_name, &input.stream_arn)?;
    let keys = input.tag_keys.expect("validated").into_items();
    change(front, &name, SettingsChange::RemoveTags(keys)).await
}

pub async fn list_tags_for_stream<B: Backend>(
    front: &ClusterFront<B>,
    input: ListTagsForStreamInput,
) -> Result<ListTagsForStreamOutput, ApiError> {
    let name = front
        .tenant
        .resolve(&input.stream_name, &input.stream_arn)?;
    let stream = front.stream(&name).await?;
    Ok(tag_page(stream.settings.tags, &input))
}

/// Adds `add` to the tags of the stream or consumer `arn` names, then removes `remove`.
async fn retag<B: Backend>(
    front: &ClusterFront<B>,
    arn: Option<&str>,
    (add, remove): (Vec<(String, String)>, Vec<String>),
) -> Result<Empty, ApiError> {
    let retag = match target_of(front, arn.expect("validated")).await? {
        (name, None) if remove.is_empty() => (name, SettingsChange::AddTags(add)),
        (name, None) => (name, SettingsChange::RemoveTags(remove)),
        (name, Some(consumer)) => (
            name,
            SettingsChange::TagConsumer {
                name: consumer.name,
                created_ms: consumer.created_ms,
                add,
                remove,
            },
        ),
    };
    change(front, &retag.0, retag.1).await
}

pub async fn tag_resource<B: Backend>(
    front: &ClusterFront<B>,
    input: TagResourceInput,
) -> Result<Empty, ApiError> {
    let tags = input.tags.expect("validated").entries.into_iter().collect();
    retag(front, input.resource_arn.as_deref(), (tags, Vec::new())).await
}

pub async fn untag_resource<B: Backend>(
    front: &ClusterFront<B>,
    input: UntagResourceInput,
) -> Result<Empty, ApiError> {
    let keys = input.tag_keys.expect("validated").into_items();
    retag(front, input.resource_arn.as_deref(), (Vec::new(), keys)).await
}

pub async fn list_tags_for_resource<B: Backend>(
    front: &ClusterFront<B>,
    input: ListTagsForResourceInput,
) -> Result<ListTagsForResourceOutput, ApiError> {
    let tags = match target_of(front, input.resource_arn.as_deref().expect("validated")).await? {
        (_, Some(consumer)) => consumer.tags,
        (stream, None) => front.stream(&stream).await?.settings.tags,
    };
    Ok(resource_tags(tags))
}

async fn monitor<B: Backend>(
    front: &ClusterFront<B>,
    input: MonitoringInput,
    enable: bool,
) -> Result<MonitoringOutput, ApiError> {
    let name = front
        .tenant
        .resolve(&input.stream_name, &input.stream_arn)?;
    let current = front.stream(&name).await?.settings.shard_level_metrics;
    let metrics = input.metrics();
    let settings = front
        .node
        .configure(&name, SettingsChange::Monitoring { enable, metrics })
        .await
        .map_err(|e| settings_error(front, &name, e))?;
    Ok(MonitoringOutput {
        stream_arn: front.tenant.stream_arn(&name),
        stream_name: name,
        current_shard_level_metrics: current.into_iter().collect(),
        desired_shard_level_metrics: settings.shard_level_metrics.into_iter().collect(),
    })
}

pub async fn enable_monitoring<B: Backend>(
    front: &ClusterFront<B>,
    input: MonitoringInput,
) -> Result<MonitoringOutput, ApiError> {
    monitor(front, input, true).await
}

pub async fn disable_monitoring<B: Backend>(
    front: &ClusterFront<B>,
    input: MonitoringInput,
) -> Result<MonitoringOutput, ApiError> {
    monitor(front, input, false).await
}

/// The stream a ResourceARN names, which must exist, and the consumer of it when it names
/// a registered one.
async fn target_of<B: Backend>(
    front: &ClusterFront<B>,
    arn: &str,
) -> Result<(String, Option<ConsumerEntry>), ApiError> {
    match resource(&front.tenant, arn)? {
        Resource::Stream(name) => {
            front.stream(&name).await?;
            Ok((name, None))
        }
        Resource::Consumer {
            stream,
            consumer,
            created_s,
        } => {
            let found = super::consumers::Named::new(&stream, &consumer, Some(created_s))
                .find(front)
                .await?;
            Ok((stream, Some(found.consumer)))
        }
    }
}

/// Puts (`Some`) or deletes the policy of the stream or consumer `arn` names.
async fn set_policy<B: Backend>(
    front: &ClusterFront<B>,
    arn: &str,
    policy: Option<String>,
) -> Result<Empty, ApiError> {
    let (stream, consumer) = target_of(front, arn).await?;
    let consumer = consumer.map(|c| (c.name, c.created_ms));
    let outcome = (front.node)
        .configure(&stream, SettingsChange::Policy { consumer, policy })
        .await;
    match outcome {
        Ok(_) => Ok(Empty {}),
        Err(ClusterAdminError::Settings(SettingsRefused::NoPolicy)) => Err(ApiError::not_found(
            format!("No resource policy found for {arn}."),
        )),
        Err(error) => Err(settings_error(front, &stream, error)),
    }
}

pub async fn put_policy<B: Backend>(
    front: &ClusterFront<B>,
    input: PolicyInput,
) -> Result<Empty, ApiError> {
    let policy = checked_policy(input.policy)?;
    set_policy(
        front,
        input.resource_arn.as_deref().expect("validated"),
        Some(policy),
    )
    .await
}

pub async fn delete_policy<B: Backend>(
    front: &ClusterFront<B>,
    input: PolicyInput,
) -> Result<Empty, ApiError> {
    set_policy(
        front,
        input.resource_arn.as_deref().expect("validated"),
        None,
    )
    .await
}

pub async fn get_policy<B: Backend>(
    front: &ClusterFront<B>,
    input: PolicyInput,
) -> Result<GetPolicyOutput, ApiError> {
    let arn = input.resource_arn.as_deref().expect("validated");
    let policy = match target_of(front, arn).await? {
        (_, Some(consumer)) => consumer.policy,
        (stream, None) => front.stream(&stream).await?.settings.policy,
    };
    // Kinesis answers an empty document for a resource without a policy.
    Ok(GetPolicyOutput {
        policy: policy.unwrap_or_else(|| "{}".to_owned()),
    })
}

/// The control plane's name of the account's billing commitment setting.
const COMMITMENT: &str = "minimum-throughput-billing-commitment";

/// DescribeAccountSettings: the cluster's, as the store has them.
pub async fn describe_account_settings<B: Backend>(
    front: &ClusterFront<B>,
    _input: Empty,
) -> Result<AccountSettingsOutput, ApiError> {
    let stored = front.node.meta().account_setting(COMMITMENT).await;
    let status = stored.map_err(|e| store_unavailable(&e))?;
    let status = status.map(|s| String::from_utf8_lossy(&s).into_owned());
    Ok(account_settings(status))
}

/// UpdateAccountSettings: one setting for the whole cluster, written to the store.
pub async fn update_account_settings<B: Backend>(
    front: &ClusterFront<B>,
    input: AccountSettingsInput,
) -> Result<AccountSettingsOutput, ApiError> {
    let status = input.commitment();
    let meta = front.node.meta();
    let stored = meta.set_account_setting(COMMITMENT, status.clone().into_bytes());
    stored.await.map_err(|e| store_unavailable(&e))?;
    Ok(account_settings_updated(status))
}

/// StartStreamEncryption (`start`) or StopStreamEncryption: records put from now on are
/// sealed, or not; those already written stay as they were written.
async fn set_encryption<B: Backend>(
    front: &ClusterFront<B>,
    input: EncryptionInput,
    start: bool,
) -> Result<Empty, ApiError> {
    let name = front
        .tenant
        .resolve(&input.stream_name, &input.stream_arn)?;
    let key = input.kms_key()?;
    if start {
        let tenant = &front.tenant;
        super::keys::check_key(&key, (&tenant.account, &tenant.region))?;
    }
    change(
        front,
        &name,
        SettingsChange::Encryption(start.then_some(key)),
    )
    .await
}

pub async fn start_encryption<B: Backend>(
    front: &ClusterFront<B>,
    input: EncryptionInput,
) -> Result<Empty, ApiError> {
    set_encryption(front, input, true).await
}

pub async fn stop_encryption<B: Backend>(
    front: &ClusterFront<B>,
    input: EncryptionInput,
) -> Result<Empty, ApiError> {
    set_encryption(front, input, false).await
}
