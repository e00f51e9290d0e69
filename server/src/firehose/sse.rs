//! Server-side encryption of delivery streams (StartDeliveryStreamEncryption and Stop, the
//! `DeliveryStreamEncryptionConfigurationInput` of CreateDeliveryStream): DirectPut records
//! are sealed under the tenant's KMS keys as Kinesis stream records are (the same data keys
//! and envelope), and opened as the delivery reads them; so are the records of an encrypted
//! source stream.

use super::error;
use super::shapes::{Input, name};
use crate::encryption::FIREHOSE_MANAGED_KEY;
use crate::tenant::Tenant;
use crate::wire::ApiError;
use serde_json::{Value, json};
use sluice_firehose::{Envelopes, Firehose, FirehoseError, SealFuture};
use std::sync::Weak;

/// The tenant's data keys, as the Firehose library seals and opens through them.
pub(crate) struct TenantEnvelopes {
    /// Weak: the tenant holds its Firehose, which holds this.
    tenant: Weak<Tenant>,
}

impl TenantEnvelopes {
    pub(crate) fn new(tenant: Weak<Tenant>) -> TenantEnvelopes {
        TenantEnvelopes { tenant }
    }

    fn tenant(&self) -> Result<std::sync::Arc<Tenant>, FirehoseError> {
        self.tenant
            .upgrade()
            .ok_or_else(|| FirehoseError::Unavailable("The account is closing.".into()))
    }
}

/// A key's failure (a 4xx: disabled, missing, refused) as Firehose reports it
/// (`InvalidKMSResourceException`); the server's own (its state, its data key ids) as a
/// failure to try again.
fn key_failure(error: &ApiError) -> FirehoseError {
    if error.status < 500 {
        FirehoseError::Key(error.message.clone())
    } else {
        FirehoseError::Unavailable(error.message.clone())
    }
}

impl Envelopes for TenantEnvelopes {
    fn seal<'a>(
        &'a self,
        stream: (&'a str, u64),
        key: &'a str,
        records: &'a [&'a [u8]],
    ) -> SealFuture<'a> {
        Box::pin(async move {
            let tenant = self.tenant()?;
            tenant
                .data_keys
                .seal(&tenant, stream, key, records)
                .await
                .map_err(|e| key_failure(&e))
        })
    }

    fn open(&self, stream: &str, envelope: &[u8]) -> Result<Vec<u8>, FirehoseError> {
        let tenant = self.tenant()?;
        tenant
            .data_keys
            .open(&tenant, stream, envelope)
            .map_err(|e| key_failure(&e))
    }
}

/// The KMS key a `DeliveryStreamEncryptionConfigurationInput` asks for: Firehose's own
/// (`AWS_OWNED_CMK`), or an enabled key of the account's keyring (`CUSTOMER_MANAGED_CMK`
/// with its `KeyARN`). `None` when the member is absent.
pub(super) fn requested_key(tenant: &Tenant, input: &Input) -> Result<Option<String>, ApiError> {
    let Some(config) = &input.delivery_stream_encryption_configuration_input else {
        return Ok(None);
    };
    let text = |member: &str| config.get(member).and_then(Value::as_str);
    let key = match (text("KeyType"), text("KeyARN")) {
        (Some("AWS_OWNED_CMK") | None, None) => FIREHOSE_MANAGED_KEY.to_owned(),
        (Some("AWS_OWNED_CMK") | None, Some(_)) => {
            return Err(ApiError::invalid_argument(
                "KeyARN is only for KeyType CUSTOMER_MANAGED_CMK.",
            ));
        }
        (Some("CUSTOMER_MANAGED_CMK"), Some(arn)) => arn.to_owned(),
        (Some("CUSTOMER_MANAGED_CMK"), None) => {
            return Err(ApiError::invalid_argument(
                "KeyType CUSTOMER_MANAGED_CMK needs a KeyARN.",
            ));
        }
        (Some(other), _) => {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{other}' at 'deliveryStreamEncryptionConfigurationInput.keyType' failed to satisfy constraint: Member must satisfy enum value set: [AWS_OWNED_CMK, CUSTOMER_MANAGED_CMK]"
            )));
        }
    };
    if key != FIREHOSE_MANAGED_KEY {
        check_key(tenant, &key)?;
    }
    Ok(Some(key))
}

/// A customer key must exist in the account and be enabled.
fn check_key(tenant: &Tenant, key: &str) -> Result<(), ApiError> {
    if !key.starts_with("arn:aws:kms:") {
        return Err(ApiError::invalid_argument(format!(
            "KeyARN {key} is not a KMS key ARN."
        )));
    }
    match tenant.keyring.find(key) {
        Ok(found) if found.enabled => Ok(()),
        Ok(_) => Err(ApiError::new(
            "InvalidKMSResourceException",
            format!("The KMS key {key} is disabled."),
        )),
        Err(_) => Err(ApiError::new(
            "InvalidKMSResourceException",
            format!(
                "The KMS key {key} does not exist in account {} in {}.",
                tenant.account, tenant.region
            ),
        )),
    }
}

/// StartDeliveryStreamEncryption and StopDeliveryStreamEncryption.
pub(super) async fn change(
    operation: &str,
    tenant: &Tenant,
    firehose: &Firehose,
    input: &Input,
) -> Result<Value, ApiError> {
    let name = name(input)?;
    let account = tenant.account.as_str();
    if operation == "StopDeliveryStreamEncryption" {
        firehose
            .stop_encryption(name)
            .await
            .map_err(|e| error(e, account))?;
        return Ok(json!({}));
    }
    let key = requested_key(tenant, input)?.unwrap_or_else(|| FIREHOSE_MANAGED_KEY.to_owned());
    firehose
        .start_encryption(name, &key)
        .await
        .map_err(|e| error(e, account))?;
    Ok(json!({}))
}

/// `DeliveryStreamEncryptionConfiguration` as Describe shows it.
pub(super) fn describe(key: Option<&str>) -> Value {
    match key {
        None => json!({ "Status": "DISABLED" }),
        Some(FIREHOSE_MANAGED_KEY) => json!({ "KeyType": "AWS_OWNED_CMK", "Status": "ENABLED" }),
        Some(arn) => json!({
            "KeyARN": arn,
            "KeyType": "CUSTOMER_MANAGED_CMK",
            "Status": "ENABLED",
        }),
    }
}
