//! Kinesis in cluster mode (the `cluster` feature): the same wire, served from the cluster's
//! stream map and shard groups instead of the tenant's engine. Any node answers any request:
//! administration goes to the controller's node, puts to each shard's leader, reads to this
//! node's replica (after a read barrier where a read must see every acknowledged put).
//!
//! The operations served are the data plane's and the stream administration's (`SERVED`);
//! the others answer `UnsupportedOperationException` naming cluster mode, never a silent
//! success. Sequence numbers keep the single-node format (the stream's incarnation, the shard,
//! the log's number, which every replica repeats), and iterator tokens are signed with a key
//! every node shares (kept in the control plane), so both work on every node. Every Kinesis
//! operation is served (`SERVED`); stream encryption with the AWS managed key only
//! (keys.rs).

mod admin;
mod consumers;
mod keys;
mod records;
mod reshard;
mod settings;
mod subscribe;
mod token;

use crate::ops::consumers::ConsumerRef;
use crate::ops::input;
use crate::subscribe::{Sink, Started};
use crate::tenant::Tenant;
use crate::wire::{ApiError, Incarnation, Protocol};
use sluice_cluster::{Backend, ClusterNode, StreamPlacement, StreamStatus, Versioned};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use keys::ClusterKeys;
pub use token::TokenKey;

/// The Kinesis operations cluster mode serves.
pub const SERVED: [&str; 39] = [
    "CreateStream",
    "DeleteStream",
    "DescribeStream",
    "DescribeStreamSummary",
    "ListStreams",
    "ListShards",
    "SplitShard",
    "MergeShards",
    "UpdateShardCount",
    "DescribeLimits",
    "IncreaseStreamRetentionPeriod",
    "DecreaseStreamRetentionPeriod",
    "UpdateStreamMode",
    "AddTagsToStream",
    "RemoveTagsFromStream",
    "ListTagsForStream",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
    "PutRecord",
    "PutRecords",
    "GetShardIterator",
    "GetRecords",
    "RegisterStreamConsumer",
    "DeregisterStreamConsumer",
    "DescribeStreamConsumer",
    "ListStreamConsumers",
    "SubscribeToShard",
    "EnableEnhancedMonitoring",
    "DisableEnhancedMonitoring",
    "PutResourcePolicy",
    "GetResourcePolicy",
    "DeleteResourcePolicy",
    "UpdateStreamWarmThroughput",
    "UpdateMaxRecordSize",
    "DescribeAccountSettings",
    "UpdateAccountSettings",
    "StartStreamEncryption",
    "StopStreamEncryption",
];

/// A boxed reply future (the server holds the front as a trait object, whatever its store).
pub type Reply<'a> = Pin<Box<dyn Future<Output = Result<Vec<u8>, ApiError>> + Send + 'a>>;

/// A boxed future of a started subscription.
pub type Subscribing<'a> = Pin<Box<dyn Future<Output = Result<Started, ApiError>> + Send + 'a>>;

/// What the HTTP layer calls in cluster mode.
pub trait KinesisCluster: Send + Sync {
    /// Runs Kinesis operation `operation` on `body` for the cluster's account.
    fn call<'a>(&'a self, operation: &'a str, protocol: Protocol, body: &'a [u8]) -> Reply<'a>;

    /// Starts SubscribeToShard `body`: its frames hold bytes of `sink`'s budget, and a
    /// subscriber that stops reading is cut off through its abort.
    fn subscribe<'a>(&'a self, protocol: Protocol, body: &'a [u8], sink: Sink) -> Subscribing<'a>;

    /// The canonical ARN and the resource policy of the consumer a call names (for
    /// authorization before the call), refused as the call itself would refuse it.
    fn consumer_resource(&self, named: &ConsumerRef) -> Result<(String, Option<String>), ApiError>;

    /// The resource policy of stream `name`, if it exists and has one.
    fn stream_policy(&self, name: &str) -> Option<String>;

    /// Whether any stream or consumer in this node's map has a resource policy.
    fn holds_policies(&self) -> bool;

    /// The cluster's status as this node sees it (`GET /_sluice/cluster`), as JSON.
    fn status(&self) -> Reply<'_>;

    /// The stream a token names (for authorization before the call), refused as the call
    /// itself would refuse it.
    fn stream_of(&self, token: Token<'_>) -> Result<String, ApiError>;
}

/// A token a call names its stream by.
#[derive(Clone, Copy, Debug)]
pub enum Token<'a> {
    /// GetRecords' ShardIterator.
    Iterator(&'a str),
    /// ListShards' NextToken.
    ShardPage(&'a str),
}

/// Where `sluice cluster status` reads the status.
pub const STATUS_PATH: &str = "/_sluice/cluster";

/// A node's Kinesis front: its [`ClusterNode`], the account and region it serves (the
/// default tenant's) and the iterator key.
pub struct ClusterFront<B: Backend> {
    node: Arc<ClusterNode<B>>,
    tenant: Arc<Tenant>,
    tokens: TokenKey,
    keys: Arc<ClusterKeys<B>>,
}

impl<B: Backend> ClusterFront<B> {
    /// The front of `node`, for `tenant`'s account and region; the iterator and managed keys are the
    /// cluster's (made by the first node to start).
    pub async fn new(
        node: Arc<ClusterNode<B>>,
        tenant: Arc<Tenant>,
    ) -> Result<ClusterFront<B>, sluice_cluster::MetaError> {
        let tokens = TokenKey::shared(node.meta()).await?;
        let keys = Arc::new(ClusterKeys::shared(node.meta()).await?);
        Ok(ClusterFront {
            node,
            tenant,
            tokens,
            keys,
        })
    }

    /// The node behind it.
    pub fn node(&self) -> &Arc<ClusterNode<B>> {
        &self.node
    }

    /// Stream `name` as this node's map has it (DELETING until its groups are gone, as
    /// Kinesis shows a stream being deleted); not found is ResourceNotFoundException.
    fn local_stream(&self, name: &str) -> Result<StreamPlacement, ApiError> {
        let map = self.node.map();
        map.streams
            .get(name)
            .map(|stream| stream.value.clone())
            .ok_or_else(|| self.stream_not_found(name))
    }

    fn stream_not_found(&self, name: &str) -> ApiError {
        ApiError::not_found(format!(
            "Stream {name} under account {} not found.",
            self.tenant.account
        ))
    }

    /// Stream `name` as the store has it now: a change made through any node shows at once
    /// (this node's map follows the store a moment behind). This node's map when the store
    /// does not answer.
    async fn stream(&self, name: &str) -> Result<StreamPlacement, ApiError> {
        match self.node.meta().stream(name).await {
            Ok(stream) => stream
                .map(|stream| stream.value)
                .ok_or_else(|| self.stream_not_found(name)),
            // The node's own watch reports a store gone away; a call still gets an answer,
            // but a stream the map does not show may exist: InternalFailure, which SDKs
            // retry, never "not found", which ends a consumer.
            Err(error) => self
                .local_stream(name)
                .map_err(|_| store_unavailable(&error)),
        }
    }

    /// Every stream as the store has it now (this node's map when the store does not answer).
    async fn streams(&self) -> BTreeMap<String, Versioned<StreamPlacement>> {
        match self.streams_now().await {
            Ok(streams) => streams,
            Err(_) => self.node.map().streams.clone(),
        }
    }

    /// Every stream as the store has it now.
    async fn streams_now(&self) -> Result<BTreeMap<String, Versioned<StreamPlacement>>, ApiError> {
        let read = self.node.meta().streams_named("").await;
        read.map_err(|error| store_unavailable(&error))
    }

    /// Stream `name`, which must be ACTIVE or UPDATING (resharding) to take puts and reads:
    /// a stream being created or deleted is ResourceNotFoundException (as kinesalite
    /// answers; Kinesis lists no other error for these calls), saying which. This node's map
    /// first; the store when the map does not show it serving (made through another node a
    /// moment ago).
    async fn serving_stream(&self, name: &str) -> Result<StreamPlacement, ApiError> {
        match self.local_stream(name) {
            Ok(stream) if serving(&stream) => Ok(stream),
            _ => self.serving_stream_now(name).await,
        }
    }

    /// Stream `name` as `serving_stream` takes it, from the store: also when this node's map
    /// refused a record a setting changed through another node a moment ago would take.
    async fn serving_stream_now(&self, name: &str) -> Result<StreamPlacement, ApiError> {
        let stream = self.stream(name).await?;
        if !serving(&stream) {
            return Err(ApiError::not_found(format!(
                "Stream {name} under account {} not found: it is {}.",
                self.tenant.account,
                status_name(stream.status)
            )));
        }
        Ok(stream)
    }

    async fn dispatch(
        &self,
        operation: &str,
        protocol: Protocol,
        body: &[u8],
    ) -> Result<Vec<u8>, ApiError> {
        macro_rules! op {
            ($function:path) => {{
                let output = $function(self, input(protocol, body)?).await?;
                Ok(protocol.encode(&output))
            }};
        }
        match operation {
            "CreateStream" => op!(admin::create_stream),
            "DeleteStream" => op!(admin::delete_stream),
            "DescribeStream" => op!(admin::describe_stream),
            "DescribeStreamSummary" => op!(admin::describe_stream_summary),
            "ListStreams" => op!(admin::list_streams),
            "ListShards" => op!(admin::list_shards),
            "SplitShard" => op!(reshard::split_shard),
            "MergeShards" => op!(reshard::merge_shards),
            "UpdateShardCount" => op!(reshard::update_shard_count),
            "DescribeLimits" => op!(admin::describe_limits),
            "IncreaseStreamRetentionPeriod" => op!(settings::increase_retention),
            "DecreaseStreamRetentionPeriod" => op!(settings::decrease_retention),
            "UpdateStreamMode" => op!(settings::update_stream_mode),
            "UpdateStreamWarmThroughput" => op!(settings::update_warm_throughput),
            "UpdateMaxRecordSize" => op!(settings::update_max_record_size),
            "StartStreamEncryption" => op!(settings::start_encryption),
            "StopStreamEncryption" => op!(settings::stop_encryption),
            "DescribeAccountSettings" => op!(settings::describe_account_settings),
            "UpdateAccountSettings" => op!(settings::update_account_settings),
            "AddTagsToStream" => op!(settings::add_tags_to_stream),
            "RemoveTagsFromStream" => op!(settings::remove_tags_from_stream),
            "ListTagsForStream" => op!(settings::list_tags_for_stream),
            "TagResource" => op!(settings::tag_resource),
            "UntagResource" => op!(settings::untag_resource),
            "ListTagsForResource" => op!(settings::list_tags_for_resource),
            "PutRecord" => op!(records::put_record),
            "PutRecords" => op!(records::put_records),
            "GetShardIterator" => op!(records::get_shard_iterator),
            "GetRecords" => records::get_records(self, input(protocol, body)?, protocol).await,
            "RegisterStreamConsumer" => op!(consumers::register),
            "DeregisterStreamConsumer" => op!(consumers::deregister),
            "DescribeStreamConsumer" => op!(consumers::describe),
            "ListStreamConsumers" => op!(consumers::list),
            "EnableEnhancedMonitoring" => op!(settings::enable_monitoring),
            "DisableEnhancedMonitoring" => op!(settings::disable_monitoring),
            "PutResourcePolicy" => op!(settings::put_policy),
            "GetResourcePolicy" => op!(settings::get_policy),
            "DeleteResourcePolicy" => op!(settings::delete_policy),
            other if crate::ops::OPERATIONS.contains(&other) => Err(unsupported(other)),
            _ => Err(ApiError::unknown_operation()),
        }
    }
}

impl<B: Backend> KinesisCluster for ClusterFront<B> {
    fn call<'a>(&'a self, operation: &'a str, protocol: Protocol, body: &'a [u8]) -> Reply<'a> {
        Box::pin(async move {
            self.dispatch(operation, protocol, body)
                .await
                .map_err(|e| e.for_account(&self.tenant.account))
        })
    }

    fn subscribe<'a>(&'a self, protocol: Protocol, body: &'a [u8], sink: Sink) -> Subscribing<'a> {
        Box::pin(async move {
            let started = subscribe::start(self, input(protocol, body)?, protocol, sink).await;
            started.map_err(|e| e.for_account(&self.tenant.account))
        })
    }

    fn consumer_resource(&self, named: &ConsumerRef) -> Result<(String, Option<String>), ApiError> {
        let found = consumers::Named::of(self, named)?.find_local(self)?;
        Ok((consumers::arn_of(self, &found), found.consumer.policy))
    }

    fn stream_policy(&self, name: &str) -> Option<String> {
        let map = self.node.map();
        map.streams.get(name)?.value.settings.policy.clone()
    }

    fn holds_policies(&self) -> bool {
        let map = self.node.map();
        map.streams.values().any(|s| {
            let settings = &s.value.settings;
            settings.policy.is_some() || settings.consumers.iter().any(|c| c.policy.is_some())
        })
    }

    fn stream_of(&self, token: Token<'_>) -> Result<String, ApiError> {
        let named = match token {
            Token::Iterator(token) => {
                let position = self.tokens.open(token, crate::clock::now_ms())?;
                let map = self.node.map();
                records::stream_of(self, &map.streams, position.stream_uid, token)?
                    .name
                    .clone()
            }
            Token::ShardPage(token) => admin::open_shards_token(token)?.0,
        };
        Ok(named)
    }

    fn status(&self) -> Reply<'_> {
        Box::pin(async move {
            let status =
                self.node.status().await.map_err(|e| {
                    ApiError::internal(format!("reading the cluster's status: {e}"))
                })?;
            Ok(serde_json::to_vec(&status).expect("a status encodes"))
        })
    }
}

/// An operation cluster mode does not serve yet.
pub fn unsupported(operation: &str) -> ApiError {
    ApiError::new(
        "UnsupportedOperationException",
        format!(
            "{operation} is not available in cluster mode yet; served: {}.",
            SERVED.join(", ")
        ),
    )
}

/// The control plane did not answer a read the call needs (InternalFailure: retried).
pub(super) fn store_unavailable(error: &sluice_cluster::MetaError) -> ApiError {
    ApiError::internal(format!(
        "The cluster's control plane does not answer: {error}"
    ))
}

/// Whether a stream takes puts and reads: ACTIVE, or UPDATING (resharding).
fn serving(stream: &StreamPlacement) -> bool {
    matches!(stream.status, StreamStatus::Active | StreamStatus::Updating)
}

/// The wire name of a map status.
fn status_name(status: StreamStatus) -> &'static str {
    match status {
        StreamStatus::Creating => "CREATING",
        StreamStatus::Active => "ACTIVE",
        StreamStatus::Updating => "UPDATING",
        StreamStatus::Deleting => "DELETING",
    }
}

/// The incarnation tag of a stream's numbers: its creation time and uid (never reused), so
/// a stream created again under the same name never accepts the old one's numbers.
fn incarnation(stream: &StreamPlacement) -> Incarnation {
    Incarnation::of(stream.created_ms ^ stream.uid.rotate_left(48))
}
