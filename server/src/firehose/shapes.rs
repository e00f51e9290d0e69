//! Firehose's request shapes (JSON 1.1, `Firehose_20150804`), and the translation of a
//! CreateDeliveryStream request into a delivery stream spec. A setting this server does not
//! build yet is refused with InvalidArgumentException naming it, never ignored.

use crate::arn::StreamArn;
use crate::tenant::Tenant;
use crate::wire::{ApiError, Blob};
use serde::Deserialize;
use serde_json::Value;
use sluice_firehose::{
    BufferingHints, Compression, DeliveryStreamSpec, Destination, HttpEndpoint, Processor, Source,
    SubRecords, Target,
};
use std::collections::BTreeMap;

/// Metadata keys the server keeps with a delivery stream.
pub(super) const ROLE_ARN: &str = "RoleARN";
pub(super) const SOURCE_ROLE_ARN: &str = "SourceRoleARN";
pub(super) const SOURCE_STREAM_ARN: &str = "KinesisStreamARN";
pub(super) const ERROR_OUTPUT_PREFIX: &str = "ErrorOutputPrefix";
/// Which destination member the client used: `ExtendedS3`, `S3` or `HttpEndpoint`.
pub(super) const DESTINATION_KIND: &str = "DestinationKind";
/// An HTTP endpoint's `Name`, and the role of its backup bucket.
pub(super) const HTTP_ENDPOINT_NAME: &str = "HttpEndpointName";
pub(super) const BACKUP_ROLE_ARN: &str = "S3ConfigurationRoleARN";

/// Every member any operation takes; each operation reads its own.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Input {
    pub(super) delivery_stream_name: Option<String>,
    pub(super) delivery_stream_type: Option<String>,
    pub(super) kinesis_stream_source_configuration: Option<SourceConfiguration>,
    #[serde(rename = "S3DestinationConfiguration")]
    pub(super) s3_destination_configuration: Option<Value>,
    #[serde(rename = "ExtendedS3DestinationConfiguration")]
    pub(super) extended_s3_destination_configuration: Option<Value>,
    pub(super) http_endpoint_destination_configuration: Option<Value>,
    pub(super) redshift_destination_configuration: Option<Value>,
    pub(super) current_delivery_stream_version_id: Option<String>,
    pub(super) destination_id: Option<String>,
    pub(super) tag_keys: Option<Vec<String>>,
    pub(super) exclusive_start_tag_key: Option<String>,
    pub(super) tags: Option<Value>,
    pub(super) delivery_stream_encryption_configuration_input: Option<Value>,
    pub(super) record: Option<RecordInput>,
    pub(super) records: Option<Vec<RecordInput>>,
    pub(super) limit: Option<i64>,
    pub(super) exclusive_start_delivery_stream_name: Option<String>,
    /// The destinations and sources this server does not deliver to or read yet.
    #[serde(flatten)]
    pub(super) other: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SourceConfiguration {
    #[serde(rename = "KinesisStreamARN")]
    kinesis_stream_arn: String,
    #[serde(rename = "RoleARN")]
    role_arn: Option<String>,
}

/// Every member of an (extended) S3 destination this server reads; any other is refused
/// (`deny_unknown_fields`), so no setting is silently dropped.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct S3Configuration {
    #[serde(rename = "RoleARN")]
    role_arn: Option<String>,
    #[serde(rename = "BucketARN")]
    bucket_arn: Option<String>,
    prefix: Option<String>,
    error_output_prefix: Option<String>,
    buffering_hints: Option<Hints>,
    compression_format: Option<String>,
    pub(super) processing_configuration: Option<Value>,
    pub(super) data_format_conversion_configuration: Option<Value>,
    pub(super) dynamic_partitioning_configuration: Option<Value>,
    #[serde(rename = "S3BackupMode")]
    s3_backup_mode: Option<String>,
    #[serde(rename = "S3BackupConfiguration")]
    s3_backup_configuration: Option<Value>,
    encryption_configuration: Option<Value>,
    /// Read only to check it is not on: logging is this server's own.
    #[serde(rename = "CloudWatchLoggingOptions")]
    cloud_watch_logging_options: Option<Value>,
    custom_time_zone: Option<String>,
}

impl S3Configuration {
    /// Whether it holds the plain S3 destination's members only (no processors,
    /// conversion, partitioning or backup): an HTTP endpoint's or Redshift's bucket, or a
    /// backup's.
    pub(super) fn is_plain(&self) -> bool {
        self.processing_configuration.is_none()
            && self.data_format_conversion_configuration.is_none()
            && self.dynamic_partitioning_configuration.is_none()
            && self.s3_backup_mode.is_none()
            && self.s3_backup_configuration.is_none()
    }
}

/// Every member of an HTTP endpoint destination this server reads; any other is refused.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct HttpConfiguration {
    endpoint_configuration: EndpointConfiguration,
    buffering_hints: Option<Hints>,
    #[serde(rename = "CloudWatchLoggingOptions")]
    cloud_watch_logging_options: Option<Value>,
    request_configuration: Option<RequestConfiguration>,
    processing_configuration: Option<Value>,
    #[serde(rename = "RoleARN")]
    role_arn: Option<String>,
    retry_options: Option<RetryOptions>,
    #[serde(rename = "S3BackupMode")]
    s3_backup_mode: Option<String>,
    #[serde(rename = "S3Configuration")]
    s3_configuration: S3Configuration,
    secrets_manager_configuration: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct EndpointConfiguration {
    url: String,
    name: Option<String>,
    access_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct RequestConfiguration {
    content_encoding: Option<String>,
    common_attributes: Option<Vec<CommonAttribute>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CommonAttribute {
    attribute_name: String,
    attribute_value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct RetryOptions {
    duration_in_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct Hints {
    #[serde(rename = "SizeInMBs")]
    size_in_mbs: Option<u64>,
    #[serde(rename = "IntervalInSeconds")]
    interval_in_seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct RecordInput {
    pub(super) data: Blob,
}

/// The delivery stream's name, or the validation error Firehose gives for its absence.
pub(super) fn name(input: &Input) -> Result<&str, ApiError> {
    input.delivery_stream_name.as_deref().ok_or_else(|| {
        ApiError::validation(
            "1 validation error detected: Value null at 'deliveryStreamName' failed to satisfy constraint: Member must not be null",
        )
    })
}

pub(super) fn unsupported(what: &str) -> ApiError {
    ApiError::invalid_argument(format!("{what} is not supported by this server yet."))
}

/// Members of a destination whose feature is on when present with `Enabled: true`.
pub(super) fn enabled(value: Option<&Value>) -> bool {
    value.is_some_and(|v| v.get("Enabled").and_then(Value::as_bool) == Some(true))
}

/// The delivery stream a CreateDeliveryStream request describes.
pub(super) fn spec(tenant: &Tenant, input: &Input) -> Result<DeliveryStreamSpec, ApiError> {
    let name = name(input)?.to_owned();
    if let Some(member) = input.other.keys().next() {
        return Err(unsupported(member));
    }
    let mut metadata = BTreeMap::new();
    let source = source(tenant, input, &mut metadata)?;
    let given = super::destinations::given(input)?;
    let destination = super::destinations::build(tenant, &name, given, &mut metadata)?;
    Ok(DeliveryStreamSpec {
        name,
        source,
        destination,
        metadata,
    })
}

fn source(
    tenant: &Tenant,
    input: &Input,
    metadata: &mut BTreeMap<String, String>,
) -> Result<Source, ApiError> {
    match (
        input.delivery_stream_type.as_deref().unwrap_or("DirectPut"),
        &input.kinesis_stream_source_configuration,
    ) {
        ("DirectPut", None) => Ok(Source::DirectPut),
        ("KinesisStreamAsSource", Some(config)) => {
            let arn = StreamArn::parse(&config.kinesis_stream_arn).ok_or_else(|| {
                ApiError::invalid_argument(format!(
                    "KinesisStreamARN {} is not a stream ARN.",
                    config.kinesis_stream_arn
                ))
            })?;
            if arn.account != tenant.account || arn.region != tenant.region {
                return Err(ApiError::invalid_argument(
                    "The source stream must be in the delivery stream's own account and region.",
                ));
            }
            metadata.insert(
                SOURCE_STREAM_ARN.to_owned(),
                config.kinesis_stream_arn.clone(),
            );
            if let Some(role) = &config.role_arn {
                metadata.insert(SOURCE_ROLE_ARN.to_owned(), role.clone());
            }
            Ok(Source::Stream {
                name: arn.stream.to_owned(),
            })
        }
        ("KinesisStreamAsSource", None) => Err(ApiError::invalid_argument(
            "KinesisStreamSourceConfiguration is required for a KinesisStreamAsSource delivery stream.",
        )),
        ("DirectPut", Some(_)) => Err(ApiError::invalid_argument(
            "KinesisStreamSourceConfiguration is only for KinesisStreamAsSource delivery streams.",
        )),
        (other, _) => Err(unsupported(&format!("DeliveryStreamType {other}"))),
    }
}

pub(super) fn destination(
    s3: &S3Configuration,
    lambda: bool,
    metadata: &mut BTreeMap<String, String>,
) -> Result<Destination, ApiError> {
    let processors = processors(s3.processing_configuration.as_ref(), lambda)?;
    check_partitioning(s3, &processors)?;
    let backup = super::backup::source_backup(
        s3.s3_backup_mode.as_deref(),
        s3.s3_backup_configuration.as_ref(),
        metadata,
    )?;
    // Encryption of the objects themselves (SSE-KMS) is the bucket's business in S3; here
    // only "no encryption" is honoured.
    if s3
        .encryption_configuration
        .as_ref()
        .is_some_and(|e| e.get("KMSEncryptionConfig").is_some())
    {
        return Err(unsupported(
            "EncryptionConfiguration with KMSEncryptionConfig",
        ));
    }
    if s3
        .custom_time_zone
        .as_deref()
        .is_some_and(|zone| !matches!(zone, "UTC" | "Etc/UTC"))
    {
        return Err(unsupported("CustomTimeZone other than UTC"));
    }
    let _ = &s3.cloud_watch_logging_options;
    let bucket_arn = s3
        .bucket_arn
        .as_deref()
        .ok_or_else(|| ApiError::invalid_argument("BucketARN is required."))?;
    let bucket = bucket_arn.strip_prefix("arn:aws:s3:::").ok_or_else(|| {
        ApiError::invalid_argument(format!("BucketARN {bucket_arn} is not an S3 bucket ARN."))
    })?;
    let prefix = s3.prefix.clone().unwrap_or_default();
    if prefix.contains("!{") && s3.error_output_prefix.is_none() {
        return Err(ApiError::invalid_argument(
            "ErrorOutputPrefix is required when Prefix holds !{...} expressions.",
        ));
    }
    let hints = s3.buffering_hints.as_ref();
    let buffering = BufferingHints::new(
        hints.and_then(|h| h.size_in_mbs).unwrap_or(5),
        hints.and_then(|h| h.interval_in_seconds).unwrap_or(300),
    )
    .map_err(|e| ApiError::invalid_argument(e.to_string()))?;
    let compression =
        Compression::from_firehose(s3.compression_format.as_deref().unwrap_or("UNCOMPRESSED"))
            .map_err(|e| ApiError::invalid_argument(e.to_string()))?;
    if let Some(role) = &s3.role_arn {
        metadata.insert(ROLE_ARN.to_owned(), role.clone());
    }
    if let Some(prefix) = &s3.error_output_prefix {
        metadata.insert(ERROR_OUTPUT_PREFIX.to_owned(), prefix.clone());
    }
    Ok(Destination {
        bucket: bucket.to_owned(),
        prefix,
        buffering,
        compression,
        processors,
        error_output_prefix: s3.error_output_prefix.clone().unwrap_or_default(),
        target: sluice_firehose::Target::Objects,
        conversion: None,
        backup,
    })
}

/// Dynamic partitioning and what gives the keys (a MetadataExtraction processor, or a
/// Lambda processor's answers) come together, and keys in the prefix need it on.
fn check_partitioning(s3: &S3Configuration, processors: &[Processor]) -> Result<(), ApiError> {
    let extracting = processors
        .iter()
        .any(|p| matches!(p, Processor::ExtractMetadata { .. }));
    let lambda = processors
        .iter()
        .any(|p| matches!(p, Processor::Lambda { .. }));
    let prefix = s3.prefix.as_deref().unwrap_or_default();
    let keyed = prefix.contains("!{partitionKeyFrom");
    match (
        enabled(s3.dynamic_partitioning_configuration.as_ref()),
        extracting,
    ) {
        (true, false) if !lambda => Err(ApiError::invalid_argument(
            "DynamicPartitioningConfiguration needs a MetadataExtraction processor or a Lambda processor to give the partition keys.",
        )),
        (true, _) if !keyed => Err(ApiError::invalid_argument(
            "Dynamic partitioning needs the Prefix to use its keys: !{partitionKeyFromQuery:NAME} or !{partitionKeyFromLambda:NAME}.",
        )),
        (false, true) => Err(ApiError::invalid_argument(
            "The MetadataExtraction processor needs DynamicPartitioningConfiguration enabled.",
        )),
        (false, false) if keyed => Err(ApiError::invalid_argument(
            "A Prefix with partition keys needs DynamicPartitioningConfiguration enabled.",
        )),
        _ => Ok(()),
    }
}

/// An HTTP endpoint destination: records to the endpoint, the ones it did not take to the
/// `S3Configuration`'s bucket (`S3BackupMode` `FailedDataOnly`), or every record there too
/// (`AllData`).
pub(super) fn http_destination(
    tenant: &Tenant,
    name: &str,
    http: &HttpConfiguration,
    lambda: bool,
    metadata: &mut BTreeMap<String, String>,
) -> Result<Destination, ApiError> {
    let all_data = super::backup::all_data(http.s3_backup_mode.as_deref())?;
    if enabled(http.secrets_manager_configuration.as_ref()) {
        return Err(unsupported("SecretsManagerConfiguration"));
    }
    let _ = &http.cloud_watch_logging_options;
    let backup = &http.s3_configuration;
    if !backup.is_plain() {
        return Err(ApiError::invalid_argument(
            "S3Configuration takes the plain S3 destination's members only.",
        ));
    }
    let role = backup.role_arn.clone();
    let mut destination = destination(backup, false, metadata)?;
    if all_data {
        destination.backup = Some(sluice_firehose::Backup {
            bucket: destination.bucket.clone(),
            prefix: destination.prefix.clone(),
            compression: destination.compression,
        });
    }
    if let Some(role) = role {
        metadata.insert(BACKUP_ROLE_ARN.to_owned(), role);
    }
    metadata.remove(ROLE_ARN);
    if let Some(role) = &http.role_arn {
        metadata.insert(ROLE_ARN.to_owned(), role.clone());
    }
    destination.processors = processors(http.processing_configuration.as_ref(), lambda)?;
    let hints = http.buffering_hints.as_ref();
    destination.buffering = BufferingHints::new(
        hints.and_then(|h| h.size_in_mbs).unwrap_or(5),
        hints.and_then(|h| h.interval_in_seconds).unwrap_or(300),
    )
    .map_err(|e| ApiError::invalid_argument(e.to_string()))?;
    let config = &http.endpoint_configuration;
    if let Some(endpoint_name) = &config.name {
        metadata.insert(HTTP_ENDPOINT_NAME.to_owned(), endpoint_name.clone());
    }
    let request = http.request_configuration.as_ref();
    let gzip = match request.and_then(|r| r.content_encoding.as_deref()) {
        None | Some("NONE") => false,
        Some("GZIP") => true,
        Some(other) => {
            return Err(ApiError::invalid_argument(format!(
                "RequestConfiguration.ContentEncoding must be NONE or GZIP, not {other}."
            )));
        }
    };
    let mut common_attributes = BTreeMap::new();
    for attribute in request
        .and_then(|r| r.common_attributes.as_deref())
        .unwrap_or_default()
    {
        common_attributes.insert(
            attribute.attribute_name.clone(),
            attribute.attribute_value.clone(),
        );
    }
    let retry_s = http
        .retry_options
        .as_ref()
        .and_then(|r| r.duration_in_seconds)
        .unwrap_or(300);
    destination.target = Target::Http(HttpEndpoint {
        url: config.url.clone(),
        access_key: config.access_key.clone(),
        gzip,
        common_attributes,
        retry_ms: retry_s.saturating_mul(1000),
        request_timeout_ms: tenant.config.firehose_http_timeout_ms,
        source_arn: super::arn(tenant, name),
    });
    Ok(destination)
}

/// The processors of an enabled `ProcessingConfiguration` (none when it is absent or
/// disabled); one this server does not run yet is refused, naming it. `lambda`: whether a
/// Lambda endpoint is configured.
pub(super) fn processors(config: Option<&Value>, lambda: bool) -> Result<Vec<Processor>, ApiError> {
    if !enabled(config) {
        return Ok(Vec::new());
    }
    let listed = config
        .and_then(|c| c.get("Processors"))
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    if listed.is_empty() {
        return Err(ApiError::invalid_argument(
            "ProcessingConfiguration is enabled with no Processors.",
        ));
    }
    let mut processors = Vec::new();
    let mut types = std::collections::BTreeSet::new();
    for processor in listed {
        let kind = processor.get("Type").and_then(Value::as_str).unwrap_or("");
        if !types.insert(kind) {
            return Err(ApiError::invalid_argument(format!(
                "The {kind} processor is given more than once."
            )));
        }
        let parameters = parameters(processor)?;
        match kind {
            "AppendDelimiterToRecord" if parameters.is_empty() => {
                processors.push(Processor::AppendNewline);
            }
            "AppendDelimiterToRecord" => {
                return Err(unsupported("AppendDelimiterToRecord with parameters"));
            }
            "Lambda" if !lambda => {
                return Err(unsupported(
                    "The Lambda processor without a Lambda endpoint (sluice serve --firehose-lambda-endpoint)",
                ));
            }
            "Lambda"
                if processors
                    .iter()
                    .any(|p| matches!(p, Processor::Lambda { .. })) =>
            {
                return Err(ApiError::invalid_argument(
                    "At most one Lambda processor is allowed.",
                ));
            }
            "Lambda" => processors.push(lambda_processor(&parameters)?),
            "RecordDeAggregation"
            | "Decompression"
            | "CloudWatchLogProcessing"
            | "MetadataExtraction" => {
                if let Some(processor) = record_processor(kind, &parameters)? {
                    processors.push(processor);
                }
            }
            "" => {
                return Err(ApiError::invalid_argument("Every processor needs a Type."));
            }
            other => return Err(unsupported(&format!("The {other} processor"))),
        }
    }
    Ok(processors)
}

/// A processor's `Parameters`, by name.
fn parameters(processor: &Value) -> Result<BTreeMap<String, String>, ApiError> {
    let listed = match processor.get("Parameters") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(listed)) => listed.as_slice(),
        Some(_) => {
            return Err(ApiError::invalid_argument(
                "A processor's Parameters is a list of ParameterName and ParameterValue.",
            ));
        }
    };
    let mut parameters = BTreeMap::new();
    for parameter in listed {
        let field = |name: &str| parameter.get(name).and_then(Value::as_str);
        let (Some(name), Some(value)) = (field("ParameterName"), field("ParameterValue")) else {
            return Err(ApiError::invalid_argument(
                "Every processor parameter needs a ParameterName and a ParameterValue.",
            ));
        };
        if parameters
            .insert(name.to_owned(), value.to_owned())
            .is_some()
        {
            return Err(ApiError::invalid_argument(format!(
                "Processor parameter {name} is given twice."
            )));
        }
    }
    Ok(parameters)
}

/// A processor that runs no user code, from its parameters (`None`: one that does nothing,
/// `CloudWatchLogProcessing` without `DataMessageExtraction`).
fn record_processor(
    kind: &str,
    parameters: &BTreeMap<String, String>,
) -> Result<Option<Processor>, ApiError> {
    let allowed: &[&str] = match kind {
        "RecordDeAggregation" => &["SubRecordType", "Delimiter"],
        "Decompression" => &["CompressionFormat"],
        "CloudWatchLogProcessing" => &["DataMessageExtraction"],
        _ => &["MetadataExtractionQuery", "JsonParsingEngine"],
    };
    if let Some(other) = parameters
        .keys()
        .find(|name| !allowed.contains(&name.as_str()))
    {
        return Err(unsupported(&format!(
            "The {kind} processor parameter {other}"
        )));
    }
    let get = |name: &str| parameters.get(name).map(String::as_str);
    let invalid = |name: &str, value: Option<&str>| {
        ApiError::invalid_argument(format!(
            "Processor parameter {name} {:?} is not valid for {kind}.",
            value.unwrap_or("(missing)")
        ))
    };
    let processor = match kind {
        "RecordDeAggregation" => match get("SubRecordType") {
            Some("JSON") => Processor::DeAggregate(SubRecords::Json),
            // KPL is this server's own: AWS de-aggregates KPL records of a stream source
            // by itself; here it is asked for.
            Some("KPL") => Processor::DeAggregate(SubRecords::Kpl),
            Some("DELIMITED") => SubRecords::delimited_base64(get("Delimiter").unwrap_or(""))
                .map(Processor::DeAggregate)
                .map_err(|e| ApiError::invalid_argument(e.to_string()))?,
            other => return Err(invalid("SubRecordType", other)),
        },
        "Decompression" => match get("CompressionFormat") {
            Some("GZIP") | None => Processor::Gunzip,
            other => return Err(invalid("CompressionFormat", other)),
        },
        "CloudWatchLogProcessing" => match get("DataMessageExtraction") {
            Some("true") => Processor::CloudWatchLogs,
            Some("false") | None => return Ok(None),
            other => return Err(invalid("DataMessageExtraction", other)),
        },
        _ => {
            if !matches!(get("JsonParsingEngine"), None | Some("JQ-1.6")) {
                return Err(invalid("JsonParsingEngine", get("JsonParsingEngine")));
            }
            let query = get("MetadataExtractionQuery")
                .ok_or_else(|| invalid("MetadataExtractionQuery", None))?;
            Processor::ExtractMetadata {
                query: query.to_owned(),
            }
        }
    };
    Ok(Some(processor))
}

/// A Lambda processor: `LambdaArn` required; `NumberOfRetries` (3), `BufferSizeInMBs` (1,
/// per call). `BufferIntervalInSeconds` and `RoleArn` are taken and have no effect here:
/// calls are made when an object is due (its own buffering decides when), and the endpoint
/// is the server's (docs/design/firehose.md says so).
fn lambda_processor(parameters: &BTreeMap<String, String>) -> Result<Processor, ApiError> {
    let invalid = |name: &str, value: &str| {
        ApiError::invalid_argument(format!(
            "Processor parameter {name} {value:?} is not valid."
        ))
    };
    if let Some(other) = parameters.keys().find(|name| {
        !matches!(
            name.as_str(),
            "LambdaArn"
                | "NumberOfRetries"
                | "BufferSizeInMBs"
                | "BufferIntervalInSeconds"
                | "RoleArn"
        )
    }) {
        return Err(unsupported(&format!(
            "The Lambda processor parameter {other}"
        )));
    }
    let function = parameters
        .get("LambdaArn")
        .ok_or_else(|| {
            ApiError::invalid_argument("The Lambda processor needs a LambdaArn parameter.")
        })?
        .clone();
    if !super::lambda::valid_function(&function) {
        return Err(invalid("LambdaArn", &function));
    }
    let retries = match parameters.get("NumberOfRetries") {
        Some(value) => value
            .parse()
            .map_err(|_| invalid("NumberOfRetries", value))?,
        None => 3,
    };
    let call_bytes = match parameters.get("BufferSizeInMBs") {
        Some(value) => {
            let mib: f64 = value
                .parse()
                .map_err(|_| invalid("BufferSizeInMBs", value))?;
            if !(0.2..=3.0).contains(&mib) {
                return Err(invalid("BufferSizeInMBs", value));
            }
            (mib * f64::from(1 << 20)) as u64
        }
        None => 1 << 20,
    };
    Ok(Processor::Lambda {
        function,
        retries,
        call_bytes,
    })
}
