//! Stream administration: create, list, describe, retention, record size, mode, tags,
//! delete. Reads of the catalog happen on the caller's thread; changes go through the
//! control thread, whose transactions are in `control::streams`.

mod types;

pub(crate) use types::describe_shard;
pub use types::{
    CreateStream, ListShards, ShardDescription, ShardFilter, ShardPage, ShardSpace,
    StreamDescription, StreamMode, StreamPage, StreamStatus, StreamSummary,
};

use crate::call::Call;
use crate::catalog::{StreamSettings, StreamState};
use crate::control::{Control, streams};
use crate::engine::Engine;
use crate::error::{AdminError, Parameter};
use crate::limits::*;
use crate::names::stream_name_is_valid;
use crate::seqnum::parse_shard_id;
use crate::stream::Stream;
use std::collections::BTreeMap;
use std::sync::Arc;

impl Engine {
    /// Creates a stream and returns its handle; it is `Active` when the call completes.
    pub fn create_stream(
        &self,
        request: CreateStream,
    ) -> Call<impl Future<Output = Result<Stream, AdminError>> + Send + '_> {
        Call::new(async move {
            let settings = check_create(&request, self.record_size_bytes_supported())?;
            let state = self
                .control(move |control| {
                    streams::create(control, request.name, request.shard_count, settings)
                })
                .await?;
            Ok(Stream {
                engine: self.clone(),
                state,
            })
        })
    }

    /// Stream names in order: up to `limit` (100 by default) after `exclusive_start`.
    pub fn list_streams(
        &self,
        limit: Option<usize>,
        exclusive_start: Option<&str>,
    ) -> Result<StreamPage, AdminError> {
        let limit = limit.unwrap_or(LIST_STREAMS_LIMIT_DEFAULT);
        if !(1..=10_000).contains(&limit) {
            return Err(AdminError::OutOfRange {
                parameter: Parameter::ListStreamsLimit,
                value: limit as u64,
                min: 1,
                max: 10_000,
            });
        }
        let (names, has_more) = self.shared().catalog.names_after(exclusive_start, limit);
        Ok(StreamPage { names, has_more })
    }
}

impl Stream {
    /// The stream's state for an administrative call, or `StreamNotFound` once deleted.
    /// The disk each of the stream's shards takes, closed parents included until they
    /// expire, read from their segment headers (`sluice_storage::log_space`; the footprint
    /// is explained in docs/operations.md).
    pub fn disk_space(&self) -> Result<Vec<ShardSpace>, AdminError> {
        let stream = self.admin_state()?;
        let root = self.engine.shared().data_dir.root();
        let shards = stream.shards();
        shards
            .by_index
            .iter()
            .filter(|shard| !shard.expired)
            .map(|shard| {
                let dir = crate::control::shard_dir_in(root, stream.uid, shard.index);
                Ok(ShardSpace {
                    shard: shard.id,
                    closed: shard.closed_ms.is_some(),
                    space: sluice_storage::log_space(&dir)?,
                })
            })
            .collect()
    }

    fn admin_state(&self) -> Result<&Arc<StreamState>, AdminError> {
        self.live_state()
            .map_err(|_| AdminError::stream_not_found(self.name()))
    }

    /// Deletes the stream and its data. Iterators and readers still holding it see no new
    /// records; calls on any handle of it answer `StreamNotFound`.
    pub fn delete(&self) -> Call<impl Future<Output = Result<(), AdminError>> + Send + '_> {
        let (name, uid) = (self.state.name.clone(), self.state.uid);
        Call::new(
            self.engine
                .control(move |control| streams::delete(control, &name, uid)),
        )
    }

    /// The stream and a page of its shards: up to `limit` (100 by default) after
    /// `exclusive_start_shard_id`.
    pub fn describe(
        &self,
        limit: Option<usize>,
        exclusive_start_shard_id: Option<&str>,
    ) -> Result<StreamDescription, AdminError> {
        let stream = self.admin_state()?;
        let limit = limit.unwrap_or(DESCRIBE_STREAM_SHARDS_MAX);
        if !(1..=DESCRIBE_STREAM_SHARDS_MAX).contains(&limit) {
            return Err(AdminError::OutOfRange {
                parameter: Parameter::DescribeStreamLimit,
                value: limit as u64,
                min: 1,
                max: DESCRIBE_STREAM_SHARDS_MAX as u64,
            });
        }
        let start_index =
            match exclusive_start_shard_id {
                Some(id) => Some(parse_shard_id(id).ok_or_else(|| {
                    AdminError::InvalidExclusiveStartShardId { id: id.to_owned() }
                })?),
                None => None,
            };
        let settings = stream.settings();
        let shards = stream.shards();
        let mut after = shards
            .by_index
            .iter()
            // An expired shard's files are gone: it is described no more.
            .filter(|s| !s.expired && start_index.is_none_or(|start| s.index > start));
        let page: Vec<ShardDescription> = after
            .by_ref()
            .take(limit)
            .map(|s| describe_shard(s))
            .collect();
        Ok(StreamDescription {
            name: stream.name.clone(),
            status: StreamStatus::Active,
            mode: types::mode_of(&settings),
            created_ms: stream.created_ms,
            retention_hours: settings.retention_hours,
            max_record_size_bytes: settings.max_record_size_bytes,
            shards: page,
            has_more_shards: after.next().is_some(),
        })
    }

    /// The stream without its shard list.
    pub fn summary(&self) -> Result<StreamSummary, AdminError> {
        let stream = self.admin_state()?;
        let settings = stream.settings();
        Ok(StreamSummary {
            name: stream.name.clone(),
            status: StreamStatus::Active,
            mode: types::mode_of(&settings),
            created_ms: stream.created_ms,
            retention_hours: settings.retention_hours,
            max_record_size_bytes: settings.max_record_size_bytes,
            open_shard_count: stream.shards().open_by_start.len(),
        })
    }

    /// Raises retention to `hours` (24..=8760, not below the current value).
    pub fn increase_retention(
        &self,
        hours: u32,
    ) -> Call<impl Future<Output = Result<(), AdminError>> + Send + '_> {
        Call::new(self.change_retention(hours, true))
    }

    /// Lowers retention to `hours` (24..=8760, not above the current value). Records older
    /// than the new retention become unreadable at once.
    pub fn decrease_retention(
        &self,
        hours: u32,
    ) -> Call<impl Future<Output = Result<(), AdminError>> + Send + '_> {
        Call::new(self.change_retention(hours, false))
    }

    async fn change_retention(&self, hours: u32, increase: bool) -> Result<(), AdminError> {
        if !(RETENTION_HOURS_MIN..=RETENTION_HOURS_MAX).contains(&hours) {
            return Err(AdminError::RetentionOutOfRange {
                hours,
                min: RETENTION_HOURS_MIN,
                max: RETENTION_HOURS_MAX,
            });
        }
        let (name, uid) = (self.state.name.clone(), self.state.uid);
        self.engine
            .control(move |control| streams::set_retention(control, &name, uid, hours, increase))
            .await
    }

    /// Sets the largest record (partition key + data): 1..=10 MiB, within what the engine's
    /// segments hold.
    pub fn update_max_record_size(
        &self,
        bytes: u64,
    ) -> Call<impl Future<Output = Result<(), AdminError>> + Send + '_> {
        Call::new(async move {
            let supported = self.engine.record_size_bytes_supported();
            if !(RECORD_SIZE_BYTES_MIN_SETTING..=RECORD_SIZE_BYTES_LIMIT).contains(&bytes) {
                return Err(AdminError::OutOfRange {
                    parameter: Parameter::MaxRecordSizeKiB,
                    value: bytes / 1024,
                    min: RECORD_SIZE_BYTES_MIN_SETTING / 1024,
                    max: RECORD_SIZE_BYTES_LIMIT / 1024,
                });
            }
            if bytes > supported {
                return Err(AdminError::RecordSizeUnsupported { bytes, supported });
            }
            self.change_settings(move |settings| {
                settings.max_record_size_bytes = bytes;
                Ok(())
            })
            .await
        })
    }

    /// Switches between provisioned and on-demand.
    pub fn update_mode(
        &self,
        mode: StreamMode,
    ) -> Call<impl Future<Output = Result<(), AdminError>> + Send + '_> {
        Call::new(self.change_settings(move |settings| {
            settings.on_demand = mode == StreamMode::OnDemand;
            Ok(())
        }))
    }

    /// Adds tags, overwriting existing keys; at most 50 tags in all.
    pub fn add_tags(
        &self,
        tags: Vec<(String, String)>,
    ) -> Call<impl Future<Output = Result<(), AdminError>> + Send + '_> {
        Call::new(async move {
            for (key, value) in &tags {
                check_tag(key, value)?;
            }
            let stream = self.state.name.clone();
            self.change_settings(move |settings| {
                settings.tags.extend(tags);
                if settings.tags.len() > TAGS_MAX {
                    return Err(AdminError::TooManyTags {
                        stream: Some(stream),
                        max: TAGS_MAX,
                    });
                }
                Ok(())
            })
            .await
        })
    }

    /// Removes tags by key; unknown keys are ignored.
    pub fn remove_tags(
        &self,
        keys: Vec<String>,
    ) -> Call<impl Future<Output = Result<(), AdminError>> + Send + '_> {
        Call::new(self.change_settings(move |settings| {
            for key in &keys {
                settings.tags.remove(key);
            }
            Ok(())
        }))
    }

    /// The stream's tags in key order.
    pub fn tags(&self) -> Result<Vec<(String, String)>, AdminError> {
        Ok(self.admin_state()?.settings().tags.into_iter().collect())
    }

    /// Applies `change` to the stream's settings on the control thread: logged, then
    /// applied. A change that returns an error changes nothing.
    async fn change_settings(
        &self,
        change: impl FnOnce(&mut StreamSettings) -> Result<(), AdminError> + Send + 'static,
    ) -> Result<(), AdminError> {
        let (name, uid) = (self.state.name.clone(), self.state.uid);
        self.engine
            .control(move |control: &mut Control| {
                let stream = control.stream(&name, uid)?;
                let mut settings = stream.settings();
                change(&mut settings)?;
                Ok(control.update_settings(&stream, settings)?)
            })
            .await
    }
}

fn check_tag(key: &str, value: &str) -> Result<(), AdminError> {
    let key_len = key.chars().count();
    if key_len == 0 || key_len > TAG_KEY_CHARS_MAX || value.chars().count() > TAG_VALUE_CHARS_MAX {
        return Err(AdminError::InvalidTag {
            key: key.to_owned(),
            key_chars_max: TAG_KEY_CHARS_MAX,
            value_chars_max: TAG_VALUE_CHARS_MAX,
        });
    }
    Ok(())
}

/// A provisioned shard count outside 1 to `SHARDS_PER_STREAM_MAX`.
pub(crate) fn shard_count_out_of_range(count: u32) -> AdminError {
    AdminError::OutOfRange {
        parameter: Parameter::ShardCount,
        value: u64::from(count),
        min: 1,
        max: u64::from(SHARDS_PER_STREAM_MAX),
    }
}

/// Checks a create request before it reaches the control thread.
fn check_create(request: &CreateStream, supported: u64) -> Result<StreamSettings, AdminError> {
    if !stream_name_is_valid(&request.name) {
        return Err(AdminError::InvalidStreamName {
            name: request.name.clone(),
        });
    }
    // Past the per-stream maximum is checked on the control thread, after the account's
    // shard quota: a request over both is told about the quota (a LimitExceeded).
    if request.mode == StreamMode::Provisioned && request.shard_count == 0 {
        return Err(shard_count_out_of_range(0));
    }
    let max_record = request
        .max_record_size_bytes
        .unwrap_or(RECORD_SIZE_BYTES_DEFAULT.min(supported));
    if !(RECORD_SIZE_BYTES_MIN_SETTING.min(supported)..=RECORD_SIZE_BYTES_LIMIT.min(supported))
        .contains(&max_record)
    {
        return Err(AdminError::MaxRecordSizeOutOfRange {
            bytes: max_record,
            supported,
        });
    }
    if request.tags.len() > TAGS_MAX {
        return Err(AdminError::TooManyTags {
            stream: None,
            max: TAGS_MAX,
        });
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
