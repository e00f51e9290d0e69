//! The Kinesis operations, one module per area, and the table that routes an
//! `X-Amz-Target` to them.

pub mod consumers;
pub mod records;
pub use records::encryption_type;
pub mod settings;
pub mod shards;
pub mod streams;
pub mod tags;

use crate::shapes::Empty;
use crate::tenant::Tenant;
use crate::wire::{ApiError, Protocol, Validate, Validator};

impl Validate for Empty {
    fn validate(&self, _: &mut Validator) {}
}

/// Decodes and validates an input, or answers the error.
pub fn input<T: serde::de::DeserializeOwned + Validate>(
    protocol: Protocol,
    body: &[u8],
) -> Result<T, ApiError> {
    let input: T = protocol.decode(body)?;
    let mut validator = Validator::default();
    input.validate(&mut validator);
    validator.finish()?;
    Ok(input)
}

/// Runs the operation `name` (without the `Kinesis_20131202.` prefix) on `body` and returns
/// the encoded reply. SubscribeToShard is not here: it answers with a stream (see
/// [`crate::subscribe`]).
pub async fn call(
    tenant: &Tenant,
    name: &str,
    protocol: Protocol,
    body: &[u8],
) -> Result<Vec<u8>, ApiError> {
    macro_rules! op {
        ($function:path) => {{
            let output = $function(tenant, input(protocol, body)?).await?;
            Ok(protocol.encode(&output))
        }};
    }
    match name {
        "CreateStream" => op!(streams::create_stream),
        "DeleteStream" => op!(streams::delete_stream),
        "DescribeStream" => op!(streams::describe_stream),
        "DescribeStreamSummary" => op!(streams::describe_stream_summary),
        "ListStreams" => op!(streams::list_streams),
        "IncreaseStreamRetentionPeriod" => op!(streams::increase_retention),
        "DecreaseStreamRetentionPeriod" => op!(streams::decrease_retention),
        "UpdateMaxRecordSize" => op!(streams::update_max_record_size),
        "UpdateStreamMode" => op!(streams::update_stream_mode),
        "DescribeLimits" => op!(streams::describe_limits),
        "PutRecord" => op!(records::put_record),
        "PutRecords" => op!(records::put_records),
        "GetShardIterator" => op!(records::get_shard_iterator),
        "GetRecords" => records::get_records(tenant, input(protocol, body)?, protocol).await,
        "ListShards" => op!(shards::list_shards),
        "SplitShard" => op!(shards::split_shard),
        "MergeShards" => op!(shards::merge_shards),
        "UpdateShardCount" => op!(shards::update_shard_count),
        "AddTagsToStream" => op!(tags::add_tags_to_stream),
        "RemoveTagsFromStream" => op!(tags::remove_tags_from_stream),
        "ListTagsForStream" => op!(tags::list_tags_for_stream),
        "TagResource" => op!(tags::tag_resource),
        "UntagResource" => op!(tags::untag_resource),
        "ListTagsForResource" => op!(tags::list_tags_for_resource),
        "RegisterStreamConsumer" => op!(consumers::register),
        "DeregisterStreamConsumer" => op!(consumers::deregister),
        "DescribeStreamConsumer" => op!(consumers::describe),
        "ListStreamConsumers" => op!(consumers::list),
        "StartStreamEncryption" => op!(settings::start_encryption),
        "StopStreamEncryption" => op!(settings::stop_encryption),
        "EnableEnhancedMonitoring" => op!(settings::enable_monitoring),
        "DisableEnhancedMonitoring" => op!(settings::disable_monitoring),
        "PutResourcePolicy" => op!(settings::put_policy),
        "GetResourcePolicy" => op!(settings::get_policy),
        "DeleteResourcePolicy" => op!(settings::delete_policy),
        "DescribeAccountSettings" => op!(settings::describe_account_settings),
        "UpdateAccountSettings" => op!(settings::update_account_settings),
        "UpdateStreamWarmThroughput" => op!(settings::update_warm_throughput),
        _ => Err(ApiError::unknown_operation()),
    }
}

/// Every operation the server answers (SubscribeToShard included).
pub const OPERATIONS: [&str; 39] = [
    "AddTagsToStream",
    "CreateStream",
    "DecreaseStreamRetentionPeriod",
    "DeleteResourcePolicy",
    "DeleteStream",
    "DeregisterStreamConsumer",
    "DescribeAccountSettings",
    "DescribeLimits",
    "DescribeStream",
    "DescribeStreamConsumer",
    "DescribeStreamSummary",
    "DisableEnhancedMonitoring",
    "EnableEnhancedMonitoring",
    "GetRecords",
    "GetResourcePolicy",
    "GetShardIterator",
    "IncreaseStreamRetentionPeriod",
    "ListShards",
    "ListStreamConsumers",
    "ListStreams",
    "ListTagsForResource",
    "ListTagsForStream",
    "MergeShards",
    "PutRecord",
    "PutRecords",
    "PutResourcePolicy",
    "RegisterStreamConsumer",
    "RemoveTagsFromStream",
    "SplitShard",
    "StartStreamEncryption",
    "StopStreamEncryption",
    "SubscribeToShard",
    "TagResource",
    "UntagResource",
    "UpdateAccountSettings",
    "UpdateMaxRecordSize",
    "UpdateShardCount",
    "UpdateStreamMode",
    "UpdateStreamWarmThroughput",
];
