//! Stream transactions on the control thread: create, delete, retention. Each is checked,
//! written to the metadata log, then applied to the catalog and the cores.

use super::Control;
use crate::catalog::{MetaEntry, ShardRecord, StreamRecord, StreamSettings, StreamState};
use crate::error::AdminError;
use crate::hashkey::HashKeyRange;
use crate::limits::{ON_DEMAND_SHARDS_INITIAL, SHARDS_PER_STREAM_MAX};
use std::sync::Arc;

/// Creates stream `name` of `shard_count` shards (on-demand streams start with their own
/// count) with checked `settings`.
pub(crate) fn create(
    control: &mut Control,
    name: String,
    shard_count: u32,
    settings: StreamSettings,
) -> Result<Arc<StreamState>, AdminError> {
    if control.shared.catalog.get(&name).is_some() {
        return Err(AdminError::StreamExists { stream: name });
    }
    let shard_count = if settings.on_demand {
        ON_DEMAND_SHARDS_INITIAL
    } else {
        shard_count
    };
    control
        .check_shard_quota(shard_count)
        .map_err(AdminError::ShardLimit)?;
    if shard_count > SHARDS_PER_STREAM_MAX {
        return Err(crate::admin::shard_count_out_of_range(shard_count));
    }
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
        name,
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
            return Err(e.into());
        }
    };
    if let Err(e) = control.record(&MetaEntry::Upsert(record.clone())) {
        control.close_shards(record.uid, &opened);
        discard_stream_dir(control, record.uid);
        return Err(e.into());
    }
    let state = Arc::new(StreamState::new(&record, opened));
    control.shared.catalog.insert(state.clone());
    Ok(state)
}

fn discard_stream_dir(control: &Control, uid: u64) {
    // Best effort: an unknown directory is removed at the next open anyway.
    let _ = std::fs::remove_dir_all(control.stream_dir(uid));
}

pub(crate) fn delete(control: &mut Control, name: &str, uid: u64) -> Result<(), AdminError> {
    let stream = control.stream(name, uid)?;
    control.record(&MetaEntry::Delete { uid: stream.uid })?;
    control.shared.catalog.remove(name);
    super::consumers::forget(control, stream.uid);
    control.close_shards(stream.uid, &stream.shards().by_index);
    discard_stream_dir(control, stream.uid);
    Ok(())
}

pub(crate) fn set_retention(
    control: &mut Control,
    name: &str,
    uid: u64,
    hours: u32,
    increase: bool,
) -> Result<(), AdminError> {
    let stream = control.stream(name, uid)?;
    let mut settings = stream.settings();
    let current = settings.retention_hours;
    if increase && hours < current {
        return Err(AdminError::RetentionBelowCurrent {
            stream: name.to_owned(),
            requested_hours: hours,
            current_hours: current,
        });
    }
    if !increase && hours > current {
        return Err(AdminError::RetentionAboveCurrent {
            stream: name.to_owned(),
            requested_hours: hours,
            current_hours: current,
        });
    }
    settings.retention_hours = hours;
    control.update_settings(&stream, settings)?;
    Ok(control.set_log_retention(
        stream.uid,
        &stream.shards().by_index,
        u64::from(hours) * 3_600_000,
    )?)
}
