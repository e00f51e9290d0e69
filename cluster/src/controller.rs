//! The controller: the one node that writes the stream map. `ControllerOffice` is the office
//! once elected (stream administration and replica repair, each planned from a fresh snapshot
//! and committed fenced); `run` campaigns, serves requests and repairs on a tick, and stands
//! again when the office is lost.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sluice_core::{Clock, SystemClock};

use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, timeout_at};

use crate::backend::Backend;
use crate::error::MetaError;
use crate::meta::{Change, ClusterMeta, GoneTimes, Leadership, Snapshot};
use crate::model::{NodeId, NodeInfo, Revision, StreamPlacement, StreamStatus};
use crate::plan::{self, PlanError};
use crate::reshard::limits::ReshardWindows;
use crate::reshard::{self, ReshardChange};
use crate::settings::{SettingsChange, StreamSettings};

/// How the controller works.
#[derive(Clone)]
#[non_exhaustive]
pub struct ControllerConfig {
    /// Copies of each shard of a new stream (3, as Kinesis keeps).
    pub replication: u8,
    /// How long a node may be gone before its replicas are re-created elsewhere (a restart
    /// or a short partition should not copy whole shards).
    pub replace_after: Duration,
    /// Replicas re-created per repair pass at most.
    pub max_moves: usize,
    /// Time between passes (repair, settle, expiry).
    pub tick: Duration,
    /// The candidacy's lease: a controller that stops renewing is replaced within it.
    pub lease_ttl: Duration,
    /// The account's open shards at most (over every stream not being deleted).
    pub shard_quota: u32,
    /// UpdateShardCount calls a stream may take in any 24 hours (Kinesis: 10; 0: no limit).
    pub update_shard_count_per_day_max: u32,
    /// The wall clock of the times it writes (a stream's creation, a shard's close) and of
    /// retention (a closed shard expires retention after it closed); replaceable in tests.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for ControllerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerConfig")
            .field("replication", &self.replication)
            .field("replace_after", &self.replace_after)
            .field("max_moves", &self.max_moves)
            .field("tick", &self.tick)
            .field("lease_ttl", &self.lease_ttl)
            .field("shard_quota", &self.shard_quota)
            .field(
                "update_shard_count_per_day_max",
                &self.update_shard_count_per_day_max,
            )
            .finish_non_exhaustive()
    }
}

impl Default for ControllerConfig {
    fn default() -> ControllerConfig {
        ControllerConfig {
            replication: 3,
            replace_after: Duration::from_secs(300),
            max_moves: 8,
            tick: Duration::from_secs(1),
            lease_ttl: Duration::from_secs(10),
            shard_quota: 10_000,
            update_shard_count_per_day_max: 10,
            clock: Arc::new(SystemClock),
        }
    }
}

/// Why a controller request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControllerError {
    /// The request cannot be carried out as asked.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The store failed, or this node is no longer the controller (`MetaError::Fenced`).
    #[error(transparent)]
    Meta(#[from] MetaError),
}

/// How long one settle pass may wait for the data plane's answers.
const SETTLE_BUDGET: Duration = Duration::from_secs(1);

/// Plans from a stale snapshot are retried this many times before the conflict is reported.
const CONFLICT_RETRIES: usize = 5;

/// The office of an elected controller.
pub struct ControllerOffice<B: Backend> {
    meta: ClusterMeta<B>,
    leadership: Leadership<B>,
    config: ControllerConfig,
    /// Since when (ms by `now`) each node holding replicas has been seen gone: taken over
    /// from the store at election when the last office watched until shortly before
    /// (`taken_over`), and written through to it, so the count goes on across controllers
    /// (one replaced more often than `replace_after` still repairs).
    gone_since: BTreeMap<NodeId, u64>,
    /// The times the store has, as far as this office knows.
    gone_recorded: BTreeMap<NodeId, u64>,
    /// When this office last wrote that it still sees them gone.
    watched_written: Option<Instant>,
    /// The wall clock at election, and the election: `now` counts on from there
    /// monotonically, so a clock step moves no count.
    started_wall: u64,
    started: Instant,
    /// The resharding calls of the last second and day, for Kinesis' limits.
    reshards: ReshardWindows,
}

impl<B: Backend> ControllerOffice<B> {
    /// Campaigns for `node` and returns once elected.
    pub async fn elect(
        meta: ClusterMeta<B>,
        node: &NodeId,
        config: ControllerConfig,
    ) -> Result<ControllerOffice<B>, MetaError> {
        let leadership = meta.campaign(node, config.lease_ttl).await?;
        let (started_wall, started) = (config.clock.now_ms(), Instant::now());
        let recorded = meta.gone_times().await?;
        let gone_since = taken_over(&recorded, started_wall, watch_gap_max(&config));
        // The store's times become this office's (as it counts them); those not taken over
        // go: each counts from when this office sees its holder gone.
        let dropped: Vec<NodeId> = (recorded.since.keys())
            .filter(|id| !gone_since.contains_key(*id))
            .cloned()
            .collect();
        let kept: Vec<(NodeId, u64)> = gone_since.iter().map(|(id, t)| (id.clone(), *t)).collect();
        if !(dropped.is_empty() && kept.is_empty()) {
            meta.write_gone(&leadership, &kept, &dropped, None).await?;
        }
        Ok(ControllerOffice {
            meta,
            leadership,
            config,
            gone_recorded: gone_since.clone(),
            gone_since,
            watched_written: None,
            started_wall,
            started,
            reshards: ReshardWindows::default(),
        })
    }

    /// Steps down now: the next candidate is elected.
    pub async fn resign(self) -> Result<(), MetaError> {
        self.leadership.resign().await
    }

    /// The election behind the office.
    pub fn leadership(&self) -> &Leadership<B> {
        &self.leadership
    }

    /// The mutable election behind the office (fault tests stop its renewals).
    pub fn leadership_mut(&mut self) -> &mut Leadership<B> {
        &mut self.leadership
    }

    /// Creates a stream of `shard_count` shards with the configured replication.
    pub async fn create_stream(
        &mut self,
        name: &str,
        shard_count: u32,
    ) -> Result<StreamPlacement, ControllerError> {
        self.create_stream_with(name, shard_count, StreamSettings::default())
            .await
    }

    /// Creates a stream with `settings` (refused whole unless valid: a retention of 0 would
    /// stop every replica from starting), as `create_stream` does.
    pub async fn create_stream_with(
        &mut self,
        name: &str,
        shard_count: u32,
        settings: StreamSettings,
    ) -> Result<StreamPlacement, ControllerError> {
        crate::settings::check(&settings).map_err(PlanError::Settings)?;
        let replication = self.config.replication;
        let created_ms = self.config.clock.now_ms();
        let quota = self.config.shard_quota;
        let changes = commit_planned(&self.meta, &self.leadership, |snapshot| {
            let limits = (replication, quota);
            let mut changes = plan::create_stream(snapshot, name, shard_count, limits)?;
            for change in &mut changes {
                if let Change::PutStream { placement, .. } = change {
                    placement.created_ms = created_ms;
                    placement.settings = settings.clone();
                }
            }
            Ok(changes)
        })
        .await?;
        match changes.into_iter().next() {
            Some(Change::PutStream { placement, .. }) => Ok(placement),
            _ => unreachable!("create_stream plans the stream first"),
        }
    }

    /// Marks a stream for deletion (with its registered consumers, when `with_consumers`;
    /// else refused while it has any).
    pub async fn delete_stream(
        &mut self,
        name: &str,
        with_consumers: bool,
    ) -> Result<(), ControllerError> {
        commit_planned(&self.meta, &self.leadership, |snapshot| {
            plan::delete_stream(snapshot, name, with_consumers)
        })
        .await
        .map(drop)
    }

    /// Changes stream `name`'s settings (checked against its entry, in the same fenced write);
    /// returns the entry as changed and the revision that wrote it.
    pub async fn configure(
        &mut self,
        name: &str,
        change: &SettingsChange,
    ) -> Result<(StreamPlacement, Revision), ControllerError> {
        let (changes, revision) = commit_planned_at(&self.meta, &self.leadership, |snapshot| {
            plan::configure(snapshot, name, change)
        })
        .await?;
        match changes.into_iter().next() {
            Some(Change::PutStream { placement, .. }) => Ok((placement, revision)),
            _ => unreachable!("configure plans the stream's entry"),
        }
    }

    /// Begins reshard `change` of stream `name` (checked against its entry, in the same fenced
    /// write): the stream `UPDATING` with the parents to close and the children placed. The
    /// settle passes carry it out. Returns the entry as written and the write's revision.
    pub async fn reshard(
        &mut self,
        name: &str,
        change: &ReshardChange,
    ) -> Result<(StreamPlacement, Revision), ControllerError> {
        let quota = self.config.shard_quota;
        let now_ms = self.config.clock.now_ms();
        let per_day = self.config.update_shard_count_per_day_max;
        let windows = &mut self.reshards;
        let mut uid = None;
        let (changes, revision) = commit_planned_at(&self.meta, &self.leadership, |snapshot| {
            // The stream's own refusals first (not found, not ACTIVE), as Kinesis orders them.
            let stream = reshard::resharded(snapshot, name)?;
            windows.check(stream.uid, change, now_ms, per_day)?;
            uid = Some(stream.uid);
            reshard::begin(snapshot, name, change, quota)
        })
        .await?;
        if let Some(uid) = uid {
            self.reshards.record(uid, change, now_ms);
        }
        match changes.into_iter().next() {
            Some(Change::PutStream { placement, .. }) => Ok((placement, revision)),
            // UpdateShardCount to the shards it has: nothing to write.
            _ => {
                let snapshot = self.meta.snapshot().await?;
                let stream = snapshot
                    .streams
                    .get(name)
                    .ok_or_else(|| PlanError::StreamNotFound(name.to_owned()))?;
                Ok((stream.value.clone(), revision))
            }
        }
    }

    /// One repair pass: notes which replica holders are gone, and re-creates the replicas of
    /// those gone for `replace_after` on other nodes. Returns the streams changed.
    pub async fn repair(&mut self) -> Result<usize, ControllerError> {
        let replace_after =
            u64::try_from(self.config.replace_after.as_millis()).unwrap_or(u64::MAX);
        let max_moves = self.config.max_moves;
        let now = self.now();
        let (gone_since, mut looked) = (&mut self.gone_since, false);
        let planned = commit_planned(&self.meta, &self.leadership, |snapshot| {
            note_gone(gone_since, snapshot, now);
            looked = true;
            Ok(plan::repairs(
                snapshot,
                gone_since,
                now,
                replace_after,
                max_moves,
            ))
        })
        .await;
        // What the pass saw gone or back is recorded even when its commit failed; nothing
        // is confirmed when it read no map, and nothing written once the office is lost.
        let fenced = matches!(planned, Err(ControllerError::Meta(MetaError::Fenced)));
        if looked && !fenced {
            self.record_gone(now).await?;
        }
        Ok(planned?.len())
    }

    /// The office's time in ms: its wall clock at election, counted on monotonically.
    fn now(&self) -> u64 {
        let elapsed = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.started_wall.saturating_add(elapsed)
    }

    /// Writes to the store what changed in `gone_since` and, while any holder is counted,
    /// every `watch_every` at least, that this office's pass at `seen` still saw them gone
    /// (fenced).
    async fn record_gone(&mut self, seen: u64) -> Result<(), MetaError> {
        let forget: Vec<NodeId> = (self.gone_recorded.keys())
            .filter(|id| !self.gone_since.contains_key(*id))
            .cloned()
            .collect();
        // A time that changed (a holder back and gone again) is written again.
        let record: Vec<(NodeId, u64)> = (self.gone_since.iter())
            .filter(|(id, since)| self.gone_recorded.get(*id) != Some(*since))
            .map(|(id, since)| (id.clone(), *since))
            .collect();
        let every = watch_every(&self.config);
        let due = self.watched_written.is_none_or(|at| at.elapsed() >= every);
        let watching = !self.gone_since.is_empty();
        if forget.is_empty() && record.is_empty() && !(watching && due) {
            return Ok(());
        }
        let watched = watching.then_some(seen);
        (self.meta)
            .write_gone(&self.leadership, &record, &forget, watched)
            .await?;
        for id in &forget {
            self.gone_recorded.remove(id);
        }
        self.gone_recorded.extend(record);
        if watching {
            self.watched_written = Some(Instant::now());
        }
        Ok(())
    }

    /// One expiry pass: closed shards due by the controller's clock (`plan::due_to_expire`)
    /// whose replicas confirm that nothing of them is readable any more (`probe`) are marked
    /// expired and their replicas let go (`plan::expire`). Returns the streams changed.
    pub async fn expire(&mut self, probe: &impl GroupProbe) -> Result<usize, ControllerError> {
        let now_ms = self.config.clock.now_ms();
        let snapshot = self.meta.snapshot().await?;
        let mut asks = tokio::task::JoinSet::new();
        for (stream, shard) in plan::due_to_expire(&snapshot, now_ms) {
            let (probe, nodes) = (probe.clone(), snapshot.nodes.clone());
            asks.spawn(async move {
                let drained = probe.drained(&stream, shard, &nodes).await;
                drained.then_some((stream.uid, shard))
            });
        }
        // Within one budget, as settling: what is not answered is asked again next tick.
        let deadline = Instant::now() + SETTLE_BUDGET;
        let mut drained = BTreeSet::new();
        while let Ok(Some(joined)) = timeout_at(deadline, asks.join_next()).await {
            if let Ok(Some(shard)) = joined {
                drained.insert(shard);
            }
        }
        if drained.is_empty() {
            return Ok(0);
        }
        let changes = commit_planned(&self.meta, &self.leadership, |snapshot| {
            Ok(plan::expire(snapshot, now_ms, &drained))
        })
        .await?;
        Ok(changes.len())
    }

    /// One pass over the streams in passing states: a `CREATING` stream whose shards' groups
    /// all lead becomes `ACTIVE`; a `DELETING` stream whose groups no live node runs leaves
    /// the map; an `UPDATING` stream's reshard has its parents closed (each parent's group
    /// writes its close entry) and then its children added, and once none is under way and
    /// its open shards lead, it becomes `ACTIVE`. `probe` asks the data plane. Returns the
    /// streams changed.
    pub async fn settle(&mut self, probe: &impl GroupProbe) -> Result<usize, ControllerError> {
        let snapshot = self.meta.snapshot().await?;
        // Every stream in a passing state is asked about at once, within one budget: a node
        // that does not answer delays no other stream, and what is not answered in time is
        // asked again next tick (the unfinished asks are dropped with the set).
        let mut asks = tokio::task::JoinSet::new();
        for stream in snapshot.streams.values().map(|s| s.value.clone()) {
            if stream.status == StreamStatus::Active {
                continue;
            }
            let (probe, nodes) = (probe.clone(), snapshot.nodes.clone());
            asks.spawn(async move {
                let settled = settled(&probe, &stream, &nodes).await;
                (stream, settled)
            });
        }
        let deadline = Instant::now() + SETTLE_BUDGET;
        let mut changed = 0;
        let clock = self.config.clock.clone();
        while let Ok(Some(joined)) = timeout_at(deadline, asks.join_next()).await {
            let Ok((stream, Some(settled))) = joined else {
                continue;
            };
            let (name, uid) = (stream.name.as_str(), stream.uid);
            let committed = commit_planned(&self.meta, &self.leadership, |snapshot| {
                Ok(match &settled {
                    Settled::Created => plan::activate(snapshot, name, uid),
                    Settled::Deleted => plan::forget(snapshot, name, uid),
                    Settled::Updated => plan::activate(snapshot, name, uid),
                    Settled::Closed(endings, last_record_ms) => {
                        // Never before a record of the shards: the front and expiry count
                        // retention from it.
                        let closed_ms = clock.now_ms().max(*last_record_ms);
                        reshard::finish(snapshot, name, uid, endings, closed_ms)
                    }
                })
            })
            .await;
            // One stream's write failing (the store refusing it, say) holds back no other.
            match committed {
                Ok(changes) => changed += usize::from(!changes.is_empty()),
                Err(e @ ControllerError::Meta(MetaError::Fenced)) => return Err(e),
                Err(e) => eprintln!("sluice cluster: settling stream {name}: {e}"),
            }
        }
        Ok(changed)
    }
}

/// A stream's passing state, ended: what to write.
enum Settled {
    /// Every shard leads: ACTIVE.
    Created,
    /// No live node runs its groups: out of the map.
    Deleted,
    /// No reshard under way, every open shard leads: ACTIVE.
    Updated,
    /// The reshard's parents closed at these ends: the children in.
    Closed(BTreeMap<u32, u64>, u64),
}

/// Asks the data plane whether `stream`'s passing state has ended.
async fn settled(
    probe: &impl GroupProbe,
    stream: &StreamPlacement,
    nodes: &BTreeMap<NodeId, NodeInfo>,
) -> Option<Settled> {
    match (stream.status, &stream.resharding) {
        (StreamStatus::Creating, _) => probe
            .leading(stream, nodes)
            .await
            .then_some(Settled::Created),
        (StreamStatus::Deleting, _) => probe
            .stopped(stream, nodes)
            .await
            .then_some(Settled::Deleted),
        (StreamStatus::Updating, Some(resharding)) => {
            // No parent closes before every parent and child has a leader: a parent closed
            // while another cannot close, or before its children can take writes, would
            // refuse puts for its keys meanwhile.
            let mut involved = stream.clone();
            involved
                .shards
                .retain(|s| resharding.parents.contains(&s.index));
            involved.shards.extend(resharding.children.iter().cloned());
            if !probe.leading(&involved, nodes).await {
                return None;
            }
            // Every parent at once (a scaling round closes many).
            let mut closes = tokio::task::JoinSet::new();
            for &parent in &resharding.parents {
                let (probe, stream, nodes) = (probe.clone(), stream.clone(), nodes.clone());
                closes.spawn(async move { (parent, probe.close(&stream, parent, &nodes).await) });
            }
            let (mut endings, mut last_record_ms) = (BTreeMap::new(), 0);
            while let Some(closed) = closes.join_next().await {
                let (parent, closed) = closed.ok()?;
                let (end, time) = closed?;
                endings.insert(parent, end);
                last_record_ms = last_record_ms.max(time);
            }
            Some(Settled::Closed(endings, last_record_ms))
        }
        (StreamStatus::Updating, None) => probe
            .leading(stream, nodes)
            .await
            .then_some(Settled::Updated),
        (StreamStatus::Active, _) => None,
    }
}

/// What the controller asks the data plane before a stream leaves a passing state.
pub trait GroupProbe: Clone + Send + Sync + 'static {
    /// Whether every shard of `stream` has a leader that a quorum of its group follows.
    fn leading(
        &self,
        stream: &StreamPlacement,
        nodes: &BTreeMap<NodeId, NodeInfo>,
    ) -> impl Future<Output = bool> + Send;

    /// Whether none of `nodes` (the live ones) runs a group of `stream` any more.
    fn stopped(
        &self,
        stream: &StreamPlacement,
        nodes: &BTreeMap<NodeId, NodeInfo>,
    ) -> impl Future<Output = bool> + Send;

    /// Closes shard `shard` of `stream` for a reshard (its group commits a close entry) and
    /// answers its end, the close entry's log number, and its last record's arrival time (ms);
    /// `None` if that could not be done now.
    fn close(
        &self,
        stream: &StreamPlacement,
        shard: u32,
        nodes: &BTreeMap<NodeId, NodeInfo>,
    ) -> impl Future<Output = Option<(u64, u64)>> + Send;

    /// Whether closed shard `shard` of `stream` holds no readable record any more: each of
    /// its replicas that answers has every record past retention (by its own node's clock),
    /// and a majority of them answered. A shard expires only then, never on the controller's
    /// clock alone.
    fn drained(
        &self,
        stream: &StreamPlacement,
        shard: u32,
        nodes: &BTreeMap<NodeId, NodeInfo>,
    ) -> impl Future<Output = bool> + Send;
}

/// A control plane without a data plane (its own tests, tools): streams stay `CREATING`
/// and `DELETING`.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProbe;

impl GroupProbe for NoProbe {
    async fn leading(&self, _: &StreamPlacement, _: &BTreeMap<NodeId, NodeInfo>) -> bool {
        false
    }

    async fn stopped(&self, _: &StreamPlacement, _: &BTreeMap<NodeId, NodeInfo>) -> bool {
        false
    }

    async fn close(
        &self,
        _: &StreamPlacement,
        _: u32,
        _: &BTreeMap<NodeId, NodeInfo>,
    ) -> Option<(u64, u64)> {
        None
    }

    async fn drained(&self, _: &StreamPlacement, _: u32, _: &BTreeMap<NodeId, NodeInfo>) -> bool {
        false
    }
}

/// Plans from a fresh snapshot and commits, again from a newer snapshot when the plan was
/// made from a stale one. Returns the changes written.
async fn commit_planned<B: Backend>(
    meta: &ClusterMeta<B>,
    leadership: &Leadership<B>,
    planner: impl FnMut(&Snapshot) -> Result<Vec<Change>, PlanError>,
) -> Result<Vec<Change>, ControllerError> {
    Ok(commit_planned_at(meta, leadership, planner).await?.0)
}

/// As `commit_planned`, with the revision of the last write (that of the snapshot planned
/// from when nothing was written).
async fn commit_planned_at<B: Backend>(
    meta: &ClusterMeta<B>,
    leadership: &Leadership<B>,
    mut planner: impl FnMut(&Snapshot) -> Result<Vec<Change>, PlanError>,
) -> Result<(Vec<Change>, Revision), ControllerError> {
    let mut attempt = 0;
    loop {
        let snapshot = meta.snapshot().await?;
        let changes = planner(&snapshot)?;
        if changes.is_empty() {
            return Ok((changes, snapshot.revision));
        }
        match commit_each(meta, leadership, &changes).await {
            Ok(revision) => return Ok((changes, revision)),
            Err(MetaError::Conflict { .. }) if attempt < CONFLICT_RETRIES => attempt += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Writes the changes: one transaction when they belong together (a stream and the uid
/// counter), one per stream for repairs (etcd limits a transaction's operations).
async fn commit_each<B: Backend>(
    meta: &ClusterMeta<B>,
    leadership: &Leadership<B>,
    changes: &[Change],
) -> Result<Revision, MetaError> {
    if changes.iter().any(|c| matches!(c, Change::UidNext { .. })) {
        return meta.commit(leadership, changes).await;
    }
    let mut last = 0;
    for change in changes {
        last = meta
            .commit(leadership, std::slice::from_ref(change))
            .await?;
    }
    Ok(last)
}

/// How often an office counting holders gone writes that it still watches them.
fn watch_every(config: &ControllerConfig) -> Duration {
    config.tick * 5
}

/// The longest a new office may find since the last office wrote that it watched, and
/// still take its times over: an election's gap (the lease) and a write's period, with a
/// tick each side.
fn watch_gap_max(config: &ControllerConfig) -> Duration {
    config.lease_ttl + watch_every(config) + config.tick * 2
}

/// The times a new office elected at `now` (its wall clock) takes over from `recorded`:
/// each holder's age as the last office counted it up to its last confirmation, plus the
/// gap since then, when that gap is at most `gap_max`; none otherwise (nobody watched
/// meanwhile: a holder may have come back and gone again, so each count starts afresh).
/// The gap is measured across two clocks: one ahead makes it longer (more likely none is
/// taken over), one behind shorter, by the skew.
fn taken_over(recorded: &GoneTimes, now: u64, gap_max: Duration) -> BTreeMap<NodeId, u64> {
    let gap_max = u64::try_from(gap_max.as_millis()).unwrap_or(u64::MAX);
    let Some(watched) = recorded.watched else {
        return BTreeMap::new();
    };
    let gap = now.saturating_sub(watched);
    if gap > gap_max {
        return BTreeMap::new();
    }
    (recorded.since.iter())
        .map(|(id, since)| {
            let age = watched.saturating_sub(*since).saturating_add(gap);
            (id.clone(), now.saturating_sub(age))
        })
        .collect()
}

/// Records when each node holding a replica was first seen gone, and forgets nodes that are
/// back or hold no replica any more (all of theirs re-created elsewhere).
fn note_gone(gone_since: &mut BTreeMap<NodeId, u64>, snapshot: &Snapshot, now: u64) {
    let mut holders_gone = BTreeSet::new();
    for stream in snapshot.streams.values() {
        for shard in &stream.value.shards {
            for id in &shard.replicas {
                if !snapshot.nodes.contains_key(id) {
                    holders_gone.insert(id);
                }
            }
        }
    }
    gone_since.retain(|id, _| holders_gone.contains(id));
    for id in holders_gone {
        gone_since.entry(id.clone()).or_insert(now);
    }
}

/// A request to the controller, with where its answer goes.
pub enum Request {
    /// Create a stream of this many shards.
    CreateStream {
        /// The stream's name.
        name: String,
        /// Its shards.
        shard_count: u32,
        /// Its settings.
        settings: StreamSettings,
        /// The answer.
        reply: oneshot::Sender<Result<StreamPlacement, ControllerError>>,
    },
    /// Delete a stream.
    DeleteStream {
        /// The stream's name.
        name: String,
        /// Its registered consumers go too (else it is refused while it has any).
        with_consumers: bool,
        /// The answer.
        reply: oneshot::Sender<Result<(), ControllerError>>,
    },
    /// Begin a reshard.
    Reshard {
        /// The stream's name.
        name: String,
        /// The reshard.
        change: ReshardChange,
        /// The answer: the stream's entry as written, and the revision that wrote it.
        reply: oneshot::Sender<Result<(StreamPlacement, Revision), ControllerError>>,
    },
    /// Change a stream's settings.
    Configure {
        /// The stream's name.
        name: String,
        /// The change.
        change: SettingsChange,
        /// The answer: the stream's entry as changed, and the revision that wrote it.
        reply: oneshot::Sender<Result<(StreamPlacement, Revision), ControllerError>>,
    },
}

impl Request {
    /// Whether the caller stopped waiting for the answer.
    fn abandoned(&self) -> bool {
        match self {
            Request::CreateStream { reply, .. } => reply.is_closed(),
            Request::DeleteStream { reply, .. } => reply.is_closed(),
            Request::Configure { reply, .. } => reply.is_closed(),
            Request::Reshard { reply, .. } => reply.is_closed(),
        }
    }
}

/// Runs the controller for `node` until `requests` closes or `stop` resolves (which resigns
/// the office if held): campaigns, then serves requests, repairs, settles streams in passing
/// states and expires closed shards (asking `probe`) every tick while the office holds, and
/// campaigns again when it is lost. Requests that arrive while this node is not the
/// controller wait for its election; one whose caller stopped waiting is dropped.
pub async fn run<B: Backend>(
    meta: ClusterMeta<B>,
    node: NodeId,
    config: ControllerConfig,
    mut requests: mpsc::Receiver<Request>,
    (probe, stop): (impl GroupProbe, impl Future<Output = ()>),
) -> Result<(), MetaError> {
    tokio::pin!(stop);
    let mut pause = Duration::from_millis(100);
    loop {
        // A store that fails (often why the office was lost) is waited out, not returned:
        // the node stands again once it answers. Other errors (a bad name) are the caller's.
        let elected = tokio::select! {
            elected = ControllerOffice::elect(meta.clone(), &node, config.clone()) => elected,
            // The candidacy's lease is revoked as it is dropped.
            () = &mut stop => return Ok(()),
        };
        let mut office = match elected {
            Ok(office) => office,
            // Fenced: the office was lost as it was taken over (its first writes).
            Err(MetaError::Unavailable(_) | MetaError::LeaseExpired | MetaError::Fenced) => {
                tokio::time::sleep(pause).await;
                if requests.is_closed() {
                    return Ok(());
                }
                pause = (pause * 2).min(Duration::from_secs(5));
                continue;
            }
            Err(e) => return Err(e),
        };
        pause = Duration::from_millis(100);
        let mut tick = tokio::time::interval(config.tick);
        loop {
            let fenced = tokio::select! {
                // Requests before a tick that is due (a pass already running is not cut short:
                // its asks have a budget of their own).
                biased;
                () = &mut stop => {
                    // Handed on at once, not when the lease runs out.
                    return office.leadership.resign().await;
                }
                request = requests.recv() => {
                    let Some(request) = request else { return Ok(()) };
                    serve(&mut office, request).await
                }
                _ = tick.tick() => {
                    let fenced = |e| matches!(e, Err(ControllerError::Meta(MetaError::Fenced)));
                    fenced(office.repair().await)
                        || fenced(office.settle(&probe).await)
                        || fenced(office.expire(&probe).await)
                }
                () = office.leadership.lost() => true,
            };
            if fenced || !office.leadership.is_held() {
                break;
            }
        }
    }
}

/// Sends `result` to the caller; true when it says the office was lost.
fn answer<T>(
    reply: oneshot::Sender<Result<T, ControllerError>>,
    result: Result<T, ControllerError>,
) -> bool {
    let lost = matches!(result, Err(ControllerError::Meta(MetaError::Fenced)));
    let _ = reply.send(result);
    lost
}

/// Carries out one request; true when the office turned out to be lost. A request whose
/// caller no longer waits (it timed out while no controller was elected) is dropped: it was
/// answered as failed, so it must not take effect.
async fn serve<B: Backend>(office: &mut ControllerOffice<B>, request: Request) -> bool {
    if request.abandoned() {
        return false;
    }
    match request {
        Request::CreateStream {
            name,
            shard_count,
            settings,
            reply,
        } => answer(
            reply,
            office
                .create_stream_with(&name, shard_count, settings)
                .await,
        ),
        Request::DeleteStream {
            name,
            with_consumers,
            reply,
        } => answer(reply, office.delete_stream(&name, with_consumers).await),
        Request::Configure {
            name,
            change,
            reply,
        } => answer(reply, office.configure(&name, &change).await),
        Request::Reshard {
            name,
            change,
            reply,
        } => answer(reply, office.reshard(&name, &change).await),
    }
}

#[cfg(test)]
mod tests {
    use super::{GoneTimes, NodeId, taken_over};
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn recorded(since: &[(&str, u64)], watched: Option<u64>) -> GoneTimes {
        GoneTimes {
            since: (since.iter())
                .map(|(id, t)| (NodeId::new(*id).unwrap(), *t))
                .collect(),
            watched,
        }
    }

    fn times(entries: &[(&str, u64)]) -> BTreeMap<NodeId, u64> {
        recorded(entries, None).since
    }

    /// A new office takes each age over as the last office counted it, plus the gap since
    /// its last confirmation; nothing when the gap is too long or nothing was confirmed.
    #[test]
    fn a_new_office_takes_ages_over_only_across_a_short_gap() {
        let gap_max = Duration::from_secs(10);
        let last = recorded(&[("c", 1_000), ("d", 40_000)], Some(50_000));
        // Elected 4 s after the last confirmation: c is 53 s gone, d 14 s.
        let now = 54_000;
        let expected = times(&[("c", now - 53_000), ("d", now - 14_000)]);
        assert_eq!(taken_over(&last, now, gap_max), expected);
        // A clock behind the last office's: no negative gap, the ages as counted (c's 49 s
        // reach back past this clock's zero).
        assert_eq!(
            taken_over(&last, 45_000, gap_max),
            times(&[("c", 0), ("d", 35_000)])
        );
        // 11 s without anyone watching, or no confirmation at all: counted afresh.
        assert!(taken_over(&last, 61_000, gap_max).is_empty());
        let unwatched = recorded(&[("c", 1_000)], None);
        assert!(taken_over(&unwatched, 2_000, gap_max).is_empty());
    }
}
