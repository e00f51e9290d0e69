//! `list_shards`: filtered, paginated shard listing with expiring signed page tokens.

use crate::admin::{ListShards, ShardDescription, ShardFilter, ShardPage, describe_shard};
use crate::catalog::{ShardState, StreamState};
use crate::engine::Engine;
use crate::error::{AdminError, ListShardsConflict, Parameter};
use crate::limits::LIST_SHARDS_MAX_RESULTS;
use crate::seqnum::parse_shard_id;
use std::sync::Arc;

const TOKEN_KIND_LIST_SHARDS: u8 = 2;

/// Where a page ends and what it filters: the content of a `next_token`.
struct Cursor {
    uid: u64,
    /// Only shards with a larger index follow.
    after_index: Option<u32>,
    max_results: usize,
    filter: ShardFilter,
    name: String,
}

impl Engine {
    /// Shards of a stream, by shard id, filtered and paginated like Kinesis' ListShards.
    /// Shards whose data has all expired are left out.
    pub fn list_shards(&self, request: &ListShards) -> Result<ShardPage, AdminError> {
        let cursor = match (&request.stream, &request.next_token) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(AdminError::ListShards(ListShardsConflict::StreamOrToken));
            }
            (Some(name), None) => self.first_cursor(name, request)?,
            (None, Some(_)) if request.exclusive_start_shard_id.is_some() => {
                return Err(AdminError::ListShards(
                    ListShardsConflict::StartShardWithToken,
                ));
            }
            (None, Some(token)) => {
                let mut cursor = self.open_cursor(token)?;
                if let Some(max_results) = request.max_results {
                    cursor.max_results = check_max_results(max_results)?;
                }
                cursor
            }
        };
        let stream = self
            .shared()
            .catalog
            .get(&cursor.name)
            .filter(|s| s.uid == cursor.uid)
            .ok_or_else(|| AdminError::stream_not_found(&cursor.name))?;
        let now_ms = self.shared().config.clock.now_ms();
        let retention_ms = stream.retention_ms();
        let shards = stream.shards();
        let mut matching = shards.by_index.iter().filter(|s| {
            cursor.after_index.is_none_or(|after| s.index > after)
                && is_retained(s, now_ms, retention_ms)
                && passes(&cursor.filter, s, &stream, now_ms, retention_ms)
        });
        let page: Vec<ShardDescription> = matching
            .by_ref()
            .take(cursor.max_results)
            .map(|s| describe_shard(s))
            .collect();
        let next_token = match (matching.next(), page.last()) {
            (Some(_), Some(last)) => Some(self.seal_cursor(&Cursor {
                after_index: parse_shard_id(&last.shard_id),
                ..cursor
            })),
            _ => None,
        };
        Ok(ShardPage {
            shards: page,
            next_token,
            stream: stream.name.clone(),
            stream_created_ms: stream.created_ms,
        })
    }

    fn first_cursor(&self, name: &str, request: &ListShards) -> Result<Cursor, AdminError> {
        let stream = self.stream(name)?;
        let max_results =
            check_max_results(request.max_results.unwrap_or(LIST_SHARDS_MAX_RESULTS))?;
        let parse = |id: &str| {
            parse_shard_id(id).ok_or_else(|| AdminError::InvalidShardId { id: id.to_owned() })
        };
        let mut after_index = request
            .exclusive_start_shard_id
            .as_deref()
            .map(parse)
            .transpose()?;
        let filter = request
            .filter
            .clone()
            .unwrap_or(ShardFilter::FromTrimHorizon);
        if let ShardFilter::AfterShardId(id) = &filter {
            let index = parse(id)?;
            after_index = Some(after_index.map_or(index, |a| a.max(index)));
        }
        Ok(Cursor {
            uid: stream.state.uid,
            after_index,
            max_results,
            filter,
            name: name.to_owned(),
        })
    }

    fn seal_cursor(&self, cursor: &Cursor) -> String {
        let (filter_kind, filter_value) = match &cursor.filter {
            ShardFilter::AfterShardId(_) | ShardFilter::FromTrimHorizon => (0u8, 0u64),
            ShardFilter::AtTrimHorizon => (1, 0),
            ShardFilter::AtLatest => (2, 0),
            ShardFilter::AtTimestamp(t) => (3, *t),
            ShardFilter::FromTimestamp(t) => (4, *t),
        };
        let mut payload = vec![TOKEN_KIND_LIST_SHARDS];
        payload.extend_from_slice(&cursor.uid.to_le_bytes());
        payload.extend_from_slice(&cursor.after_index.unwrap_or(0).to_le_bytes());
        payload.extend_from_slice(&(cursor.max_results as u32).to_le_bytes());
        payload.push(filter_kind);
        payload.extend_from_slice(&filter_value.to_le_bytes());
        payload.extend_from_slice(&self.shared().config.clock.now_ms().to_le_bytes());
        payload.extend_from_slice(cursor.name.as_bytes());
        self.shared().token_key.seal(&payload)
    }

    fn open_cursor(&self, token: &str) -> Result<Cursor, AdminError> {
        let invalid = || AdminError::InvalidNextToken;
        let payload = self.shared().token_key.open(token).ok_or_else(invalid)?;
        if payload.len() < 34 || payload[0] != TOKEN_KIND_LIST_SHARDS {
            return Err(invalid());
        }
        let u64_at =
            |at: usize| u64::from_le_bytes(payload[at..at + 8].try_into().expect("8 bytes"));
        let u32_at =
            |at: usize| u32::from_le_bytes(payload[at..at + 4].try_into().expect("4 bytes"));
        let issued_ms = u64_at(26);
        let now_ms = self.shared().config.clock.now_ms();
        if now_ms.saturating_sub(issued_ms) > self.shared().config.iterator_ttl_ms {
            return Err(AdminError::ExpiredNextToken { issued_ms });
        }
        let filter = match (payload[17], u64_at(18)) {
            (1, _) => ShardFilter::AtTrimHorizon,
            (2, _) => ShardFilter::AtLatest,
            (3, t) => ShardFilter::AtTimestamp(t),
            (4, t) => ShardFilter::FromTimestamp(t),
            _ => ShardFilter::FromTrimHorizon,
        };
        Ok(Cursor {
            uid: u64_at(1),
            after_index: Some(u32_at(9)),
            max_results: u32_at(13) as usize,
            filter,
            name: String::from_utf8(payload[34..].to_vec()).map_err(|_| invalid())?,
        })
    }
}

fn check_max_results(max_results: usize) -> Result<usize, AdminError> {
    if (1..=LIST_SHARDS_MAX_RESULTS).contains(&max_results) {
        Ok(max_results)
    } else {
        Err(AdminError::OutOfRange {
            parameter: Parameter::ListShardsMaxResults,
            value: max_results as u64,
            min: 1,
            max: LIST_SHARDS_MAX_RESULTS as u64,
        })
    }
}

/// A closed shard stays listed while its records may still be retained (and never once it
/// expired: a longer retention does not bring records back).
fn is_retained(shard: &ShardState, now_ms: u64, retention_ms: u64) -> bool {
    !shard.expired
        && shard
            .closed_ms
            .is_none_or(|closed| closed.saturating_add(retention_ms) > now_ms)
}

fn open_at(shard: &ShardState, t: u64) -> bool {
    let opened = shard.parent.is_none() || shard.created_ms <= t;
    opened && shard.closed_ms.is_none_or(|closed| closed >= t)
}

fn passes(
    filter: &ShardFilter,
    shard: &ShardState,
    stream: &Arc<StreamState>,
    now_ms: u64,
    retention_ms: u64,
) -> bool {
    match filter {
        ShardFilter::AfterShardId(_) | ShardFilter::FromTrimHorizon => true,
        ShardFilter::AtTrimHorizon => {
            let shards = stream.shards();
            let retained_parent = |p: Option<u32>| {
                p.and_then(|i| shards.get(i))
                    .is_some_and(|p| is_retained(p, now_ms, retention_ms))
            };
            !retained_parent(shard.parent) && !retained_parent(shard.adjacent_parent)
        }
        ShardFilter::AtLatest => shard.ending_log_seq.is_none(),
        ShardFilter::AtTimestamp(t) => open_at(shard, *t),
        ShardFilter::FromTimestamp(t) => shard.closed_ms.is_none_or(|closed| closed >= *t),
    }
}
