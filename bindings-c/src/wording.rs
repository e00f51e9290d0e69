//! The C ABI's wording for the engine's typed errors, for `sluice_last_error_detail`.
//!
//! `ffi::call` puts the C function's name first; these texts name the C argument at fault
//! (`sequence_number`, `records[2].partition_key`, `bytes`) and say the bound it broke, in
//! plain English built from the variant's data. Never a Kinesis sentence (the server words
//! those) nor a Rust name (`MaxRecordSizeKiB`, `sequence_number_for_ordering`).

use sluice_core::hashkey::{HASH_KEY_MAX, HashKeyError};
use sluice_core::limits::{SHARDS_PER_STREAM_MAX, STREAM_NAME_BYTES_MAX};
use sluice_core::{
    AdminError, CloseError, ConsumerError, OpenError, Parameter, PutError, ReadError, ReshardError,
    SequenceNumberError, ShardLimit,
};

/// The detail of `SLUICE_ENGINE_SHUTDOWN`.
const SHUT_DOWN: &str = "the engine has stopped: one of its threads ended after an internal \
    failure; close the engine and open it again";

fn stream_not_found(stream: &str) -> String {
    format!("stream {stream:?} does not exist")
}

fn shard_not_found(stream: &str, shard: &str) -> String {
    format!("stream {stream:?} has no shard {shard:?}")
}

fn shard_limit(limit: &ShardLimit) -> String {
    format!(
        "{} more shards would pass the engine's limit of {} open shards ({} are open)",
        limit.added, limit.limit, limit.open
    )
}

/// The C argument a bounded parameter comes from.
fn argument(parameter: Parameter) -> &'static str {
    match parameter {
        Parameter::ShardCount => "shard_count",
        Parameter::MaxRecordSizeKiB => "the largest record in KiB",
        _ => "a page size",
    }
}

/// Stream administration.
pub(crate) fn admin(error: &AdminError) -> String {
    match error {
        AdminError::StreamNotFound { stream } => stream_not_found(stream),
        AdminError::StreamExists { stream } => format!("stream {stream:?} already exists"),
        AdminError::InvalidStreamName { name } => format!(
            "name {name:?} is not a stream name: use 1 to {STREAM_NAME_BYTES_MAX} of a-z, A-Z, 0-9, '_', '.', '-'"
        ),
        AdminError::OutOfRange {
            parameter,
            value,
            min,
            max,
        } => format!(
            "{} is {value}; it must be {min} to {max}",
            argument(*parameter)
        ),
        AdminError::RecordSizeUnsupported { bytes, supported } => format!(
            "bytes is {bytes}, more than this engine's segments hold ({supported} bytes); open the engine with larger segments (sluice_options_set_segment_size)"
        ),
        AdminError::RetentionOutOfRange { hours, min, max } => {
            format!("hours is {hours}; retention is {min} to {max} hours")
        }
        AdminError::RetentionBelowCurrent {
            stream,
            requested_hours,
            current_hours,
        } => format!(
            "stream {stream:?} keeps records {current_hours} hours, more than the {requested_hours} asked for: pass increase = 0 to shorten retention"
        ),
        AdminError::RetentionAboveCurrent {
            stream,
            requested_hours,
            current_hours,
        } => format!(
            "stream {stream:?} keeps records {current_hours} hours, fewer than the {requested_hours} asked for: pass a nonzero increase to lengthen retention"
        ),
        AdminError::InvalidTag {
            key,
            key_chars_max,
            value_chars_max,
        } => format!(
            "tag {key:?}: a key has 1 to {key_chars_max} characters and a value at most {value_chars_max}"
        ),
        AdminError::TooManyTags { max, .. } => format!("a stream has at most {max} tags"),
        AdminError::ShardLimit(limit) => shard_limit(limit),
        AdminError::Storage(e) => format!("storage failed: {e}"),
        AdminError::Shutdown => SHUT_DOWN.to_owned(),
        // Not reachable through the C ABI (page tokens, list_shards requests, a new stream's
        // largest record): the engine's own plain text.
        other => other.to_string(),
    }
}

/// A hash key the user gave (after the argument's name).
fn hash_key(error: &HashKeyError) -> String {
    match error {
        HashKeyError::Malformed(text) => {
            format!("{text:?} is not a decimal of 1 to 39 digits without leading zeros")
        }
        HashKeyError::OutOfRange(text) => {
            format!("{text} is above the largest hash key, {HASH_KEY_MAX}")
        }
    }
}

/// Writing records: `single` for `sluice_put` (its `record`), else `sluice_put_batch`
/// (`records[i]`).
pub(crate) fn put(error: &PutError, single: bool) -> String {
    let record = |index: usize| {
        if single {
            "record".to_owned()
        } else {
            format!("records[{index}]")
        }
    };
    match error {
        PutError::StreamNotFound { stream } => stream_not_found(stream),
        PutError::BatchRecordCount { count, max } => {
            format!("count is {count}; a batch holds 1 to {max} records")
        }
        PutError::BatchTooLarge {
            size_bytes,
            max_bytes,
        } => format!(
            "the records hold {size_bytes} bytes (data and partition keys), more than a batch's {max_bytes}"
        ),
        PutError::RecordTooLarge {
            index,
            size_bytes,
            max_bytes,
        } => format!(
            "{} holds {size_bytes} bytes (data and partition key), more than the stream's largest record, {max_bytes} bytes",
            record(*index)
        ),
        PutError::InvalidPartitionKey { index, chars, max } => format!(
            "{}.partition_key has {chars} characters; a key has 1 to {max}",
            record(*index)
        ),
        PutError::InvalidHashKey { index, error } => {
            format!("{}.explicit_hash_key {}", record(*index), hash_key(error))
        }
        PutError::Throttled { stream, shard } => {
            format!("shard {shard} of stream {stream:?} is over its write limit; retry later")
        }
        PutError::Storage { shard, error } => format!("shard {shard} failed to write: {error}"),
        PutError::Unwritten { shard } => {
            format!("shard {shard} stopped before the record was written")
        }
        PutError::Shutdown => SHUT_DOWN.to_owned(),
        // Ordering numbers cannot be given through the C ABI.
        other => other.to_string(),
    }
}

/// A sequence number argument that does not parse (`what`: the argument's name).
pub(crate) fn sequence_number(error: &SequenceNumberError, what: &str) -> String {
    match error {
        SequenceNumberError::Malformed(text) => {
            format!("{what} {text:?} is not a decimal number without leading zeros")
        }
        SequenceNumberError::NeverIssued(text) => {
            format!("{what} {text} is larger than any sequence number this engine issues")
        }
        other => format!("{what}: {other}"),
    }
}

/// Reading records.
pub(crate) fn read(error: &ReadError) -> String {
    match error {
        ReadError::StreamNotFound { stream } => stream_not_found(stream),
        ReadError::ShardNotFound { stream, shard } => shard_not_found(stream, shard),
        ReadError::LimitOutOfRange { limit, max } => {
            format!("limit is {limit}; a read returns at most {max} records (0 means {max})")
        }
        ReadError::InvalidIterator { .. } => "token is not an iterator token of this engine: \
            it was altered, or made by an engine on another data directory"
            .to_owned(),
        ReadError::InvalidStartingSequenceNumber {
            sequence_number,
            shard,
            next,
        } => format!(
            "sequence_number {sequence_number} is not a position of shard {shard}, whose next sequence number is {next}"
        ),
        ReadError::PositionPastEnd {
            position,
            shard,
            next_position,
        } => format!(
            "the iterator's position {position} is past the end of shard {shard} ({next_position}): records there were lost in a crash before they were durable; create a new iterator"
        ),
        ReadError::RecordNotRetained {
            stream,
            sequence_number,
        } => format!(
            "stream {stream:?} holds no record with sequence_number {sequence_number}: it was never issued, or retention removed it"
        ),
        ReadError::ExpiredIterator {
            issued_ms,
            now_ms,
            ttl_ms,
        } => format!(
            "the token was made at {issued_ms} ms, more than its lifetime of {ttl_ms} ms before now ({now_ms} ms); create a new iterator"
        ),
        ReadError::Throttled { stream, shard } => {
            format!("shard {shard} of stream {stream:?} is over its read limit; retry later")
        }
        ReadError::Storage(e) => format!("storage failed: {e}"),
        other => other.to_string(),
    }
}

/// Resharding.
pub(crate) fn reshard(error: &ReshardError) -> String {
    match error {
        ReshardError::StreamNotFound { stream } => stream_not_found(stream),
        ReshardError::ShardNotFound { stream, shard } => shard_not_found(stream, shard),
        ReshardError::OnDemand { stream } => format!(
            "stream {stream:?} is on-demand: only provisioned streams are resharded by hand"
        ),
        ReshardError::ShardClosed { stream, shard } => format!(
            "shard {shard} of stream {stream:?} is closed: a split or merge already replaced it"
        ),
        ReshardError::InvalidHashKey(e) => format!("new_starting_hash_key {}", hash_key(e)),
        ReshardError::SplitKeyOutsideShard {
            stream,
            shard,
            key,
            range,
        } => format!(
            "new_starting_hash_key {key} is not inside shard {shard} of stream {stream:?}: it must be greater than {} and less than {}",
            range.start.saturating_add(1),
            range.end
        ),
        ReshardError::NotAdjacent {
            stream,
            shard,
            adjacent,
        } => format!(
            "shards {shard} and {adjacent} of stream {stream:?} are not two open shards with adjacent hash key ranges"
        ),
        ReshardError::ShardCountOutOfRange {
            stream,
            target,
            current,
        } => {
            let low = current.div_ceil(2).max(1);
            let high = current.saturating_mul(2).min(SHARDS_PER_STREAM_MAX);
            format!(
                "target is {target}; stream {stream:?} has {current} open shards, so the target must be {low} to {high}"
            )
        }
        ReshardError::ShardLimit(limit) => shard_limit(limit),
        ReshardError::Storage(e) => format!("storage failed: {e}"),
        ReshardError::Shutdown => SHUT_DOWN.to_owned(),
        other => other.to_string(),
    }
}

/// Opening the engine.
pub(crate) fn open(error: &OpenError) -> String {
    match error {
        OpenError::Config(why) => format!("the options are not usable: {why}"),
        OpenError::Storage(e) => format!("storage failed: {e}"),
        OpenError::Thread { what, source } => format!("cannot start {what}: {source}"),
        other => other.to_string(),
    }
}

/// Consumer checkpoints.
pub(crate) fn consumer(error: &ConsumerError) -> String {
    match error {
        ConsumerError::StreamNotFound { stream } => stream_not_found(stream),
        ConsumerError::ShardNotFound { stream, shard } => shard_not_found(stream, shard),
        ConsumerError::InvalidConsumerName { name } => {
            format!("name {name:?} is not 1 to 128 of a-z, A-Z, 0-9, '_', '.', '-'")
        }
        ConsumerError::PositionOutsideShard {
            sequence_number,
            shard,
            last,
        } => format!(
            "sequence_number {sequence_number} is not a position of shard {shard}: give its \
             start or one of its records, up to {last}"
        ),
        ConsumerError::TooManyConsumers { stream, limit } => {
            format!(
                "stream {stream:?} already keeps positions for {limit} consumers, the most it keeps"
            )
        }
        ConsumerError::Storage(error) => format!("the consumers' log failed: {error}"),
        ConsumerError::Shutdown => SHUT_DOWN.to_owned(),
        _ => error.to_string(),
    }
}

/// Closing the engine.
pub(crate) fn close(error: &CloseError) -> String {
    match error {
        CloseError::Storage(error) => format!(
            "a final sync failed, so records acknowledged as visible only may not be on disk: \
             {error}"
        ),
        CloseError::Thread { what, detail } => format!("{what} did not stop cleanly: {detail}"),
        _ => error.to_string(),
    }
}
