//! Source record backup: `S3BackupMode` `Enabled` with its `S3BackupConfiguration` (extended
//! S3 and Redshift destinations), `AllData` for HTTP endpoints (into the `S3Configuration`'s
//! bucket). The backup is written with each flush (docs/design/firehose.md); its own
//! `BufferingHints` are kept and shown, and do not change when it is written.

use super::shapes::{S3Configuration, destination};
use crate::wire::ApiError;
use serde_json::{Value, json};
use sluice_firehose::Backup;
use std::collections::BTreeMap;

/// The metadata key keeping the `S3BackupConfiguration` as given.
pub(super) const CONFIGURATION: &str = "S3BackupConfiguration";

/// The backup `S3BackupMode` and `S3BackupConfiguration` ask for (`Disabled`, the default:
/// none).
pub(super) fn source_backup(
    mode: Option<&str>,
    config: Option<&Value>,
    metadata: &mut BTreeMap<String, String>,
) -> Result<Option<Backup>, ApiError> {
    metadata.remove(CONFIGURATION);
    match (mode.unwrap_or("Disabled"), config) {
        ("Disabled", None) => Ok(None),
        ("Disabled", Some(_)) => Err(ApiError::invalid_argument(
            "S3BackupConfiguration is taken with S3BackupMode Enabled only.",
        )),
        ("Enabled", None) => Err(ApiError::invalid_argument(
            "S3BackupMode Enabled needs an S3BackupConfiguration.",
        )),
        ("Enabled", Some(config)) => {
            let s3: S3Configuration = serde_json::from_value(config.clone())
                .map_err(|e| ApiError::invalid_argument(format!("S3BackupConfiguration: {e}")))?;
            if !s3.is_plain() {
                return Err(ApiError::invalid_argument(
                    "S3BackupConfiguration takes the plain S3 destination's members only.",
                ));
            }
            // Checked and read as a destination of its own; what that keeps is not ours.
            let made = destination(&s3, false, &mut BTreeMap::new())?;
            metadata.insert(CONFIGURATION.to_owned(), config.to_string());
            Ok(Some(Backup {
                bucket: made.bucket,
                prefix: made.prefix,
                compression: made.compression,
            }))
        }
        (other, _) => Err(ApiError::invalid_argument(format!(
            "S3BackupMode must be Disabled or Enabled, not {other}."
        ))),
    }
}

/// Whether an HTTP endpoint's `S3BackupMode` backs up all records (`AllData`), or only
/// those the endpoint did not take (`FailedDataOnly`, the default).
pub(super) fn all_data(mode: Option<&str>) -> Result<bool, ApiError> {
    match mode.unwrap_or("FailedDataOnly") {
        "FailedDataOnly" => Ok(false),
        "AllData" => Ok(true),
        other => Err(ApiError::invalid_argument(format!(
            "S3BackupMode must be FailedDataOnly or AllData, not {other}."
        ))),
    }
}

/// `S3BackupDescription` as Describe shows it.
pub(super) fn describe(backup: &Backup, metadata: &BTreeMap<String, String>) -> Value {
    let given: Value = metadata
        .get(CONFIGURATION)
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or(Value::Null);
    let hints = given.get("BufferingHints");
    let hint = |member: &str, default: u64| {
        hints
            .and_then(|h| h.get(member))
            .and_then(Value::as_u64)
            .unwrap_or(default)
    };
    json!({
        "RoleARN": given.get("RoleARN"),
        "BucketARN": format!("arn:aws:s3:::{}", backup.bucket),
        "Prefix": backup.prefix,
        "ErrorOutputPrefix": given.get("ErrorOutputPrefix"),
        "BufferingHints": {
            "SizeInMBs": hint("SizeInMBs", 5),
            "IntervalInSeconds": hint("IntervalInSeconds", 300),
        },
        "CompressionFormat": backup.compression.firehose_name(),
        "EncryptionConfiguration": { "NoEncryptionConfig": "NoEncryption" },
        "CloudWatchLoggingOptions": { "Enabled": false },
    })
}
