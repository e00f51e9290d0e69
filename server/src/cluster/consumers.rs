//! Enhanced fan-out consumers in cluster mode: kept in their stream's map entry, registered
//! and deregistered through the controller (which checks the name and the quota against the
//! entry as it writes it), looked up in this node's map. A consumer's identity is its name
//! and registration time, so one registered again under the same name is another consumer,
//! and its old ARN names nothing.

use super::ClusterFront;
use super::settings::settings_error;
use crate::arn::ConsumerArn;
use crate::clock::now_ms;
use crate::ops::consumers::{
    ConsumerRef, DescribeOutput, ListInput, ListOutput, RegisterInput, RegisterOutput,
    consumer_out, list_page, neither_named,
};
use crate::shapes::Empty;
use crate::state::Consumer;
use crate::wire::ApiError;
use sluice_cluster::settings::{ConsumerEntry, SettingsChange};
use sluice_cluster::{Backend, StreamPlacement};

/// A registered consumer found in this node's map, with its stream's entry.
pub(super) struct Found {
    /// The stream's entry.
    pub stream: StreamPlacement,
    /// The consumer.
    pub consumer: ConsumerEntry,
}

/// A consumer as the single-node server's shapes take it.
pub(super) fn as_consumer(entry: &ConsumerEntry) -> Consumer {
    Consumer {
        name: entry.name.clone(),
        created_ms: entry.created_ms,
        tags: entry.tags.clone(),
        policy: entry.policy.clone(),
    }
}

/// A consumer as a call names it: its stream, its name, and its registration second when
/// the call gives it (a ConsumerARN does).
pub(super) struct Named {
    stream: String,
    name: String,
    created_s: Option<u64>,
}

impl Named {
    /// Consumer `name` of stream `stream` (registered at `created_s`, when given).
    pub(super) fn new(stream: &str, name: &str, created_s: Option<u64>) -> Named {
        Named {
            stream: stream.to_owned(),
            name: name.to_owned(),
            created_s,
        }
    }

    /// The consumer a ConsumerARN names (its registration time must match too).
    pub(super) fn by_arn<B: Backend>(
        front: &ClusterFront<B>,
        arn: &str,
    ) -> Result<Named, ApiError> {
        let parsed = ConsumerArn::parse(arn)
            .ok_or_else(|| ApiError::invalid_argument(format!("Invalid ConsumerARN {arn}")))?;
        front.tenant.check_arn_scope(&parsed.stream)?;
        Ok(Named::new(
            parsed.stream.stream,
            parsed.consumer,
            Some(parsed.created_s),
        ))
    }

    /// The consumer a ConsumerARN, or a StreamARN and ConsumerName, name.
    pub(super) fn of<B: Backend>(
        front: &ClusterFront<B>,
        named: &ConsumerRef,
    ) -> Result<Named, ApiError> {
        match (&named.consumer_arn, &named.stream_arn, &named.consumer_name) {
            (Some(arn), _, _) => Named::by_arn(front, arn),
            (None, Some(stream_arn), Some(name)) => {
                let stream = front.tenant.resolve(&None, &Some(stream_arn.clone()))?;
                Ok(Named::new(&stream, name, None))
            }
            _ => Err(neither_named()),
        }
    }

    /// The consumer in its stream's entry as the store has it now.
    pub(super) async fn find<B: Backend>(self, front: &ClusterFront<B>) -> Result<Found, ApiError> {
        let stream = front.stream(&self.stream).await;
        self.found_in(front, stream)
    }

    /// The consumer in its stream's entry as this node's map has it (for a check that
    /// cannot wait on the store).
    pub(super) fn find_local<B: Backend>(self, front: &ClusterFront<B>) -> Result<Found, ApiError> {
        let stream = front.local_stream(&self.stream);
        self.found_in(front, stream)
    }

    fn found_in<B: Backend>(
        self,
        front: &ClusterFront<B>,
        stream: Result<StreamPlacement, ApiError>,
    ) -> Result<Found, ApiError> {
        let not_found = || {
            ApiError::not_found(format!(
                "Consumer {} under stream {} not found.",
                self.name,
                front.tenant.stream_arn(&self.stream)
            ))
        };
        let stream = stream.map_err(|_| not_found())?;
        let consumer = (stream
            .settings
            .consumer(&self.name, self.created_s)
            .cloned())
        .ok_or_else(not_found)?;
        Ok(Found { stream, consumer })
    }
}

/// The canonical ARN of a consumer found.
pub(super) fn arn_of<B: Backend>(front: &ClusterFront<B>, found: &Found) -> String {
    ConsumerArn::format(
        &front.tenant.stream_arn(&found.stream.name),
        &found.consumer.name,
        found.consumer.created_ms / 1000,
    )
}

pub async fn register<B: Backend>(
    front: &ClusterFront<B>,
    input: RegisterInput,
) -> Result<RegisterOutput, ApiError> {
    let stream_arn = input.stream_arn.expect("validated");
    let stream = front.tenant.resolve(&None, &Some(stream_arn.clone()))?;
    front.stream(&stream).await?;
    let name = input.consumer_name.expect("validated");
    let consumer = ConsumerEntry {
        // Never the second of an earlier registration of the name made through this node,
        // whose ARN would then name this one.
        created_ms: front.tenant.consumer_arn_second(&stream, &name, now_ms()),
        name,
        tags: input.tags.map(|t| t.entries).unwrap_or_default(),
        policy: None,
    };
    let name = consumer.name.clone();
    let settings = front
        .node
        .configure(&stream, SettingsChange::RegisterConsumer(consumer))
        .await
        .map_err(|e| settings_error(front, &stream, e))?;
    // As written: the controller may have moved its registration time on.
    let written = settings.consumer(&name, None).expect("registered");
    Ok(RegisterOutput {
        consumer: consumer_out(&stream_arn, &as_consumer(written), false),
    })
}

pub async fn deregister<B: Backend>(
    front: &ClusterFront<B>,
    input: ConsumerRef,
) -> Result<Empty, ApiError> {
    let found = Named::of(front, &input)?.find(front).await?;
    let (stream, consumer) = (&found.stream.name, &found.consumer);
    let gone = SettingsChange::DeregisterConsumer {
        name: consumer.name.clone(),
        created_ms: consumer.created_ms,
    };
    front
        .node
        .configure(stream, gone)
        .await
        .map_err(|e| settings_error(front, stream, e))?;
    // This node's subscriptions end now; other nodes' end when their maps show it gone.
    front
        .tenant
        .leases
        .revoke_consumer(stream, &consumer.name, consumer.created_ms);
    Ok(Empty {})
}

pub async fn describe<B: Backend>(
    front: &ClusterFront<B>,
    input: ConsumerRef,
) -> Result<DescribeOutput, ApiError> {
    let found = Named::of(front, &input)?.find(front).await?;
    let stream_arn = front.tenant.stream_arn(&found.stream.name);
    Ok(DescribeOutput {
        consumer_description: consumer_out(&stream_arn, &as_consumer(&found.consumer), true),
    })
}

pub async fn list<B: Backend>(
    front: &ClusterFront<B>,
    input: ListInput,
) -> Result<ListOutput, ApiError> {
    let stream_arn = input.stream_arn.as_deref().expect("validated");
    let stream = front.tenant.resolve(&None, &Some(stream_arn.to_owned()))?;
    let stream = front.stream(&stream).await?;
    let consumers: Vec<Consumer> = stream.settings.consumers.iter().map(as_consumer).collect();
    list_page(&input, stream.created_ms, &consumers)
}
