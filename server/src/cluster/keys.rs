//! Stream encryption in cluster mode: records are sealed by the node that takes the put and
//! opened by whichever node reads them, so every key lives in the control plane.
//!
//! - The AWS managed key (`alias/aws/kinesis`) is the cluster's: 256 random bits made by the
//!   first node that needs it and shared through the control plane (as the iterator key is).
//!   Keys made through a node's KMS API stay that node's, so cluster mode encrypts with the
//!   managed key only and refuses others by name.
//! - Data keys are single-node mode's (encryption.rs): 256-bit random keys, one per stream in
//!   each process, nonces counted from zero. Each is wrapped by the managed key (AES-256-GCM,
//!   a random nonce, its id as the authenticated data) and stored under a random unused id
//!   before its first use, so a record is never written that another node could not open.
//!   A reader fetches a key it has not opened yet once and keeps it.
//!
//! Envelopes are single-node mode's, byte for byte.

use super::store_unavailable;
use crate::encryption::{AWS_MANAGED_KEY, DataKeys, cipher, key_id, kms_error};
use crate::wire::ApiError;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom as _, SystemRandom};
use sluice_cluster::reads::ReadRecord;
use sluice_cluster::{Backend, ClusterMeta, MetaError, StreamPlacement};
use sluice_storage::RECORD_FLAG_ENCRYPTED;
use std::sync::Arc;

/// The control plane's name of the managed key.
const MANAGED_KEY_NAME: &str = "kinesis-managed-key";

/// The control plane's name of data key `id`.
fn data_key_name(id: u32) -> String {
    format!("data-keys/{id}")
}

/// The authenticated data of data key `id`'s wrapping: a wrapped key moved to another id
/// does not open.
fn wrapping_aad(id: u32) -> Vec<u8> {
    format!("sluice data key {id}").into_bytes()
}

/// The refusal of a KMS key other than the managed one (its alias, or the alias' ARN in
/// this account and region).
pub(super) fn check_key(key: &str, (account, region): (&str, &str)) -> Result<(), ApiError> {
    let arn = format!("arn:aws:kms:{region}:{account}:{AWS_MANAGED_KEY}");
    if key == AWS_MANAGED_KEY || key == arn {
        return Ok(());
    }
    Err(kms_error(
        "KMSNotFoundException",
        format!(
            "Key '{key}' does not exist in account {account} in {region}: cluster mode encrypts with the AWS managed key {AWS_MANAGED_KEY} only."
        ),
    ))
}

/// The cluster's keys, as one node uses them.
pub struct ClusterKeys<B: Backend> {
    meta: ClusterMeta<B>,
    managed: LessSafeKey,
    data_keys: DataKeys,
    random: SystemRandom,
}

fn randomness_error() -> ApiError {
    ApiError::internal("No randomness for a data key.")
}

impl<B: Backend> ClusterKeys<B> {
    /// The keys of the cluster `meta` serves (the managed key made now if no node made it).
    pub async fn shared(meta: &ClusterMeta<B>) -> Result<ClusterKeys<B>, MetaError> {
        let random = SystemRandom::new();
        let mut candidate = vec![0u8; 32];
        random
            .fill(&mut candidate)
            .map_err(|_| MetaError::Unavailable("no randomness for the managed key".into()))?;
        let material = meta.shared_secret(MANAGED_KEY_NAME, candidate).await?;
        let managed = UnboundKey::new(&AES_256_GCM, &material)
            .map_err(|_| MetaError::Unavailable("the stored managed key is not 256 bits".into()))?;
        Ok(ClusterKeys {
            meta: meta.clone(),
            managed: LessSafeKey::new(managed),
            data_keys: DataKeys::default(),
            random,
        })
    }

    /// Envelopes of `data` for `stream` (which encrypts under `kms_key`).
    pub async fn seal(
        &self,
        stream: &StreamPlacement,
        kms_key: &str,
        data: &[&[u8]],
    ) -> Result<Vec<Vec<u8>>, ApiError> {
        let owner = (stream.name.as_str(), stream.uid);
        let mint = || self.mint();
        self.data_keys
            .seal_minting(owner, kms_key, data, mint)
            .await
    }

    /// A new data key, stored wrapped under an id no other key has.
    async fn mint(&self) -> Result<(u32, Arc<LessSafeKey>), ApiError> {
        let mut material = [0u8; 32];
        self.random
            .fill(&mut material)
            .map_err(|_| randomness_error())?;
        loop {
            let mut id = [0u8; 4];
            self.random.fill(&mut id).map_err(|_| randomness_error())?;
            let id = u32::from_le_bytes(id);
            let wrapped = self.wrap(id, &material)?;
            let name = data_key_name(id);
            let stored = self.meta.shared_secret(&name, wrapped.clone()).await;
            // Another key holds the id when the store kept another value: another id.
            if stored.map_err(|e| store_unavailable(&e))? == wrapped {
                return Ok((id, cipher(&material)?));
            }
        }
    }

    fn wrap(&self, id: u32, material: &[u8]) -> Result<Vec<u8>, ApiError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| randomness_error())?;
        let mut sealed = material.to_vec();
        self.managed
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(wrapping_aad(id)),
                &mut sealed,
            )
            .map_err(|_| ApiError::internal("A data key could not be wrapped."))?;
        let mut wrapped = nonce.to_vec();
        wrapped.extend_from_slice(&sealed);
        Ok(wrapped)
    }

    fn unwrap(&self, id: u32, wrapped: &[u8]) -> Result<Arc<LessSafeKey>, ApiError> {
        let damaged = || {
            kms_error(
                "KMSInvalidStateException",
                format!("Data key {id} of the cluster cannot be unwrapped by the managed key."),
            )
        };
        let (nonce, sealed) = wrapped.split_at_checked(NONCE_LEN).ok_or_else(damaged)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| damaged())?;
        let mut sealed = sealed.to_vec();
        let material = self
            .managed
            .open_in_place(nonce, Aad::from(wrapping_aad(id)), &mut sealed)
            .map_err(|_| damaged())?;
        cipher(material)
    }

    /// Opens the encrypted records among `records` of stream `stream` in place (their flag
    /// stays: a reply reports them as KMS-encrypted), fetching the data keys this node has
    /// not opened yet.
    pub async fn open_records(
        &self,
        stream: &str,
        records: &mut [ReadRecord],
    ) -> Result<(), ApiError> {
        for record in records
            .iter_mut()
            .filter(|r| r.flags & RECORD_FLAG_ENCRYPTED != 0)
        {
            if let Some(id) = key_id(&record.data)
                && self.data_keys.opened(id).is_none()
            {
                let stored = self.meta.secret(&data_key_name(id)).await;
                let wrapped = stored.map_err(|e| store_unavailable(&e))?.ok_or_else(|| {
                    kms_error(
                        "KMSInvalidStateException",
                        format!("Data key {id} is not in the cluster's control plane."),
                    )
                })?;
                self.data_keys.remember(id, self.unwrap(id, &wrapped)?);
            }
            let not_opened = || {
                kms_error(
                    "KMSInvalidStateException",
                    "A data key of the record was not opened.".to_owned(),
                )
            };
            let cipher_of = |id| self.data_keys.opened(id).ok_or_else(not_opened);
            record.data = self.data_keys.open_with(stream, &record.data, cipher_of)?;
        }
        Ok(())
    }
}
