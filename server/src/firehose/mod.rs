//! Firehose on the same endpoint (`Firehose_20150804.*`, signed for the `firehose` service):
//! delivery streams of a tenant, over `sluice-firehose`. Buckets are directories under the
//! server's bucket directory (`--firehose-bucket-dir`; `<data dir>/firehose-buckets` by
//! default): bucket `b` of `arn:aws:s3:::b` is `<dir>/b/`, shared by every tenant as S3's
//! bucket names are.

mod backup;
mod changes;
mod conversion;
mod destinations;
mod holder;
mod lambda;
mod redshift;
mod shapes;
mod sse;

pub(crate) use holder::FirehoseHolder;
#[cfg(feature = "analytics")]
pub(crate) use holder::buckets;
pub(crate) use sse::TenantEnvelopes;

use crate::tenant::Tenant;
use crate::wire::{ApiError, Protocol, Timestamp};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use shapes::Input;
use sluice_firehose::{
    Backup, DeliveryStreamInfo, Firehose, FirehoseError, HttpEndpoint, PostgresTable, Processor,
    Source, SubRecords, Target,
};

/// The `X-Amz-Target` prefix of Firehose operations.
pub const TARGET_PREFIX: &str = "Firehose_20150804.";

/// The operations served.
pub const OPERATIONS: &[&str] = &[
    "CreateDeliveryStream",
    "DescribeDeliveryStream",
    "ListDeliveryStreams",
    "DeleteDeliveryStream",
    "PutRecord",
    "PutRecordBatch",
    "UpdateDestination",
    "TagDeliveryStream",
    "UntagDeliveryStream",
    "ListTagsForDeliveryStream",
    "StartDeliveryStreamEncryption",
    "StopDeliveryStreamEncryption",
];

/// A processor as Describe shows it.
fn describe_processor(processor: &Processor) -> Value {
    let parameters = match processor {
        Processor::Lambda {
            function,
            retries,
            call_bytes,
        } => vec![
            ("LambdaArn", function.clone()),
            ("NumberOfRetries", retries.to_string()),
            (
                "BufferSizeInMBs",
                format!(
                    "{}",
                    (*call_bytes as f64 / f64::from(1 << 20) * 100.0).round() / 100.0
                ),
            ),
        ],
        Processor::DeAggregate(SubRecords::Json) => vec![("SubRecordType", "JSON".to_owned())],
        Processor::DeAggregate(SubRecords::Kpl) => vec![("SubRecordType", "KPL".to_owned())],
        Processor::DeAggregate(SubRecords::Delimited(delimiter)) => vec![
            ("SubRecordType", "DELIMITED".to_owned()),
            ("Delimiter", STANDARD.encode(delimiter)),
        ],
        Processor::Gunzip => vec![("CompressionFormat", "GZIP".to_owned())],
        Processor::CloudWatchLogs => vec![("DataMessageExtraction", "true".to_owned())],
        Processor::ExtractMetadata { query } => vec![
            ("MetadataExtractionQuery", query.clone()),
            ("JsonParsingEngine", "JQ-1.6".to_owned()),
        ],
        _ => Vec::new(),
    };
    let parameters: Vec<Value> = parameters
        .into_iter()
        .map(|(name, value)| json!({"ParameterName": name, "ParameterValue": value}))
        .collect();
    json!({"Type": processor.firehose_type(), "Parameters": parameters})
}

/// Firehose's error for a failed call, in its words.
fn error(error: FirehoseError, account: &str) -> ApiError {
    match error {
        FirehoseError::NotFound { name } => ApiError::not_found(format!(
            "Firehose {name} under account {account} not found."
        )),
        FirehoseError::InUse { name, reason } => {
            ApiError::in_use(format!("Firehose {name} under account {account} {reason}."))
        }
        FirehoseError::InvalidArgument(message) => ApiError::invalid_argument(message),
        FirehoseError::Key(message) => ApiError::new("InvalidKMSResourceException", message),
        FirehoseError::LimitExceeded(message) => ApiError::limit_exceeded(message),
        FirehoseError::VersionMismatch { name, current } => ApiError::with_status(
            "ConcurrentModificationException",
            400,
            format!(
                "Firehose {name} under account {account} is at version {current}: describe it again before updating it."
            ),
        ),
        other => ApiError::with_status("ServiceUnavailableException", 503, other.to_string()),
    }
}

/// Runs Firehose operation `name` for `tenant`.
pub async fn call(
    tenant: &Tenant,
    name: &str,
    protocol: Protocol,
    body: &[u8],
) -> Result<Vec<u8>, ApiError> {
    let input: Input = protocol.decode(body)?;
    let firehose = tenant.firehose().await?;
    let account = tenant.account.as_str();
    let reply = match name {
        "CreateDeliveryStream" => {
            let spec = shapes::spec(tenant, &input)?;
            let tags = changes::tags(input.tags.as_ref())?;
            let encryption = sse::requested_key(tenant, &input)?;
            if spec.source == Source::DirectPut {
                // Its backing stream takes descriptors, as any shard does.
                crate::reshard_limits::check_descriptors(1)?;
            }
            let name = spec.name.clone();
            firehose
                .create_encrypted(spec, encryption)
                .await
                .map_err(|e| error(e, account))?;
            if !tags.is_empty() {
                firehose
                    .tag(&name, &tags)
                    .await
                    .map_err(|e| error(e, account))?;
            }
            json!({ "DeliveryStreamARN": arn(tenant, &name) })
        }
        "DescribeDeliveryStream" => {
            let info = firehose
                .describe(shapes::name(&input)?)
                .map_err(|e| error(e, account))?;
            json!({ "DeliveryStreamDescription": describe(tenant, &info) })
        }
        "ListDeliveryStreams" => list(firehose, &input)?,
        "DeleteDeliveryStream" => {
            firehose
                .delete(shapes::name(&input)?)
                .await
                .map_err(|e| error(e, account))?;
            json!({})
        }
        "PutRecord" => put_record(tenant, firehose, &input).await?,
        "PutRecordBatch" => put_record_batch(tenant, firehose, &input).await?,
        "UpdateDestination" => changes::update_destination(tenant, firehose, &input).await?,
        "TagDeliveryStream" | "UntagDeliveryStream" | "ListTagsForDeliveryStream" => {
            changes::tag_operation(name, tenant, firehose, &input).await?
        }
        "StartDeliveryStreamEncryption" | "StopDeliveryStreamEncryption" => {
            sse::change(name, tenant, firehose, &input).await?
        }
        _ => return Err(ApiError::unknown_operation()),
    };
    Ok(protocol.encode(&reply))
}

/// An HTTP endpoint destination as Describe shows it (the access key is not shown, as
/// Firehose does not show it).
fn describe_http(
    (endpoint, all_data): (&HttpEndpoint, bool),
    mut backup: Value,
    processing: Value,
    metadata: &std::collections::BTreeMap<String, String>,
) -> Value {
    let meta = |key: &str| metadata.get(key).cloned();
    backup["RoleARN"] = json!(meta(shapes::BACKUP_ROLE_ARN));
    let attributes: Vec<Value> = endpoint
        .common_attributes
        .iter()
        .map(|(name, value)| json!({"AttributeName": name, "AttributeValue": value}))
        .collect();
    json!({
        "DestinationId": "destinationId-000000000001",
        "HttpEndpointDestinationDescription": {
            "EndpointConfiguration": {
                "Url": endpoint.url,
                "Name": meta(shapes::HTTP_ENDPOINT_NAME),
            },
            "BufferingHints": backup["BufferingHints"].clone(),
            "CloudWatchLoggingOptions": { "Enabled": false },
            "RequestConfiguration": {
                "ContentEncoding": if endpoint.gzip { "GZIP" } else { "NONE" },
                "CommonAttributes": attributes,
            },
            "ProcessingConfiguration": processing,
            "RoleARN": meta(shapes::ROLE_ARN),
            "RetryOptions": { "DurationInSeconds": endpoint.retry_ms / 1000 },
            "S3BackupMode": if all_data { "AllData" } else { "FailedDataOnly" },
            "S3DestinationDescription": backup,
        },
    })
}

/// A Redshift (PostgreSQL) destination as Describe shows it (no password, as Firehose).
fn describe_redshift(
    (table, backup): (&PostgresTable, Option<&Backup>),
    staging: Value,
    processing: Value,
    metadata: &std::collections::BTreeMap<String, String>,
) -> Value {
    let meta = |key: &str| metadata.get(key).cloned();
    let mut described = json!({
        "DestinationId": "destinationId-000000000001",
        "RedshiftDestinationDescription": {
            "RoleARN": meta(shapes::ROLE_ARN),
            "ClusterJDBCURL": meta(redshift::JDBC_URL),
            "CopyCommand": {
                "DataTableName": table.table,
                "DataTableColumns": meta(redshift::TABLE_COLUMNS),
                "CopyOptions": meta(redshift::COPY_OPTIONS),
            },
            "Username": meta(redshift::USERNAME),
            "RetryOptions": { "DurationInSeconds": table.retry_ms / 1000 },
            "S3DestinationDescription": staging,
            "ProcessingConfiguration": processing,
            "S3BackupMode": if backup.is_some() { "Enabled" } else { "Disabled" },
            "CloudWatchLoggingOptions": { "Enabled": false },
        },
    });
    if let Some(backup) = backup {
        described["RedshiftDestinationDescription"]["S3BackupDescription"] =
            self::backup::describe(backup, metadata);
    }
    described
}

/// A delivery stream's ARN.
pub(crate) fn arn(tenant: &Tenant, name: &str) -> String {
    format!(
        "arn:aws:firehose:{}:{}:deliverystream/{name}",
        tenant.region, tenant.account
    )
}

fn describe(tenant: &Tenant, info: &DeliveryStreamInfo) -> Value {
    let spec = &info.spec;
    let meta = |key: &str| spec.metadata.get(key).cloned();
    let hints = spec.destination.buffering;
    let s3 = json!({
        "RoleARN": meta(shapes::ROLE_ARN),
        "BucketARN": format!("arn:aws:s3:::{}", spec.destination.bucket),
        "Prefix": spec.destination.prefix,
        "ErrorOutputPrefix": meta(shapes::ERROR_OUTPUT_PREFIX),
        "BufferingHints": {
            "SizeInMBs": hints.size_bytes >> 20,
            "IntervalInSeconds": hints.interval_ms / 1000,
        },
        "CompressionFormat": spec.destination.compression.firehose_name(),
        "EncryptionConfiguration": { "NoEncryptionConfig": "NoEncryption" },
    });
    let processors: Vec<Value> = spec
        .destination
        .processors
        .iter()
        .map(describe_processor)
        .collect();
    let processing = json!({"Enabled": !processors.is_empty(), "Processors": processors});
    let mut destination = json!({
        "DestinationId": changes::DESTINATION_ID,
        "S3DestinationDescription": s3.clone(),
    });
    if let Target::Postgres(table) = &spec.destination.target {
        let backup = spec.destination.backup.as_ref();
        destination = describe_redshift((table, backup), s3, processing, &spec.metadata);
    } else if let Target::Http(endpoint) = &spec.destination.target {
        let all_data = spec.destination.backup.is_some();
        destination = describe_http((endpoint, all_data), s3, processing, &spec.metadata);
    } else if meta(shapes::DESTINATION_KIND).as_deref() != Some("S3") {
        let mut extended = s3;
        extended["S3BackupMode"] = json!("Disabled");
        if let Some(backup) = &spec.destination.backup {
            extended["S3BackupMode"] = json!("Enabled");
            extended["S3BackupDescription"] = backup::describe(backup, &spec.metadata);
        }
        extended["ProcessingConfiguration"] = processing;
        let partitioned = spec.destination.prefix.contains("!{partitionKeyFrom");
        extended["DynamicPartitioningConfiguration"] = json!({ "Enabled": partitioned });
        if let Some(conversion) = meta(conversion::CONVERSION) {
            extended["DataFormatConversionConfiguration"] =
                serde_json::from_str(&conversion).unwrap_or(Value::Null);
        }
        destination["ExtendedS3DestinationDescription"] = extended;
    }
    let mut description = json!({
        "DeliveryStreamName": spec.name,
        "DeliveryStreamARN": arn(tenant, &spec.name),
        "DeliveryStreamStatus": "ACTIVE",
        "DeliveryStreamType": match spec.source {
            Source::DirectPut => "DirectPut",
            Source::Stream { .. } => "KinesisStreamAsSource",
        },
        "VersionId": info.version.to_string(),
        "CreateTimestamp": Timestamp::from_ms(info.created_ms),
        "DeliveryStreamEncryptionConfiguration": sse::describe(info.encryption_key.as_deref()),
        "Destinations": [destination],
        "HasMoreDestinations": false,
    });
    if let Source::Stream { .. } = spec.source {
        description["Source"] = json!({
            "KinesisStreamSourceDescription": {
                "KinesisStreamARN": meta(shapes::SOURCE_STREAM_ARN),
                "RoleARN": meta(shapes::SOURCE_ROLE_ARN),
                "DeliveryStartTimestamp": Timestamp::from_ms(info.created_ms),
            }
        });
    }
    description
}

fn list(firehose: &Firehose, input: &Input) -> Result<Value, ApiError> {
    let limit = input.limit.unwrap_or(10);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: Member must have value between 1 and 10000"
        )));
    }
    let direct_put = match input.delivery_stream_type.as_deref() {
        None => None,
        Some("DirectPut") => Some(true),
        Some("KinesisStreamAsSource") => Some(false),
        // Types this server never creates: none of them.
        Some(_) => {
            return Ok(json!({ "DeliveryStreamNames": [], "HasMoreDeliveryStreams": false }));
        }
    };
    let (names, more) = firehose.list(
        limit as usize,
        input.exclusive_start_delivery_stream_name.as_deref(),
        direct_put,
    );
    Ok(json!({ "DeliveryStreamNames": names, "HasMoreDeliveryStreams": more }))
}

async fn put_record(
    tenant: &Tenant,
    firehose: &Firehose,
    input: &Input,
) -> Result<Value, ApiError> {
    let account = &tenant.account;
    let name = shapes::name(input)?;
    let record = input.record.as_ref().ok_or_else(|| {
        ApiError::validation(
            "1 validation error detected: Value null at 'record' failed to satisfy constraint: Member must not be null",
        )
    })?;
    let id = firehose
        .put_record(name, &record.data.0)
        .await
        .map_err(|e| error(e, account))?;
    meter(
        tenant,
        firehose,
        ("PutRecord", name),
        &[record.data.0.len()],
    );
    Ok(json!({ "RecordId": id, "Encrypted": encrypted(firehose, name) }))
}

async fn put_record_batch(
    tenant: &Tenant,
    firehose: &Firehose,
    input: &Input,
) -> Result<Value, ApiError> {
    let account = &tenant.account;
    let name = shapes::name(input)?;
    let records = input.records.as_deref().unwrap_or_default();
    let data: Vec<&[u8]> = records.iter().map(|r| r.data.0.as_slice()).collect();
    let results = firehose
        .put_record_batch(name, &data)
        .await
        .map_err(|e| error(e, account))?;
    let failed = results.iter().filter(|r| r.is_err()).count();
    let taken: Vec<usize> = results
        .iter()
        .zip(&data)
        .filter(|(result, _)| result.is_ok())
        .map(|(_, data)| data.len())
        .collect();
    meter(tenant, firehose, ("PutRecordBatch", name), &taken);
    let responses: Vec<Value> = results
        .into_iter()
        .map(|result| match result {
            Ok(id) => json!({ "RecordId": id }),
            Err(failure) => json!({ "ErrorCode": failure.code, "ErrorMessage": failure.message }),
        })
        .collect();
    Ok(json!({
        "FailedPutCount": failed,
        "Encrypted": encrypted(firehose, name),
        "RequestResponses": responses,
    }))
}

/// Meters records a delivery stream took (and converts, with format conversion on), and
/// records Firehose's metrics of the call under `AWS/Firehose`.
fn meter(tenant: &Tenant, firehose: &Firehose, (call, name): (&str, &str), sizes: &[usize]) {
    let converts = firehose
        .describe(name)
        .is_ok_and(|info| info.spec.destination.conversion.is_some());
    let now = crate::clock::now_ms();
    tenant.usage.firehose_put(now, name, sizes, converts);
    use crate::cloudwatch::store::{SeriesKey, Stats};
    let bytes = sizes.iter().sum::<usize>() as f64;
    let records = sizes.len() as f64;
    let point = |metric: &str, unit: &str, value: f64| {
        let dims = [("DeliveryStreamName", name)];
        (
            SeriesKey::new("AWS/Firehose", metric, &dims, unit),
            Stats::one(value),
        )
    };
    let mut points = vec![
        point("IncomingBytes", "Bytes", bytes),
        point("IncomingRecords", "Count", records),
        point("IncomingPutRequests", "Count", 1.0),
        point(&format!("{call}.Bytes"), "Bytes", bytes),
    ];
    if call == "PutRecordBatch" {
        points.push(point("PutRecordBatch.Records", "Count", records));
    }
    tenant.cloudwatch.store.record(now / 1000, &points);
}

/// Whether the delivery stream seals its records (as of the put's answer).
fn encrypted(firehose: &Firehose, name: &str) -> bool {
    firehose
        .describe(name)
        .is_ok_and(|info| info.encryption_key.is_some())
}

/// Each delivery stream's delivered records, bytes and objects as last recorded, by name and
/// creation time (a delivery stream made again under the name counts afresh).
pub(crate) type Delivered = std::collections::HashMap<(String, u64), (u64, u64, u64)>;

/// Records what each delivery stream delivered since the previous call under
/// `AWS/Firehose`, as Firehose names it for its destination (`DeliveryToS3.*`,
/// `DeliveryToHttpEndpoint.*`, `DeliveryToRedshift.*`: `Records`, `Bytes`, and `Success` for
/// each sample in which objects were written). Called by the tenant's upkeep thread.
pub(crate) fn record_delivery_metrics(tenant: &Tenant, delivered: &mut Delivered) {
    use crate::cloudwatch::store::{SeriesKey, Stats};
    let Some(firehose) = tenant.firehose_opened() else {
        return;
    };
    let now_s = crate::clock::now_ms() / 1000;
    let mut points = Vec::new();
    let mut seen = Delivered::new();
    let (names, _) = firehose.list(10_000, None, None);
    for name in names {
        let Ok(info) = firehose.describe(&name) else {
            continue;
        };
        let stats = &info.stats;
        let now = (
            stats.delivered_records,
            stats.delivered_bytes,
            stats.objects,
        );
        let key = (name.clone(), info.created_ms);
        let before = delivered.get(&key).copied().unwrap_or_default();
        // Counters start again at a restart: a drop means everything since then is new.
        let since = |now: u64, before: u64| now.checked_sub(before).unwrap_or(now);
        let (records, bytes, objects) = (
            since(now.0, before.0),
            since(now.1, before.1),
            since(now.2, before.2),
        );
        let prefix = match info.spec.destination.target {
            sluice_firehose::Target::Objects => "DeliveryToS3",
            sluice_firehose::Target::Http(_) => "DeliveryToHttpEndpoint",
            sluice_firehose::Target::Postgres(_) => "DeliveryToRedshift",
        };
        let dims = [("DeliveryStreamName", name.as_str())];
        let point = |metric: &str, unit: &str, value: f64| {
            (
                SeriesKey::new("AWS/Firehose", &format!("{prefix}.{metric}"), &dims, unit),
                Stats::one(value),
            )
        };
        if objects > 0 || records > 0 {
            points.push(point("Records", "Count", records as f64));
            points.push(point("Bytes", "Bytes", bytes as f64));
            points.push(point("Success", "Count", 1.0));
        }
        seen.insert(key, now);
    }
    *delivered = seen;
    tenant.cloudwatch.store.record(now_s, &points);
}
