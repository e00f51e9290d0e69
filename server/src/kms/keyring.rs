//! The local keyring that stands in for KMS: symmetric 256-bit keys (with versions, for
//! rotation) and aliases of one account in one region, in a file only the server's user can
//! read (`kms-keys.json`, mode 600, replaced atomically on every change). Key material never
//! leaves this module except as data keys it generates.
//!
//! Ciphertext blobs: `SLK1`, the key id (36 bytes), the key version (u32 LE), a 96-bit
//! random nonce, then AES-256-GCM ciphertext and tag. The encryption context, when given, is
//! the additional authenticated data: a blob decrypts only with the context it was made with.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom as _, SystemRandom};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const FILE_NAME: &str = "kms-keys.json";
const BLOB_MAGIC: &[u8; 4] = b"SLK1";
const KEY_ID_LEN: usize = 36;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 4 + KEY_ID_LEN + 4 + NONCE_LEN;

/// One key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Key {
    /// A UUID.
    pub id: String,
    /// Creation time, ms since the epoch.
    pub created_ms: u64,
    /// What it is for.
    pub description: String,
    /// Disabled keys neither encrypt nor decrypt.
    pub enabled: bool,
    /// Automatic rotation asked for (EnableKeyRotation).
    pub rotation: bool,
    /// Key material, base64, one per version; the last one encrypts.
    versions: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    keys: Vec<Key>,
    /// `alias/name` → key id.
    aliases: BTreeMap<String, String>,
}

impl Stored {
    /// The key an id, key ARN, alias name or alias ARN names.
    fn key(&self, reference: &str) -> Option<&Key> {
        let id = match reference.rsplit_once(":alias/") {
            Some((_, alias)) => self.aliases.get(&format!("alias/{alias}")).cloned(),
            None if reference.starts_with("alias/") => self.aliases.get(reference).cloned(),
            None => Some(reference.rsplit('/').next().unwrap_or(reference).to_owned()),
        }?;
        self.keys.iter().find(|k| k.id == id)
    }
}

/// Why a keyring call failed (rendered as KMS errors by the API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// No such key or alias.
    NotFound(String),
    /// The alias exists.
    AlreadyExists(String),
    /// The key is disabled.
    Disabled(String),
    /// Not a blob of this keyring, damaged, or another encryption context.
    InvalidCiphertext,
    /// Reading or writing the keyring file.
    Io(String),
}

/// The keys of one tenant.
#[derive(Debug)]
pub struct Keyring {
    path: PathBuf,
    stored: Mutex<Stored>,
    random: SystemRandom,
}

fn decode(material: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(material)
        .expect("the keyring holds base64 key material")
}

impl Keyring {
    /// Opens the keyring of the tenant in `dir` (empty when it has none yet).
    pub fn open(dir: &Path) -> std::io::Result<Keyring> {
        let path = dir.join(FILE_NAME);
        let stored = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is damaged: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Stored::default(),
            Err(e) => return Err(e),
        };
        // Every key has a version of 32 bytes of base64 material, or the file is damaged:
        // refused here rather than met later on a put or a read.
        for key in &stored.keys {
            let sound = !key.versions.is_empty()
                && key.versions.iter().all(|material| {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD
                        .decode(material)
                        .is_ok_and(|bytes| bytes.len() == 32)
                });
            if !sound {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{} is damaged: key {} has no usable material",
                        path.display(),
                        key.id
                    ),
                ));
            }
        }
        Ok(Keyring {
            path,
            stored: Mutex::new(stored),
            random: SystemRandom::new(),
        })
    }

    fn random<const N: usize>(&self) -> [u8; N] {
        let mut bytes = [0u8; N];
        self.random
            .fill(&mut bytes)
            .expect("the system's random source works");
        bytes
    }

    /// Applies `change` and writes the keyring before returning; nothing changes when the
    /// write fails.
    fn change<R>(
        &self,
        change: impl FnOnce(&mut Stored) -> Result<R, KeyError>,
    ) -> Result<R, KeyError> {
        let mut stored = self.stored.lock().expect("keyring lock");
        let mut next = Stored {
            keys: stored.keys.clone(),
            aliases: stored.aliases.clone(),
        };
        let result = change(&mut next)?;
        crate::private_file::replace(
            &self.path,
            &serde_json::to_vec(&next).expect("keys serialize"),
        )
        .map_err(|e| KeyError::Io(format!("writing {}: {e}", self.path.display())))?;
        *stored = next;
        Ok(result)
    }

    /// Creates a key.
    pub fn create(&self, description: &str, now_ms: u64) -> Result<Key, KeyError> {
        use base64::Engine as _;
        let material: [u8; 32] = self.random();
        let key = Key {
            id: uuid::Uuid::new_v4().to_string(),
            created_ms: now_ms,
            description: description.to_owned(),
            enabled: true,
            rotation: false,
            versions: vec![base64::engine::general_purpose::STANDARD.encode(material)],
        };
        self.change(|stored| {
            stored.keys.push(key.clone());
            Ok(key)
        })
    }

    /// The key an id, key ARN, alias name or alias ARN names.
    pub fn find(&self, reference: &str) -> Result<Key, KeyError> {
        let stored = self.stored.lock().expect("keyring lock");
        stored
            .key(reference)
            .cloned()
            .ok_or_else(|| KeyError::NotFound(reference.to_owned()))
    }

    /// Whether the key `reference` names is enabled (`None`: no key has that name), without
    /// copying the key.
    pub fn is_enabled(&self, reference: &str) -> Option<bool> {
        let stored = self.stored.lock().expect("keyring lock");
        stored.key(reference).map(|k| k.enabled)
    }

    /// Names key `key_id` `alias` (`alias/...`).
    pub fn create_alias(&self, alias: &str, key_id: &str) -> Result<(), KeyError> {
        let key = self.find(key_id)?;
        self.change(|stored| {
            if stored.aliases.contains_key(alias) {
                return Err(KeyError::AlreadyExists(alias.to_owned()));
            }
            stored.aliases.insert(alias.to_owned(), key.id.clone());
            Ok(())
        })
    }

    /// Every key's id.
    pub fn key_ids(&self) -> Vec<String> {
        let stored = self.stored.lock().expect("keyring lock");
        stored.keys.iter().map(|k| k.id.clone()).collect()
    }

    /// Every alias and the key it names.
    pub fn aliases(&self) -> Vec<(String, String)> {
        let stored = self.stored.lock().expect("keyring lock");
        stored
            .aliases
            .iter()
            .map(|(a, k)| (a.clone(), k.clone()))
            .collect()
    }

    /// Enables or disables key `key_id` (KMS' EnableKey and DisableKey): a disabled key
    /// neither encrypts nor decrypts.
    pub fn set_enabled(&self, key_id: &str, on: bool) -> Result<(), KeyError> {
        let key = self.find(key_id)?;
        self.change(|stored| {
            for found in stored.keys.iter_mut().filter(|k| k.id == key.id) {
                found.enabled = on;
            }
            Ok(())
        })
    }

    /// Turns automatic rotation on or off; turning it on also rotates now (new blobs use a
    /// new version; old blobs still decrypt).
    pub fn set_rotation(&self, key_id: &str, on: bool) -> Result<(), KeyError> {
        use base64::Engine as _;
        let key = self.find(key_id)?;
        let material: [u8; 32] = self.random();
        self.change(|stored| {
            let key = stored
                .keys
                .iter_mut()
                .find(|k| k.id == key.id)
                .expect("found above, under the same lock order");
            if on && !key.rotation {
                key.versions
                    .push(base64::engine::general_purpose::STANDARD.encode(material));
            }
            key.rotation = on;
            Ok(())
        })
    }

    /// Encrypts `plaintext` under key `key_id`'s current version, bound to `context`.
    pub fn encrypt(
        &self,
        key_id: &str,
        plaintext: &[u8],
        context: &BTreeMap<String, String>,
    ) -> Result<(Key, Vec<u8>), KeyError> {
        let key = self.find(key_id)?;
        if !key.enabled {
            return Err(KeyError::Disabled(key.id));
        }
        let version = key.versions.len() - 1;
        let nonce: [u8; NONCE_LEN] = self.random();
        let mut blob = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        blob.extend_from_slice(BLOB_MAGIC);
        blob.extend_from_slice(key.id.as_bytes());
        blob.extend_from_slice(&(version as u32).to_le_bytes());
        blob.extend_from_slice(&nonce);
        let mut sealed = plaintext.to_vec();
        aead(&decode(&key.versions[version]))
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(context)),
                &mut sealed,
            )
            .expect("AES-GCM seals any plaintext under 64 GiB");
        blob.extend_from_slice(&sealed);
        Ok((key, blob))
    }

    /// Decrypts a blob of this keyring made with `context`.
    pub fn decrypt(
        &self,
        blob: &[u8],
        context: &BTreeMap<String, String>,
    ) -> Result<(Key, Vec<u8>), KeyError> {
        if blob.len() < HEADER_LEN + TAG_LEN || &blob[..4] != BLOB_MAGIC {
            return Err(KeyError::InvalidCiphertext);
        }
        let id = std::str::from_utf8(&blob[4..4 + KEY_ID_LEN])
            .map_err(|_| KeyError::InvalidCiphertext)?;
        let key = self.find(id).map_err(|_| KeyError::InvalidCiphertext)?;
        if !key.enabled {
            return Err(KeyError::Disabled(key.id));
        }
        let at = 4 + KEY_ID_LEN;
        let version = u32::from_le_bytes(blob[at..at + 4].try_into().expect("4 bytes")) as usize;
        let material = key
            .versions
            .get(version)
            .ok_or(KeyError::InvalidCiphertext)?;
        let nonce: [u8; NONCE_LEN] = blob[at + 4..HEADER_LEN].try_into().expect("12 bytes");
        let mut sealed = blob[HEADER_LEN..].to_vec();
        let plaintext = aead(&decode(material))
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(context)),
                &mut sealed,
            )
            .map_err(|_| KeyError::InvalidCiphertext)?;
        let plaintext = plaintext.to_vec();
        Ok((key, plaintext))
    }

    /// `bytes` random bytes (a data key's plaintext).
    pub fn random_bytes(&self, bytes: usize) -> Vec<u8> {
        let mut out = vec![0u8; bytes];
        self.random
            .fill(&mut out)
            .expect("the system's random source works");
        out
    }
}

fn aead(material: &[u8]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, material).expect("32-byte keys"))
}

/// The encryption context as authenticated data: its JSON (keys in order).
fn aad(context: &BTreeMap<String, String>) -> Vec<u8> {
    match context.is_empty() {
        true => Vec::new(),
        false => serde_json::to_vec(context).expect("strings serialize"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_decrypt_only_with_their_key_and_context_and_survive_rotation_and_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::open(dir.path()).unwrap();
        let key = ring.create("streams", 1).unwrap();
        ring.create_alias("alias/streams", &key.id).unwrap();
        assert_eq!(
            ring.create_alias("alias/streams", &key.id),
            Err(KeyError::AlreadyExists("alias/streams".into()))
        );
        let context = BTreeMap::from([("stream".to_owned(), "orders".to_owned())]);
        let (_, blob) = ring.encrypt("alias/streams", b"secret", &context).unwrap();
        assert!(!blob.windows(6).any(|w| w == b"secret"));
        assert_eq!(ring.decrypt(&blob, &context).unwrap().1, b"secret");
        assert_eq!(
            ring.decrypt(&blob, &BTreeMap::new()),
            Err(KeyError::InvalidCiphertext)
        );
        let mut tampered = blob.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(
            ring.decrypt(&tampered, &context),
            Err(KeyError::InvalidCiphertext)
        );
        ring.set_rotation(&key.id, true).unwrap();
        let (_, rotated) = ring.encrypt(&key.id, b"newer", &context).unwrap();
        assert_ne!(rotated[40..44], blob[40..44], "a new version encrypts");
        let reopened = Keyring::open(dir.path()).unwrap();
        assert_eq!(reopened.decrypt(&blob, &context).unwrap().1, b"secret");
        assert_eq!(reopened.decrypt(&rotated, &context).unwrap().1, b"newer");
        let arn = format!("arn:aws:kms:us-east-1:000000000000:key/{}", key.id);
        assert_eq!(reopened.find(&arn).unwrap().id, key.id);
        assert_eq!(
            reopened
                .find("arn:aws:kms:us-east-1:000000000000:alias/streams")
                .unwrap()
                .id,
            key.id
        );
        assert!(matches!(
            reopened.find("alias/none"),
            Err(KeyError::NotFound(_))
        ));
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join(FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_keyring_with_unusable_material_is_refused_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::open(dir.path()).unwrap();
        ring.create("k", 1).unwrap();
        let path = dir.path().join(FILE_NAME);
        let text = std::fs::read_to_string(&path).unwrap();
        let start = text.find("\"versions\":[\"").unwrap() + "\"versions\":[\"".len();
        let end = start + text[start..].find('"').unwrap();
        for damaged in [
            format!("{}AAAA{}", &text[..start], &text[end..]),
            text.replace(&text[start - 1..=end], ""),
        ] {
            std::fs::write(&path, damaged).unwrap();
            let error = Keyring::open(dir.path()).unwrap_err();
            assert_eq!(error.kind(), std::io::ErrorKind::InvalidData, "{error}");
        }
    }
}
