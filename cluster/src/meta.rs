//! The control plane's typed layer over a [`Backend`]: node registration with leases, the
//! controller's election (etcd's recipe: the oldest candidate key under `controller/` leads,
//! each candidate waiting for the deletion of the one just older than its own), the stream
//! map read as a snapshot and followed by a watch, and changes written only by the
//! controller, fenced by its election key's creation revision.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::backend::{Backend, BackendWatch, Compare, Kv, KvEvent, LeaseId, Op};
use crate::error::MetaError;
use crate::lease::KeptLease;
use crate::model::{NodeId, NodeInfo, Revision, StreamPlacement, Versioned};

const NODES: &str = "nodes/";
const CONTROLLER: &str = "controller/";
const STREAMS: &str = "streams/";
const UID_NEXT: &str = "uid-next";
const SECRETS: &str = "secrets/";
const ACCOUNT: &str = "account/";
const CLAIMS: &str = "claims/";
const QUIET: &str = "quiet/";
const IDENTITIES: &str = "identities/";
const GONE: &str = "gone/";
/// Under `GONE`: each holder's time, and when the office last confirmed them.
const GONE_NODE: &str = "node/";
const GONE_WATCHED: &str = "watched";
const RAFT_IDS: &str = "raft-ids/";
/// How long a candidate waits before asking a store that failed again.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// The control plane of one cluster, under `/sluice/<cluster>/` in the store.
#[derive(Clone)]
pub struct ClusterMeta<B: Backend> {
    backend: B,
    prefix: String,
}

/// Everything the store says about the cluster, at one revision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The revision it was read at: a watch from `revision + 1` continues it.
    pub revision: Revision,
    /// The live nodes.
    pub nodes: BTreeMap<NodeId, NodeInfo>,
    /// The elected controller, if any.
    pub controller: Option<NodeId>,
    /// Every stream, with the revision a change must name to replace it.
    pub streams: BTreeMap<String, Versioned<StreamPlacement>>,
    /// The next stream uid (1 in an empty store, revision 0: absent).
    pub uid_next: Versioned<u64>,
}

/// A change the controller writes; each names the revision of what it replaces, so a
/// controller acting on a stale read writes nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "a change lives for one map write, a few at a time: boxing the entry saves nothing"
)]
pub enum Change {
    /// Writes a stream's entry; `replaces` is the revision read, `None` when it must not exist.
    PutStream {
        /// The new entry.
        placement: StreamPlacement,
        /// The revision of the entry it replaces.
        replaces: Option<Revision>,
    },
    /// Removes a stream's entry.
    DeleteStream {
        /// The stream.
        name: String,
        /// The revision of the entry it removes.
        replaces: Revision,
    },
    /// Moves the uid counter (`replaces` as in `Snapshot::uid_next`, 0 when absent).
    UidNext {
        /// The next uid to give.
        next: u64,
        /// The revision of the counter read.
        replaces: Revision,
    },
}

/// Who holds a claim (see [`ClusterMeta::claim`]) and since when.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Claim {
    /// Who holds it: a node and something of its own, unique among its claims.
    pub holder: String,
    /// When it was taken, ms since the epoch, by the claiming node's clock (for people:
    /// the quiet time is the store's).
    pub since_ms: u64,
}

/// One change to the cluster as a watch sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterEvent {
    /// A node registered (or re-registered).
    NodeJoined(NodeInfo),
    /// A node's registration ended: revoked, or its lease expired.
    NodeLeft(NodeId),
    /// A stream's entry was written.
    StreamChanged(Versioned<StreamPlacement>),
    /// A stream's entry was removed.
    StreamRemoved(String),
    /// The set of controller candidates changed (who leads: `ClusterMeta::controller`).
    ControllerCandidates,
}

/// A node's presence in the cluster, held while the node runs.
pub struct Registration<B: Backend> {
    lease: KeptLease<B>,
    node: NodeInfo,
}

/// The controller's office, held from election to resignation or loss.
pub struct Leadership<B: Backend> {
    lease: KeptLease<B>,
    key: String,
    revision: Revision,
    node: NodeId,
}

/// What controllers recorded of replica holders gone ([`ClusterMeta::gone_times`]): ms by
/// the recording office's clock (its wall clock at election, counted on monotonically).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GoneTimes {
    /// When each holder was first seen gone.
    pub since: BTreeMap<NodeId, u64>,
    /// When an office last confirmed every holder in `since` still gone.
    pub watched: Option<u64>,
}

/// A watch on the whole cluster.
pub struct ClusterWatch<W: BackendWatch> {
    inner: W,
    prefix: String,
    /// An error ended the watch: later changes may be missing, so none are delivered.
    ended: bool,
}

impl<B: Backend> ClusterMeta<B> {
    /// The control plane of `cluster` (a name made of `A-Z a-z 0-9 . _ -`).
    pub fn new(backend: B, cluster: &str) -> Result<ClusterMeta<B>, MetaError> {
        StreamPlacement::check_name(cluster).map_err(|_| MetaError::InvalidName {
            what: "cluster name",
            name: cluster.to_owned(),
        })?;
        Ok(ClusterMeta {
            backend,
            prefix: format!("/sluice/{cluster}/"),
        })
    }

    /// The store underneath.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Registers `node` under a lease of `ttl`, renewed until the registration is dropped or
    /// revoked. Fails with `NodeIdTaken` while another live lease holds the id.
    pub async fn register(
        &self,
        node: NodeInfo,
        ttl: Duration,
    ) -> Result<Registration<B>, MetaError> {
        let lease = KeptLease::grant(&self.backend, ttl).await?;
        let key = format!("{}{NODES}{}", self.prefix, node.id);
        let value = serde_json::to_vec(&node).expect("a NodeInfo always encodes");
        // A node back ends any count of its time gone that a controller kept: one elected
        // next does not take over a time from before this registration.
        let gone = format!("{}{GONE}{GONE_NODE}{}", self.prefix, node.id);
        let outcome = self
            .backend
            .txn(
                vec![Compare::CreateRevision(key.clone(), 0)],
                vec![
                    Op::Put {
                        key,
                        value,
                        lease: lease.id(),
                    },
                    Op::Delete(gone),
                ],
            )
            .await?;
        if !outcome.succeeded {
            return Err(MetaError::NodeIdTaken(node.id.to_string()));
        }
        Ok(Registration { lease, node })
    }

    /// Stands as controller for `node` and waits until elected. The candidacy has a lease of
    /// its own (`ttl`): a controller that stops renewing it is deposed within `ttl`.
    pub async fn campaign(&self, node: &NodeId, ttl: Duration) -> Result<Leadership<B>, MetaError> {
        let lease = KeptLease::grant(&self.backend, ttl).await?;
        let candidates = format!("{}{CONTROLLER}", self.prefix);
        let key = format!("{candidates}{:016x}", lease.id());
        let put = Op::Put {
            key: key.clone(),
            value: node.as_str().as_bytes().to_vec(),
            lease: lease.id(),
        };
        let outcome = self
            .backend
            .txn(vec![Compare::CreateRevision(key.clone(), 0)], vec![put])
            .await?;
        if !outcome.succeeded {
            return Err(MetaError::Conflict {
                key: self.relative(&key).to_owned(),
            });
        }
        let revision = outcome.revision;
        loop {
            // A store that fails for a moment costs the candidate nothing but time; its
            // place in the queue is lost only with its lease.
            let (kvs, read_at) = match self.backend.range(&candidates).await {
                Ok(read) => read,
                Err(MetaError::Unavailable(_)) if lease.is_alive() => {
                    tokio::time::sleep(RETRY_PAUSE).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if !kvs
                .iter()
                .any(|kv| kv.key == key && kv.create_revision == revision)
            {
                return Err(MetaError::LeaseExpired);
            }
            // The candidate just older than this one; none: this one is the oldest and leads.
            let Some(before) = kvs
                .iter()
                .filter(|kv| kv.create_revision < revision)
                .max_by_key(|kv| kv.create_revision)
            else {
                return Ok(Leadership {
                    lease,
                    key,
                    revision,
                    node: node.clone(),
                });
            };
            // Wait for it to go, then read the candidates again (an older one may remain).
            match self.deletion(&before.key, read_at + 1, &lease).await {
                Ok(()) | Err(MetaError::Compacted { .. }) => {}
                Err(MetaError::Unavailable(_)) if lease.is_alive() => {
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Resolves when `key` is deleted at or after revision `from`; `LeaseExpired` if `lease`
    /// is lost first.
    async fn deletion(
        &self,
        key: &str,
        from: Revision,
        lease: &KeptLease<B>,
    ) -> Result<(), MetaError> {
        let mut watch = self.backend.watch(key, from).await?;
        loop {
            tokio::select! {
                events = watch.next() => {
                    if events?.iter().any(|e| matches!(e, KvEvent::Delete { key: k, .. } if k == key)) {
                        return Ok(());
                    }
                }
                () = lease.lost() => return Err(MetaError::LeaseExpired),
            }
        }
    }

    /// Node `id`'s live registration and the lease it stands on, if it has one.
    pub async fn registration_of(
        &self,
        id: &NodeId,
    ) -> Result<Option<(NodeInfo, LeaseId)>, MetaError> {
        let key = format!("{}{NODES}{id}", self.prefix);
        let (kvs, _) = self.backend.range(&key).await?;
        match kvs.into_iter().find(|kv| kv.key == key) {
            Some(kv) => Ok(Some((decode(&key, &kv.value)?, kv.lease))),
            None => Ok(None),
        }
    }

    /// The leases of node `id`'s candidacies for the controller's office.
    pub async fn candidacies_of(&self, id: &NodeId) -> Result<Vec<LeaseId>, MetaError> {
        let (kvs, _) = self
            .backend
            .range(&format!("{}{CONTROLLER}", self.prefix))
            .await?;
        Ok(kvs
            .into_iter()
            .filter(|kv| kv.value == id.as_str().as_bytes())
            .map(|kv| kv.lease)
            .collect())
    }

    /// The node that leads now: the oldest candidate.
    pub async fn controller(&self) -> Result<Option<NodeId>, MetaError> {
        let (kvs, _) = self
            .backend
            .range(&format!("{}{CONTROLLER}", self.prefix))
            .await?;
        oldest_candidate(&kvs, &self.prefix)
    }

    /// The cluster-wide secret `name` (a value every node must agree on, such as the key
    /// that signs iterator tokens): the stored one, or `candidate`, stored now, if there is
    /// none yet (the first node to ask stores its own; the others get it).
    pub async fn shared_secret(
        &self,
        name: &str,
        candidate: Vec<u8>,
    ) -> Result<Vec<u8>, MetaError> {
        let key = format!("{}{SECRETS}{name}", self.prefix);
        let put = Op::Put {
            key: key.clone(),
            value: candidate,
            lease: 0,
        };
        let when_absent = vec![Compare::CreateRevision(key.clone(), 0)];
        self.backend.txn(when_absent, vec![put]).await?;
        self.secret(name)
            .await?
            .ok_or_else(|| MetaError::Unavailable(format!("secret {name} vanished once stored")))
    }

    /// Secret `name`, if one is stored (see [`ClusterMeta::shared_secret`]).
    pub async fn secret(&self, name: &str) -> Result<Option<Vec<u8>>, MetaError> {
        self.value(&format!("{SECRETS}{name}")).await
    }

    /// Account-wide setting `name` as the store has it now.
    pub async fn account_setting(&self, name: &str) -> Result<Option<Vec<u8>>, MetaError> {
        self.value(&format!("{ACCOUNT}{name}")).await
    }

    /// Sets account-wide setting `name`, written by the node that took the call: the last
    /// write wins (no invariant spans an account's settings and the streams, so the
    /// controller need not check it).
    pub async fn set_account_setting(&self, name: &str, value: Vec<u8>) -> Result<(), MetaError> {
        let put = Op::Put {
            key: format!("{}{ACCOUNT}{name}", self.prefix),
            value,
            lease: 0,
        };
        self.backend.txn(Vec::new(), vec![put]).await?;
        Ok(())
    }

    /// The data directory node `node` runs on, as it recorded it
    /// ([`ClusterMeta::record_identity`]).
    pub async fn identity_of(&self, node: &NodeId) -> Result<Option<String>, MetaError> {
        let key = format!("{IDENTITIES}{node}");
        let Some(value) = self.value(&key).await? else {
            return Ok(None);
        };
        let identity = String::from_utf8(value).map_err(|e| MetaError::Corrupt {
            key,
            reason: e.to_string(),
        })?;
        Ok(Some(identity))
    }

    /// Records `identity` as the data directory node `node` runs on, unless one is recorded
    /// already; whether it was written. Kept for good (no lease, never replaced): a node id
    /// runs on its directory only (docs/design/cluster.md, "A node's data directory").
    pub async fn record_identity(&self, node: &NodeId, identity: &str) -> Result<bool, MetaError> {
        let key = format!("{}{IDENTITIES}{node}", self.prefix);
        let when_absent = vec![Compare::CreateRevision(key.clone(), 0)];
        let put = Op::Put {
            key,
            value: identity.as_bytes().to_vec(),
            lease: 0,
        };
        Ok(self.backend.txn(when_absent, vec![put]).await?.succeeded)
    }

    /// Claims `node`'s Raft number ([`NodeId::raft_id`], a hash of its id) for it, for good:
    /// refused with `RaftIdTaken` when another id claimed the same number (two members of a
    /// group under one number would count as one voter, with two logs). Claiming it again
    /// for the same id is nothing.
    pub async fn claim_raft_id(&self, node: &NodeId) -> Result<(), MetaError> {
        let number = node.raft_id();
        let key = format!("{}{RAFT_IDS}{number:016x}", self.prefix);
        let when_absent = vec![Compare::CreateRevision(key.clone(), 0)];
        let put = Op::Put {
            key: key.clone(),
            value: node.as_str().as_bytes().to_vec(),
            lease: 0,
        };
        if self.backend.txn(when_absent, vec![put]).await?.succeeded {
            return Ok(());
        }
        let holder = self.backend.get(&key).await?.map(|kv| kv.value);
        match holder {
            Some(holder) if holder == node.as_str().as_bytes() => Ok(()),
            Some(holder) => Err(MetaError::RaftIdTaken {
                node: node.to_string(),
                other: String::from_utf8_lossy(&holder).into_owned(),
                number,
            }),
            None => Err(MetaError::Unavailable(format!(
                "{key} was claimed and is gone"
            ))),
        }
    }

    /// The times controllers recorded of replica holders first seen gone, and when one last
    /// confirmed them ([`ClusterMeta::write_gone`]). An entry that does not parse is left
    /// out: a time only allows a repair sooner, so one missing just starts its count again.
    pub async fn gone_times(&self) -> Result<GoneTimes, MetaError> {
        let prefix = format!("{}{GONE}", self.prefix);
        let (kvs, _) = self.backend.range(&prefix).await?;
        let ms = |value: &[u8]| std::str::from_utf8(value).ok()?.parse::<u64>().ok();
        let mut times = GoneTimes::default();
        for kv in kvs {
            let Some(name) = kv.key.strip_prefix(&prefix) else {
                continue;
            };
            if name == GONE_WATCHED {
                times.watched = ms(&kv.value);
            } else if let (Some(id), Some(since)) = (
                name.strip_prefix(GONE_NODE)
                    .and_then(|id| NodeId::new(id.to_owned()).ok()),
                ms(&kv.value),
            ) {
                times.since.insert(id, since);
            }
        }
        Ok(times)
    }

    /// Records the times `record` (node, first seen gone), removes those of `forget`, and,
    /// given, the time the office last confirmed every holder it counts still gone: one
    /// transaction, fenced by `leadership` (`Fenced` once it is lost).
    pub async fn write_gone(
        &self,
        leadership: &Leadership<B>,
        record: &[(NodeId, u64)],
        forget: &[NodeId],
        watched: Option<u64>,
    ) -> Result<(), MetaError> {
        let key = |name: String| format!("{}{GONE}{name}", self.prefix);
        let put = |name: String, ms: u64| Op::Put {
            key: key(name),
            value: ms.to_string().into_bytes(),
            lease: 0,
        };
        let mut writes: Vec<Op> = (record.iter())
            .map(|(id, since)| put(format!("{GONE_NODE}{id}"), *since))
            .collect();
        writes.extend(
            forget
                .iter()
                .map(|id| Op::Delete(key(format!("{GONE_NODE}{id}")))),
        );
        writes.extend(watched.map(|ms| put(GONE_WATCHED.to_owned(), ms)));
        let fence = vec![Compare::CreateRevision(
            leadership.key.clone(),
            leadership.revision,
        )];
        match self.backend.txn(fence, writes).await?.succeeded {
            true => Ok(()),
            false => Err(MetaError::Fenced),
        }
    }

    /// Claims `name` for `claim.holder`, taking it over from any earlier holder, unless a
    /// claim on it was granted less than `quiet` ago: then the claim that stands is
    /// returned. The quiet time is timed by the store (a key under a lease of `quiet`
    /// written with the claim), not by any node's clock. Granted, the revision that holds
    /// the claim (for [`ClusterMeta::release`]). The store orders claims made at once: one
    /// of two wins.
    pub async fn claim(
        &self,
        name: &str,
        claim: &Claim,
        quiet: Duration,
    ) -> Result<Result<Revision, Claim>, MetaError> {
        let key = format!("{}{CLAIMS}{name}", self.prefix);
        let quiet_key = format!("{}{QUIET}{name}", self.prefix);
        let value = serde_json::to_vec(claim).expect("a claim encodes");
        let lease = self.backend.grant(quiet).await?;
        loop {
            let held = self.claim_of(name).await?;
            let unchanged = match &held {
                Some((_, revision)) => Compare::ModRevision(key.clone(), *revision),
                None => Compare::CreateRevision(key.clone(), 0),
            };
            let quiet_over = Compare::CreateRevision(quiet_key.clone(), 0);
            let put = Op::Put {
                key: key.clone(),
                value: value.clone(),
                lease: 0,
            };
            let hold_quiet = Op::Put {
                key: quiet_key.clone(),
                value: Vec::new(),
                lease,
            };
            let when = vec![unchanged, quiet_over];
            let outcome = self.backend.txn(when, vec![put, hold_quiet]).await?;
            if outcome.succeeded {
                return Ok(Ok(outcome.revision));
            }
            if self.backend.get(&quiet_key).await?.is_some() {
                let _ = self.backend.revoke(lease).await;
                let standing = self.claim_of(name).await?.map(|(claim, _)| claim);
                return Ok(Err(standing.unwrap_or_else(|| claim.clone())));
            }
            // Another claim came between the read and the write: judged again against it.
        }
    }

    /// The claim on `name`, if any, with the revision that wrote it.
    pub async fn claim_of(&self, name: &str) -> Result<Option<(Claim, Revision)>, MetaError> {
        let key = format!("{}{CLAIMS}{name}", self.prefix);
        let Some(kv) = self.backend.get(&key).await? else {
            return Ok(None);
        };
        let claim = decode(self.relative(&kv.key), &kv.value)?;
        Ok(Some((claim, kv.mod_revision)))
    }

    /// Removes the claim on `name` if it is still the one written at `revision`.
    pub async fn release(&self, name: &str, revision: Revision) -> Result<(), MetaError> {
        let key = format!("{}{CLAIMS}{name}", self.prefix);
        let unchanged = vec![Compare::ModRevision(key.clone(), revision)];
        self.backend.txn(unchanged, vec![Op::Delete(key)]).await?;
        Ok(())
    }

    /// The value of `key` (under the cluster's prefix) as the store has it now.
    async fn value(&self, key: &str) -> Result<Option<Vec<u8>>, MetaError> {
        let key = format!("{}{key}", self.prefix);
        Ok(self.backend.get(&key).await?.map(|kv| kv.value))
    }

    /// Every stream whose name starts with `prefix`, as the store has it now: a quorum
    /// read, so never older than a write any node has seen answered (a node's map follows
    /// the store a moment behind).
    pub async fn streams_named(
        &self,
        prefix: &str,
    ) -> Result<BTreeMap<String, Versioned<StreamPlacement>>, MetaError> {
        let (kvs, _) = self
            .backend
            .range(&format!("{}{STREAMS}{prefix}", self.prefix))
            .await?;
        let mut streams = BTreeMap::new();
        for kv in kvs {
            let key = self.relative(&kv.key);
            let name = &key[STREAMS.len()..];
            let value = decode(key, &kv.value)?;
            let entry = Versioned {
                value,
                revision: kv.mod_revision,
            };
            streams.insert(name.to_owned(), entry);
        }
        Ok(streams)
    }

    /// Stream `name`'s entry as the store has it now (see [`ClusterMeta::streams_named`]).
    pub async fn stream(
        &self,
        name: &str,
    ) -> Result<Option<Versioned<StreamPlacement>>, MetaError> {
        let key = format!("{}{STREAMS}{name}", self.prefix);
        let Some(kv) = self.backend.get(&key).await? else {
            return Ok(None);
        };
        let value = decode(self.relative(&kv.key), &kv.value)?;
        Ok(Some(Versioned {
            value,
            revision: kv.mod_revision,
        }))
    }

    /// Reads the whole cluster at one revision.
    pub async fn snapshot(&self) -> Result<Snapshot, MetaError> {
        let (kvs, revision) = self.backend.range(&self.prefix).await?;
        let mut snapshot = Snapshot {
            revision,
            uid_next: Versioned {
                value: 1,
                revision: 0,
            },
            ..Snapshot::default()
        };
        let mut candidates = Vec::new();
        for kv in kvs {
            let key = self.relative(&kv.key);
            if key.starts_with(NODES) {
                let node: NodeInfo = decode(key, &kv.value)?;
                snapshot.nodes.insert(node.id.clone(), node);
            } else if let Some(name) = key.strip_prefix(STREAMS) {
                let value: StreamPlacement = decode(key, &kv.value)?;
                snapshot.streams.insert(
                    name.to_owned(),
                    Versioned {
                        value,
                        revision: kv.mod_revision,
                    },
                );
            } else if key == UID_NEXT {
                snapshot.uid_next = Versioned {
                    value: decode(key, &kv.value)?,
                    revision: kv.mod_revision,
                };
            } else if key.starts_with(CONTROLLER) {
                candidates.push(kv);
            }
        }
        snapshot.controller = oldest_candidate(&candidates, &self.prefix)?;
        Ok(snapshot)
    }

    /// Writes `changes` in one transaction if `leadership` still holds and every entry is
    /// still at the revision the change names; writes nothing otherwise (`Fenced`,
    /// `Conflict`). Returns the revision of the write.
    pub async fn commit(
        &self,
        leadership: &Leadership<B>,
        changes: &[Change],
    ) -> Result<Revision, MetaError> {
        let mut when = vec![Compare::CreateRevision(
            leadership.key.clone(),
            leadership.revision,
        )];
        let mut then = Vec::with_capacity(changes.len());
        for change in changes {
            let (key, replaces, op) = self.change_op(change)?;
            if when
                .iter()
                .any(|c| matches!(c, Compare::ModRevision(k, _) if *k == key))
            {
                return Err(MetaError::InvalidRequest(format!(
                    "two changes to {} in one commit",
                    self.relative(&key)
                )));
            }
            when.push(Compare::ModRevision(key, replaces));
            then.push(op);
        }
        let outcome = self.backend.txn(when.clone(), then).await?;
        if outcome.succeeded {
            return Ok(outcome.revision);
        }
        // Say which condition failed, from one read of the whole cluster (so the answer is
        // of one moment): the office first (a deposed controller's view of the entries is not
        // worth reporting), then the first entry that moved. Conflicts are rare.
        let (kvs, _) = self.backend.range(&self.prefix).await?;
        for compare in &when {
            let (Compare::CreateRevision(key, _) | Compare::ModRevision(key, _)) = compare;
            let current = kvs.iter().find(|kv| kv.key == *key);
            let holds = match compare {
                Compare::CreateRevision(_, rev) => {
                    current.map_or(0, |kv| kv.create_revision) == *rev
                }
                Compare::ModRevision(_, rev) => current.map_or(0, |kv| kv.mod_revision) == *rev,
            };
            if !holds {
                if *key == leadership.key {
                    return Err(MetaError::Fenced);
                }
                return Err(MetaError::Conflict {
                    key: self.relative(key).to_owned(),
                });
            }
        }
        // Everything holds again now (a change came and went): the caller reads and retries.
        Err(MetaError::Conflict { key: String::new() })
    }

    /// Every change to the cluster after `from` (give a snapshot's `revision + 1`).
    pub async fn watch(&self, from: Revision) -> Result<ClusterWatch<B::Watch>, MetaError> {
        let inner = self.backend.watch(&self.prefix, from).await?;
        Ok(ClusterWatch {
            inner,
            prefix: self.prefix.clone(),
            ended: false,
        })
    }

    fn change_op(&self, change: &Change) -> Result<(String, Revision, Op), MetaError> {
        Ok(match change {
            Change::PutStream {
                placement,
                replaces,
            } => {
                StreamPlacement::check_name(&placement.name)?;
                let key = format!("{}{STREAMS}{}", self.prefix, placement.name);
                let value =
                    serde_json::to_vec(placement).expect("a StreamPlacement always encodes");
                (
                    key.clone(),
                    replaces.unwrap_or(0),
                    Op::Put {
                        key,
                        value,
                        lease: 0,
                    },
                )
            }
            Change::DeleteStream { name, replaces } => {
                StreamPlacement::check_name(name)?;
                let key = format!("{}{STREAMS}{name}", self.prefix);
                (key.clone(), *replaces, Op::Delete(key))
            }
            Change::UidNext { next, replaces } => {
                let key = format!("{}{UID_NEXT}", self.prefix);
                (
                    key.clone(),
                    *replaces,
                    Op::Put {
                        key,
                        value: next.to_string().into_bytes(),
                        lease: 0,
                    },
                )
            }
        })
    }

    fn relative<'k>(&self, key: &'k str) -> &'k str {
        key.strip_prefix(&self.prefix).unwrap_or(key)
    }
}

impl<B: Backend> Registration<B> {
    /// The node as registered.
    pub fn node(&self) -> &NodeInfo {
        &self.node
    }

    /// The lease the registration stands on (etcd's id: `etcdctl lease timetolive` shows it).
    pub fn lease(&self) -> LeaseId {
        self.lease.id()
    }

    /// Resolves when the registration is lost (the lease expired: the node was partitioned
    /// from the store for a whole TTL). The node must then stop acting as a member.
    pub async fn lost(&self) {
        self.lease.lost().await;
    }

    /// Leaves the cluster now (the node's key is deleted).
    pub async fn revoke(self) -> Result<(), MetaError> {
        self.lease.revoke().await
    }

    /// Stops renewing without leaving: the key goes when the lease runs out, as a crashed
    /// node's would. For fault tests.
    pub fn stop_renewing(&mut self) {
        self.lease.stop_renewing();
    }
}

impl<B: Backend> Leadership<B> {
    /// The elected node.
    pub fn node(&self) -> &NodeId {
        &self.node
    }

    /// The lease the candidacy stands on.
    pub fn lease(&self) -> LeaseId {
        self.lease.id()
    }

    /// The fencing token: the creation revision of the election key. Every write made under
    /// this leadership is conditional on it.
    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// Whether the office is still known to be held (see `lost`).
    pub fn is_held(&self) -> bool {
        self.lease.is_alive()
    }

    /// Resolves when the office is lost (the candidacy's lease expired or could not be
    /// renewed for a TTL). Writes are fenced either way; this is for stopping work early.
    pub async fn lost(&self) {
        self.lease.lost().await;
    }

    /// Steps down now: the next candidate is elected.
    pub async fn resign(self) -> Result<(), MetaError> {
        self.lease.revoke().await
    }

    /// Stops renewing without resigning, as a hung or partitioned controller would; the
    /// office is kept as an object, so a test can show its writes are fenced. For fault tests.
    pub fn stop_renewing(&mut self) {
        self.lease.stop_renewing();
    }
}

impl<W: BackendWatch> ClusterWatch<W> {
    /// The next changes, in revision order, each with its revision. An error ends the watch
    /// (a later call is `Unavailable`): take a new snapshot and watch from it.
    pub async fn next(&mut self) -> Result<Vec<(Revision, ClusterEvent)>, MetaError> {
        if self.ended {
            return Err(MetaError::Unavailable(
                "this watch ended with an error: take a snapshot and watch again".into(),
            ));
        }
        let result = self.next_events().await;
        self.ended = result.is_err();
        result
    }

    async fn next_events(&mut self) -> Result<Vec<(Revision, ClusterEvent)>, MetaError> {
        loop {
            let events = self.inner.next().await?;
            let mut out = Vec::with_capacity(events.len());
            for event in events {
                let revision = event.revision();
                let key = event
                    .key()
                    .strip_prefix(&self.prefix)
                    .unwrap_or(event.key());
                let typed = match (&event, key) {
                    (KvEvent::Put(kv), k) if k.starts_with(NODES) => {
                        ClusterEvent::NodeJoined(decode(k, &kv.value)?)
                    }
                    (KvEvent::Delete { .. }, k) if k.starts_with(NODES) => {
                        ClusterEvent::NodeLeft(NodeId::new(&k[NODES.len()..])?)
                    }
                    (KvEvent::Put(kv), k) if k.starts_with(STREAMS) => {
                        ClusterEvent::StreamChanged(Versioned {
                            value: decode(k, &kv.value)?,
                            revision: kv.mod_revision,
                        })
                    }
                    (KvEvent::Delete { .. }, k) if k.starts_with(STREAMS) => {
                        ClusterEvent::StreamRemoved(k[STREAMS.len()..].to_owned())
                    }
                    (_, k) if k.starts_with(CONTROLLER) => ClusterEvent::ControllerCandidates,
                    _ => continue,
                };
                out.push((revision, typed));
            }
            if !out.is_empty() {
                return Ok(out);
            }
        }
    }
}

fn oldest_candidate(kvs: &[Kv], prefix: &str) -> Result<Option<NodeId>, MetaError> {
    let Some(oldest) = kvs.iter().min_by_key(|kv| kv.create_revision) else {
        return Ok(None);
    };
    let text = std::str::from_utf8(&oldest.value)
        .map_err(|e| corrupt(oldest.key.strip_prefix(prefix).unwrap_or(&oldest.key), e))?;
    NodeId::new(text).map(Some)
}

fn decode<T: serde::de::DeserializeOwned>(key: &str, value: &[u8]) -> Result<T, MetaError> {
    serde_json::from_slice(value).map_err(|e| corrupt(key, e))
}

fn corrupt(key: &str, reason: impl std::fmt::Display) -> MetaError {
    MetaError::Corrupt {
        key: key.to_owned(),
        reason: reason.to_string(),
    }
}
