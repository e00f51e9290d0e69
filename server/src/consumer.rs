//! A registered consumer, looked up by ConsumerARN or by StreamARN and name: the lookup the
//! consumer operations, resource policies and SubscribeToShard share.

use crate::arn::{ConsumerArn, StreamArn};
use crate::state::Consumer;
use crate::tenant::Tenant;
use crate::wire::ApiError;

/// The stream a StreamARN names, with its creation time.
pub fn stream_of(tenant: &Tenant, stream_arn: &str) -> Result<(String, u64), ApiError> {
    let name = tenant.resolve(&None, &Some(stream_arn.to_owned()))?;
    let created_ms = tenant.engine.stream(&name)?.summary()?.created_ms;
    Ok((name, created_ms))
}

/// A registered consumer found: its stream, the stream's ARN and creation time, and itself.
pub struct FoundConsumer {
    /// Stream name.
    pub stream: String,
    /// Stream ARN.
    pub stream_arn: String,
    /// Stream creation time.
    pub stream_created_ms: u64,
    /// The consumer.
    pub consumer: Consumer,
}

/// Finds a consumer by its ARN (the creation time in it must match too).
pub fn find_by_arn(tenant: &Tenant, arn: &str) -> Result<FoundConsumer, ApiError> {
    let parsed = ConsumerArn::parse(arn)
        .ok_or_else(|| ApiError::invalid_argument(format!("Invalid ConsumerARN {arn}")))?;
    tenant.check_arn_scope(&parsed.stream)?;
    let stream_arn = StreamArn::format(
        parsed.stream.region,
        parsed.stream.account,
        parsed.stream.stream,
    );
    find(tenant, &stream_arn, parsed.consumer, Some(parsed.created_s))
}

/// Finds consumer `name` of the stream `stream_arn` (created at `created_s`, when given).
pub fn find(
    tenant: &Tenant,
    stream_arn: &str,
    name: &str,
    created_s: Option<u64>,
) -> Result<FoundConsumer, ApiError> {
    let not_found = || {
        ApiError::not_found(format!(
            "Consumer {name} under stream {stream_arn} not found."
        ))
    };
    let (stream, stream_created_ms) = stream_of(tenant, stream_arn).map_err(|e| match e.name {
        "ResourceNotFoundException" => not_found(),
        _ => e,
    })?;
    let consumer = tenant
        .state
        .read(|state| {
            state.stream(&stream, stream_created_ms).and_then(|extras| {
                extras
                    .consumers
                    .iter()
                    .find(|c| c.name == name && created_s.is_none_or(|s| c.created_ms / 1000 == s))
                    .cloned()
            })
        })
        .ok_or_else(not_found)?;
    Ok(FoundConsumer {
        stream,
        stream_arn: stream_arn.to_owned(),
        stream_created_ms,
        consumer,
    })
}
