//! Stream administration: create, delete, describe, list, retention, record size, tags.
//! Reads of the catalog happen on the caller's thread; changes go through the control thread.

use crate::catalog::{
    MetaEntry, ShardRecord, ShardState, StreamRecord, StreamSettings, StreamState,
};
use crate::control::Control;
use crate::engine::{Engine, block};
use crate::error::AdminError;
use crate::hashkey::HashKeyRange;
use crate::limits::*;
use crate::names::validate_stream_name;
use crate::seqnum::{SequenceNumber, parse_shard_id, shard_id};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Capacity mode of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamMode {
    /// A fixed shard count, changed by resharding.
    Provisioned,
    /// Sluice starts it with four shards; manual resharding is refused.
    OnDemand,
}

/// Lifecycle state. The library applies changes synchronously, so streams it reports are
/// `Active`; the others exist for the wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStatus {
    /// Being created.
    Creating,
    /// Usable.
    Active,
    /// Being changed; still readable and writable.
    Updating,
    /// Being deleted.
    Deleting,
}

/// A stream to create.
#[derive(Debug, Clone)]
pub struct CreateStream {
    /// `[a-zA-Z0-9_.-]{1,128}`.
    pub name: String,
    /// Shards of a provisioned stream (1..=10,000). Ignored for on-demand streams.
    pub shard_count: u32,
    /// Capacity mode.
    pub mode: StreamMode,
    /// Largest record, partition key included (1..=10 MiB; 1 MiB by default).
    pub max_record_size_bytes: Option<u64>,
    /// Up to 50 tags.
    pub tags: Vec<(String, String)>,
}

impl CreateStream {
    /// A provisioned stream of `shard_count` shards.
    pub fn provisioned(name: impl Into<String>, shard_count: u32) -> CreateStream {
        CreateStream {
            name: name.into(),
            shard_count,
            mode: StreamMode::Provisioned,
            max_record_size_bytes: None,
            tags: Vec::new(),
        }
    }

    /// An on-demand stream.
    pub fn on_demand(name: impl Into<String>) -> CreateStream {
        CreateStream {
            mode: StreamMode::OnDemand,
            ..CreateStream::provisioned(name, ON_DEMAND_SHARDS_INITIAL)
        }
    }
}

/// One shard as `describe_stream` and `list_shards` report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardDescription {
    /// `shardId-000000000000` style.
    pub shard_id: String,
    /// The shard it was split from or merged from.
    pub parent_shard_id: Option<String>,
    /// The other parent of a merge.
    pub adjacent_parent_shard_id: Option<String>,
    /// Hash keys routed to it while open.
    pub hash_key_range: HashKeyRange,
    /// Its starting sequence number: below every record it holds.
    pub starting_sequence_number: SequenceNumber,
    /// Once closed: the number of its last record (its starting number if it held none).
    pub ending_sequence_number: Option<SequenceNumber>,
}

/// `describe_stream`'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamDescription {
    /// Name.
    pub name: String,
    /// Status.
    pub status: StreamStatus,
    /// Mode.
    pub mode: StreamMode,
    /// Creation time, ms since the epoch.
    pub created_ms: u64,
    /// Retention.
    pub retention_hours: u32,
    /// Largest record.
    pub max_record_size_bytes: u64,
    /// A page of shards, by shard id.
    pub shards: Vec<ShardDescription>,
    /// More shards follow the page.
    pub has_more_shards: bool,
}

/// `describe_stream_summary`'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSummary {
    /// Name.
    pub name: String,
    /// Status.
    pub status: StreamStatus,
    /// Mode.
    pub mode: StreamMode,
    /// Creation time, ms since the epoch.
    pub created_ms: u64,
    /// Retention.
    pub retention_hours: u32,
    /// Largest record.
    pub max_record_size_bytes: u64,
    /// Shards open for writes.
    pub open_shard_count: usize,
}

/// `list_streams`' answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPage {
    /// Names, in order.
    pub names: Vec<String>,
    /// More names follow.
    pub has_more: bool,
}

/// Which shards `list_shards` returns (Kinesis' `ShardFilter`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardFilter {
    /// Shards after this shard id.
    AfterShardId(String),
    /// Shards that were open at the trim horizon: those with no retained parent.
    AtTrimHorizon,
    /// Every shard whose data is retained (the default).
    FromTrimHorizon,
    /// Open shards.
    AtLatest,
    /// Shards open at this time (ms since the epoch).
    AtTimestamp(u64),
    /// Shards open at or after this time.
    FromTimestamp(u64),
}

/// A `list_shards` request: a stream and options, or the token of the previous page.
#[derive(Debug, Clone, Default)]
pub struct ListShards {
    /// The stream (not with `next_token`).
    pub stream: Option<String>,
    /// The previous page's token (not with `stream`).
    pub next_token: Option<String>,
    /// Start after this shard id.
    pub exclusive_start_shard_id: Option<String>,
    /// Page size, 1..=1000 (1000 by default).
    pub max_results: Option<usize>,
    /// Which shards.
    pub filter: Option<ShardFilter>,
}

/// `list_shards`' answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPage {
    /// Shards by id.
    pub shards: Vec<ShardDescription>,
    /// Pass it back for the next page; `None` on the last page. Expires like an iterator.
    pub next_token: Option<String>,
}

fn stream_not_found(name: &str) -> AdminError {
    AdminError::StreamNotFound(name.to_owned())
}

pub(crate) fn describe_shard(shard: &ShardState) -> ShardDescription {
    ShardDescription {
        shard_id: shard.id.clone(),
        parent_shard_id: shard.parent.map(shard_id),
        adjacent_parent_shard_id: shard.adjacent_parent.map(shard_id),
        hash_key_range: shard.range,
        starting_sequence_number: SequenceNumber::shard_start(shard.index),
        ending_sequence_number: shard
            .ending_log_seq
            .map(|end| SequenceNumber::last_before(shard.index, end)),
    }
}

fn mode_of(settings: &StreamSettings) -> StreamMode {
    if settings.on_demand {
        StreamMode::OnDemand
    } else {
        StreamMode::Provisioned
    }
}

impl Engine {
    pub(crate) fn stream(&self, name: &str) -> Result<Arc<StreamState>, AdminError> {
        self.shared()
            .catalog
            .get(name)
            .ok_or_else(|| stream_not_found(name))
    }

    /// Creates a stream; it is `Active` when this returns.
    pub async fn create_stream(&self, request: CreateStream) -> Result<(), AdminError> {
        let settings = check_create(&request, self.record_size_bytes_supported())?;
        self.control(move |control| create(control, request, settings))
            .await
    }

    /// Blocking form of [`Engine::create_stream`].
    pub fn create_stream_blocking(&self, request: CreateStream) -> Result<(), AdminError> {
        block(self.create_stream(request))
    }

    /// Deletes a stream and its data. Iterators and readers still holding it see no new
    /// records; new calls answer `ResourceNotFound`.
    pub async fn delete_stream(&self, name: &str) -> Result<(), AdminError> {
        let name = name.to_owned();
        self.control(move |control| delete(control, &name)).await
    }

    /// Blocking form of [`Engine::delete_stream`].
    pub fn delete_stream_blocking(&self, name: &str) -> Result<(), AdminError> {
        block(self.delete_stream(name))
    }

    /// Stream names in order: up to `limit` (100 by default) after `exclusive_start`.
    pub fn list_streams(
        &self,
        limit: Option<usize>,
        exclusive_start: Option<&str>,
    ) -> Result<StreamPage, AdminError> {
        let limit = limit.unwrap_or(LIST_STREAMS_LIMIT_DEFAULT);
        if !(1..=10_000).contains(&limit) {
            return Err(AdminError::Validation(format!(
                "1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: Member must have value between 1 and 10000"
            )));
        }
        let (names, has_more) = self.shared().catalog.names_after(exclusive_start, limit);
        Ok(StreamPage { names, has_more })
    }

    /// A stream and a page of its shards: up to `limit` (100 by default) after
    /// `exclusive_start_shard_id`.
    pub fn describe_stream(
        &self,
        name: &str,
        limit: Option<usize>,
        exclusive_start_shard_id: Option<&str>,
    ) -> Result<StreamDescription, AdminError> {
        let stream = self.stream(name)?;
        let limit = limit.unwrap_or(DESCRIBE_STREAM_SHARDS_MAX);
        if !(1..=DESCRIBE_STREAM_SHARDS_MAX).contains(&limit) {
            return Err(AdminError::Validation(format!(
                "1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: Member must have value between 1 and {DESCRIBE_STREAM_SHARDS_MAX}"
            )));
        }
        let start_index = match exclusive_start_shard_id {
            Some(id) => Some(parse_shard_id(id).ok_or_else(|| {
                AdminError::InvalidArgument(format!("Invalid ExclusiveStartShardId {id}"))
            })?),
            None => None,
        };
        let settings = stream.settings();
        let shards = stream.shards();
        let mut after = shards
            .by_index
            .iter()
            .filter(|s| start_index.is_none_or(|start| s.index > start));
        let page: Vec<ShardDescription> = after
            .by_ref()
            .take(limit)
            .map(|s| describe_shard(s))
            .collect();
        Ok(StreamDescription {
            name: stream.name.clone(),
            status: StreamStatus::Active,
            mode: mode_of(&settings),
            created_ms: stream.created_ms,
            retention_hours: settings.retention_hours,
            max_record_size_bytes: settings.max_record_size_bytes,
            shards: page,
            has_more_shards: after.next().is_some(),
        })
    }

    /// A stream without its shard list.
    pub fn describe_stream_summary(&self, name: &str) -> Result<StreamSummary, AdminError> {
        let stream = self.stream(name)?;
        let settings = stream.settings();
        Ok(StreamSummary {
            name: stream.name.clone(),
            status: StreamStatus::Active,
            mode: mode_of(&settings),
            created_ms: stream.created_ms,
            retention_hours: settings.retention_hours,
            max_record_size_bytes: settings.max_record_size_bytes,
            open_shard_count: stream.shards().open_by_start.len(),
        })
    }

    /// Raises retention to `hours` (24..=8760, not below the current value).
    pub async fn increase_retention(&self, name: &str, hours: u32) -> Result<(), AdminError> {
        self.change_retention(name, hours, true).await
    }

    /// Blocking form of [`Engine::increase_retention`].
    pub fn increase_retention_blocking(&self, name: &str, hours: u32) -> Result<(), AdminError> {
        block(self.increase_retention(name, hours))
    }

    /// Lowers retention to `hours` (24..=8760, not above the current value). Records older
    /// than the new retention become unreadable at once.
    pub async fn decrease_retention(&self, name: &str, hours: u32) -> Result<(), AdminError> {
        self.change_retention(name, hours, false).await
    }

    /// Blocking form of [`Engine::decrease_retention`].
    pub fn decrease_retention_blocking(&self, name: &str, hours: u32) -> Result<(), AdminError> {
        block(self.decrease_retention(name, hours))
    }

    async fn change_retention(
        &self,
        name: &str,
        hours: u32,
        increase: bool,
    ) -> Result<(), AdminError> {
        if !(RETENTION_HOURS_MIN..=RETENTION_HOURS_MAX).contains(&hours) {
            return Err(AdminError::InvalidArgument(format!(
                "Minimum allowed retention period is {RETENTION_HOURS_MIN} hours and maximum is {RETENTION_HOURS_MAX} hours; {hours} was requested."
            )));
        }
        let name = name.to_owned();
        self.control(move |control| set_retention(control, &name, hours, increase))
            .await
    }

    /// Sets the largest record (partition key + data) of a stream: 1..=10 MiB.
    pub async fn update_max_record_size(&self, name: &str, bytes: u64) -> Result<(), AdminError> {
        let supported = self.record_size_bytes_supported();
        if !(RECORD_SIZE_BYTES_MIN_SETTING..=RECORD_SIZE_BYTES_LIMIT).contains(&bytes) {
            return Err(AdminError::Validation(format!(
                "1 validation error detected: Value '{}' at 'maxRecordSizeInKiB' failed to satisfy constraint: Member must have value between 1024 and 10240",
                bytes / 1024
            )));
        }
        if bytes > supported {
            return Err(AdminError::InvalidArgument(format!(
                "a record of {bytes} bytes does not fit this engine's segments (at most {supported} bytes); open it with larger segments"
            )));
        }
        self.change_settings(name, move |settings| {
            settings.max_record_size_bytes = bytes;
            Ok(())
        })
        .await
    }

    /// Blocking form of [`Engine::update_max_record_size`].
    pub fn update_max_record_size_blocking(
        &self,
        name: &str,
        bytes: u64,
    ) -> Result<(), AdminError> {
        block(self.update_max_record_size(name, bytes))
    }

    /// Switches between provisioned and on-demand.
    pub async fn update_stream_mode(&self, name: &str, mode: StreamMode) -> Result<(), AdminError> {
        self.change_settings(name, move |settings| {
            settings.on_demand = mode == StreamMode::OnDemand;
            Ok(())
        })
        .await
    }

    /// Blocking form of [`Engine::update_stream_mode`].
    pub fn update_stream_mode_blocking(
        &self,
        name: &str,
        mode: StreamMode,
    ) -> Result<(), AdminError> {
        block(self.update_stream_mode(name, mode))
    }

    /// Adds tags, overwriting existing keys; at most 50 tags in all.
    pub async fn add_tags(
        &self,
        name: &str,
        tags: Vec<(String, String)>,
    ) -> Result<(), AdminError> {
        for (key, value) in &tags {
            check_tag(key, value)?;
        }
        let stream = name.to_owned();
        self.change_settings(name, move |settings| {
            settings.tags.extend(tags);
            if settings.tags.len() > TAGS_MAX {
                return Err(AdminError::LimitExceeded(format!(
                    "Failed to add tags to stream {stream} under account 000000000000 because a given stream can have a maximum of {TAGS_MAX} tags."
                )));
            }
            Ok(())
        })
        .await
    }

    /// Blocking form of [`Engine::add_tags`].
    pub fn add_tags_blocking(
        &self,
        name: &str,
        tags: Vec<(String, String)>,
    ) -> Result<(), AdminError> {
        block(self.add_tags(name, tags))
    }

    /// Removes tags by key; unknown keys are ignored.
    pub async fn remove_tags(&self, name: &str, keys: Vec<String>) -> Result<(), AdminError> {
        self.change_settings(name, move |settings| {
            for key in &keys {
                settings.tags.remove(key);
            }
            Ok(())
        })
        .await
    }

    /// Applies `change` to a stream's settings on the control thread: logged, then applied.
    /// A change that returns an error changes nothing.
    async fn change_settings(
        &self,
        name: &str,
        change: impl FnOnce(&mut StreamSettings) -> Result<(), AdminError> + Send + 'static,
    ) -> Result<(), AdminError> {
        let name = name.to_owned();
        self.control(move |control| {
            let stream = control
                .shared
                .catalog
                .get(&name)
                .ok_or_else(|| stream_not_found(&name))?;
            let mut settings = stream.settings();
            change(&mut settings)?;
            control.update_settings(&stream, settings)
        })
        .await
    }

    /// Blocking form of [`Engine::remove_tags`].
    pub fn remove_tags_blocking(&self, name: &str, keys: Vec<String>) -> Result<(), AdminError> {
        block(self.remove_tags(name, keys))
    }

    /// A stream's tags in key order.
    pub fn list_tags(&self, name: &str) -> Result<Vec<(String, String)>, AdminError> {
        Ok(self.stream(name)?.settings().tags.into_iter().collect())
    }
}

fn check_tag(key: &str, value: &str) -> Result<(), AdminError> {
    let key_len = key.chars().count();
    if key_len == 0 || key_len > TAG_KEY_CHARS_MAX || value.chars().count() > TAG_VALUE_CHARS_MAX {
        return Err(AdminError::InvalidArgument(format!(
            "tag keys have 1 to {TAG_KEY_CHARS_MAX} characters and values at most {TAG_VALUE_CHARS_MAX}"
        )));
    }
    Ok(())
}

/// Checks a create request before it reaches the control thread.
fn check_create(request: &CreateStream, supported: u64) -> Result<StreamSettings, AdminError> {
    validate_stream_name(&request.name).map_err(AdminError::Validation)?;
    if request.mode == StreamMode::Provisioned
        && !(1..=SHARDS_PER_STREAM_MAX).contains(&request.shard_count)
    {
        return Err(AdminError::Validation(format!(
            "1 validation error detected: Value '{}' at 'shardCount' failed to satisfy constraint: Member must have value between 1 and {SHARDS_PER_STREAM_MAX}",
            request.shard_count
        )));
    }
    let max_record = request
        .max_record_size_bytes
        .unwrap_or(RECORD_SIZE_BYTES_DEFAULT.min(supported));
    if !(RECORD_SIZE_BYTES_MIN_SETTING.min(supported)..=RECORD_SIZE_BYTES_LIMIT.min(supported))
        .contains(&max_record)
    {
        return Err(AdminError::Validation(format!(
            "max record size {max_record} bytes is outside 1 MiB..=10 MiB or more than this engine's segments hold ({supported} bytes)"
        )));
    }
    if request.tags.len() > TAGS_MAX {
        return Err(AdminError::LimitExceeded(format!(
            "a stream can have at most {TAGS_MAX} tags"
        )));
    }
    for (key, value) in &request.tags {
        check_tag(key, value)?;
    }
    Ok(StreamSettings {
        on_demand: request.mode == StreamMode::OnDemand,
        retention_hours: RETENTION_HOURS_MIN,
        max_record_size_bytes: max_record,
        tags: request.tags.iter().cloned().collect::<BTreeMap<_, _>>(),
    })
}

fn create(
    control: &mut Control,
    request: CreateStream,
    settings: StreamSettings,
) -> Result<(), AdminError> {
    if control.shared.catalog.get(&request.name).is_some() {
        return Err(AdminError::StreamExists(request.name));
    }
    let shard_count = if settings.on_demand {
        ON_DEMAND_SHARDS_INITIAL
    } else {
        request.shard_count
    };
    control
        .check_shard_quota(shard_count)
        .map_err(AdminError::LimitExceeded)?;
    let created_ms = control.shared.config.clock.now_ms();
    let shards: Vec<ShardRecord> = HashKeyRange::even_split(shard_count)
        .into_iter()
        .zip(0..)
        .map(|(range, index)| ShardRecord {
            index,
            hash_start: range.start,
            hash_end: range.end,
            parent: None,
            adjacent_parent: None,
            created_ms,
            ending_log_seq: None,
            closed_ms: None,
        })
        .collect();
    let record = StreamRecord {
        uid: control.take_uid(),
        name: request.name,
        on_demand: settings.on_demand,
        retention_hours: settings.retention_hours,
        max_record_size_bytes: settings.max_record_size_bytes,
        created_ms,
        tags: settings.tags.into_iter().collect(),
        shards,
    };
    // Logs first: a failure leaves no catalog entry and nothing in the metadata log (the
    // directory is removed now, or at the next open).
    let opened = match control.open_shards(&record, &record.shards) {
        Ok(opened) => opened,
        Err(e) => {
            discard_stream_dir(control, record.uid);
            return Err(e);
        }
    };
    if let Err(e) = control.record(&MetaEntry::Upsert(record.clone())) {
        control.close_shards(record.uid, &opened);
        discard_stream_dir(control, record.uid);
        return Err(e);
    }
    control
        .shared
        .catalog
        .insert(Arc::new(StreamState::new(&record, opened)));
    Ok(())
}

fn discard_stream_dir(control: &Control, uid: u64) {
    // Best effort: an unknown directory is removed at the next open anyway.
    let _ = std::fs::remove_dir_all(control.stream_dir(uid));
}

fn delete(control: &mut Control, name: &str) -> Result<(), AdminError> {
    let stream = control
        .shared
        .catalog
        .get(name)
        .ok_or_else(|| stream_not_found(name))?;
    control.record(&MetaEntry::Delete { uid: stream.uid })?;
    control.shared.catalog.remove(name);
    control.close_shards(stream.uid, &stream.shards().by_index);
    discard_stream_dir(control, stream.uid);
    Ok(())
}

fn set_retention(
    control: &mut Control,
    name: &str,
    hours: u32,
    increase: bool,
) -> Result<(), AdminError> {
    let stream = control
        .shared
        .catalog
        .get(name)
        .ok_or_else(|| stream_not_found(name))?;
    let mut settings = stream.settings();
    let current = settings.retention_hours;
    if increase && hours < current {
        return Err(AdminError::InvalidArgument(format!(
            "Requested retention period ({hours} hours) for stream {name} can not be shorter than existing retention period ({current} hours). Use DecreaseRetentionPeriod API."
        )));
    }
    if !increase && hours > current {
        return Err(AdminError::InvalidArgument(format!(
            "Requested retention period ({hours} hours) for stream {name} can not be longer than existing retention period ({current} hours). Use IncreaseRetentionPeriod API."
        )));
    }
    settings.retention_hours = hours;
    control.update_settings(&stream, settings)?;
    control.set_log_retention(
        stream.uid,
        &stream.shards().by_index,
        u64::from(hours) * 3_600_000,
    )
}
