//! The KMS API subset SDK users need to create and name keys and to wrap data keys
//! (`TrentService.*` on the same endpoint, signed for the `kms` service): CreateKey,
//! DescribeKey, ListKeys, CreateAlias, ListAliases, GenerateDataKey, Encrypt, Decrypt,
//! Enable/DisableKeyRotation, GetKeyRotationStatus. Keys live in the tenant's local keyring
//! (keyring.rs), the `KeyProvider` that stands in for KMS.

pub mod keyring;

use crate::tenant::Tenant;
use crate::wire::types::BlobRef;
use crate::wire::{ApiError, Blob, Protocol, Timestamp};
use keyring::{Key, KeyError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `X-Amz-Target` prefix of KMS operations.
pub const TARGET_PREFIX: &str = "TrentService.";

/// The operations served.
pub const OPERATIONS: &[&str] = &[
    "CreateKey",
    "DescribeKey",
    "ListKeys",
    "CreateAlias",
    "ListAliases",
    "GenerateDataKey",
    "Encrypt",
    "Decrypt",
    "EnableKey",
    "DisableKey",
    "EnableKeyRotation",
    "DisableKeyRotation",
    "GetKeyRotationStatus",
];

impl From<KeyError> for ApiError {
    fn from(error: KeyError) -> ApiError {
        match error {
            KeyError::NotFound(what) => {
                ApiError::new("NotFoundException", format!("Key '{what}' does not exist"))
            }
            KeyError::AlreadyExists(alias) => ApiError::new(
                "AlreadyExistsException",
                format!("An alias with the name {alias} already exists"),
            ),
            KeyError::Disabled(id) => {
                ApiError::new("DisabledException", format!("Key {id} is disabled."))
            }
            KeyError::InvalidCiphertext => ApiError::new("InvalidCiphertextException", ""),
            KeyError::Io(message) => ApiError::internal(message),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct KeyMetadata {
    #[serde(rename = "AWSAccountId")]
    aws_account_id: String,
    key_id: String,
    arn: String,
    creation_date: Timestamp,
    enabled: bool,
    description: String,
    key_usage: &'static str,
    key_state: &'static str,
    origin: &'static str,
    key_manager: &'static str,
    key_spec: &'static str,
    customer_master_key_spec: &'static str,
    encryption_algorithms: [&'static str; 1],
    multi_region: bool,
}

fn key_arn(tenant: &Tenant, id: &str) -> String {
    format!("arn:aws:kms:{}:{}:key/{id}", tenant.region, tenant.account)
}

fn metadata(tenant: &Tenant, key: &Key) -> KeyMetadata {
    KeyMetadata {
        aws_account_id: tenant.account.clone(),
        key_id: key.id.clone(),
        arn: key_arn(tenant, &key.id),
        creation_date: Timestamp::from_ms(key.created_ms),
        enabled: key.enabled,
        description: key.description.clone(),
        key_usage: "ENCRYPT_DECRYPT",
        key_state: if key.enabled { "Enabled" } else { "Disabled" },
        origin: "AWS_KMS",
        key_manager: "CUSTOMER",
        key_spec: "SYMMETRIC_DEFAULT",
        customer_master_key_spec: "SYMMETRIC_DEFAULT",
        encryption_algorithms: ["SYMMETRIC_DEFAULT"],
        multi_region: false,
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Input {
    key_id: Option<String>,
    description: Option<String>,
    key_spec: Option<String>,
    key_usage: Option<String>,
    alias_name: Option<String>,
    target_key_id: Option<String>,
    number_of_bytes: Option<i64>,
    plaintext: Option<Blob>,
    ciphertext_blob: Option<Blob>,
    #[serde(default)]
    encryption_context: BTreeMap<String, String>,
}

fn required<'a>(value: &'a Option<String>, member: &str) -> Result<&'a str, ApiError> {
    value.as_deref().ok_or_else(|| {
        ApiError::validation(format!(
            "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
        ))
    })
}

/// Runs KMS operation `name` for `tenant`.
pub fn call(
    tenant: &Tenant,
    name: &str,
    protocol: Protocol,
    body: &[u8],
) -> Result<Vec<u8>, ApiError> {
    let input: Input = protocol.decode(body)?;
    let keys = &tenant.keyring;
    Ok(match name {
        "CreateKey" => create_key(tenant, &input, protocol)?,
        "DescribeKey" => {
            let key = keys.find(required(&input.key_id, "keyId")?)?;
            protocol.encode(&serde_json::json!({ "KeyMetadata": metadata(tenant, &key) }))
        }
        "ListKeys" => list_keys(tenant, protocol),
        "CreateAlias" => create_alias(tenant, &input, protocol)?,
        "ListAliases" => list_aliases(tenant, protocol),
        "GenerateDataKey" => generate_data_key(tenant, &input, protocol)?,
        "Encrypt" => encrypt(tenant, &input, protocol)?,
        "Decrypt" => decrypt(tenant, &input, protocol)?,
        "EnableKey" | "DisableKey" => {
            let on = name == "EnableKey";
            keys.set_enabled(required(&input.key_id, "keyId")?, on)?;
            protocol.encode(&serde_json::json!({}))
        }
        "EnableKeyRotation" | "DisableKeyRotation" => {
            let on = name == "EnableKeyRotation";
            keys.set_rotation(required(&input.key_id, "keyId")?, on)?;
            protocol.encode(&serde_json::json!({}))
        }
        "GetKeyRotationStatus" => {
            let key = keys.find(required(&input.key_id, "keyId")?)?;
            protocol.encode(&serde_json::json!({
                "KeyRotationEnabled": key.rotation,
                "KeyId": key_arn(tenant, &key.id),
            }))
        }
        _ => return Err(ApiError::unknown_operation()),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Encrypted<'a> {
    ciphertext_blob: BlobRef<'a>,
    key_id: String,
    encryption_algorithm: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Decrypted<'a> {
    plaintext: BlobRef<'a>,
    key_id: String,
    encryption_algorithm: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DataKey<'a> {
    ciphertext_blob: BlobRef<'a>,
    plaintext: BlobRef<'a>,
    key_id: String,
}

fn generate_data_key(
    tenant: &Tenant,
    input: &Input,
    protocol: Protocol,
) -> Result<Vec<u8>, ApiError> {
    let bytes = match (input.key_spec.as_deref(), input.number_of_bytes) {
        (Some("AES_256"), None) => 32,
        (Some("AES_128"), None) => 16,
        (None, Some(n @ 1..=1024)) => n as usize,
        _ => {
            return Err(ApiError::validation(
                "Give KeySpec (AES_256 or AES_128) or NumberOfBytes (1 to 1024), not both.",
            ));
        }
    };
    let key_id = required(&input.key_id, "keyId")?;
    let plaintext = tenant.keyring.random_bytes(bytes);
    let (key, blob) = tenant
        .keyring
        .encrypt(key_id, &plaintext, &input.encryption_context)?;
    Ok(protocol.encode(&DataKey {
        ciphertext_blob: BlobRef(&blob),
        plaintext: BlobRef(&plaintext),
        key_id: key_arn(tenant, &key.id),
    }))
}

fn list_keys(tenant: &Tenant, protocol: Protocol) -> Vec<u8> {
    let ids: Vec<String> = tenant
        .keyring
        .aliases()
        .into_iter()
        .map(|(_, id)| id)
        .chain(tenant.keyring.key_ids())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let keys: Vec<_> = ids
        .iter()
        .map(|id| serde_json::json!({"KeyId": id, "KeyArn": key_arn(tenant, id)}))
        .collect();
    protocol.encode(&serde_json::json!({"Keys": keys, "Truncated": false}))
}

fn list_aliases(tenant: &Tenant, protocol: Protocol) -> Vec<u8> {
    let aliases: Vec<_> = tenant
        .keyring
        .aliases()
        .into_iter()
        .map(|(alias, id)| {
            serde_json::json!({
                "AliasName": alias,
                "AliasArn": format!("arn:aws:kms:{}:{}:{alias}", tenant.region, tenant.account),
                "TargetKeyId": id,
            })
        })
        .collect();
    protocol.encode(&serde_json::json!({"Aliases": aliases, "Truncated": false}))
}

fn create_key(tenant: &Tenant, input: &Input, protocol: Protocol) -> Result<Vec<u8>, ApiError> {
    if input
        .key_spec
        .as_deref()
        .is_some_and(|s| s != "SYMMETRIC_DEFAULT")
        || input
            .key_usage
            .as_deref()
            .is_some_and(|u| u != "ENCRYPT_DECRYPT")
    {
        return Err(ApiError::new(
            "UnsupportedOperationException",
            "This endpoint makes SYMMETRIC_DEFAULT keys for ENCRYPT_DECRYPT only.",
        ));
    }
    let key = tenant.keyring.create(
        input.description.as_deref().unwrap_or_default(),
        crate::clock::now_ms(),
    )?;
    Ok(protocol.encode(&serde_json::json!({ "KeyMetadata": metadata(tenant, &key) })))
}

fn create_alias(tenant: &Tenant, input: &Input, protocol: Protocol) -> Result<Vec<u8>, ApiError> {
    let alias = required(&input.alias_name, "aliasName")?;
    let valid = alias.strip_prefix("alias/").is_some_and(|name| {
        !name.is_empty()
            && !name.starts_with("aws/")
            && name.len() <= 250
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_-".contains(&b))
    });
    if !valid {
        return Err(ApiError::validation(format!(
            "Alias must start with the prefix \"alias/\" and name no AWS alias: {alias}"
        )));
    }
    tenant
        .keyring
        .create_alias(alias, required(&input.target_key_id, "targetKeyId")?)?;
    Ok(protocol.encode(&serde_json::json!({})))
}

fn encrypt(tenant: &Tenant, input: &Input, protocol: Protocol) -> Result<Vec<u8>, ApiError> {
    let plaintext = input.plaintext.as_ref().ok_or_else(|| {
            ApiError::validation("1 validation error detected: Value null at 'plaintext' failed to satisfy constraint: Member must not be null")
        })?;
    if plaintext.0.is_empty() || plaintext.0.len() > 4096 {
        return Err(ApiError::validation(
            "Plaintext must be 1 to 4096 bytes (wrap larger data with a data key).",
        ));
    }
    let key_id = required(&input.key_id, "keyId")?;
    let (key, blob) = tenant
        .keyring
        .encrypt(key_id, &plaintext.0, &input.encryption_context)?;
    Ok(protocol.encode(&Encrypted {
        ciphertext_blob: BlobRef(&blob),
        key_id: key_arn(tenant, &key.id),
        encryption_algorithm: "SYMMETRIC_DEFAULT",
    }))
}

fn decrypt(tenant: &Tenant, input: &Input, protocol: Protocol) -> Result<Vec<u8>, ApiError> {
    let blob = input.ciphertext_blob.as_ref().ok_or_else(|| {
            ApiError::validation("1 validation error detected: Value null at 'ciphertextBlob' failed to satisfy constraint: Member must not be null")
        })?;
    let (key, plaintext) = tenant.keyring.decrypt(&blob.0, &input.encryption_context)?;
    if let Some(asked) = &input.key_id
        && tenant.keyring.find(asked)?.id != key.id
    {
        return Err(ApiError::new(
            "IncorrectKeyException",
            "The key ID in the request does not identify the key used to encrypt the ciphertext.",
        ));
    }
    Ok(protocol.encode(&Decrypted {
        plaintext: BlobRef(&plaintext),
        key_id: key_arn(tenant, &key.id),
        encryption_algorithm: "SYMMETRIC_DEFAULT",
    }))
}
