//! Kinesis limits, named once. Values and their sources: docs/design/kinesis.md.

/// Records in one `put_batch` (PutRecords).
pub const PUT_BATCH_RECORDS_MAX: usize = 500;
/// Bytes in one `put_batch`, partition keys included (PutRecords request limit).
pub const PUT_BATCH_BYTES_MAX: usize = 10 * 1024 * 1024;
/// Partition key length, in Unicode scalar values.
pub const PARTITION_KEY_CHARS_MAX: usize = 256;
/// Stream name length, in bytes (`[a-zA-Z0-9_.-]{1,128}`).
pub const STREAM_NAME_BYTES_MAX: usize = 128;
/// Default largest record (data + partition key) of a new stream.
pub const RECORD_SIZE_BYTES_DEFAULT: u64 = 1024 * 1024;
/// Smallest `max_record_size` a stream can be given.
pub const RECORD_SIZE_BYTES_MIN_SETTING: u64 = 1024 * 1024;
/// Largest `max_record_size` a stream can be given.
pub const RECORD_SIZE_BYTES_LIMIT: u64 = 10 * 1024 * 1024;
/// Retention bounds, hours.
pub const RETENTION_HOURS_MIN: u32 = 24;
/// Retention bounds, hours.
pub const RETENTION_HOURS_MAX: u32 = 8760;
/// Shards of a new on-demand stream.
pub const ON_DEMAND_SHARDS_INITIAL: u32 = 4;
/// Shards per stream (the account quota's default, applied per stream).
pub const SHARDS_PER_STREAM_MAX: u32 = 10_000;
/// Shards a stream's record lists, open, closed and expired together: every shard ever
/// created in it (indexes are positions in the record, and an expired shard keeps its place).
/// The whole record is one metadata entry, and an entry is at most 16 MiB; about 112 bytes a
/// shard keep 100,000 under 11.2 MiB. A reshard that would pass it is refused.
pub const SHARD_RECORDS_PER_STREAM_MAX: usize = 100_000;
/// Tags per stream.
pub const TAGS_MAX: usize = 50;
/// Tag key length.
pub const TAG_KEY_CHARS_MAX: usize = 128;
/// Tag value length.
pub const TAG_VALUE_CHARS_MAX: usize = 256;
/// Records one `get_records` returns at most (GetRecords `Limit`).
pub const GET_RECORDS_MAX: usize = 10_000;
/// Bytes one `get_records` returns at most.
pub const GET_RECORDS_BYTES_MAX: u64 = 10 * 1024 * 1024;
/// Lifetime of a shard iterator token.
pub const ITERATOR_TTL_MS_DEFAULT: u64 = 300_000;
/// `list_streams` / `list_shards` page sizes.
pub const LIST_STREAMS_LIMIT_DEFAULT: usize = 100;
/// Largest `list_shards` page.
pub const LIST_SHARDS_MAX_RESULTS: usize = 1000;
/// Largest `describe_stream` page.
pub const DESCRIBE_STREAM_SHARDS_MAX: usize = 100;
/// Per-shard write throughput when throttling is on.
pub const SHARD_WRITE_BYTES_PER_SEC: u64 = 1024 * 1024;
/// Per-shard write rate when throttling is on.
pub const SHARD_WRITE_RECORDS_PER_SEC: u64 = 1000;
/// Per-shard read throughput when throttling is on.
pub const SHARD_READ_BYTES_PER_SEC: u64 = 2 * 1024 * 1024;
/// Per-shard read calls when throttling is on.
pub const SHARD_READ_CALLS_PER_SEC: u64 = 5;
/// Bytes of a consumer name (the stream-name rules).
pub const CONSUMER_NAME_BYTES_MAX: usize = 128;
/// Consumers with positions in one stream, at most.
pub const CHECKPOINT_CONSUMERS_PER_STREAM_MAX: usize = 1000;
/// Frames a consumers log holds beyond its live positions before it is compacted.
pub const CHECKPOINT_ENTRIES_BEFORE_COMPACTION: usize = 4096;
