//! A stream's settings in cluster mode: retention (enforced by every replica), the capacity
//! mode (reported) and tags, changed through the controller, which checks each change
//! against the stream's map entry as it writes it; read from this node's map.

use super::ClusterFront;
use crate::ops::streams::{RetentionInput, UpdateStreamModeInput, retention_asked};
use crate::ops::tags::{
    AddTagsInput, ListTagsForResourceInput, ListTagsForResourceOutput, ListTagsForStreamInput,
    ListTagsForStreamOutput, RemoveTagsInput, Resource, TagResourceInput, UntagResourceInput,
    resource, resource_tags, tag_page,
};
use crate::shapes::{Empty, StreamModeDetails};
use crate::wire::ApiError;
use sluice_cluster::settings::{SettingsChange, SettingsRefused};
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
    let stream = stream.to_owned();
    match error {
        ClusterAdminError::Settings(refused) => match refused {
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
        }
        .into(),
        ClusterAdminError::NotActive(_, status) => ApiError::in_use(format!(
            "Stream {stream} under account {} not ACTIVE, instead in state {}",
            front.tenant.account,
            super::status_name(status)
        )),
        other => super::admin::admin_error(other),
    }
}

/// Sends `change` of stream `name` to the controller.
async fn change<B: Backend>(
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
    if input.warm_throughput_mi_bps.is_some() {
        return Err(ApiError::invalid_argument(
            "WarmThroughputMiBps is not available in cluster mode yet.",
        ));
    }
    let name = front.tenant.resolve(&None, &input.stream_arn)?;
    let mode = input
        .stream_mode_details
        .as_ref()
        .and_then(StreamModeDetails::mode)
        .expect("validated");
    let on_demand = mode == StreamMode::OnDemand;
    change(front, &name, SettingsChange::Mode { on_demand }).await
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
    let stream = front.stream(&name)?;
    Ok(tag_page(stream.settings.tags, &input))
}

/// The stream an ARN of TagResource and its kin names (consumers are not served in cluster
/// mode yet).
fn stream_of_resource<B: Backend>(
    front: &ClusterFront<B>,
    arn: Option<&str>,
) -> Result<String, ApiError> {
    match resource(&front.tenant, arn.expect("validated"))? {
        Resource::Stream(name) => Ok(name),
        Resource::Consumer { .. } => Err(ApiError::new(
            "UnsupportedOperationException",
            "Consumers are not available in cluster mode yet.",
        )),
    }
}

pub async fn tag_resource<B: Backend>(
    front: &ClusterFront<B>,
    input: TagResourceInput,
) -> Result<Empty, ApiError> {
    let name = stream_of_resource(front, input.resource_arn.as_deref())?;
    let tags = input.tags.expect("validated").entries.into_iter().collect();
    change(front, &name, SettingsChange::AddTags(tags)).await
}

pub async fn untag_resource<B: Backend>(
    front: &ClusterFront<B>,
    input: UntagResourceInput,
) -> Result<Empty, ApiError> {
    let name = stream_of_resource(front, input.resource_arn.as_deref())?;
    let keys = input.tag_keys.expect("validated").into_items();
    change(front, &name, SettingsChange::RemoveTags(keys)).await
}

pub async fn list_tags_for_resource<B: Backend>(
    front: &ClusterFront<B>,
    input: ListTagsForResourceInput,
) -> Result<ListTagsForResourceOutput, ApiError> {
    let name = stream_of_resource(front, input.resource_arn.as_deref())?;
    Ok(resource_tags(front.stream(&name)?.settings.tags))
}
