//! Opaque signed tokens (shard iterators, list pagination): a small binary payload with an
//! HMAC-SHA256 tag (truncated to 128 bits) under a per-data-directory key, as base64url.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sluice_storage::StorageError;
use std::io::{Read, Write};
use std::path::Path;

const KEY_BYTES: usize = 32;
const TAG_BYTES: usize = 16;
/// Longest payload accepted, so decoding a hostile token allocates little.
const PAYLOAD_BYTES_MAX: usize = 256;

/// The signing key; tokens survive a restart of the same data directory and nothing else.
#[derive(Clone)]
pub(crate) struct TokenKey([u8; KEY_BYTES]);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    /// Reads `<dir>/iterator.key`, creating it from the OS random source if missing (written
    /// to a temporary name, synced, renamed, so a crash never leaves a short key).
    pub(crate) fn load_or_create(dir: &Path) -> Result<TokenKey, StorageError> {
        let path = dir.join("iterator.key");
        if let Ok(bytes) = std::fs::read(&path)
            && let Ok(key) = <[u8; KEY_BYTES]>::try_from(bytes.as_slice())
        {
            return Ok(TokenKey(key));
        }
        let mut key = [0u8; KEY_BYTES];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut key))
            .map_err(|e| StorageError::io("read random key", "/dev/urandom", e))?;
        let tmp = dir.join("iterator.key.tmp");
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&key)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(dir)?.sync_all()
        };
        write().map_err(|e| StorageError::io("write iterator key", &path, e))?;
        Ok(TokenKey(key))
    }

    /// A key for tests.
    #[cfg(test)]
    pub(crate) fn fixed(byte: u8) -> TokenKey {
        TokenKey([byte; KEY_BYTES])
    }

    fn tag(&self, payload: &[u8]) -> [u8; TAG_BYTES] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(payload);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(&full[..TAG_BYTES]);
        tag
    }

    /// Signs and encodes `payload`.
    pub(crate) fn seal(&self, payload: &[u8]) -> String {
        assert!(
            payload.len() <= PAYLOAD_BYTES_MAX,
            "token payloads are small"
        );
        let mut bytes = payload.to_vec();
        bytes.extend_from_slice(&self.tag(payload));
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Decodes `token` and checks its tag; `None` if it is not one of ours, unchanged.
    pub(crate) fn open(&self, token: &str) -> Option<Vec<u8>> {
        if token.len() > (PAYLOAD_BYTES_MAX + TAG_BYTES) * 4 / 3 + 4 {
            return None;
        }
        let mut bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        let split = bytes.len().checked_sub(TAG_BYTES)?;
        let tag = bytes.split_off(split);
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(&bytes);
        // Constant-time comparison of the truncated tag.
        mac.verify_truncated_left(&tag).ok()?;
        Some(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_token_opens_only_with_its_key_and_unchanged() {
        let key = TokenKey::fixed(1);
        let token = key.seal(b"payload");
        assert_eq!(key.open(&token).as_deref(), Some(&b"payload"[..]));
        assert_eq!(TokenKey::fixed(2).open(&token), None);
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        bytes[0] ^= 1;
        assert_eq!(key.open(&URL_SAFE_NO_PAD.encode(bytes)), None);
        assert_eq!(key.open("not base64 !"), None);
        assert_eq!(key.open(""), None);
    }

    #[test]
    fn the_key_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = TokenKey::load_or_create(dir.path()).unwrap();
        let again = TokenKey::load_or_create(dir.path()).unwrap();
        assert_eq!(first.0, again.0);
        assert_ne!(first.0, [0u8; KEY_BYTES]);
    }
}
