//! A delivery stream's destination from the member a client gave (`ExtendedS3`, `S3`,
//! `HttpEndpoint` or `Redshift`, each `...DestinationConfiguration`), at creation and at
//! UpdateDestination. The configuration as given is kept with the delivery stream, so an
//! update (`...DestinationUpdate`, the members it names replacing those kept) makes the
//! destination again from the whole of it.

use super::shapes::{
    DESTINATION_KIND, HttpConfiguration, Input, S3Configuration, destination, http_destination,
    unsupported,
};
use crate::tenant::Tenant;
use crate::wire::ApiError;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sluice_firehose::Destination;
use std::collections::BTreeMap;

/// The metadata key that keeps the destination's configuration as given (merged with the
/// updates since).
pub(super) const CONFIGURATION: &str = "DestinationConfiguration";

/// The kinds, by their members' stem (`<stem>DestinationConfiguration`,
/// `<stem>DestinationUpdate`).
pub(super) const KINDS: [&str; 4] = ["ExtendedS3", "S3", "HttpEndpoint", "Redshift"];

/// The one destination member of a CreateDeliveryStream (its kind and configuration).
pub(super) fn given(input: &Input) -> Result<(&'static str, &Value), ApiError> {
    let members = [
        &input.extended_s3_destination_configuration,
        &input.s3_destination_configuration,
        &input.http_endpoint_destination_configuration,
        &input.redshift_destination_configuration,
    ];
    let mut given = KINDS
        .iter()
        .zip(members)
        .filter_map(|(kind, m)| Some((*kind, m.as_ref()?)));
    match (given.next(), given.next()) {
        (Some(one), None) => Ok(one),
        _ => Err(ApiError::invalid_argument(
            "Exactly one destination is required: ExtendedS3DestinationConfiguration (or S3DestinationConfiguration), HttpEndpointDestinationConfiguration or RedshiftDestinationConfiguration.",
        )),
    }
}

/// The destination of kind `kind` that `config` describes; what it keeps for Describe goes
/// into `metadata`.
pub(super) fn build(
    tenant: &Tenant,
    name: &str,
    (kind, config): (&str, &Value),
    metadata: &mut BTreeMap<String, String>,
) -> Result<Destination, ApiError> {
    let lambda = tenant.config.firehose_lambda_endpoint.is_some();
    let member = format!("{kind}DestinationConfiguration");
    let destination = match kind {
        "ExtendedS3" | "S3" => {
            let s3: S3Configuration = typed(config, &member)?;
            let mut made = destination(&s3, lambda, metadata)?;
            let conversion = s3.data_format_conversion_configuration.as_ref();
            if kind == "ExtendedS3" {
                made.conversion = super::conversion::conversion(tenant, conversion, metadata)?;
            } else if conversion.is_some() {
                return Err(unsupported(
                    "DataFormatConversionConfiguration in S3DestinationConfiguration (ExtendedS3DestinationConfiguration takes it)",
                ));
            }
            made
        }
        "HttpEndpoint" => {
            let http: HttpConfiguration = typed(config, &member)?;
            http_destination(tenant, name, &http, lambda, metadata)?
        }
        _ => {
            let redshift: super::redshift::RedshiftConfiguration = typed(config, &member)?;
            super::redshift::redshift_destination(&redshift, lambda, metadata)?
        }
    };
    metadata.insert(DESTINATION_KIND.to_owned(), kind.to_owned());
    metadata.insert(CONFIGURATION.to_owned(), config.to_string());
    Ok(destination)
}

/// `config` as the typed shape of `member`; a member the shape does not know is refused,
/// naming it, as not supported (never dropped).
fn typed<T: DeserializeOwned>(config: &Value, member: &str) -> Result<T, ApiError> {
    serde_json::from_value(config.clone()).map_err(|e| {
        let text = e.to_string();
        match text
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
        {
            Some(field) => unsupported(&format!("{member}.{field}")),
            None => ApiError::invalid_argument(format!("{member}: {text}")),
        }
    })
}

/// The configuration after an UpdateDestination: its one `...DestinationUpdate` member,
/// which must be of the delivery stream's kind (an `S3DestinationUpdate` also updates an
/// `ExtendedS3` one, as Firehose takes it), its members replacing the kept ones.
pub(super) fn updated<'a>(
    kind: &'a str,
    kept: &Value,
    updates: &BTreeMap<String, Value>,
) -> Result<(&'a str, Value), ApiError> {
    let mut given = updates
        .iter()
        .filter(|(member, _)| member.ends_with("DestinationUpdate"));
    let (member, update) = match (given.next(), given.next()) {
        (Some(one), None) => one,
        _ => {
            return Err(ApiError::invalid_argument(
                "UpdateDestination takes exactly one ...DestinationUpdate member.",
            ));
        }
    };
    let stem = member.trim_end_matches("DestinationUpdate");
    let same = stem == kind || (stem == "S3" && kind == "ExtendedS3");
    if !same {
        return Err(unsupported(&format!(
            "Changing a delivery stream's destination from {kind} to {stem}"
        )));
    }
    let (Some(update), Some(kept)) = (update.as_object(), kept.as_object()) else {
        return Err(ApiError::invalid_argument(format!(
            "{member} is an object."
        )));
    };
    let mut merged = kept.clone();
    for (field, value) in update {
        // A nested bucket's update (`S3Update`, `S3BackupUpdate`) changes the members it
        // names of the kept configuration (`S3Configuration`, `S3BackupConfiguration`).
        let nested = match field.as_str() {
            "S3Update" => Some("S3Configuration"),
            "S3BackupUpdate" => Some("S3BackupConfiguration"),
            _ => None,
        };
        match (nested, value.as_object()) {
            (Some(target), Some(members)) => {
                let slot = merged
                    .entry(target)
                    .or_insert_with(|| Value::Object(Default::default()));
                if let Some(kept) = slot.as_object_mut() {
                    kept.extend(members.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
            _ => {
                merged.insert(field.clone(), value.clone());
            }
        }
    }
    Ok((kind, Value::Object(merged)))
}
