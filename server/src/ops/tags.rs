//! Tags: the stream forms (AddTagsToStream, RemoveTagsFromStream, ListTagsForStream) and the
//! ARN forms (TagResource, UntagResource, ListTagsForResource) for streams and consumers.

use crate::arn::{ConsumerArn, StreamArn};
use crate::shapes::{Empty, Tag};
use crate::tenant::Tenant;
use crate::wire::bounded::{TagKeys, TagMap};
use crate::wire::{ApiError, Validate, Validator};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Tags on one resource, at most.
const TAGS_MAX: usize = 50;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AddTagsInput {
    pub(crate) stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: Option<String>,
    pub(crate) tags: Option<TagMap>,
}

impl Validate for AddTagsInput {
    fn validate(&self, v: &mut Validator) {
        v.stream(&self.stream_name, &self.stream_arn);
        v.required("tags", &self.tags);
        v.size("tags", self.tags.as_ref().map(|t| t.count), 1, 200);
    }
}

pub async fn add_tags_to_stream(tenant: &Tenant, input: AddTagsInput) -> Result<Empty, ApiError> {
    let name = tenant.resolve(&input.stream_name, &input.stream_arn)?;
    let tags = input.tags.expect("validated").entries.into_iter().collect();
    tenant.engine.stream(&name)?.add_tags(tags).await?;
    Ok(Empty {})
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RemoveTagsInput {
    pub(crate) stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: Option<String>,
    pub(crate) tag_keys: Option<TagKeys>,
}

impl Validate for RemoveTagsInput {
    fn validate(&self, v: &mut Validator) {
        v.stream(&self.stream_name, &self.stream_arn);
        v.required("tagKeys", &self.tag_keys);
        v.size("tagKeys", self.tag_keys.as_ref().map(|k| k.count), 1, 50);
    }
}

pub async fn remove_tags_from_stream(
    tenant: &Tenant,
    input: RemoveTagsInput,
) -> Result<Empty, ApiError> {
    let name = tenant.resolve(&input.stream_name, &input.stream_arn)?;
    tenant
        .engine
        .stream(&name)?
        .remove_tags(input.tag_keys.expect("validated").into_items())
        .await?;
    Ok(Empty {})
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsForStreamInput {
    pub(crate) stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: Option<String>,
    pub(crate) exclusive_start_tag_key: Option<String>,
    pub(crate) limit: Option<i64>,
}

impl Validate for ListTagsForStreamInput {
    fn validate(&self, v: &mut Validator) {
        v.stream(&self.stream_name, &self.stream_arn);
        v.length(
            "exclusiveStartTagKey",
            &self.exclusive_start_tag_key,
            1,
            128,
        );
        v.range("limit", self.limit, Some(1), Some(50));
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsForStreamOutput {
    tags: Vec<Tag>,
    has_more_tags: bool,
}

pub async fn list_tags_for_stream(
    tenant: &Tenant,
    input: ListTagsForStreamInput,
) -> Result<ListTagsForStreamOutput, ApiError> {
    let name = tenant.resolve(&input.stream_name, &input.stream_arn)?;
    let tags = tenant.engine.stream(&name)?.tags()?;
    Ok(tag_page(tags, &input))
}

/// The page of `tags` (in key order) that `input` asks for.
pub(crate) fn tag_page(
    tags: impl IntoIterator<Item = (String, String)>,
    input: &ListTagsForStreamInput,
) -> ListTagsForStreamOutput {
    let limit = input.limit.map_or(TAGS_MAX, |l| l as usize);
    let mut tags: Vec<Tag> = tags
        .into_iter()
        .filter(|(key, _)| {
            input
                .exclusive_start_tag_key
                .as_ref()
                .is_none_or(|start| key > start)
        })
        .map(|(key, value)| Tag { key, value })
        .collect();
    let has_more_tags = tags.len() > limit;
    tags.truncate(limit);
    ListTagsForStreamOutput {
        tags,
        has_more_tags,
    }
}

/// A resource an ARN names: a stream, or a consumer of one.
pub(crate) enum Resource {
    Stream(String),
    Consumer {
        stream: String,
        consumer: String,
        created_s: u64,
    },
}

pub(crate) fn resource(tenant: &Tenant, arn: &str) -> Result<Resource, ApiError> {
    if let Some(consumer) = ConsumerArn::parse(arn) {
        tenant.check_arn_scope(&consumer.stream)?;
        return Ok(Resource::Consumer {
            stream: consumer.stream.stream.to_owned(),
            consumer: consumer.consumer.to_owned(),
            created_s: consumer.created_s,
        });
    }
    match StreamArn::parse(arn) {
        Some(stream) => {
            tenant.check_arn_scope(&stream)?;
            Ok(Resource::Stream(stream.stream.to_owned()))
        }
        None => Err(ApiError::invalid_argument(format!(
            "Invalid ResourceARN {arn}"
        ))),
    }
}

fn validate_resource_arn(v: &mut Validator, arn: &Option<String>) {
    v.required("resourceARN", arn);
    v.length("resourceARN", arn, 1, 2048);
}

/// Applies `change` to the tags of a registered consumer.
async fn with_consumer_tags<R>(
    tenant: &Tenant,
    stream: &str,
    consumer: &str,
    created_s: u64,
    change: impl FnOnce(&mut BTreeMap<String, String>) -> Result<R, ApiError>,
) -> Result<R, ApiError> {
    let stream_created_ms = tenant.engine.stream(stream)?.summary()?.created_ms;
    tenant
        .state
        .update(|state| {
            let extras = state.stream_mut(stream, stream_created_ms)?;
            let found = extras
                .consumers
                .iter_mut()
                .find(|c| c.name == consumer && c.created_ms / 1000 == created_s)
                .ok_or_else(|| {
                    ApiError::not_found(format!(
                        "Consumer {consumer} of stream {stream} not found."
                    ))
                })?;
            change(&mut found.tags)
        })
        .await
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagResourceInput {
    #[serde(rename = "ResourceARN")]
    pub(crate) resource_arn: Option<String>,
    pub(crate) tags: Option<TagMap>,
}

impl Validate for TagResourceInput {
    fn validate(&self, v: &mut Validator) {
        validate_resource_arn(v, &self.resource_arn);
        v.required("tags", &self.tags);
        v.size("tags", self.tags.as_ref().map(|t| t.count), 1, 200);
    }
}

pub async fn tag_resource(tenant: &Tenant, input: TagResourceInput) -> Result<Empty, ApiError> {
    let tags = input.tags.expect("validated").entries;
    match resource(tenant, input.resource_arn.as_deref().expect("validated"))? {
        Resource::Stream(name) => {
            tenant
                .engine
                .stream(&name)?
                .add_tags(tags.into_iter().collect())
                .await?
        }
        Resource::Consumer {
            stream,
            consumer,
            created_s,
        } => {
            with_consumer_tags(tenant, &stream, &consumer, created_s, |current| {
                let mut next = current.clone();
                next.extend(tags);
                if next.len() > TAGS_MAX {
                    return Err(ApiError::limit_exceeded(format!(
                        "A resource can have at most {TAGS_MAX} tags."
                    )));
                }
                *current = next;
                Ok(())
            })
            .await?
        }
    }
    Ok(Empty {})
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UntagResourceInput {
    #[serde(rename = "ResourceARN")]
    pub(crate) resource_arn: Option<String>,
    pub(crate) tag_keys: Option<TagKeys>,
}

impl Validate for UntagResourceInput {
    fn validate(&self, v: &mut Validator) {
        validate_resource_arn(v, &self.resource_arn);
        v.required("tagKeys", &self.tag_keys);
        v.size("tagKeys", self.tag_keys.as_ref().map(|k| k.count), 1, 50);
    }
}

pub async fn untag_resource(tenant: &Tenant, input: UntagResourceInput) -> Result<Empty, ApiError> {
    let keys = input.tag_keys.expect("validated").into_items();
    match resource(tenant, input.resource_arn.as_deref().expect("validated"))? {
        Resource::Stream(name) => tenant.engine.stream(&name)?.remove_tags(keys).await?,
        Resource::Consumer {
            stream,
            consumer,
            created_s,
        } => {
            with_consumer_tags(tenant, &stream, &consumer, created_s, |current| {
                keys.iter().for_each(|key| {
                    current.remove(key);
                });
                Ok(())
            })
            .await?
        }
    }
    Ok(Empty {})
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsForResourceInput {
    #[serde(rename = "ResourceARN")]
    pub(crate) resource_arn: Option<String>,
}

impl Validate for ListTagsForResourceInput {
    fn validate(&self, v: &mut Validator) {
        validate_resource_arn(v, &self.resource_arn);
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsForResourceOutput {
    tags: Vec<Tag>,
}

pub async fn list_tags_for_resource(
    tenant: &Tenant,
    input: ListTagsForResourceInput,
) -> Result<ListTagsForResourceOutput, ApiError> {
    let tags = match resource(tenant, input.resource_arn.as_deref().expect("validated"))? {
        Resource::Stream(name) => tenant.engine.stream(&name)?.tags()?,
        Resource::Consumer {
            stream,
            consumer,
            created_s,
        } => {
            with_consumer_tags(tenant, &stream, &consumer, created_s, |current| {
                Ok(current.clone().into_iter().collect())
            })
            .await?
        }
    };
    Ok(resource_tags(tags))
}

/// ListTagsForResource's reply: every tag, in key order.
pub(crate) fn resource_tags(
    tags: impl IntoIterator<Item = (String, String)>,
) -> ListTagsForResourceOutput {
    ListTagsForResourceOutput {
        tags: tags
            .into_iter()
            .map(|(key, value)| Tag { key, value })
            .collect(),
    }
}
