//! The controller's decisions, as pure functions of a snapshot: what to write to create or
//! delete a stream, and which replicas of which shards to replace. The controller's loop
//! (controller.rs) commits what these return; a `Conflict` means the snapshot was stale, and
//! it plans again from a new one.

use std::collections::{BTreeMap, BTreeSet};

use sluice_core::HashKeyRange;

use crate::meta::{Change, Snapshot};
use crate::model::{NodeId, NodeInfo, ShardPlacement, StreamPlacement, StreamStatus};
use crate::placement::{self, Load, PlacementError};
use crate::settings::{SettingsChange, SettingsRefused};

/// The most shards a stream may have (the engine's limit).
pub const SHARDS_PER_STREAM_MAX: u32 = sluice_core::limits::SHARDS_PER_STREAM_MAX;

/// The largest stream entry the controller writes, in bytes of JSON. A stream's entry lists
/// every shard it ever had (closed and expired ones keep their places) and is one value of the
/// store: etcd refuses a request over 1.5 MiB by default (`--max-request-bytes`), and the
/// entry shares its transaction with its key and, at creation, the uid counter. About 250
/// bytes a shard with three replicas (docs/design/cluster.md, "The map's size").
pub const STREAM_ENTRY_BYTES_MAX: usize = 1_500_000;

/// Why a request cannot be carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// A stream of that name exists (in any state).
    #[error("stream {0} already exists")]
    StreamExists(String),
    /// No stream of that name.
    #[error("stream {0} not found")]
    StreamNotFound(String),
    /// A shard count outside 1 to `SHARDS_PER_STREAM_MAX`, or a replication factor of 0.
    #[error("{0}")]
    InvalidArgument(String),
    /// The account's open shards would pass its quota.
    #[error("{added} more shards would exceed the limit of {limit} open shards ({open} open)")]
    ShardQuota {
        /// Open shards now, over the streams not being deleted.
        open: usize,
        /// The quota.
        limit: u32,
        /// Shards the request would add.
        added: u32,
    },
    /// The stream is not ACTIVE: being created or deleted (its settings cannot change), or,
    /// for a reshard, also being updated.
    #[error("stream {0} is not ACTIVE but {1:?}")]
    NotActive(String, StreamStatus),
    /// The change is refused as the stream's settings stand.
    #[error(transparent)]
    Settings(#[from] SettingsRefused),
    /// The reshard is refused as the stream's shards stand.
    #[error(transparent)]
    Reshard(#[from] crate::reshard::ReshardRefused),
    /// Not enough live nodes for the replication factor.
    #[error(transparent)]
    Placement(#[from] PlacementError),
    /// The stream's entry in the map would pass [`STREAM_ENTRY_BYTES_MAX`] (too many shards,
    /// or too long a lineage of reshards).
    #[error(
        "stream {stream}'s map entry would take {bytes} bytes with {shards} shards (open, closed \
         and expired), over the {max} bytes one entry may take"
    )]
    EntryTooLarge {
        /// The stream.
        stream: String,
        /// Shards the entry would list.
        shards: usize,
        /// Its size, estimated before the shards still to come are placed.
        bytes: usize,
        /// [`STREAM_ENTRY_BYTES_MAX`].
        max: usize,
    },
}

/// The bytes of `value` as JSON, as the store keeps it.
fn json_len<T: serde::Serialize>(value: &T) -> usize {
    serde_json::to_vec(value).map_or(usize::MAX, |json| json.len())
}

/// What the shards still to come and the closings still to be written add to a stream's
/// entry: an UpdateShardCount's later rounds, and the parents that close (each gains its
/// end and closing time).
#[derive(Clone, Copy, Debug, Default)]
pub struct EntryGrowth {
    /// Shards to be added after the entry being written.
    pub shards: usize,
    /// Shards to be closed after the entry being written (those in it or to come).
    pub closings: usize,
}

/// The most bytes a shard's closing adds to it: its end and closing time, at their widest.
const CLOSING_BYTES: usize =
    r#","ending_seq":18446744073709551615,"closed_ms":18446744073709551615"#.len();

/// The most bytes any one shard of `placement` (one to come included) takes in its entry, and
/// the comma before it: the widest numbers, two parents, and `replication` replicas named
/// with the longest id among the live nodes and its own.
fn shard_bytes_max(placement: &StreamPlacement, nodes: &BTreeMap<NodeId, NodeInfo>) -> usize {
    let named = placement.shards.iter().flat_map(|s| &s.replicas);
    let longest = nodes
        .keys()
        .chain(named)
        .max_by_key(|id| id.as_str().len())
        .cloned();
    let widest = ShardPlacement {
        index: u32::MAX,
        starting_hash_key: u128::MAX,
        ending_hash_key: u128::MAX,
        parents: vec![u32::MAX, u32::MAX],
        replicas: longest
            .map(|id| vec![id; usize::from(placement.replication)])
            .unwrap_or_default(),
        epoch: u64::MAX,
        closed: true,
        ending_seq: Some(u64::MAX),
        closed_ms: Some(u64::MAX),
        expired: false,
    };
    json_len(&widest) + 1
}

/// The most bytes `placement`'s entry takes once grown by `growth`.
pub fn entry_bytes_max(
    placement: &StreamPlacement,
    nodes: &BTreeMap<NodeId, NodeInfo>,
    growth: EntryGrowth,
) -> usize {
    json_len(placement)
        + growth.shards * shard_bytes_max(placement, nodes)
        + growth.closings * CLOSING_BYTES
}

/// Refuses `placement` when its entry, grown by `growth` (every shard to come at the widest a
/// shard can be, every closing at its widest), would pass [`STREAM_ENTRY_BYTES_MAX`]: a
/// reshard that passes never meets the store's limit half-way.
pub fn check_entry_size(
    placement: &StreamPlacement,
    nodes: &BTreeMap<NodeId, NodeInfo>,
    growth: EntryGrowth,
) -> Result<(), PlanError> {
    let more = growth.shards;
    let bytes = entry_bytes_max(placement, nodes, growth);
    if bytes > STREAM_ENTRY_BYTES_MAX {
        let pending = placement
            .resharding
            .as_ref()
            .map_or(0, |r| r.children.len());
        return Err(PlanError::EntryTooLarge {
            stream: placement.name.clone(),
            shards: placement.shards.len() + pending + more,
            bytes,
            max: STREAM_ENTRY_BYTES_MAX,
        });
    }
    Ok(())
}

/// Each live node's load: the replicas it holds and the shards it is the preferred leader of.
pub fn load(snapshot: &Snapshot) -> BTreeMap<NodeId, Load> {
    let mut load: BTreeMap<NodeId, Load> = snapshot
        .nodes
        .keys()
        .map(|id| (id.clone(), Load::default()))
        .collect();
    for stream in snapshot.streams.values() {
        let pending = stream.value.resharding.iter().flat_map(|r| &r.children);
        for shard in stream.value.shards.iter().chain(pending) {
            for (i, id) in shard.replicas.iter().enumerate() {
                if let Some(entry) = load.get_mut(id) {
                    entry.replicas += 1;
                    entry.leaders += usize::from(i == 0);
                }
            }
        }
    }
    load
}

/// A new stream of `shard_count` shards, its hash keys split as Kinesis splits them, each
/// shard on `replication` live nodes, within the account's `shard_quota`; it starts
/// `CREATING`, with the next uid. Checked in the single-node engine's order: the name, no
/// shards, an existing name, the quota, the per-stream maximum, then the nodes.
pub fn create_stream(
    snapshot: &Snapshot,
    name: &str,
    shard_count: u32,
    (replication, shard_quota): (u8, u32),
) -> Result<Vec<Change>, PlanError> {
    StreamPlacement::check_name(name).map_err(|e| PlanError::InvalidArgument(e.to_string()))?;
    if shard_count > 0 && snapshot.streams.contains_key(name) {
        return Err(PlanError::StreamExists(name.to_owned()));
    }
    if shard_count > 0 {
        check_shard_quota(snapshot, shard_count, shard_quota)?;
    }
    if shard_count == 0 || shard_count > SHARDS_PER_STREAM_MAX {
        return Err(PlanError::InvalidArgument(format!(
            "a stream has 1 to {SHARDS_PER_STREAM_MAX} shards, not {shard_count}"
        )));
    }
    if replication == 0 {
        return Err(PlanError::InvalidArgument(
            "the replication factor is at least 1".into(),
        ));
    }
    let nodes: Vec<NodeInfo> = snapshot.nodes.values().cloned().collect();
    let mut load = load(snapshot);
    let replica_sets = placement::place_many(
        &nodes,
        &mut load,
        usize::from(replication),
        shard_count as usize,
    )?;
    let shards = HashKeyRange::even_split(shard_count)
        .into_iter()
        .zip(replica_sets)
        .zip(0..)
        .map(|((range, replicas), index)| ShardPlacement {
            index,
            starting_hash_key: range.start,
            ending_hash_key: range.end,
            parents: vec![],
            replicas,
            epoch: 1,
            closed: false,
            ending_seq: None,
            closed_ms: None,
            expired: false,
        })
        .collect();
    let uid = snapshot.uid_next.value;
    let placement = StreamPlacement {
        uid,
        name: name.to_owned(),
        status: StreamStatus::Creating,
        replication,
        shards,
        created_ms: 0,
        settings: crate::model::StreamSettings::default(),
        resharding: None,
    };
    check_entry_size(&placement, &snapshot.nodes, EntryGrowth::default())?;
    Ok(vec![
        Change::PutStream {
            placement,
            replaces: None,
        },
        Change::UidNext {
            next: uid + 1,
            replaces: snapshot.uid_next.revision,
        },
    ])
}

/// Refuses `added` more shards when the open shards of the streams not being deleted, with
/// them, would pass `limit` (the account's quota, as Kinesis keeps one). A reshard under way
/// counts as done: its children open, its parents closed.
pub fn check_shard_quota(snapshot: &Snapshot, added: u32, limit: u32) -> Result<(), PlanError> {
    let open: usize = snapshot
        .streams
        .values()
        .filter(|s| s.value.status != StreamStatus::Deleting)
        .map(|s| {
            let open = s.value.shards.iter().filter(|shard| !shard.closed).count();
            match &s.value.resharding {
                Some(r) => (open + r.children.len()).saturating_sub(r.parents.len()),
                None => open,
            }
        })
        .sum();
    if open + added as usize > limit as usize {
        return Err(PlanError::ShardQuota { open, limit, added });
    }
    Ok(())
}

/// Marks a stream `DELETING` (its nodes stop its groups and remove its data, then the entry
/// goes), refused while it has registered consumers unless `with_consumers` (Kinesis'
/// EnforceConsumerDeletion). Deleting a stream already being deleted changes nothing.
pub fn delete_stream(
    snapshot: &Snapshot,
    name: &str,
    with_consumers: bool,
) -> Result<Vec<Change>, PlanError> {
    let stream = snapshot
        .streams
        .get(name)
        .ok_or_else(|| PlanError::StreamNotFound(name.to_owned()))?;
    if stream.value.status == StreamStatus::Deleting {
        return Ok(vec![]);
    }
    if !with_consumers && !stream.value.settings.consumers.is_empty() {
        return Err(SettingsRefused::HasConsumers.into());
    }
    let mut placement = stream.value.clone();
    placement.status = StreamStatus::Deleting;
    Ok(vec![Change::PutStream {
        placement,
        replaces: Some(stream.revision),
    }])
}

/// Changes stream `name`'s settings, checked against its entry in `snapshot` (the write names
/// that entry's revision): only while it is neither being created nor deleted.
pub fn configure(
    snapshot: &Snapshot,
    name: &str,
    change: &SettingsChange,
) -> Result<Vec<Change>, PlanError> {
    let stream = snapshot
        .streams
        .get(name)
        .ok_or_else(|| PlanError::StreamNotFound(name.to_owned()))?;
    if matches!(
        stream.value.status,
        StreamStatus::Creating | StreamStatus::Deleting
    ) {
        return Err(PlanError::NotActive(name.to_owned(), stream.value.status));
    }
    let mut placement = stream.value.clone();
    crate::settings::apply(&mut placement.settings, change)?;
    // Tags grow the entry too, and must leave a reshard under way the room it counted on.
    let growth = placement
        .resharding
        .as_ref()
        .map_or_else(EntryGrowth::default, |r| {
            crate::reshard::growth_to_come(&placement, r.target, r)
        });
    check_entry_size(&placement, &snapshot.nodes, growth)?;
    Ok(vec![Change::PutStream {
        placement,
        replaces: Some(stream.revision),
    }])
}

/// Stream `name` of uid `uid` becomes `ACTIVE`, if it is still that stream and `CREATING`,
/// or `UPDATING` with no reshard left under way (the controller found every open shard's
/// group led).
pub fn activate(snapshot: &Snapshot, name: &str, uid: u64) -> Vec<Change> {
    let settling = |stream: &StreamPlacement| match stream.status {
        StreamStatus::Creating => true,
        StreamStatus::Updating => stream.resharding.is_none(),
        _ => false,
    };
    match snapshot.streams.get(name) {
        Some(stream) if stream.value.uid == uid && settling(&stream.value) => {
            let mut placement = stream.value.clone();
            placement.status = StreamStatus::Active;
            vec![Change::PutStream {
                placement,
                replaces: Some(stream.revision),
            }]
        }
        _ => vec![],
    }
}

/// Stream `name` of uid `uid` leaves the map, if it is still that stream and `DELETING` (the
/// controller found none of its groups running on a live node; a node that comes back with
/// a replica removes it, the stream being gone). Its name may then be used again.
pub fn forget(snapshot: &Snapshot, name: &str, uid: u64) -> Vec<Change> {
    match snapshot.streams.get(name) {
        Some(stream)
            if stream.value.uid == uid && stream.value.status == StreamStatus::Deleting =>
        {
            vec![Change::DeleteStream {
                name: name.to_owned(),
                replaces: stream.revision,
            }]
        }
        _ => vec![],
    }
}

/// Replicas on nodes gone for at least `replace_after_ms` (by `gone_since`, in the
/// controller's clock), each replaced by a live node that holds no replica of the shard, on
/// a failure domain of its own while there is one. At most one replica of a shard per call,
/// only while its live replicas are a majority, and at most `max_moves` replicas per call, so
/// a lost rack does not start every copy at once. One change per stream changed, each shard
/// changed getting a new epoch. A shard that cannot get a replacement (too few live nodes)
/// keeps its replica set; the next call tries again.
pub fn repairs(
    snapshot: &Snapshot,
    gone_since: &BTreeMap<NodeId, u64>,
    now_ms: u64,
    replace_after_ms: u64,
    max_moves: usize,
) -> Vec<Change> {
    let dead = |id: &NodeId| {
        !snapshot.nodes.contains_key(id)
            && gone_since
                .get(id)
                .is_some_and(|since| now_ms.saturating_sub(*since) >= replace_after_ms)
    };
    let nodes: Vec<NodeInfo> = snapshot.nodes.values().cloned().collect();
    let mut load = load(snapshot);
    let mut moves = 0;
    let mut changes = Vec::new();
    for stream in snapshot.streams.values() {
        if stream.value.status == StreamStatus::Deleting {
            continue;
        }
        let mut placement = stream.value.clone();
        let mut changed = false;
        for shard in &mut placement.shards {
            if moves >= max_moves {
                break;
            }
            // One replica a shard a pass, and only while the replicas left are a majority:
            // a set whose newcomers outnumber the copies that hold the data could elect an
            // empty leader. A shard that lost its majority is left to an operator.
            let Some(at) = shard.replicas.iter().position(&dead) else {
                continue;
            };
            let keep: Vec<NodeId> = shard
                .replicas
                .iter()
                .filter(|id| !dead(id))
                .cloned()
                .collect();
            if keep.len() * 2 <= shard.replicas.len() {
                continue;
            }
            let Ok(replacement) = placement::replace(&nodes, &load, &keep) else {
                continue;
            };
            load.entry(replacement.clone()).or_default().replicas += 1;
            // The replacement copies the shard before it can lead: it goes last, and the next
            // replica in order becomes the preferred leader if the leader was lost.
            shard.replicas.remove(at);
            shard.replicas.push(replacement);
            shard.epoch += 1;
            moves += 1;
            changed = true;
        }
        if changed {
            changes.push(Change::PutStream {
                placement,
                replaces: Some(stream.revision),
            });
        }
    }
    changes
}

/// Whether closed shard `shard` of `stream` is due to expire at `now_ms`: retention has
/// passed since the controller wrote it closed (by the controller's clock; its replicas must
/// still confirm that nothing of it is readable, by theirs). Never for a stream being deleted
/// (it goes whole).
fn due(stream: &StreamPlacement, shard: &ShardPlacement, now_ms: u64) -> bool {
    let retention_ms = stream.settings.retention_ms();
    stream.status != StreamStatus::Deleting
        && !shard.expired
        && shard
            .closed_ms
            .is_some_and(|closed| closed.saturating_add(retention_ms) <= now_ms)
}

/// The closed shards due to expire at `now_ms` (see `due`), with their streams: the ones whose
/// replicas the controller asks.
pub fn due_to_expire(snapshot: &Snapshot, now_ms: u64) -> Vec<(StreamPlacement, u32)> {
    let mut out = Vec::new();
    for stream in snapshot.streams.values().map(|s| &s.value) {
        for shard in stream.shards.iter().filter(|s| due(stream, s, now_ms)) {
            out.push((stream.clone(), shard.index));
        }
    }
    out
}

/// The closed shards due at `now_ms` whose replicas confirmed that nothing of them is
/// readable (`drained`, by stream uid and shard), marked expired: their replicas let go (each
/// node stops the group and removes its data) and nothing lists them. One change per stream
/// with such shards. (Single-node mode waits for the same two conditions,
/// docs/design/resharding.md.)
pub fn expire(snapshot: &Snapshot, now_ms: u64, drained: &BTreeSet<(u64, u32)>) -> Vec<Change> {
    let mut changes = Vec::new();
    for stream in snapshot.streams.values() {
        let expiring = |shard: &ShardPlacement| {
            due(&stream.value, shard, now_ms) && drained.contains(&(stream.value.uid, shard.index))
        };
        if !stream.value.shards.iter().any(expiring) {
            continue;
        }
        let mut placement = stream.value.clone();
        for shard in placement.shards.iter_mut().filter(|s| expiring(s)) {
            shard.expired = true;
            shard.replicas.clear();
            shard.epoch += 1;
        }
        changes.push(Change::PutStream {
            placement,
            replaces: Some(stream.revision),
        });
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::Snapshot;
    use crate::model::{NodeInfo, Versioned};

    fn node(name: &str) -> NodeInfo {
        NodeInfo {
            id: NodeId::new(name).unwrap(),
            peer_address: String::new(),
            client_endpoint: String::new(),
            failure_domain: None,
            started_ms: 0,
        }
    }

    /// A stream of one shard on `replicas`, with `live` registered.
    fn snapshot(replicas: &[&str], live: &[&str]) -> Snapshot {
        let shard = ShardPlacement {
            index: 0,
            starting_hash_key: 0,
            ending_hash_key: u128::MAX,
            parents: vec![],
            replicas: replicas.iter().map(|n| NodeId::new(*n).unwrap()).collect(),
            epoch: 1,
            closed: false,
            ending_seq: None,
            closed_ms: None,
            expired: false,
        };
        let stream = StreamPlacement {
            uid: 1,
            name: "s".into(),
            status: StreamStatus::Active,
            replication: 3,
            shards: vec![shard],
            created_ms: 0,
            settings: crate::model::StreamSettings::default(),
            resharding: None,
        };
        let mut snapshot = Snapshot::default();
        snapshot.streams.insert(
            "s".into(),
            Versioned {
                value: stream,
                revision: 5,
            },
        );
        for name in live {
            snapshot
                .nodes
                .insert(NodeId::new(*name).unwrap(), node(name));
        }
        snapshot
    }

    /// The one stream entry `changes` write, replacing the test stream's revision 5.
    fn the_one_put(changes: &[Change]) -> &StreamPlacement {
        match changes {
            [
                Change::PutStream {
                    placement,
                    replaces: Some(5),
                },
            ] => placement,
            _ => panic!("{changes:?}"),
        }
    }

    fn gone(names: &[&str]) -> BTreeMap<NodeId, u64> {
        names
            .iter()
            .map(|n| (NodeId::new(*n).unwrap(), 0))
            .collect()
    }

    #[test]
    fn settings_change_names_the_entry_they_replace_and_only_while_active() {
        let mut map = snapshot(&["a", "b", "c"], &["a", "b", "c"]);
        let change = SettingsChange::IncreaseRetention(48);
        let changes = configure(&map, "s", &change).unwrap();
        let [
            Change::PutStream {
                placement,
                replaces,
            },
        ] = &changes[..]
        else {
            panic!("{changes:?}");
        };
        assert_eq!(
            (placement.settings.retention_hours, *replaces),
            (48, Some(5))
        );
        let refused = configure(&map, "s", &SettingsChange::DecreaseRetention(72));
        assert!(
            matches!(refused, Err(PlanError::Settings(_))),
            "{refused:?}"
        );
        assert_eq!(
            configure(&map, "t", &change),
            Err(PlanError::StreamNotFound("t".into()))
        );
        for status in [StreamStatus::Creating, StreamStatus::Deleting] {
            map.streams.get_mut("s").unwrap().value.status = status;
            assert_eq!(
                configure(&map, "s", &change),
                Err(PlanError::NotActive("s".into(), status))
            );
        }
    }

    #[test]
    fn a_stream_with_consumers_is_deleted_only_with_them() {
        let mut map = snapshot(&["a", "b", "c"], &["a", "b", "c"]);
        assert_eq!(delete_stream(&map, "s", false).map(|c| c.len()), Ok(1));
        let consumer = crate::settings::ConsumerEntry {
            name: "app".into(),
            created_ms: 1_000,
            tags: BTreeMap::new(),
            policy: None,
        };
        let register = SettingsChange::RegisterConsumer(consumer);
        let changes = configure(&map, "s", &register).unwrap();
        let Some(Change::PutStream { placement, .. }) = changes.into_iter().next() else {
            panic!("configure plans the entry");
        };
        map.streams.get_mut("s").unwrap().value = placement;
        assert_eq!(
            delete_stream(&map, "s", false),
            Err(PlanError::Settings(SettingsRefused::HasConsumers))
        );
        let deleting = delete_stream(&map, "s", true).unwrap();
        assert!(
            matches!(&deleting[..], [Change::PutStream { placement, .. }] if placement.status == StreamStatus::Deleting),
            "{deleting:?}"
        );
    }

    #[test]
    fn the_shard_quota_counts_open_shards_of_streams_not_being_deleted() {
        let mut map = snapshot(&["a"], &["a"]);
        assert_eq!(
            check_shard_quota(&map, 4, 5),
            Ok(()),
            "1 open + 4 = the quota"
        );
        assert_eq!(
            check_shard_quota(&map, 5, 5),
            Err(PlanError::ShardQuota {
                open: 1,
                limit: 5,
                added: 5
            })
        );
        map.streams.get_mut("s").unwrap().value.status = StreamStatus::Deleting;
        assert_eq!(check_shard_quota(&map, 5, 5), Ok(()));
    }

    /// A stream's entry is one value of the store: a stream too large for one is refused at
    /// creation, with its size, instead of failing in the store.
    #[test]
    fn an_entry_too_large_for_the_store_is_refused() {
        let mut map = snapshot(&[], &[]);
        map.streams.clear();
        for i in 0..3 {
            // Node ids of the longest kind (64 characters).
            let name = format!("{i}{}", "n".repeat(63));
            map.nodes.insert(NodeId::new(&name).unwrap(), node(&name));
        }
        let at = |count| create_stream(&map, "big", count, (3, SHARDS_PER_STREAM_MAX));
        let Err(PlanError::EntryTooLarge { bytes, shards, .. }) = at(SHARDS_PER_STREAM_MAX) else {
            panic!("10,000 shards of three replicas fit in one entry")
        };
        assert_eq!(shards, SHARDS_PER_STREAM_MAX as usize);
        let per_shard = bytes / shards;
        println!("{per_shard} bytes a shard (three replicas named with 64 characters)");
        let fits = (STREAM_ENTRY_BYTES_MAX / per_shard) as u32 - 10;
        assert!(at(fits).is_ok(), "{fits} shards");
        assert!(fits >= 2_500, "only {fits} shards fit");
        assert!(matches!(
            at(fits + 20),
            Err(PlanError::EntryTooLarge { .. })
        ));
    }

    #[test]
    fn a_closed_shard_expires_once_retention_passed_since_it_closed() {
        let mut map = snapshot(&["a", "b", "c"], &["a", "b", "c"]);
        let hour = 3_600_000;
        {
            let stream = &mut map.streams.get_mut("s").unwrap().value;
            let parent = &mut stream.shards[0];
            parent.closed = true;
            parent.ending_seq = Some(7);
            parent.closed_ms = Some(1_000);
            let mut child = parent.clone();
            (child.index, child.parents, child.closed) = (1, vec![0], false);
            (child.ending_seq, child.closed_ms) = (None, None);
            stream.shards.push(child);
        }
        let retention = 24 * hour;
        let drained = BTreeSet::from([(1, 0)]);
        assert!(
            expire(&map, 1_000 + retention - 1, &drained).is_empty(),
            "not before"
        );
        assert_eq!(due_to_expire(&map, 1_000 + retention).len(), 1);
        let still_readable = BTreeSet::from([(1, 1)]);
        let kept = expire(&map, 1_000 + retention, &still_readable);
        assert!(
            kept.is_empty(),
            "not while its replicas hold a readable record"
        );
        let changes = expire(&map, 1_000 + retention, &drained);
        let placement = the_one_put(&changes);
        let (parent, child) = (&placement.shards[0], &placement.shards[1]);
        assert!(parent.expired && parent.replicas.is_empty() && parent.epoch == 2);
        assert_eq!(
            (parent.ending_seq, parent.closed_ms),
            (Some(7), Some(1_000))
        );
        assert!(!child.expired && child.replicas.len() == 3 && child.epoch == 1);
        // Once: an expired shard is not due again; a longer retention keeps it longer.
        map.streams.get_mut("s").unwrap().value = placement.clone();
        assert!(expire(&map, u64::MAX, &drained).is_empty());
        assert!(due_to_expire(&map, u64::MAX).is_empty());
        let mut longer = snapshot(&["a"], &["a"]);
        let stream = &mut longer.streams.get_mut("s").unwrap().value;
        stream.shards[0].closed_ms = Some(0);
        stream.settings.retention_hours = 48;
        assert!(expire(&longer, retention, &drained).is_empty());
        assert_eq!(expire(&longer, 2 * retention, &drained).len(), 1);
        // A stream being deleted goes whole.
        longer.streams.get_mut("s").unwrap().value.status = StreamStatus::Deleting;
        assert!(expire(&longer, 2 * retention, &drained).is_empty());
        assert!(due_to_expire(&longer, 2 * retention).is_empty());
    }

    #[test]
    fn one_replica_a_pass_and_never_past_a_lost_majority() {
        // b and c are gone: only a holds the data. Nothing moves: two newcomers would outvote it.
        let lost = snapshot(&["a", "b", "c"], &["a", "x", "y"]);
        assert!(repairs(&lost, &gone(&["b", "c"]), 10, 0, 8).is_empty());
        // c alone is gone: it is replaced, once, by a live node holding no replica.
        let one = snapshot(&["a", "b", "c"], &["a", "b", "x"]);
        let changes = repairs(&one, &gone(&["c"]), 10, 0, 8);
        let placement = the_one_put(&changes);
        let ids: Vec<&str> = placement.shards[0]
            .replicas
            .iter()
            .map(NodeId::as_str)
            .collect();
        assert_eq!((ids, placement.shards[0].epoch), (vec!["a", "b", "x"], 2));
        // Five replicas, two gone: one a pass, the majority kept each time.
        let five = snapshot(&["a", "b", "c", "d", "e"], &["a", "b", "c", "x", "y"]);
        let changes = repairs(&five, &gone(&["d", "e"]), 10, 0, 8);
        let [Change::PutStream { placement, .. }] = &changes[..] else {
            panic!("{changes:?}")
        };
        assert_eq!(
            placement.shards[0]
                .replicas
                .iter()
                .filter(|id| id.as_str() == "e")
                .count(),
            1
        );
        // Not before the delay.
        assert!(repairs(&one, &gone(&["c"]), 10, 11, 8).is_empty());
    }
}
