//! Shard iterator tokens in cluster mode. A token names a position, not a node: the stream's
//! uid, the shard, the next log number to read and when the iterator was made, signed
//! (HMAC-SHA256, 16 bytes kept) with a key every node shares, kept in the control plane and
//! made by the first node that starts. Any node takes any node's token, also after a
//! failover; a token from another cluster, or altered, is refused.
//!
//! Layout (URL-safe base64 without padding): version (1 byte, 1), uid (8), shard (4), next
//! log number (8), issued ms (8), MAC (16): 60 characters.

use crate::wire::ApiError;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use ring::rand::{SecureRandom as _, SystemRandom};
use sha2::Sha256;
use sluice_cluster::{Backend, ClusterMeta, MetaError};
use sluice_core::ReadError;
use sluice_core::limits::ITERATOR_TTL_MS_DEFAULT;

const VERSION: u8 = 1;
const BODY_BYTES: usize = 1 + 8 + 4 + 8 + 8;
const MAC_BYTES: usize = 16;
/// The control plane's name of the key.
const KEY_NAME: &str = "iterator-key";

/// Where an iterator reads next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The stream's uid (a stream deleted and made again has another).
    pub stream_uid: u64,
    /// The shard's index.
    pub shard: u32,
    /// The next log number to read.
    pub next_seq: u64,
    /// When the token was made (ms since the epoch): GetRecords' NextShardIterator is made
    /// anew, with five minutes of its own, as Kinesis' is.
    pub issued_ms: u64,
}

/// The cluster's iterator key.
pub struct TokenKey(Vec<u8>);

impl TokenKey {
    /// The key the cluster shares (this node's candidate if it is the first to ask).
    pub async fn shared<B: Backend>(meta: &ClusterMeta<B>) -> Result<TokenKey, MetaError> {
        let mut candidate = vec![0u8; 32];
        SystemRandom::new()
            .fill(&mut candidate)
            .map_err(|_| MetaError::Unavailable("no randomness for the iterator key".into()))?;
        Ok(TokenKey(meta.shared_secret(KEY_NAME, candidate).await?))
    }

    fn mac(&self, body: &[u8]) -> [u8; MAC_BYTES] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key");
        mac.update(body);
        let full = mac.finalize().into_bytes();
        full[..MAC_BYTES].try_into().expect("SHA-256 is 32 bytes")
    }

    /// The token of `position`.
    pub fn issue(&self, position: Position) -> String {
        let mut raw = Vec::with_capacity(BODY_BYTES + MAC_BYTES);
        raw.push(VERSION);
        raw.extend_from_slice(&position.stream_uid.to_be_bytes());
        raw.extend_from_slice(&position.shard.to_be_bytes());
        raw.extend_from_slice(&position.next_seq.to_be_bytes());
        raw.extend_from_slice(&position.issued_ms.to_be_bytes());
        let mac = self.mac(&raw);
        raw.extend_from_slice(&mac);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The position `token` names, if this cluster made it and it has not expired by
    /// `now_ms` (Kinesis' five minutes).
    pub fn open(&self, token: &str, now_ms: u64) -> Result<Position, ApiError> {
        let invalid = || {
            ApiError::from(ReadError::InvalidIterator {
                token: token.to_owned(),
            })
        };
        let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        if raw.len() != BODY_BYTES + MAC_BYTES || raw[0] != VERSION {
            return Err(invalid());
        }
        let (body, mac) = raw.split_at(BODY_BYTES);
        let expected = self.mac(body);
        // Constant time: a forger learns nothing from how long a refusal takes.
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&expected[..], mac)) {
            return Err(invalid());
        }
        let u64_at = |at: usize| u64::from_be_bytes(body[at..at + 8].try_into().expect("8"));
        let position = Position {
            stream_uid: u64_at(1),
            shard: u32::from_be_bytes(body[9..13].try_into().expect("4")),
            next_seq: u64_at(13),
            issued_ms: u64_at(21),
        };
        if now_ms.saturating_sub(position.issued_ms) > ITERATOR_TTL_MS_DEFAULT {
            return Err(ApiError::from(ReadError::ExpiredIterator {
                issued_ms: position.issued_ms,
                now_ms,
                ttl_ms: ITERATOR_TTL_MS_DEFAULT,
            }));
        }
        Ok(position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> TokenKey {
        TokenKey(vec![byte; 32])
    }

    #[test]
    fn a_token_opens_with_its_key_only_and_until_it_expires() {
        let position = Position {
            stream_uid: 7,
            shard: 3,
            next_seq: 1 << 40,
            issued_ms: 1_000_000,
        };
        let token = key(1).issue(position);
        assert_eq!(token.len(), 60);
        assert_eq!(key(1).open(&token, 1_000_000 + 300_000), Ok(position));
        let expired = key(1).open(&token, 1_000_000 + 300_001).unwrap_err();
        assert_eq!(expired.name, "ExpiredIteratorException");
        let foreign = key(2).open(&token, 1_000_000).unwrap_err();
        assert_eq!(foreign.name, "InvalidArgumentException");
        // Any altered byte is refused.
        let raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for at in 0..raw.len() {
            let mut altered = raw.clone();
            altered[at] ^= 0x40;
            let altered = URL_SAFE_NO_PAD.encode(altered);
            assert!(key(1).open(&altered, 1_000_000).is_err(), "byte {at}");
        }
        for bad in ["", "not a token", &token[..59], &format!("{token}AA")] {
            assert!(key(1).open(bad, 1_000_000).is_err(), "{bad:?}");
        }
    }
}
