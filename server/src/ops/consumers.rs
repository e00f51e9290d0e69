//! Enhanced fan-out consumers: RegisterStreamConsumer, DeregisterStreamConsumer,
//! DescribeStreamConsumer, ListStreamConsumers. They live in the server state, bound to the
//! stream's creation time.

use crate::arn::ConsumerArn;
use crate::clock::now_ms;
use crate::consumer::{FoundConsumer, find, find_by_arn, stream_of};
use crate::shapes::{Empty, timestamp};
use crate::state::Consumer;
use crate::tenant::Tenant;
use crate::wire::bounded::TagMap;
use crate::wire::{ApiError, Timestamp, Validate, Validator};
use serde::{Deserialize, Serialize};

/// Consumers per stream (Kinesis' quota).
pub const CONSUMERS_PER_STREAM_MAX: usize = 20;

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConsumerOut {
    consumer_name: String,
    #[serde(rename = "ConsumerARN")]
    consumer_arn: String,
    consumer_status: &'static str,
    consumer_creation_timestamp: Timestamp,
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    stream_arn: Option<String>,
}

pub(crate) fn consumer_out(
    stream_arn: &str,
    consumer: &Consumer,
    with_stream: bool,
) -> ConsumerOut {
    ConsumerOut {
        consumer_name: consumer.name.clone(),
        consumer_arn: ConsumerArn::format(stream_arn, &consumer.name, consumer.created_ms / 1000),
        consumer_status: "ACTIVE",
        consumer_creation_timestamp: timestamp(consumer.created_ms),
        stream_arn: with_stream.then(|| stream_arn.to_owned()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RegisterInput {
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: Option<String>,
    pub(crate) consumer_name: Option<String>,
    pub(crate) tags: Option<TagMap>,
}

impl Validate for RegisterInput {
    fn validate(&self, v: &mut Validator) {
        v.required("streamARN", &self.stream_arn);
        v.stream_arn("streamARN", &self.stream_arn);
        v.required("consumerName", &self.consumer_name);
        v.name("consumerName", &self.consumer_name);
        v.size("tags", self.tags.as_ref().map(|t| t.count), 1, 200);
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RegisterOutput {
    pub(crate) consumer: ConsumerOut,
}

pub async fn register(tenant: &Tenant, input: RegisterInput) -> Result<RegisterOutput, ApiError> {
    let stream_arn = input.stream_arn.expect("validated");
    let (stream, created_ms) = stream_of(tenant, &stream_arn)?;
    tenant.require_active(&stream)?;
    let name = input.consumer_name.expect("validated");
    let consumer = tenant.state.update(|state| {
        let extras = state.stream_mut(&stream, created_ms)?;
        if extras.consumers.iter().any(|c| c.name == name) {
            return Err(ApiError::in_use(format!(
                "Consumer {name} under stream {stream} already exists for account {}.",
                tenant.account
            )));
        }
        if extras.consumers.len() >= CONSUMERS_PER_STREAM_MAX {
            return Err(ApiError::limit_exceeded(format!(
                "Stream {stream} has the maximum of {CONSUMERS_PER_STREAM_MAX} registered consumers."
            )));
        }
        let consumer = Consumer {
            name: name.clone(),
            created_ms: tenant.consumer_arn_second(&stream, &name, now_ms()),
            tags: input.tags.map(|t| t.entries).unwrap_or_default(),
            policy: None,
        };
        extras.consumers.push(consumer.clone());
        Ok(consumer)
    }).await?;
    Ok(RegisterOutput {
        consumer: consumer_out(&stream_arn, &consumer, false),
    })
}

/// A consumer named by ConsumerARN, or by StreamARN + ConsumerName.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConsumerRef {
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: Option<String>,
    pub(crate) consumer_name: Option<String>,
    #[serde(rename = "ConsumerARN")]
    pub(crate) consumer_arn: Option<String>,
}

impl Validate for ConsumerRef {
    fn validate(&self, v: &mut Validator) {
        v.stream_arn("streamARN", &self.stream_arn);
        v.name("consumerName", &self.consumer_name);
        v.length("consumerARN", &self.consumer_arn, 1, 2048);
    }
}

impl ConsumerRef {
    fn find(&self, tenant: &Tenant) -> Result<FoundConsumer, ApiError> {
        match (&self.consumer_arn, &self.stream_arn, &self.consumer_name) {
            (Some(arn), _, _) => find_by_arn(tenant, arn),
            (None, Some(stream_arn), Some(name)) => {
                tenant.resolve(&None, &Some(stream_arn.clone()))?;
                find(tenant, stream_arn, name, None)
            }
            _ => Err(neither_named()),
        }
    }
}

/// A consumer call that names no consumer.
pub(crate) fn neither_named() -> ApiError {
    ApiError::invalid_argument(
        "Either ConsumerARN, or StreamARN and ConsumerName, must be provided.",
    )
}

pub async fn deregister(tenant: &Tenant, input: ConsumerRef) -> Result<Empty, ApiError> {
    let found = input.find(tenant)?;
    tenant
        .state
        .update(|state| {
            let extras = state.stream_mut(&found.stream, found.stream_created_ms)?;
            // By identity: tags or a policy changed meanwhile must not keep it registered.
            extras.consumers.retain(|c| {
                (c.name.as_str(), c.created_ms)
                    != (found.consumer.name.as_str(), found.consumer.created_ms)
            });
            Ok(())
        })
        .await?;
    tenant.leases.revoke_consumer(
        &found.stream,
        &found.consumer.name,
        found.consumer.created_ms,
    );
    Ok(Empty {})
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeOutput {
    pub(crate) consumer_description: ConsumerOut,
}

pub async fn describe(tenant: &Tenant, input: ConsumerRef) -> Result<DescribeOutput, ApiError> {
    let found = input.find(tenant)?;
    Ok(DescribeOutput {
        consumer_description: consumer_out(&found.stream_arn, &found.consumer, true),
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListInput {
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: Option<String>,
    next_token: Option<String>,
    max_results: Option<i64>,
    stream_creation_timestamp: Option<Timestamp>,
}

impl Validate for ListInput {
    fn validate(&self, v: &mut Validator) {
        v.required("streamARN", &self.stream_arn);
        v.stream_arn("streamARN", &self.stream_arn);
        v.length("nextToken", &self.next_token, 1, 1_048_576);
        v.range("maxResults", self.max_results, Some(1), Some(10000));
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListOutput {
    consumers: Vec<ConsumerOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

pub async fn list(tenant: &Tenant, input: ListInput) -> Result<ListOutput, ApiError> {
    let stream_arn = input.stream_arn.clone().expect("validated");
    let (stream, created_ms) = stream_of(tenant, &stream_arn)?;
    let consumers = tenant.state.read(|state| {
        state
            .stream(&stream, created_ms)
            .map_or_else(Vec::new, |extras| extras.consumers.clone())
    });
    list_page(&input, created_ms, &consumers)
}

/// The page of `consumers` (of the stream created at `created_ms`) `input` asks for: its
/// NextToken is the index of the next consumer.
pub(crate) fn list_page(
    input: &ListInput,
    created_ms: u64,
    consumers: &[Consumer],
) -> Result<ListOutput, ApiError> {
    let stream_arn = input.stream_arn.as_deref().expect("validated");
    if let Some(asked) = input.stream_creation_timestamp
        && asked.ms / 1000 != created_ms / 1000
    {
        return Err(ApiError::not_found(format!(
            "Stream {stream_arn} with that creation time not found."
        )));
    }
    let start = match &input.next_token {
        Some(token) => token
            .parse::<usize>()
            .map_err(|_| ApiError::invalid_argument(format!("Invalid NextToken {token}")))?,
        None => 0,
    };
    let max = input.max_results.map_or(100, |m| m as usize);
    let page: Vec<ConsumerOut> = consumers
        .iter()
        .skip(start)
        .take(max)
        .map(|c| consumer_out(stream_arn, c, false))
        .collect();
    let next = start + page.len();
    Ok(ListOutput {
        consumers: page,
        next_token: (next < consumers.len()).then(|| next.to_string()),
    })
}
