//! Kinesis' wording for the engine's typed errors: the texts clients show and sometimes grep,
//! naming the tenant's account. The engine's errors carry the data; the words are the
//! wire's.

use sluice_core::hashkey::{HASH_KEY_MAX, HashKeyError};
use sluice_core::{
    AdminError, Error, ListShardsConflict, Parameter, PutError, ReadError, ReshardError,
    SequenceNumberError, ShardLimit,
};

/// The message for any engine error, for a tenant of `account`.
pub fn render(error: &Error, account: &str) -> String {
    match error {
        Error::Admin(e) => admin(e, account),
        Error::Put(e) => put(e, account),
        Error::Read(e) => read(e, account),
        Error::Reshard(e) => reshard(e, account),
        other => other.to_string(),
    }
}

fn stream_not_found(stream: &str, account: &str) -> String {
    format!("Stream {stream} under account {account} not found.")
}

fn rate_exceeded(shard: &str, stream: &str, account: &str) -> String {
    format!("Rate exceeded for shard {shard} in stream {stream} under account {account}.")
}

fn value_between(value: impl std::fmt::Display, member: &str, min: u64, max: u64) -> String {
    format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: Member must have value between {min} and {max}"
    )
}

fn shard_limit(limit: &ShardLimit, account: &str) -> String {
    let ShardLimit { open, limit, added } = limit;
    format!(
        "This request would exceed the shard limit for the account {account}. Current shard count for the account: {open}. Limit: {limit}. Number of additional shards that would have resulted from this request: {added}."
    )
}

/// The model's member name of a bounded parameter.
fn member(parameter: Parameter) -> &'static str {
    match parameter {
        Parameter::ListStreamsLimit | Parameter::DescribeStreamLimit => "limit",
        Parameter::ListShardsMaxResults => "maxResults",
        Parameter::ShardCount => "shardCount",
        Parameter::MaxRecordSizeKiB => "maxRecordSizeInKiB",
        _ => "value",
    }
}

/// Stream administration.
pub fn admin(error: &AdminError, account: &str) -> String {
    match error {
        AdminError::StreamNotFound { stream } => stream_not_found(stream, account),
        AdminError::StreamExists { stream } => {
            format!("Stream {stream} under account {account} already exists.")
        }
        AdminError::InvalidStreamName { name } => format!(
            "1 validation error detected: Value '{name}' at 'streamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+ and have length between 1 and {}",
            sluice_core::limits::STREAM_NAME_BYTES_MAX
        ),
        AdminError::OutOfRange {
            parameter,
            value,
            min,
            max,
        } => value_between(value, member(*parameter), *min, *max),
        AdminError::MaxRecordSizeOutOfRange { bytes, supported } => format!(
            "max record size {bytes} bytes is outside 1 MiB..=10 MiB or more than this engine's segments hold ({supported} bytes)"
        ),
        AdminError::RetentionOutOfRange { hours, min, max } => format!(
            "Minimum allowed retention period is {min} hours and maximum is {max} hours; {hours} was requested."
        ),
        AdminError::RetentionBelowCurrent {
            stream,
            requested_hours,
            current_hours,
        } => format!(
            "Requested retention period ({requested_hours} hours) for stream {stream} can not be shorter than existing retention period ({current_hours} hours). Use DecreaseRetentionPeriod API."
        ),
        AdminError::RetentionAboveCurrent {
            stream,
            requested_hours,
            current_hours,
        } => format!(
            "Requested retention period ({requested_hours} hours) for stream {stream} can not be longer than existing retention period ({current_hours} hours). Use IncreaseRetentionPeriod API."
        ),
        AdminError::InvalidTag {
            key_chars_max,
            value_chars_max,
            ..
        } => format!(
            "tag keys have 1 to {key_chars_max} characters and values at most {value_chars_max}"
        ),
        AdminError::TooManyTags {
            stream: Some(stream),
            max,
        } => format!(
            "Failed to add tags to stream {stream} under account {account} because a given stream can have a maximum of {max} tags."
        ),
        AdminError::TooManyTags { stream: None, max } => {
            format!("a stream can have at most {max} tags")
        }
        AdminError::ShardLimit(limit) => shard_limit(limit, account),
        AdminError::InvalidExclusiveStartShardId { id } => {
            format!("Invalid ExclusiveStartShardId {id}")
        }
        AdminError::InvalidShardId { id } => format!("Invalid ShardId {id}"),
        AdminError::ListShards(ListShardsConflict::StreamOrToken) => {
            "Exactly one of StreamName and NextToken must be given.".into()
        }
        AdminError::ListShards(ListShardsConflict::StartShardWithToken) => {
            "ExclusiveStartShardId cannot be combined with NextToken.".into()
        }
        AdminError::InvalidNextToken => "Invalid NextToken.".into(),
        AdminError::ExpiredNextToken { issued_ms } => {
            format!("The timestamp sent in the NextToken ({issued_ms}) has expired.")
        }
        other => other.to_string(),
    }
}

/// An explicit or split hash key.
pub fn hash_key(error: &HashKeyError) -> String {
    match error {
        HashKeyError::Malformed(text) => format!(
            "1 validation error detected: Value '{text}' at 'explicitHashKey' failed to satisfy constraint: Member must satisfy regular expression pattern: 0|([1-9]\\d{{0,38}})"
        ),
        HashKeyError::OutOfRange(text) => format!(
            "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, {HASH_KEY_MAX}]. Specified value was {text}"
        ),
    }
}

/// A client's sequence number that does not parse.
pub fn sequence_number(error: &SequenceNumberError) -> String {
    match error {
        SequenceNumberError::Malformed(text) => format!(
            "StartingSequenceNumber {text} used in GetShardIterator on shard is invalid: expected a decimal of 1 to {} digits.",
            sluice_core::seqnum::SEQUENCE_NUMBER_DIGITS_MAX
        ),
        SequenceNumberError::NeverIssued(text) => {
            format!("Sequence number {text} was never issued by this stream.")
        }
        other => other.to_string(),
    }
}

/// Writing records.
pub fn put(error: &PutError, account: &str) -> String {
    match error {
        PutError::StreamNotFound { stream } => stream_not_found(stream, account),
        PutError::BatchRecordCount { count, max } => format!(
            "1 validation error detected: Value '{count}' at 'records' failed to satisfy constraint: Member must have length between 1 and {max}"
        ),
        PutError::BatchTooLarge {
            size_bytes,
            max_bytes,
        } => format!("Records size exceeds {max_bytes} bytes limit: {size_bytes} bytes"),
        PutError::RecordTooLarge {
            index,
            size_bytes,
            max_bytes,
        } => format!(
            "Record {index} is {size_bytes} bytes (data + partition key); the stream accepts at most {max_bytes}"
        ),
        PutError::InvalidPartitionKey { chars, max, .. } => format!(
            "1 validation error detected: Value at 'partitionKey' failed to satisfy constraint: Member must have length between 1 and {max} (it has {chars})"
        ),
        PutError::InvalidHashKey { error, .. } => hash_key(error),
        PutError::OrderingInBatch => "SequenceNumberForOrdering applies to single puts only".into(),
        PutError::InvalidOrderingNumber(error) => sequence_number(error),
        PutError::OrderingNumberNotIssued {
            stream,
            sequence_number,
        } => format!(
            "ExclusiveMinimumSequenceNumber {sequence_number} used in PutRecord on stream {stream} under account {account} is invalid."
        ),
        PutError::OrderingAfterShard {
            sequence_number,
            shard,
        } => format!(
            "SequenceNumberForOrdering {sequence_number} belongs to a shard after {shard} where this record goes, so the record cannot sort after it; use the same partition key (and hash key) as that record."
        ),
        PutError::Throttled { stream, shard } => rate_exceeded(shard, stream, account),
        PutError::Unwritten { shard } => {
            format!("shard {shard} failed: the shard stopped before the record")
        }
        other => other.to_string(),
    }
}

/// Reading records.
pub fn read(error: &ReadError, account: &str) -> String {
    match error {
        ReadError::StreamNotFound { stream } => stream_not_found(stream, account),
        ReadError::ShardNotFound { stream, shard } => {
            format!("Shard {shard} in stream {stream} under account {account} does not exist")
        }
        ReadError::LimitOutOfRange { limit, max } => value_between(limit, "limit", 1, *max as u64),
        ReadError::InvalidIterator { token } => format!("Invalid ShardIterator: {token}"),
        ReadError::InvalidStartingSequenceNumber {
            sequence_number,
            shard,
            next,
        } => format!(
            "StartingSequenceNumber {sequence_number} used in GetShardIterator on shard {shard} is invalid: it is not a position of this shard, whose next sequence number is {next} (after a crash, records that were visible but never durable are gone)."
        ),
        ReadError::PositionPastEnd {
            position,
            shard,
            next_position,
        } => format!(
            "The iterator's position {position} in shard {shard} is past its end ({next_position}): records there were lost in a crash before they were durable. Get a new iterator."
        ),
        ReadError::RecordNotRetained {
            stream,
            sequence_number,
        } => {
            format!("Sequence number {sequence_number} is not a retained record of stream {stream}")
        }
        ReadError::ExpiredIterator {
            issued_ms,
            now_ms,
            ttl_ms,
        } => format!(
            "Iterator expired. The iterator was created at time {issued_ms} while right now it is {now_ms} which is further in the future than the tolerated delay of {ttl_ms} milliseconds."
        ),
        ReadError::Throttled { stream, shard } => rate_exceeded(shard, stream, account),
        other => other.to_string(),
    }
}

/// Resharding.
pub fn reshard(error: &ReshardError, account: &str) -> String {
    match error {
        ReshardError::StreamNotFound { stream } => stream_not_found(stream, account),
        ReshardError::ShardNotFound { stream, shard } => {
            format!("Could not find shard {shard} in stream {stream} under account {account}.")
        }
        ReshardError::OnDemand { stream } => format!(
            "Stream {stream} under account {account} is in On-Demand mode; resharding is only for provisioned streams."
        ),
        ReshardError::ShardClosed { stream, shard } => format!(
            "Shard {shard} in stream {stream} under account {account} is closed and cannot be resharded."
        ),
        ReshardError::InvalidHashKey(error) => hash_key(error),
        ReshardError::SplitKeyOutsideShard {
            stream,
            shard,
            key,
            range,
        } => format!(
            "NewStartingHashKey {key} used in SplitShard() on shard {shard} in stream {stream} under account {account} is not both greater than one plus the shard's StartingHashKey {} and less than the shard's EndingHashKey {}.",
            range.start, range.end
        ),
        ReshardError::NotAdjacent {
            stream,
            shard,
            adjacent,
        } => format!(
            "Shards {shard} and {adjacent} in stream {stream} under account {account} are not an adjacent pair of shards eligible for merging"
        ),
        ReshardError::ShardCountOutOfRange {
            stream,
            target,
            current,
        } => format!(
            "UpdateShardCount to {target} shards on stream {stream} under account {account}: the target must be between half ({}) and double ({}) the current {current} open shards.",
            current.div_ceil(2),
            current * 2
        ),
        ReshardError::ShardLimit(limit) => shard_limit(limit, account),
        ReshardError::LineageTooLong {
            stream,
            shards,
            added,
            max,
        } => format!(
            "Stream {stream} under account {account} has had {shards} shards, open and closed; this server keeps at most {max} per stream, and the request would add {added}. Create a new stream."
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_tenants_account() {
        let error = Error::from(ReadError::StreamNotFound {
            stream: "orders".into(),
        });
        assert_eq!(
            render(&error, "111111111111"),
            "Stream orders under account 111111111111 not found."
        );
    }

    #[test]
    fn the_texts_clients_grep_are_kinesis_own() {
        let shard = sluice_core::ShardId::new(3);
        let throttled = PutError::Throttled {
            stream: "s".into(),
            shard,
        };
        assert_eq!(
            put(&throttled, "123456789012"),
            "Rate exceeded for shard shardId-000000000003 in stream s under account 123456789012."
        );
        let expired = ReadError::ExpiredIterator {
            issued_ms: 1,
            now_ms: 300_002,
            ttl_ms: 300_000,
        };
        assert_eq!(
            read(&expired, "123456789012"),
            "Iterator expired. The iterator was created at time 1 while right now it is 300002 which is further in the future than the tolerated delay of 300000 milliseconds."
        );
        let limit = ReshardError::ShardLimit(ShardLimit {
            open: 10,
            limit: 10,
            added: 1,
        });
        assert!(reshard(&limit, "123456789012").starts_with(
            "This request would exceed the shard limit for the account 123456789012."
        ));
    }

    #[test]
    fn bounded_parameters_use_the_models_member_names() {
        let error = AdminError::OutOfRange {
            parameter: Parameter::ListShardsMaxResults,
            value: 0,
            min: 1,
            max: 1000,
        };
        assert_eq!(
            admin(&error, "000000000000"),
            "1 validation error detected: Value '0' at 'maxResults' failed to satisfy constraint: Member must have value between 1 and 1000"
        );
    }
}
