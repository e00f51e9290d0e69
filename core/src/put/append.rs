//! The core-side half of a put: on the shard's owning core, each shard's encoded batches are
//! appended in order and the replies of one message gathered into one answer.

use super::PutRecord;
use crate::catalog::ShardKey;
use crate::runtime::{AppendGuard, CoreJob, CoreState};
use sluice_storage::{Appended, Durability, EncodedBatch, RECORD_FLAG_ENCRYPTED, StorageError};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

/// The job that starts `appends` on their core; their replies come back together through
/// `reply`, in the order of `appends`.
pub(super) fn core_job(
    appends: Vec<ShardAppend>,
    durability: Durability,
    reply: oneshot::Sender<Vec<ShardReply>>,
) -> CoreJob {
    Box::new(move |core: &Rc<CoreState>| {
        let gather = Rc::new(ReplyGather::new(appends.len(), reply));
        for (slot, append) in appends.into_iter().enumerate() {
            append.start(core, durability, &gather, slot);
        }
    })
}

/// One shard's part of a put, on its way to the shard's core.
pub(super) struct ShardAppend {
    pub(super) key: ShardKey,
    pub(super) packed: Packed,
}

impl ShardAppend {
    fn start(
        self,
        core: &Rc<CoreState>,
        durability: Durability,
        gather: &Rc<ReplyGather>,
        slot: usize,
    ) {
        let ShardAppend { key, packed } = self;
        // A closed shard may have let go of its writer: the reshard answer comes first.
        if core.is_closing(key) {
            gather.put(slot, ShardReply::Resharded);
            return;
        }
        let Some(log) = core.log(key) else {
            gather.put(slot, ShardReply::Closed);
            return;
        };
        let visible = core.begin_append(key);
        let gather = gather.clone();
        core.spawn(async move {
            gather.put(slot, append_packed(&log, packed, durability, visible).await);
        });
    }
}

/// The replies of one core message's shard appends, sent back together once the last is in.
/// Dropped unsent (the core stopped), the caller sees the whole message's outcome unknown.
struct ReplyGather {
    replies: RefCell<Vec<Option<ShardReply>>>,
    left: Cell<usize>,
    reply: Cell<Option<oneshot::Sender<Vec<ShardReply>>>>,
}

impl ReplyGather {
    fn new(count: usize, reply: oneshot::Sender<Vec<ShardReply>>) -> ReplyGather {
        ReplyGather {
            replies: RefCell::new((0..count).map(|_| None).collect()),
            left: Cell::new(count),
            reply: Cell::new(Some(reply)),
        }
    }

    fn put(&self, slot: usize, reply: ShardReply) {
        self.replies.borrow_mut()[slot] = Some(reply);
        self.left.set(self.left.get() - 1);
        if self.left.get() == 0 {
            let replies = self
                .replies
                .take()
                .into_iter()
                .map(|r| r.expect("every slot replied"))
                .collect();
            if let Some(reply) = self.reply.take() {
                let _ = reply.send(replies);
            }
        }
    }
}

/// What the owning core answers to an append.
pub(super) enum ShardReply {
    /// The batches written, in order, and the failure that stopped the rest, if any.
    Appended {
        batches: Vec<Appended>,
        failure: Option<Arc<StorageError>>,
    },
    /// The shard's log is closed: its stream was deleted.
    Closed,
    /// A reshard is closing the shard: nothing was written; route the records again once the
    /// new layout is in the catalog.
    Resharded,
}

/// Records for one shard, encoded on the caller's thread as the batches the shard's log will
/// write (split where one would outgrow a segment), so the owning core copies nothing: it
/// fills each header, hashes and writes.
pub(super) struct Packed {
    batches: Vec<EncodedBatch>,
}

impl Packed {
    pub(super) fn new(
        records: &[PutRecord<'_>],
        members: &[usize],
        batch_bytes_max: u64,
    ) -> Packed {
        let encoded_len = |i: usize| {
            let record = &records[i];
            EncodedBatch::encoded_record_len(record.partition_key.len(), record.data.len())
        };
        let mut left: u64 = members.iter().map(|&i| encoded_len(i)).sum();
        let mut batches = Vec::with_capacity(1);
        let mut batch = EncodedBatch::with_capacity(left.min(batch_bytes_max) as usize);
        for &i in members {
            let record = &records[i];
            let len = encoded_len(i);
            // A batch holds at least one record; a record too large for any batch is refused
            // by the log, as it always was.
            if batch.record_count() > 0 && batch.len_bytes() + len > batch_bytes_max {
                let rest = EncodedBatch::with_capacity(left.min(batch_bytes_max) as usize);
                batches.push(std::mem::replace(&mut batch, rest));
            }
            let flags = match record.encrypted {
                true => RECORD_FLAG_ENCRYPTED,
                false => 0,
            };
            batch.push_flagged(record.partition_key.as_bytes(), record.data, flags);
            left -= len;
        }
        batches.push(batch);
        Packed { batches }
    }
}

/// Appends the batches in order; stops at the first failure and says which batches were
/// written. `visible` is released as soon as the batches are visible, before waiting for
/// durability, so a reshard closing the shard waits only for visibility.
async fn append_packed(
    log: &crate::runtime::Log,
    packed: Packed,
    durability: Durability,
    visible: AppendGuard,
) -> ShardReply {
    let mut batches = Vec::with_capacity(packed.batches.len());
    for batch in packed.batches {
        match log.append_encoded(batch, Durability::Visible).await {
            Ok(appended) => batches.push(appended),
            Err(e) => {
                return ShardReply::Appended {
                    batches,
                    failure: Some(Arc::new(e)),
                };
            }
        }
    }
    drop(visible);
    let end_seq = batches.last().map_or(0, Appended::end_seq);
    if durability == Durability::Durable
        && let Err(e) = log.make_durable(end_seq).await
    {
        // Visible but maybe not durable: the outcome is unknown, report every record failed.
        return ShardReply::Appended {
            batches: Vec::new(),
            failure: Some(Arc::new(e)),
        };
    }
    ShardReply::Appended {
        batches,
        failure: None,
    }
}
