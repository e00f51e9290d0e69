//! Shard iterators: where a reader is in a shard, and their signed token form.

use crate::catalog::{ShardState, StreamState};
use crate::engine::Engine;
use crate::error::ReadError;
use crate::seqnum::{SequenceNumber, ShardId, parse_shard_id};
use crate::stream::Stream;
use std::sync::Arc;

/// Where a new iterator starts (Kinesis' `ShardIteratorType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IteratorStart {
    /// The oldest retained record.
    TrimHorizon,
    /// After the newest record: only records written from now on.
    Latest,
    /// At this record.
    AtSequenceNumber(SequenceNumber),
    /// Just after this record.
    AfterSequenceNumber(SequenceNumber),
    /// At the first record that arrived at or after this time (ms since the epoch).
    AtTimestamp(u64),
}

/// A position in one shard. [`Engine::get_records`] reads from it and moves it on. Made by
/// [`Stream::shard_iterator`] or from a token by [`Engine::iterator_from_token`].
#[derive(Clone)]
pub struct ShardIterator {
    pub(crate) stream: Arc<StreamState>,
    pub(crate) shard_index: u32,
    /// Log position of the next record to read.
    pub(crate) position: u64,
}

impl std::fmt::Debug for ShardIterator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardIterator")
            .field("stream", &self.stream.name)
            .field("shard", &self.shard_index)
            .field("position", &self.position)
            .finish()
    }
}

impl ShardIterator {
    /// The stream's name.
    pub fn stream_name(&self) -> &str {
        &self.stream.name
    }

    /// The shard's id.
    pub fn shard_id(&self) -> ShardId {
        ShardId::new(self.shard_index)
    }

    /// The sequence number the next record read will have at least.
    pub fn position(&self) -> SequenceNumber {
        SequenceNumber::new(self.shard_index, self.position)
    }

    pub(crate) fn shard(&self) -> Result<Arc<ShardState>, ReadError> {
        if self.stream.is_deleted() {
            return Err(ReadError::stream_not_found(&self.stream.name));
        }
        Ok(self
            .stream
            .shards()
            .get(self.shard_index)
            .expect("shards are never removed from a live stream")
            .clone())
    }
}

/// Token layout version.
const TOKEN_KIND_ITERATOR: u8 = 1;

impl Stream {
    /// An iterator on shard `shard_id` of this stream, starting as asked.
    pub fn shard_iterator(
        &self,
        shard_id: &str,
        start: IteratorStart,
    ) -> Result<ShardIterator, ReadError> {
        let state = self.live_state()?;
        let shard_not_found = || ReadError::ShardNotFound {
            stream: state.name.clone(),
            shard: shard_id.to_owned(),
        };
        let index = parse_shard_id(shard_id).ok_or_else(shard_not_found)?;
        let shards = state.shards();
        // An expired shard's records are gone and it is listed no more: as Kinesis, no
        // new iterator on it (one taken before goes on to its end and its children).
        let shard = shards
            .get(index)
            .filter(|shard| !shard.expired)
            .ok_or_else(shard_not_found)?;
        let position = start_position(shard, start)?;
        Ok(ShardIterator {
            stream: state.clone(),
            shard_index: index,
            position,
        })
    }
}

impl Engine {
    /// The iterator as an opaque token (what `GetShardIterator` hands out). It is signed with
    /// this data directory's key and expires `iterator_ttl_ms` after this call.
    pub fn iterator_token(&self, iterator: &ShardIterator) -> String {
        let name = iterator.stream.name.as_bytes();
        let mut payload = Vec::with_capacity(30 + name.len());
        payload.push(TOKEN_KIND_ITERATOR);
        payload.extend_from_slice(&iterator.stream.uid.to_le_bytes());
        payload.extend_from_slice(&iterator.shard_index.to_le_bytes());
        payload.extend_from_slice(&iterator.position.to_le_bytes());
        payload.extend_from_slice(&self.shared().config.clock.now_ms().to_le_bytes());
        payload.push(name.len() as u8);
        payload.extend_from_slice(name);
        self.shared().token_key.seal(&payload)
    }

    /// The iterator a token stands for. A token that was not made by this data directory, or
    /// was altered, is `InvalidArgument`; one older than `iterator_ttl_ms` is
    /// `ExpiredIterator`; one whose stream was deleted (or recreated) is `ResourceNotFound`.
    pub fn iterator_from_token(&self, token: &str) -> Result<ShardIterator, ReadError> {
        let invalid = || ReadError::InvalidIterator {
            token: abbreviate(token),
        };
        let payload = self.shared().token_key.open(token).ok_or_else(invalid)?;
        let fields = TokenFields::parse(&payload).ok_or_else(invalid)?;
        let now_ms = self.shared().config.clock.now_ms();
        let ttl_ms = self.shared().config.iterator_ttl_ms;
        if now_ms.saturating_sub(fields.issued_ms) > ttl_ms {
            return Err(ReadError::ExpiredIterator {
                issued_ms: fields.issued_ms,
                now_ms,
                ttl_ms,
            });
        }
        let stream = self
            .shared()
            .catalog
            .get(&fields.name)
            .filter(|s| s.uid == fields.uid)
            .ok_or_else(|| ReadError::stream_not_found(&fields.name))?;
        if stream.shards().get(fields.shard_index).is_none() {
            return Err(invalid());
        }
        Ok(ShardIterator {
            stream,
            shard_index: fields.shard_index,
            position: fields.position,
        })
    }
}

#[cfg(feature = "fuzzing")]
impl Engine {
    /// Signs an arbitrary payload as a token of this engine (fuzzing only: it lets a fuzzer
    /// test what lies behind the signature check).
    #[doc(hidden)]
    pub fn fuzz_seal_token(&self, payload: &[u8]) -> String {
        self.shared()
            .token_key
            .seal(&payload[..payload.len().min(200)])
    }
}

fn abbreviate(token: &str) -> String {
    token.chars().take(64).collect()
}

struct TokenFields {
    uid: u64,
    shard_index: u32,
    position: u64,
    issued_ms: u64,
    name: String,
}

impl TokenFields {
    fn parse(payload: &[u8]) -> Option<TokenFields> {
        let (&kind, rest) = payload.split_first()?;
        if kind != TOKEN_KIND_ITERATOR || rest.len() < 29 {
            return None;
        }
        let u64_at = |at: usize| u64::from_le_bytes(rest[at..at + 8].try_into().expect("8 bytes"));
        let name_len = rest[28] as usize;
        let name = std::str::from_utf8(rest.get(29..29 + name_len)?)
            .ok()?
            .to_owned();
        Some(TokenFields {
            uid: u64_at(0),
            shard_index: u32::from_le_bytes(rest[8..12].try_into().expect("4 bytes")),
            position: u64_at(12),
            issued_ms: u64_at(20),
            name,
        })
    }
}

/// The log position an iterator starts at.
fn start_position(shard: &ShardState, start: IteratorStart) -> Result<u64, ReadError> {
    let reader = &shard.reader;
    let next_seq = reader.next_seq();
    // AT may also name the next number to be issued: a subscription's continuation (or a
    // reader's position) when it had caught up. AFTER names a record that exists, or the
    // shard's start.
    let check = |seq: SequenceNumber, after: bool| {
        let in_shard = seq.shard_index() == Some(shard.index);
        let position = if after {
            seq.position_after()
        } else {
            seq.log_seq()
        };
        if in_shard && position <= next_seq {
            Ok(position)
        } else {
            Err(ReadError::InvalidStartingSequenceNumber {
                sequence_number: seq,
                shard: shard.id,
                next: SequenceNumber::new(shard.index, next_seq),
            })
        }
    };
    match start {
        IteratorStart::TrimHorizon => Ok(reader.trim_horizon()),
        IteratorStart::Latest => Ok(next_seq),
        IteratorStart::AtSequenceNumber(seq) => check(seq, false),
        IteratorStart::AfterSequenceNumber(seq) => check(seq, true),
        IteratorStart::AtTimestamp(timestamp_ms) => Ok(reader.seek_timestamp(timestamp_ms)?),
    }
}
