//! Records of KMS-encrypted streams, sealed before the engine stores them and opened when
//! they are read (docs/design/encryption.md).
//!
//! Envelope (the record's data, flagged `encrypted` in the log): version `1`, the data key's
//! id (u32 LE), a 96-bit nonce, then AES-256-GCM ciphertext and tag; the stream's name is
//! the authenticated data. 33 bytes more than the plaintext.
//!
//! Data keys: 256-bit random keys, each wrapped by the stream's KMS key (the tenant's
//! keyring) and stored in the server state before its first use, so a record is never
//! written that a restart could not open. A data key is used by one process for one stream,
//! with nonces counted from zero: a nonce never repeats for a key (a restart makes a new
//! key), and a key seals at most 2^32 records before the next one replaces it.

use crate::state::WrappedDataKey;
use crate::tenant::Tenant;
use crate::wire::ApiError;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};

const VERSION: u8 = 1;
const HEADER_LEN: usize = 1 + 4 + 12;
const TAG_LEN: usize = 16;
/// What the envelope adds to a record's data.
pub const ENVELOPE_BYTES: u64 = (HEADER_LEN + TAG_LEN) as u64;
/// Records a data key seals before a new one replaces it.
const RECORDS_PER_KEY_MAX: u64 = 1 << 32;
/// Kinesis' own managed key: made in the keyring on first use.
pub const AWS_MANAGED_KEY: &str = "alias/aws/kinesis";
/// Firehose's own key (a delivery stream's `AWS_OWNED_CMK`): made on first use too.
pub const FIREHOSE_MANAGED_KEY: &str = "alias/aws/firehose";

/// The description of a managed key this server makes on first use.
fn managed_key_description(alias: &str) -> Option<&'static str> {
    match alias {
        AWS_MANAGED_KEY => Some("Default key that protects Kinesis data"),
        FIREHOSE_MANAGED_KEY => Some("Default key that protects Firehose data"),
        _ => None,
    }
}

/// The data key sealing one stream's records in this process.
struct Active {
    /// The stream incarnation and KMS key it serves.
    owner: (u64, String),
    id: u32,
    cipher: Arc<LessSafeKey>,
    next_nonce: u64,
}

/// One tenant's data keys.
#[derive(Default)]
pub struct DataKeys {
    active: Mutex<HashMap<String, Active>>,
    opened: RwLock<HashMap<u32, Arc<LessSafeKey>>>,
    /// One data key made at a time: puts arriving together after a restart share the first
    /// one instead of each making (and storing) their own.
    minting: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for DataKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKeys")
    }
}

/// An AES-256-GCM key of 32 bytes of `material`.
pub(crate) fn cipher(material: &[u8]) -> Result<Arc<LessSafeKey>, ApiError> {
    let key = UnboundKey::new(&AES_256_GCM, material)
        .map_err(|_| ApiError::internal("A data key is not 256 bits."))?;
    Ok(Arc::new(LessSafeKey::new(key)))
}

fn context(id: u32) -> BTreeMap<String, String> {
    BTreeMap::from([("sluice:data-key".to_owned(), id.to_string())])
}

pub(crate) fn kms_error(name: &'static str, message: String) -> ApiError {
    ApiError::new(name, message)
}

impl DataKeys {
    /// Seals `data` for stream `stream` (created at `created_ms`) under KMS key `kms_key`.
    pub async fn seal(
        &self,
        tenant: &Tenant,
        (stream, created_ms): (&str, u64),
        kms_key: &str,
        data: &[&[u8]],
    ) -> Result<Vec<Vec<u8>>, ApiError> {
        // A data key in hand is used only while its KMS key is enabled (DisableKey stops
        // puts at once, as a first put's data key would be refused).
        if tenant.keyring.is_enabled(kms_key) == Some(false) {
            return Err(kms_error(
                "KMSDisabledException",
                format!("The KMS key {kms_key} is disabled."),
            ));
        }
        let mint = || new_data_key(tenant, kms_key);
        self.seal_minting((stream, created_ms), kms_key, data, mint)
            .await
    }

    /// Seals `data` for stream `stream` (of incarnation `incarnation`: its creation time or
    /// uid) under KMS key `kms_key`, with the stream's data key in this process, made by
    /// `mint` (stored where every reader finds it) when there is none good for them.
    pub(crate) async fn seal_minting<F>(
        &self,
        (stream, incarnation): (&str, u64),
        kms_key: &str,
        data: &[&[u8]],
        mint: impl FnOnce() -> F,
    ) -> Result<Vec<Vec<u8>>, ApiError>
    where
        F: Future<Output = Result<(u32, Arc<LessSafeKey>), ApiError>>,
    {
        let owner = (incarnation, kms_key.to_owned());
        let count = data.len() as u64;
        if let Some((id, cipher, first)) = self.reserve(stream, &owner, count) {
            return Ok(seal_all(&cipher, id, first, stream, data));
        }
        let _minting = self.minting.lock().await;
        // Made meanwhile by the put that held the lock before this one?
        let reserved = self.reserve(stream, &owner, count);
        let (id, cipher, first) = match reserved {
            Some(reserved) => reserved,
            None => {
                let (id, cipher) = mint().await?;
                let mut active = self.active.lock().expect("data keys lock");
                self.opened
                    .write()
                    .expect("data keys lock")
                    .insert(id, cipher.clone());
                active.insert(
                    stream.to_owned(),
                    Active {
                        owner,
                        id,
                        cipher: cipher.clone(),
                        next_nonce: count,
                    },
                );
                (id, cipher, 0)
            }
        };
        Ok(seal_all(&cipher, id, first, stream, data))
    }

    /// `count` nonces of the stream's current data key, if it has one still good for them.
    fn reserve(
        &self,
        stream: &str,
        owner: &(u64, String),
        count: u64,
    ) -> Option<(u32, Arc<LessSafeKey>, u64)> {
        let mut active = self.active.lock().expect("data keys lock");
        let current = active.get_mut(stream)?;
        if current.owner != *owner || current.next_nonce + count > RECORDS_PER_KEY_MAX {
            return None;
        }
        let first = current.next_nonce;
        current.next_nonce += count;
        Some((current.id, current.cipher.clone(), first))
    }

    /// The plaintext of an envelope of stream `stream`.
    pub fn open(
        &self,
        tenant: &Tenant,
        stream: &str,
        envelope: &[u8],
    ) -> Result<Vec<u8>, ApiError> {
        self.open_with(stream, envelope, |id| self.cipher_of(tenant, id))
    }

    /// The data key of `id`, if this process opened or made it.
    pub(crate) fn opened(&self, id: u32) -> Option<Arc<LessSafeKey>> {
        self.opened
            .read()
            .expect("data keys lock")
            .get(&id)
            .cloned()
    }

    /// Keeps data key `id`, unwrapped, for the envelopes it opens.
    pub(crate) fn remember(&self, id: u32, cipher: Arc<LessSafeKey>) {
        let mut opened = self.opened.write().expect("data keys lock");
        opened.insert(id, cipher);
    }

    /// The plaintext of an envelope of stream `stream`, its data key given by `cipher_of`.
    pub(crate) fn open_with(
        &self,
        stream: &str,
        envelope: &[u8],
        cipher_of: impl FnOnce(u32) -> Result<Arc<LessSafeKey>, ApiError>,
    ) -> Result<Vec<u8>, ApiError> {
        let damaged = || {
            kms_error(
                "KMSInvalidStateException",
                format!(
                    "A record of stream {stream} cannot be decrypted: its envelope is damaged."
                ),
            )
        };
        let id = key_id(envelope).ok_or_else(damaged)?;
        let cipher = cipher_of(id)?;
        let nonce: [u8; 12] = envelope[5..HEADER_LEN].try_into().expect("12 bytes");
        let mut sealed = envelope[HEADER_LEN..].to_vec();
        let plain = cipher
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(stream.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| damaged())?;
        let len = plain.len();
        sealed.truncate(len);
        Ok(sealed)
    }

    /// Data key `id`, unwrapped by the keyring once and kept.
    fn cipher_of(&self, tenant: &Tenant, id: u32) -> Result<Arc<LessSafeKey>, ApiError> {
        if let Some(cipher) = self.opened(id) {
            return Ok(cipher);
        }
        let wrapped = tenant
            .state
            .read(|state| state.data_keys.get(&id).cloned())
            .ok_or_else(|| {
                kms_error(
                    "KMSInvalidStateException",
                    format!("Data key {id} of this account is not in the server state."),
                )
            })?;
        let (_, material) = tenant
            .keyring
            .decrypt(&wrapped.blob(), &context(id))
            .map_err(|e| {
                kms_error(
                    "KMSAccessDeniedException",
                    format!(
                        "Data key {id} cannot be unwrapped by its KMS key {}: {e:?}",
                        wrapped.kms_key
                    ),
                )
            })?;
        let cipher = cipher(&material)?;
        self.remember(id, cipher.clone());
        Ok(cipher)
    }
}

/// The id of the data key that sealed `envelope`, if it is an envelope at all.
pub(crate) fn key_id(envelope: &[u8]) -> Option<u32> {
    if envelope.len() < HEADER_LEN + TAG_LEN || envelope[0] != VERSION {
        return None;
    }
    Some(u32::from_le_bytes(
        envelope[1..5].try_into().expect("4 bytes"),
    ))
}

/// Envelopes of `data` with nonces from `first` on.
fn seal_all(
    cipher: &LessSafeKey,
    id: u32,
    first: u64,
    stream: &str,
    data: &[&[u8]],
) -> Vec<Vec<u8>> {
    data.iter()
        .zip(first..)
        .map(|(plain, nonce)| seal_one(cipher, id, nonce, stream, plain))
        .collect()
}

fn seal_one(cipher: &LessSafeKey, id: u32, nonce: u64, stream: &str, plain: &[u8]) -> Vec<u8> {
    let mut nonce_bytes = [0u8; 12];
    nonce_bytes[..8].copy_from_slice(&nonce.to_le_bytes());
    let mut envelope = Vec::with_capacity(HEADER_LEN + plain.len() + TAG_LEN);
    envelope.push(VERSION);
    envelope.extend_from_slice(&id.to_le_bytes());
    envelope.extend_from_slice(&nonce_bytes);
    envelope.extend_from_slice(plain);
    let tag = cipher
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce_bytes),
            Aad::from(stream.as_bytes()),
            &mut envelope[HEADER_LEN..],
        )
        .expect("AES-GCM seals any record");
    envelope.extend_from_slice(tag.as_ref());
    envelope
}

/// Makes a data key under `kms_key`, stores it wrapped, and returns it.
async fn new_data_key(tenant: &Tenant, kms_key: &str) -> Result<(u32, Arc<LessSafeKey>), ApiError> {
    let key = match tenant.keyring.find(kms_key) {
        Ok(key) => key,
        Err(_) if let Some(description) = managed_key_description(kms_key) => {
            let key = tenant.keyring.create(description, crate::clock::now_ms())?;
            // Another request may have made it meanwhile: then that one names the alias.
            let _ = tenant.keyring.create_alias(kms_key, &key.id);
            tenant.keyring.find(kms_key)?
        }
        Err(_) => {
            return Err(kms_error(
                "KMSNotFoundException",
                format!("The KMS key {kms_key} of this stream does not exist."),
            ));
        }
    };
    if !key.enabled {
        return Err(kms_error(
            "KMSDisabledException",
            format!("The KMS key {kms_key} is disabled."),
        ));
    }
    let material = tenant.keyring.random_bytes(32);
    let id = tenant
        .state
        .update(|state| {
            let id = state
                .data_keys
                .keys()
                .next_back()
                .map_or(Some(1), |last| last.checked_add(1))
                .ok_or_else(|| ApiError::internal("Every data key id is used."))?;
            let (_, blob) = tenant.keyring.encrypt(&key.id, &material, &context(id))?;
            state
                .data_keys
                .insert(id, WrappedDataKey::new(&key.id, &blob));
            Ok(id)
        })
        .await?;
    Ok((id, cipher(&material)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_opens_only_for_its_stream_and_unaltered() {
        let material = [7u8; 32];
        let key = cipher(&material).unwrap();
        let envelope = seal_one(&key, 3, 41, "orders", b"card 4111");
        assert_eq!(envelope.len(), b"card 4111".len() + HEADER_LEN + TAG_LEN);
        assert!(!envelope.windows(9).any(|w| w == b"card 4111"));
        let open = |stream: &str, envelope: &[u8]| {
            let mut sealed = envelope[HEADER_LEN..].to_vec();
            let nonce: [u8; 12] = envelope[5..HEADER_LEN].try_into().unwrap();
            key.open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(stream.as_bytes()),
                &mut sealed,
            )
            .map(|p| p.to_vec())
        };
        assert_eq!(open("orders", &envelope).unwrap(), b"card 4111");
        assert!(open("payments", &envelope).is_err(), "another stream's");
        let mut altered = envelope.clone();
        altered[HEADER_LEN] ^= 1;
        assert!(open("orders", &altered).is_err());
        // Nonces count: two records never share one.
        let second = seal_one(&key, 3, 42, "orders", b"card 4111");
        assert_ne!(envelope[5..HEADER_LEN], second[5..HEADER_LEN]);
    }
}
