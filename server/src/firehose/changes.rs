//! The operations that change a delivery stream after its creation: UpdateDestination (with
//! Firehose's version check) and the tag operations.

use super::destinations::{self, CONFIGURATION};
use super::error;
use super::shapes::{DESTINATION_KIND, Input, name};
use crate::tenant::Tenant;
use crate::wire::ApiError;
use serde_json::{Value, json};
use sluice_firehose::{Firehose, TAGS_MAX};
use std::collections::BTreeMap;

/// The only destination a delivery stream has (Firehose's id for it).
pub(super) const DESTINATION_ID: &str = "destinationId-000000000001";

/// UpdateDestination: the kept configuration with the update's members, made into the
/// destination again, when `CurrentDeliveryStreamVersionId` is the version now.
pub(super) async fn update_destination(
    tenant: &Tenant,
    firehose: &Firehose,
    input: &Input,
) -> Result<Value, ApiError> {
    let account = tenant.account.as_str();
    let name = name(input)?;
    let version = input
        .current_delivery_stream_version_id
        .as_deref()
        .ok_or_else(|| {
            ApiError::validation(
                "1 validation error detected: Value null at 'currentDeliveryStreamVersionId' failed to satisfy constraint: Member must not be null",
            )
        })?;
    let version: u64 = version.parse().map_err(|_| {
        ApiError::invalid_argument(format!(
            "CurrentDeliveryStreamVersionId {version:?} is not a version id."
        ))
    })?;
    if input.destination_id.as_deref() != Some(DESTINATION_ID) {
        return Err(ApiError::invalid_argument(format!(
            "Destination {:?} not found: the delivery stream's one destination is {DESTINATION_ID}.",
            input.destination_id.as_deref().unwrap_or("")
        )));
    }
    let info = firehose.describe(name).map_err(|e| error(e, account))?;
    let meta = |key: &str| info.spec.metadata.get(key).cloned();
    let (Some(kind), Some(kept)) = (meta(DESTINATION_KIND), meta(CONFIGURATION)) else {
        return Err(ApiError::invalid_argument(
            "This delivery stream was created by an earlier version of this server, which did not keep its configuration: create it again to update it.",
        ));
    };
    let kept: Value = serde_json::from_str(&kept).unwrap_or(Value::Null);
    let (kind, merged) = destinations::updated(&kind, &kept, &input.other)?;
    let kind = destinations::KINDS
        .iter()
        .find(|k| **k == kind)
        .copied()
        .unwrap_or("ExtendedS3");
    // The metadata the destination keeps is made again; the source's stays.
    let mut metadata: BTreeMap<String, String> = info
        .spec
        .metadata
        .iter()
        .filter(|(key, _)| {
            key.starts_with("Source") || key.as_str() == super::shapes::SOURCE_STREAM_ARN
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let destination = destinations::build(tenant, name, (kind, &merged), &mut metadata)?;
    firehose
        .update_destination(name, version, destination, Some(metadata))
        .await
        .map_err(|e| error(e, account))?;
    Ok(json!({}))
}

/// Tags as Firehose's `Tags` list gives them (`[{Key, Value}]`, at most 50).
pub(super) fn tags(value: Option<&Value>) -> Result<BTreeMap<String, String>, ApiError> {
    let listed = match value {
        None => return Ok(BTreeMap::new()),
        Some(Value::Array(listed)) => listed,
        Some(_) => {
            return Err(ApiError::invalid_argument(
                "Tags is a list of Key and Value.",
            ));
        }
    };
    if listed.is_empty() || listed.len() > TAGS_MAX {
        return Err(ApiError::invalid_argument(format!(
            "Tags holds 1 to {TAGS_MAX} tags."
        )));
    }
    let mut tags = BTreeMap::new();
    for tag in listed {
        let Some(key) = tag.get("Key").and_then(Value::as_str) else {
            return Err(ApiError::invalid_argument("Every tag needs a Key."));
        };
        let value = tag.get("Value").and_then(Value::as_str).unwrap_or("");
        tags.insert(key.to_owned(), value.to_owned());
    }
    Ok(tags)
}

/// TagDeliveryStream, UntagDeliveryStream and ListTagsForDeliveryStream.
pub(super) async fn tag_operation(
    operation: &str,
    tenant: &Tenant,
    firehose: &Firehose,
    input: &Input,
) -> Result<Value, ApiError> {
    let account = tenant.account.as_str();
    let name = name(input)?;
    match operation {
        "TagDeliveryStream" => {
            let tags = tags(input.tags.as_ref())?;
            if tags.is_empty() {
                return Err(ApiError::invalid_argument("Tags holds 1 to 50 tags."));
            }
            firehose
                .tag(name, &tags)
                .await
                .map_err(|e| error(e, account))?;
            Ok(json!({}))
        }
        "UntagDeliveryStream" => {
            let keys = input.tag_keys.clone().unwrap_or_default();
            if keys.is_empty() || keys.len() > TAGS_MAX {
                return Err(ApiError::invalid_argument("TagKeys holds 1 to 50 keys."));
            }
            firehose
                .untag(name, &keys)
                .await
                .map_err(|e| error(e, account))?;
            Ok(json!({}))
        }
        _ => {
            let info = firehose.describe(name).map_err(|e| error(e, account))?;
            let limit = input.limit.unwrap_or(50);
            if !(1..=50).contains(&limit) {
                return Err(ApiError::invalid_argument("Limit is between 1 and 50."));
            }
            let start = input.exclusive_start_tag_key.as_deref();
            let mut after = info
                .tags
                .iter()
                .filter(|(key, _)| start.is_none_or(|start| key.as_str() > start));
            let listed: Vec<Value> = after
                .by_ref()
                .take(limit as usize)
                .map(|(key, value)| json!({"Key": key, "Value": value}))
                .collect();
            Ok(json!({"Tags": listed, "HasMoreTags": after.next().is_some()}))
        }
    }
}
