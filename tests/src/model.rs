//! The engine model: operations on the real engine mirrored on a plain map of key → records,
//! with injected I/O faults, crash restarts and simulated power loss
//! (docs/design/engine-faults.md). Shared by the proptest suite (`tests/engine_model.rs`) and
//! the `api_model` fuzz target, which only differ in how they pick operations.

use crate::{all_shards, assert_open_shards_partition, read_stream_records};
use sluice_core::{
    CreateStream, Durability, Engine, EngineConfig, ErrorCode, IteratorStart, PutRecord,
    SequenceNumber, SyncScope,
};
use sluice_storage::GlommioIo;
use sluice_storage::io::{Fault, FaultPlan, FaultyIo, PowerLoss};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What the runs so far exercised, over all harnesses of the process (so a long run can show
/// that faults and losses really happened, not only that nothing disagreed).
#[derive(Debug, Default)]
pub struct Stats {
    /// Operations applied.
    pub ops: AtomicU64,
    /// Records whose put failed under an injected fault.
    pub records_failed: AtomicU64,
    /// Reshards that failed under a fault (a cut in the middle of one, among others).
    pub reshards_failed: AtomicU64,
    /// Stream creations, deletions and retention changes that failed under a fault (their
    /// metadata entry's write or sync failed).
    pub changes_failed: AtomicU64,
    /// Reopens after a crash or power loss.
    pub crashes: AtomicU64,
    /// Unsynced writes undone or torn by simulated power loss.
    pub writes_lost: AtomicU64,
    /// Acknowledged-visible records a power loss took (allowed: never durable ones).
    pub visible_records_lost: AtomicU64,
    /// Records of failed puts found present after a reopen, and found absent.
    pub failed_found: AtomicU64,
    /// See `failed_found`.
    pub failed_absent: AtomicU64,
}

/// The process-wide counters.
pub static STATS: Stats = Stats {
    ops: AtomicU64::new(0),
    records_failed: AtomicU64::new(0),
    reshards_failed: AtomicU64::new(0),
    changes_failed: AtomicU64::new(0),
    crashes: AtomicU64::new(0),
    writes_lost: AtomicU64::new(0),
    visible_records_lost: AtomicU64::new(0),
    failed_found: AtomicU64::new(0),
    failed_absent: AtomicU64::new(0),
};

fn count(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        write!(
            f,
            "{} ops, {} records failed under faults, {} reshards failed under faults, {} stream \
             changes failed under faults, {} crash or power-loss reopens, {} unsynced writes \
             lost, {} visible records lost, failed puts' records found {} / absent {}",
            get(&self.ops),
            get(&self.records_failed),
            get(&self.reshards_failed),
            get(&self.changes_failed),
            get(&self.crashes),
            get(&self.writes_lost),
            get(&self.visible_records_lost),
            get(&self.failed_found),
            get(&self.failed_absent),
        )
    }
}

/// The streams operations pick from.
pub const STREAMS: [&str; 2] = ["alpha", "beta"];
/// Partition keys are `key-0` .. `key-5`.
pub const KEYS: usize = 6;

/// One step of a run. `stream` indexes [`STREAMS`], `keys` index partition keys (`key-N`),
/// `u8` fields pick a shard or a count modulo what exists.
#[derive(Debug, Clone)]
#[allow(missing_docs)] // The fields are the operation's arguments, named as in the engine's API.
pub enum Op {
    /// Create a provisioned stream.
    Create { stream: usize, shards: u32 },
    /// Delete a stream.
    Delete { stream: usize },
    /// Put one record per key, in order, in one batch (one key: a single put).
    Put {
        stream: usize,
        keys: Vec<usize>,
        durable: bool,
    },
    /// Split an open shard at the middle of its range.
    Split { stream: usize, at: u8 },
    /// Merge two adjacent open shards.
    Merge { stream: usize, first: u8 },
    /// UpdateShardCount (valid between half and double the open count).
    UpdateShardCount { stream: usize, target: u32 },
    /// Raise or lower retention (24..=8760 hours, in the right direction only).
    Retention {
        stream: usize,
        hours: u32,
        increase: bool,
    },
    /// Read every record along the lineage.
    Read { stream: usize },
    /// Read every shard through push subscriptions, resuming once AFTER a checkpoint.
    Subscribe { stream: usize },
    /// Pick an acknowledged record; `get` it, and read its shard from iterators of every
    /// type placed by it: AT and AFTER its number, AT its arrival time, TRIM_HORIZON, LATEST.
    Iterate { stream: usize, pick: u16 },
    /// Arm a fault: the given write, sync or creation (counted from now over all logs), and
    /// every one after it, fails with EIO or ENOSPC.
    Fault {
        on: FaultOn,
        after: u8,
        no_space: bool,
    },
    /// Clear every fault.
    Heal,
    /// Close the engine cleanly and reopen it.
    Restart,
    /// A crash that keeps the page cache (kill -9): cut the device, close, reopen.
    Crash,
    /// Power loss: cut the device, close, lose unsynced writes as `loss` says (all of them,
    /// per file a prefix, or any subset of their pages), reopen.
    PowerLoss { loss: PowerLoss },
    /// A split (or, with `merge`, a merge) during which the power fails after `writes` writes
    /// and `syncs` syncs, then power loss as `loss` says: the layout after reopening is
    /// whole (the open shards partition the hash space) and every record is as the model says.
    PowerCutDuringReshard {
        stream: usize,
        at: u8,
        merge: bool,
        writes: u8,
        syncs: u8,
        loss: PowerLoss,
    },
    /// A put during which the power fails after `writes` writes and `syncs` syncs, then power
    /// loss as `loss` says.
    PowerCutDuringPut {
        stream: usize,
        keys: Vec<usize>,
        durable: bool,
        writes: u8,
        syncs: u8,
        loss: PowerLoss,
    },
}

/// What [`Op::Fault`] fails (in shard logs and the metadata log alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOn {
    /// Writes.
    Write,
    /// fdatasyncs.
    Sync,
    /// File creations.
    Create,
}

/// A stream change that failed under a fault: its metadata entry may have been written
/// before its sync failed, so a restart may or may not replay it (it never takes effect
/// before one: the catalog changes only after the entry is synced).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unsure {
    Created,
    Deleted,
    Retention(u32),
}

/// How sure the model is that a record is in the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// Acknowledged after a sync: survives everything.
    Durable,
    /// Acknowledged visible: survives restarts and crashes, not power loss.
    Visible,
    /// Its put failed under a fault: it may or may not be there.
    Uncertain,
}

#[derive(Debug, Clone)]
struct Entry {
    data: Vec<u8>,
    status: Status,
    /// The step that put it.
    step: usize,
    /// Its shard (index) and sequence number: from the put's answer, or for a failed put's
    /// record from the first reopen that finds it.
    shard: Option<u32>,
    seq: Option<SequenceNumber>,
}

impl Entry {
    /// The storage batch it belongs to, once its shard is known: one put's records for one
    /// shard (the model's records never fill a segment, so a put's records for a shard are
    /// never split over two batches at a roll).
    fn batch(&self) -> Option<(usize, u32)> {
        self.shard.map(|shard| (self.step, shard))
    }
}

/// What a read found of one key, in order: data and sequence number.
type Found = BTreeMap<String, Vec<(Vec<u8>, SequenceNumber)>>;

#[derive(Debug, Default)]
struct StreamModel {
    retention_hours: u32,
    keys: BTreeMap<String, Vec<Entry>>,
}

/// What a comparison may find missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Allowed {
    /// Only records whose put failed.
    Uncertain,
    /// Also acknowledged-visible ones (power loss).
    VisibleToo,
}

/// The engine under test, its fault injector and the model.
pub struct Harness {
    dir: PathBuf,
    faults: FaultyIo<GlommioIo>,
    /// What the engine's durable syncs cover (each case picks one).
    sync_scope: SyncScope,
    engine: Option<Engine>,
    model: BTreeMap<&'static str, StreamModel>,
    /// A fault is armed: puts and reshards may fail (with InternalFailure).
    armed: bool,
    /// A write or sync fault was armed since the engine opened: it may have latched shards,
    /// which refuse appends until the engine reopens. A creation fault latches nothing: once
    /// healed, every put must succeed again.
    may_be_latched: bool,
    /// `faults.faults_fired()` when the engine last opened: a failure is excused only once a
    /// fault has really fired since.
    fired_at_open: u64,
    /// Stream changes that failed under a fault since the engine opened: the next reopen
    /// settles them from what the engine then holds.
    unsure: Vec<(&'static str, Unsure)>,
}

impl Harness {
    /// An engine on a new data directory under `dir`.
    pub fn new(dir: &Path, sync_scope: SyncScope) -> Harness {
        let dir = dir.join("data");
        let faults = FaultyIo::new(GlommioIo);
        let engine = Some(open(&dir, &faults, sync_scope));
        Harness {
            dir,
            faults,
            sync_scope,
            engine,
            model: BTreeMap::new(),
            armed: false,
            may_be_latched: false,
            fired_at_open: 0,
            unsure: Vec::new(),
        }
    }

    /// Puts and reshards may fail: a fault is armed, or shards may be latched.
    fn degraded(&self) -> bool {
        (self.armed || self.may_be_latched) && self.faults.faults_fired() > self.fired_at_open
    }

    fn engine(&self) -> &Engine {
        self.engine.as_ref().expect("open between steps")
    }

    /// Runs step number `step`, checking the engine against the model.
    pub fn apply(&mut self, op: &Op, step: usize) {
        count(&STATS.ops, 1);
        match *op {
            Op::Create { stream, shards } => self.create(STREAMS[stream], shards),
            Op::Delete { stream } => self.delete(STREAMS[stream]),
            Op::Put {
                stream,
                ref keys,
                durable,
            } => self.put(STREAMS[stream], keys, durable, step),
            Op::Split { stream, at } => self.split(STREAMS[stream], at),
            Op::Merge { stream, first } => self.merge(STREAMS[stream], first),
            Op::UpdateShardCount { stream, target } => {
                self.update_shard_count(STREAMS[stream], target)
            }
            Op::Retention {
                stream,
                hours,
                increase,
            } => self.retention(STREAMS[stream], hours, increase),
            Op::Read { stream } => self.compare(STREAMS[stream], Reader::Lineage, step),
            Op::Subscribe { stream } => self.compare(STREAMS[stream], Reader::Push, step),
            Op::Iterate { stream, pick } => self.iterate(STREAMS[stream], pick, step),
            Op::Fault {
                on,
                after,
                no_space,
            } => self.arm(on, after, no_space),
            Op::Heal => {
                self.faults.heal();
                self.armed = false;
            }
            Op::Restart => self.restart(step),
            Op::Crash => self.power_cut(None, step),
            Op::PowerLoss { loss } => self.power_cut(Some(loss), step),
            Op::PowerCutDuringReshard {
                stream,
                at,
                merge,
                writes,
                syncs,
                loss,
            } => {
                self.cut_after(writes, syncs);
                match merge {
                    true => self.merge(STREAMS[stream], at),
                    false => self.split(STREAMS[stream], at),
                }
                self.power_cut(Some(loss), step);
            }
            Op::PowerCutDuringPut {
                stream,
                ref keys,
                durable,
                writes,
                syncs,
                loss,
            } => {
                self.cut_after(writes, syncs);
                self.put(STREAMS[stream], keys, durable, step);
                self.power_cut(Some(loss), step);
            }
        }
    }

    /// Arms a fault on the `after`th write, sync or creation from now, and every one after it.
    fn arm(&mut self, on: FaultOn, after: u8, no_space: bool) {
        let fault = (
            u64::from(after),
            if no_space { Fault::NoSpace } else { Fault::Eio },
        );
        self.faults.arm(FaultPlan {
            fail_write_from: (on == FaultOn::Write).then_some(fault),
            fail_sync_from: (on == FaultOn::Sync).then_some(fault),
            fail_create: (on == FaultOn::Create).then_some(fault.1),
        });
        self.armed = true;
        self.may_be_latched |= on != FaultOn::Create;
    }

    /// Closes the engine cleanly and reopens it.
    fn restart(&mut self, step: usize) {
        self.faults.heal();
        // Closed (synced, threads joined) before the same directory opens again.
        self.engine = None;
        self.reopen(Allowed::Uncertain, step);
    }

    /// Arms a power cut that lets `writes` more writes and `syncs` more syncs through.
    fn cut_after(&mut self, writes: u8, syncs: u8) {
        self.faults.arm(FaultPlan {
            fail_write_from: Some((u64::from(writes), Fault::Eio)),
            fail_sync_from: Some((u64::from(syncs), Fault::Eio)),
            fail_create: Some(Fault::Eio),
        });
        (self.armed, self.may_be_latched) = (true, true);
    }

    /// Runs `ops` as one case on a fresh engine under `dir`: each step, then the final check.
    pub fn run(dir: &Path, ops: &[Op], sync_scope: SyncScope) {
        let mut harness = Harness::new(dir, sync_scope);
        for (step, op) in ops.iter().enumerate() {
            harness.apply(op, step);
        }
        harness.finish(ops.len());
    }

    /// After the last step: every stream reads back as the model says.
    pub fn finish(mut self, step: usize) {
        for name in STREAMS {
            self.compare(name, Reader::Lineage, step);
        }
    }

    fn create(&mut self, name: &'static str, shards: u32) {
        if self.armed {
            return; // Creating shard logs under faults is the storage tests' ground.
        }
        let result = self
            .engine()
            .create_stream(CreateStream::provisioned(name, shards))
            .wait();
        if self.model.contains_key(name) {
            assert_eq!(result.unwrap_err().code(), ErrorCode::ResourceInUse);
        } else if let Err(e) = result {
            self.metadata_failed(name, Unsure::Created, &e.into());
        } else {
            let retention_hours = self.engine().stream(name).unwrap().summary().unwrap();
            assert_eq!(retention_hours.retention_hours, 24);
            self.model.insert(
                name,
                StreamModel {
                    retention_hours: 24,
                    ..StreamModel::default()
                },
            );
        }
    }

    /// Runs `op` on the handle of stream `name`; a stream that does not exist answers its
    /// lookup's error, so every outcome has the engine's code.
    fn on_stream<T, E>(
        &self,
        name: &str,
        op: impl FnOnce(&sluice_core::Stream) -> Result<T, E>,
    ) -> Result<T, sluice_core::Error>
    where
        sluice_core::Error: From<E>,
    {
        let stream = self.engine().stream(name)?;
        Ok(op(&stream)?)
    }

    /// Runs under faults too: a delete whose metadata entry failed is settled by the next
    /// reopen.
    fn delete(&mut self, name: &'static str) {
        let result = self.on_stream(name, |s| s.delete().wait());
        match (self.model.contains_key(name), result) {
            (true, Ok(())) => drop(self.model.remove(name)),
            (true, Err(e)) => self.metadata_failed(name, Unsure::Deleted, &e),
            (false, result) => {
                assert_eq!(result.unwrap_err().code(), ErrorCode::ResourceNotFound);
            }
        }
    }

    /// A stream change failed: only under a fault, as an internal failure, and then whether
    /// it happened is settled at the next reopen.
    fn metadata_failed(&mut self, name: &'static str, change: Unsure, e: &sluice_core::Error) {
        assert!(
            self.degraded(),
            "{change:?} of {name} failed without a fault: {e}"
        );
        assert_eq!(e.code(), ErrorCode::InternalFailure, "{e}");
        count(&STATS.changes_failed, 1);
        self.unsure.push((name, change));
    }

    fn put(&mut self, name: &'static str, keys: &[usize], durable: bool, step: usize) {
        let owned: Vec<(String, Vec<u8>)> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                (
                    format!("key-{k}"),
                    format!("step-{step}-record-{i}").into_bytes(),
                )
            })
            .collect();
        let records: Vec<PutRecord<'_>> = owned.iter().map(|(k, d)| PutRecord::new(k, d)).collect();
        let durability = if durable {
            Durability::Durable
        } else {
            Durability::Visible
        };
        let result = self.on_stream(name, |s| {
            s.put_batch(&records).durability(durability).wait()
        });
        let degraded = self.degraded();
        let Some(stream) = self.model.get_mut(name) else {
            assert_eq!(result.unwrap_err().code(), ErrorCode::ResourceNotFound);
            return;
        };
        let outcomes = match result {
            Ok(outcomes) => outcomes
                .into_iter()
                .map(|o| o.map_err(|e| (e.code(), e.to_string())))
                .collect(),
            Err(e) => vec![Err((e.code(), e.to_string())); owned.len()],
        };
        for ((key, data), outcome) in owned.into_iter().zip(outcomes) {
            let entry = match outcome {
                Ok(put) => Entry {
                    data,
                    status: if durable {
                        Status::Durable
                    } else {
                        Status::Visible
                    },
                    step,
                    shard: Some(put.shard_id.index()),
                    seq: Some(put.sequence_number),
                },
                Err((code, message)) => {
                    assert!(degraded, "a record failed without a fault: {message}");
                    assert_eq!(code, ErrorCode::InternalFailure, "{message}");
                    count(&STATS.records_failed, 1);
                    Entry {
                        data,
                        status: Status::Uncertain,
                        step,
                        shard: None,
                        seq: None,
                    }
                }
            };
            stream.keys.entry(key).or_default().push(entry);
        }
    }

    /// Open shards of a stream, sorted by hash range.
    fn open_shards(&self, stream: &str) -> Vec<sluice_core::ShardDescription> {
        let mut shards: Vec<_> = all_shards(self.engine(), stream)
            .into_iter()
            .filter(|s| s.ending_sequence_number.is_none())
            .collect();
        shards.sort_by_key(|s| s.hash_key_range.start);
        shards
    }

    /// A reshard's result: success, or (under faults only) InternalFailure.
    fn reshard_result<T>(&self, result: Result<T, sluice_core::ReshardError>) -> bool {
        match result {
            Ok(_) => true,
            Err(e) => {
                assert!(self.degraded(), "reshard failed without a fault: {e}");
                assert_eq!(e.code(), ErrorCode::InternalFailure, "{e}");
                count(&STATS.reshards_failed, 1);
                false
            }
        }
    }

    fn split(&mut self, name: &'static str, at: u8) {
        if !self.model.contains_key(name) {
            return;
        }
        let shards = self.open_shards(name);
        let shard = &shards[at as usize % shards.len()];
        let range = shard.hash_key_range;
        let key = range.start + (range.end - range.start) / 2;
        let result = self
            .engine()
            .stream(name)
            .unwrap()
            .split_shard(&shard.shard_id, &key.to_string())
            .wait();
        self.reshard_result(result);
    }

    fn merge(&mut self, name: &'static str, first: u8) {
        if !self.model.contains_key(name) {
            return;
        }
        let shards = self.open_shards(name);
        if shards.len() < 2 {
            return;
        }
        let i = first as usize % (shards.len() - 1);
        let result = self
            .engine()
            .stream(name)
            .unwrap()
            .merge_shards(&shards[i].shard_id, &shards[i + 1].shard_id)
            .wait();
        self.reshard_result(result);
    }

    fn update_shard_count(&mut self, name: &'static str, target: u32) {
        if !self.model.contains_key(name) {
            return;
        }
        let open = self.open_shards(name).len() as u32;
        let result = self
            .engine()
            .stream(name)
            .unwrap()
            .update_shard_count(target)
            .wait();
        if target <= open * 2 && target * 2 >= open {
            if self.reshard_result(result) {
                let ranges: Vec<_> = self
                    .open_shards(name)
                    .iter()
                    .map(|s| s.hash_key_range)
                    .collect();
                assert_eq!(ranges, sluice_core::HashKeyRange::even_split(target));
            }
        } else {
            assert_eq!(result.unwrap_err().code(), ErrorCode::InvalidArgument);
        }
    }

    fn retention(&mut self, name: &'static str, hours: u32, increase: bool) {
        let result = self.on_stream(name, |s| match increase {
            true => s.increase_retention(hours).wait(),
            false => s.decrease_retention(hours).wait(),
        });
        let in_range = (24..=8760).contains(&hours);
        let Some(current) = self.model.get(name).map(|s| s.retention_hours) else {
            // A missing stream has no handle to call, whatever the hours. (The server checks
            // the range first, as Kinesis does: its behaviour tests pin that order.)
            assert_eq!(result.unwrap_err().code(), ErrorCode::ResourceNotFound);
            return;
        };
        let right_way = if increase {
            hours >= current
        } else {
            hours <= current
        };
        match result {
            Ok(()) if in_range && right_way => {
                self.model.get_mut(name).expect("checked").retention_hours = hours;
            }
            Err(e) if in_range && right_way => {
                self.metadata_failed(name, Unsure::Retention(hours), &e);
            }
            result => {
                let code = result.unwrap_err().code();
                assert!(
                    matches!(code, ErrorCode::InvalidArgument | ErrorCode::Validation),
                    "{code:?}"
                );
            }
        }
        // A failed change has not taken effect (yet).
        let expected = self.model[name].retention_hours;
        let summary = self.engine().stream(name).unwrap().summary().unwrap();
        assert_eq!(summary.retention_hours, expected);
    }

    /// Cuts the device, closes the engine, loses unsynced writes as `loss` says (nothing: a
    /// crash that keeps the page cache), reopens and checks.
    fn power_cut(&mut self, loss: Option<PowerLoss>, step: usize) {
        self.faults.cut_power();
        self.engine = None;
        if let Some(loss) = loss {
            let lost = self.faults.lose_power(loss).expect("undo unsynced writes");
            count(&STATS.writes_lost, lost as u64);
        }
        count(&STATS.crashes, 1);
        self.faults.heal();
        let allowed = if loss.is_some() {
            Allowed::VisibleToo
        } else {
            Allowed::Uncertain
        };
        self.reopen(allowed, step);
    }

    /// Reopens the engine and checks every stream, settling what the model was unsure of.
    fn reopen(&mut self, allowed: Allowed, step: usize) {
        self.faults.heal();
        self.engine = Some(open(&self.dir, &self.faults, self.sync_scope));
        (self.armed, self.may_be_latched) = (false, false);
        self.fired_at_open = self.faults.faults_fired();
        self.settle_unsure_changes(step);
        for name in STREAMS {
            let Some(stream) = self.model.get(name) else {
                assert!(self.engine().stream(name).is_err());
                continue;
            };
            let summary = self.engine().stream(name).unwrap().summary().unwrap();
            assert_eq!(
                summary.retention_hours, stream.retention_hours,
                "step {step}"
            );
            assert_open_shards_partition(self.engine(), name, &format!("step {step}"));
            let engine = self.engine.as_ref().expect("just opened");
            let actual = read_stream_records(engine, name);
            let stream = self.model.get_mut(name).expect("checked above");
            stream.keys = settle(&stream.keys, &actual, allowed, true, step);
        }
        // Opening syncs whatever recovery kept (a crashed process may never have synced it):
        // every record there now must survive the next power loss.
        self.every_record_is(Status::Durable);
    }

    /// After a reopen: each failed stream change happened if the engine now says so.
    fn settle_unsure_changes(&mut self, step: usize) {
        let unsure = std::mem::take(&mut self.unsure);
        for name in STREAMS {
            let changes: Vec<Unsure> = unsure
                .iter()
                .filter(|(n, _)| *n == name)
                .map(|(_, change)| *change)
                .collect();
            if changes.is_empty() {
                continue;
            }
            let context = format!("step {step}: {name} after {changes:?}");
            match self.engine().stream(name).and_then(|s| s.summary()) {
                Ok(summary) => {
                    if !self.model.contains_key(name) {
                        assert!(changes.contains(&Unsure::Created), "{context}");
                        let created = StreamModel {
                            retention_hours: 24,
                            ..StreamModel::default()
                        };
                        self.model.insert(name, created);
                    }
                    let stream = self.model.get_mut(name).expect("inserted above");
                    let actual = summary.retention_hours;
                    assert!(
                        actual == stream.retention_hours
                            || changes.contains(&Unsure::Retention(actual)),
                        "{context}: retention {actual}"
                    );
                    stream.retention_hours = actual;
                }
                Err(e) => {
                    assert_eq!(e.code(), ErrorCode::ResourceNotFound, "{context}: {e}");
                    if changes.contains(&Unsure::Deleted) {
                        self.model.remove(name);
                    }
                }
            }
        }
    }

    fn every_record_is(&mut self, status: Status) {
        for stream in self.model.values_mut() {
            for entry in stream.keys.values_mut().flatten() {
                entry.status = status;
            }
        }
    }

    /// Reads the stream and checks it against the model (without settling: a record whose
    /// put failed may show up or not).
    fn compare(&mut self, name: &'static str, reader: Reader, step: usize) {
        let engine = self.engine();
        let Some(stream) = self.model.get(name) else {
            assert_eq!(
                engine.stream(name).unwrap_err().code(),
                ErrorCode::ResourceNotFound
            );
            return;
        };
        let actual = match reader {
            Reader::Lineage => read_stream_records(engine, name),
            Reader::Push => subscribe_to_every_shard(engine, name),
        };
        settle(&stream.keys, &actual, Allowed::Uncertain, false, step);
    }
}

impl Harness {
    fn iterate(&self, name: &'static str, pick: u16, step: usize) {
        let engine = self.engine();
        let Some(stream) = self.model.get(name) else {
            assert!(engine.stream(name).is_err());
            return;
        };
        let entries: Vec<&Entry> = stream.keys.values().flatten().collect();
        let acked: Vec<&Entry> = entries
            .iter()
            .copied()
            .filter(|e| e.seq.is_some())
            .collect();
        let Some(&picked) = acked.get(usize::from(pick) % acked.len().max(1)) else {
            return;
        };
        let (seq, shard_index) = (picked.seq.expect("acked"), picked.shard.expect("acked"));
        let shard = &sluice_core::ShardId::new(shard_index);
        let context = format!("step {step}: {name} {shard} {seq}");
        // The model knows every record of the shard in order only when it knows every
        // record's number: a failed put's record that turned out to be there has none.
        let exact = entries.iter().all(|e| e.seq.is_some());
        let mut in_shard: Vec<&Entry> = acked
            .iter()
            .copied()
            .filter(|e| e.shard == Some(shard_index))
            .collect();
        in_shard.sort_by_key(|e| e.seq);

        let got = engine.stream(name).unwrap().get(seq).unwrap();
        let record = got.records().next().expect(&context);
        assert_eq!(
            (record.sequence_number, record.data),
            (seq, &picked.data[..]),
            "{context}"
        );
        let arrival = record.arrival_timestamp_ms;

        let first = |start| first_record(engine, name, shard, start);
        let at = first(IteratorStart::AtSequenceNumber(seq)).expect(&context);
        assert_eq!((at.0, &at.1), (seq, &picked.data), "AT {context}");

        let after = first(IteratorStart::AfterSequenceNumber(seq));
        if let Some((next_seq, _, _)) = &after {
            assert!(*next_seq > seq, "AFTER {context}");
        }
        if exact {
            let expected = in_shard.iter().find(|e| e.seq > Some(seq));
            assert_eq!(
                after.map(|a| a.1),
                expected.map(|e| e.data.clone()),
                "AFTER {context}"
            );
            let horizon = first(IteratorStart::TrimHorizon).map(|r| r.1);
            assert_eq!(
                horizon.as_ref(),
                Some(&in_shard[0].data),
                "TRIM_HORIZON {context}"
            );
        }

        let (at_time_seq, _, at_time_arrival) =
            first(IteratorStart::AtTimestamp(arrival)).expect(&context);
        assert!(
            at_time_seq <= seq && at_time_arrival >= arrival,
            "AT_TIMESTAMP {context}"
        );

        let mut latest = engine
            .stream(name)
            .unwrap()
            .shard_iterator(shard, IteratorStart::Latest)
            .unwrap();
        let records = engine.get_records(&mut latest, None).unwrap();
        assert_eq!(records.records().count(), 0, "LATEST {context}");
    }
}

/// The first record of `shard` from `start`, if any: (number, data, arrival time).
fn first_record(
    engine: &Engine,
    name: &str,
    shard: &sluice_core::ShardId,
    start: IteratorStart,
) -> Option<(SequenceNumber, Vec<u8>, u64)> {
    let mut iterator = engine
        .stream(name)
        .unwrap()
        .shard_iterator(shard, start)
        .unwrap();
    // Reads may come back empty at a hole in the numbering (after a power loss): read on
    // while the position moves.
    loop {
        let before = iterator.position();
        let records = engine.get_records(&mut iterator, Some(1)).unwrap();
        if let Some(r) = records.records().next() {
            return Some((r.sequence_number, r.data.to_vec(), r.arrival_timestamp_ms));
        }
        if records.end_of_shard || iterator.position() == before {
            return None;
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Reader {
    Lineage,
    Push,
}

fn open(dir: &Path, faults: &FaultyIo<GlommioIo>, sync_scope: SyncScope) -> Engine {
    let mut config = EngineConfig::new(dir);
    config.sync_scope = sync_scope;
    config.cores = 2;
    config.segment_size_bytes = 256 << 10;
    config.testing.io_faults = Some(faults.clone());
    Engine::open(config).unwrap()
}

/// Checks what the engine returned (`actual`, key → data in read order) against the model and
/// returns the model settled on it (after a reopen, failed puts' records are there or gone for
/// good; a read settles nothing): every record present in the model's order, nothing that
/// was never put, missing records only where `allowed` says, and acknowledged records missing
/// only as whole batches that are the last ones of their shard.
fn settle(
    expected: &BTreeMap<String, Vec<Entry>>,
    actual: &Found,
    allowed: Allowed,
    reopened: bool,
    step: usize,
) -> BTreeMap<String, Vec<Entry>> {
    for key in actual.keys() {
        assert!(
            expected.contains_key(key),
            "step {step}: records of a key never put: {key}"
        );
    }
    let mut settled = BTreeMap::new();
    let mut losses = Losses::default();
    for (key, entries) in expected {
        let got = actual.get(key).map_or(&[][..], Vec::as_slice);
        let mut next = got.iter().peekable();
        let mut kept = Vec::new();
        for entry in entries {
            if let Some((_, found_seq)) = next.next_if(|(data, _)| *data == entry.data) {
                let mut entry = entry.clone();
                if let Some(seq) = entry.seq {
                    assert_eq!(
                        seq, *found_seq,
                        "step {step}: a record of {key} changed number"
                    );
                } else if reopened {
                    // A failed put's record that is there: from now on it is known exactly.
                    count(&STATS.failed_found, 1);
                    entry.status = Status::Visible;
                    entry.seq = Some(*found_seq);
                    entry.shard = found_seq.shard_index();
                }
                losses.present(&entry);
                kept.push(entry);
                continue;
            }
            let may_miss = match entry.status {
                Status::Durable => false,
                Status::Visible => allowed == Allowed::VisibleToo,
                Status::Uncertain => true,
            };
            assert!(
                may_miss,
                "step {step}: {:?} record {} of {key} is missing",
                entry.status,
                String::from_utf8_lossy(&entry.data)
            );
            losses.lost(entry);
            match entry.status {
                Status::Visible => count(&STATS.visible_records_lost, 1),
                Status::Uncertain if reopened => count(&STATS.failed_absent, 1),
                // Not settled by a read: it stays a maybe until the engine reopens.
                _ => kept.push(entry.clone()),
            }
        }
        if let Some((extra, _)) = next.next() {
            panic!(
                "step {step}: {key} has a record out of order, repeated or never put: {}",
                String::from_utf8_lossy(extra)
            );
        }
        if !kept.is_empty() {
            settled.insert(key.clone(), kept);
        }
    }
    losses.check(step);
    settled
}

/// What `settle` found present and missing, by batch and by shard.
#[derive(Default)]
struct Losses {
    present_batches: BTreeSet<(usize, u32)>,
    lost_batches: BTreeSet<(usize, u32)>,
    /// Per shard: the highest number still there, and the lowest one lost.
    highest_present: BTreeMap<u32, SequenceNumber>,
    lowest_lost: BTreeMap<u32, SequenceNumber>,
}

impl Losses {
    fn present(&mut self, entry: &Entry) {
        self.present_batches.extend(entry.batch());
        if let (Some(shard), Some(seq)) = (entry.shard, entry.seq) {
            let highest = self.highest_present.entry(shard).or_insert(seq);
            *highest = (*highest).max(seq);
        }
    }

    fn lost(&mut self, entry: &Entry) {
        self.lost_batches.extend(entry.batch());
        if let (Some(shard), Some(seq)) = (entry.shard, entry.seq) {
            let lowest = self.lowest_lost.entry(shard).or_insert(seq);
            *lowest = (*lowest).min(seq);
        }
    }

    /// Acknowledged records go missing only as whole batches that are the last ones of their
    /// shard.
    fn check(&self, step: usize) {
        let torn: Vec<_> = self
            .present_batches
            .intersection(&self.lost_batches)
            .collect();
        assert!(
            torn.is_empty(),
            "step {step}: batches partly lost: {torn:?}"
        );
        // What a shard lost is its end: nothing it kept comes after anything it lost.
        for (shard, lowest) in &self.lowest_lost {
            if let Some(highest) = self.highest_present.get(shard) {
                assert!(
                    highest < lowest,
                    "step {step}: shard {shard} lost record {lowest} but kept {highest}"
                );
            }
        }
    }
}

/// Every record of the stream through push subscriptions, one per shard in index order
/// (parents before children), each resubscribed once AFTER the checkpoint its first event
/// gives (the number below its continuation), as KCL resumes.
fn subscribe_to_every_shard(engine: &Engine, stream: &str) -> Found {
    let mut shards = all_shards(engine, stream);
    shards.sort_by_key(|s| s.starting_sequence_number);
    let mut found = Found::new();
    let subscribe = |shard: &str, start| {
        engine
            .stream(stream)
            .unwrap()
            .subscribe(shard, start)
            .unwrap()
    };
    for shard in &shards {
        let mut subscription = subscribe(&shard.shard_id, IteratorStart::TrimHorizon);
        let mut resumed = false;
        // `None`: caught up (nothing more within the wait) or past the end of a closed shard.
        while let Some(event) = subscription
            .next_blocking(Duration::from_millis(5))
            .unwrap()
        {
            for record in event.records.records() {
                found
                    .entry(record.partition_key.to_owned())
                    .or_default()
                    .push((record.data.to_vec(), record.sequence_number));
            }
            if event.records.end_of_shard {
                break;
            }
            if !resumed {
                resumed = true;
                let checkpoint = event.continuation_sequence_number.checkpoint();
                subscription = subscribe(
                    &shard.shard_id,
                    IteratorStart::AfterSequenceNumber(checkpoint),
                );
            }
        }
    }
    found
}
