//! Kinesis Data Analytics SQL applications on the same endpoint
//! (`KinesisAnalytics_20150814.*`, signed for `kinesisanalytics`; the `analytics` feature):
//! a tenant's applications over its own streams, run by `sluice-analytics`. They are kept
//! under `<tenant dir>/analytics/` (the catalogue, and each application's checkpoint), and
//! those that were running start again when the tenant opens.

mod shapes;

use crate::tenant::Tenant;
use crate::wire::{ApiError, Protocol, Timestamp};
use serde_json::{Value, json};
use shapes::Request;
use sluice_analytics::{
    Analytics, AnalyticsConfig, AnalyticsError, ApplicationDetail, NewApplication,
    ReferenceObjects, StartingPosition,
};
use sluice_core::Engine;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::OnceCell;

/// The `X-Amz-Target` prefix of Kinesis Data Analytics operations.
pub const TARGET_PREFIX: &str = "KinesisAnalytics_20150814.";

/// The operations served. Those for parts not built yet (preprocessors, CloudWatch
/// logging) answer InvalidArgumentException saying so.
pub const OPERATIONS: &[&str] = &[
    "CreateApplication",
    "DescribeApplication",
    "ListApplications",
    "DeleteApplication",
    "StartApplication",
    "StopApplication",
    "UpdateApplication",
    "AddApplicationInput",
    "AddApplicationOutput",
    "DeleteApplicationOutput",
    "DiscoverInputSchema",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
    "AddApplicationReferenceDataSource",
    "DeleteApplicationReferenceDataSource",
    "AddApplicationInputProcessingConfiguration",
    "DeleteApplicationInputProcessingConfiguration",
    "AddApplicationCloudWatchLoggingOption",
    "DeleteApplicationCloudWatchLoggingOption",
];

/// Reference tables' objects, read from the tenant's Firehose buckets (directories under
/// the bucket directory, or the S3-compatible store `--firehose-s3-endpoint` names).
#[cfg(feature = "firehose")]
struct BucketObjects {
    buckets: Arc<dyn sluice_firehose::Buckets>,
    /// The server's own account: its bucket directory holds other accounts' buckets
    /// under `accounts/`, which are not its to read.
    own_account: bool,
}

#[cfg(feature = "firehose")]
impl std::fmt::Debug for BucketObjects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BucketObjects")
    }
}

#[cfg(feature = "firehose")]
impl ReferenceObjects for BucketObjects {
    fn get<'a>(&'a self, bucket: &'a str, key: &'a str) -> sluice_analytics::ObjectRead<'a> {
        Box::pin(async move {
            sluice_firehose::validate_bucket(bucket).map_err(|e| e.to_string())?;
            if self.own_account && bucket == "accounts" {
                return Err("bucket accounts holds other accounts' buckets here".to_owned());
            }
            let store = self
                .buckets
                .bucket_to_read(bucket)
                .map_err(|e| e.to_string())?;
            store
                .read(key, sluice_analytics::REFERENCE_BYTES_MAX as u64)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// Where the tenant's applications read reference tables from: its Firehose buckets
/// (none in a build without the Firehose).
pub(crate) fn reference_objects(
    config: &crate::config::ServeConfig,
    labels: &[(String, String)],
) -> Option<Arc<dyn ReferenceObjects>> {
    #[cfg(feature = "firehose")]
    match crate::firehose::buckets(config, labels) {
        Ok(buckets) => {
            let own_account = labels
                .iter()
                .any(|(key, account)| key == "account" && *account == config.account);
            return Some(Arc::new(BucketObjects {
                buckets,
                own_account,
            }));
        }
        Err(e) => eprintln!("sluice serve: analytics reference data: {e}"),
    }
    let _ = (config, labels);
    None
}

/// Delivery streams of the tenant's Firehose, as applications' inputs and outputs.
#[cfg(feature = "firehose")]
struct TenantDeliveryStreams(std::sync::Weak<Tenant>);

#[cfg(feature = "firehose")]
impl std::fmt::Debug for TenantDeliveryStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TenantDeliveryStreams")
    }
}

#[cfg(feature = "firehose")]
impl TenantDeliveryStreams {
    async fn firehose(&self) -> Result<Arc<sluice_firehose::Firehose>, String> {
        let tenant = self.0.upgrade().ok_or("the server is shutting down")?;
        let firehose = tenant.firehose().await.map_err(|e| e.message)?;
        Ok(firehose.clone())
    }
}

#[cfg(feature = "firehose")]
impl sluice_analytics::DeliveryStreams for TenantDeliveryStreams {
    fn records<'a>(&'a self, name: &'a str) -> sluice_analytics::StreamFound<'a> {
        Box::pin(async move {
            let firehose = self.firehose().await?;
            firehose.records_stream(name).map_err(|e| e.to_string())
        })
    }

    fn intake<'a>(&'a self, name: &'a str) -> sluice_analytics::StreamFound<'a> {
        Box::pin(async move {
            let firehose = self.firehose().await?;
            firehose.intake_stream(name).map_err(|e| e.to_string())
        })
    }
}

/// Where the tenant's applications find delivery streams: its Firehose (none in a build
/// without the Firehose).
pub(crate) fn delivery_streams(
    tenant: &std::sync::Weak<Tenant>,
) -> Option<Arc<dyn sluice_analytics::DeliveryStreams>> {
    #[cfg(feature = "firehose")]
    return Some(Arc::new(TenantDeliveryStreams(tenant.clone())));
    #[cfg(not(feature = "firehose"))]
    {
        let _ = tenant;
        None
    }
}

/// A tenant's applications, opened on first use, or when the tenant opens if it has some.
pub(crate) struct AnalyticsHolder {
    dir: PathBuf,
    /// How they run: the tenant's account and region as metric labels, where reference
    /// objects and delivery streams are found.
    config: AnalyticsConfig,
    analytics: Arc<OnceCell<Arc<Analytics>>>,
}

impl AnalyticsHolder {
    /// For the tenant in `data_dir` (opened by [`AnalyticsHolder::open_if_kept`] or on
    /// first use).
    pub(crate) fn new(data_dir: &Path, config: AnalyticsConfig) -> AnalyticsHolder {
        AnalyticsHolder {
            dir: data_dir.join("analytics"),
            config,
            analytics: Arc::new(OnceCell::new()),
        }
    }

    /// Opens at once (on the runtime at hand) if applications are kept, so running ones go
    /// on without waiting for a call. Called once the tenant is whole: an application may
    /// find its delivery streams through it as it starts.
    pub(crate) fn open_if_kept(&self, engine: &Engine) {
        let stored = self.dir.join("applications.json").exists();
        if let (true, Ok(runtime)) = (stored, tokio::runtime::Handle::try_current()) {
            let (cell, dir, engine) = (self.analytics.clone(), self.dir.clone(), engine.clone());
            let config = self.config.clone();
            runtime.spawn(async move {
                if let Err(e) = cell.get_or_try_init(|| open(&dir, engine, config)).await {
                    eprintln!(
                        "sluice serve: analytics in {}: {}",
                        dir.display(),
                        e.message
                    );
                }
            });
        }
    }

    /// The applications, when they have been opened.
    pub(crate) fn opened(&self) -> Option<&Arc<Analytics>> {
        self.analytics.get()
    }

    /// The applications, opened if they are not yet.
    pub(crate) async fn get(&self, engine: &Engine) -> Result<&Arc<Analytics>, ApiError> {
        self.analytics
            .get_or_try_init(|| open(&self.dir, engine.clone(), self.config.clone()))
            .await
    }
}

async fn open(
    dir: &Path,
    engine: Engine,
    config: AnalyticsConfig,
) -> Result<Arc<Analytics>, ApiError> {
    let runtime = tokio::runtime::Handle::current();
    let (analytics, failures) = Analytics::open(engine, dir, config, runtime)
        .await
        .map_err(|e| ApiError::internal(format!("opening analytics: {e}")))?;
    for failure in failures {
        eprintln!(
            "sluice serve: an application of {} did not start again: {failure}",
            dir.display()
        );
    }
    Ok(Arc::new(analytics))
}

/// The service's error for a failed call, in its words.
pub(crate) fn error(error: AnalyticsError) -> ApiError {
    match error {
        AnalyticsError::Code { .. } => ApiError::new("CodeValidationException", error.to_string()),
        AnalyticsError::InvalidArgument(message) => ApiError::invalid_argument(message),
        AnalyticsError::NotFound { .. } => ApiError::not_found(error.to_string()),
        AnalyticsError::InUse(message) => ApiError::in_use(message),
        AnalyticsError::VersionMismatch { .. } => {
            ApiError::new("ConcurrentModificationException", error.to_string())
        }
        AnalyticsError::LimitExceeded(message) => ApiError::limit_exceeded(message),
        AnalyticsError::TooManyTags(message) => ApiError::new("TooManyTagsException", message),
        other => ApiError::with_status("ServiceUnavailableException", 503, other.to_string()),
    }
}

/// An application's ARN.
pub(crate) fn arn(tenant: &Tenant, name: &str) -> String {
    format!(
        "arn:aws:kinesisanalytics:{}:{}:application/{name}",
        tenant.region, tenant.account
    )
}

/// The application an ARN of this tenant names.
fn named_by_arn<'a>(tenant: &Tenant, resource: &'a str) -> Result<&'a str, ApiError> {
    let prefix = arn(tenant, "");
    resource
        .strip_prefix(&prefix)
        .filter(|name| !name.is_empty())
        .ok_or_else(|| {
            ApiError::invalid_argument(format!(
                "{resource} names no application of this account and region."
            ))
        })
}

fn required<'a, T>(value: Option<&'a T>, member: &str) -> Result<&'a T, ApiError> {
    value.ok_or_else(|| ApiError::validation(format!("{member} is required.")))
}

fn version(request: &Request) -> Result<u64, ApiError> {
    let version = *required(
        request.current_application_version_id.as_ref(),
        "CurrentApplicationVersionId",
    )?;
    u64::try_from(version)
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| ApiError::validation("CurrentApplicationVersionId is at least 1."))
}

/// Runs operation `name` for `tenant` on a task of its own, to its end even when the caller
/// goes away.
pub async fn call_to_completion(
    tenant: &Arc<Tenant>,
    name: &str,
    protocol: Protocol,
    body: &[u8],
) -> Result<Vec<u8>, ApiError> {
    let (tenant, name, body) = (tenant.clone(), name.to_owned(), body.to_vec());
    tokio::spawn(async move { call(&tenant, &name, protocol, &body).await })
        .await
        .map_err(|e| ApiError::internal(format!("an analytics call failed: {e}")))?
}

/// Runs operation `name` for `tenant`.
pub async fn call(
    tenant: &Tenant,
    name: &str,
    protocol: Protocol,
    body: &[u8],
) -> Result<Vec<u8>, ApiError> {
    let request: Request = protocol.decode(body)?;
    let analytics = tenant.analytics().await?;
    let app_name = || required(request.application_name.as_ref(), "ApplicationName");
    let reply = match name {
        "CreateApplication" => create(tenant, analytics, &request).await?,
        "DescribeApplication" => {
            let detail = analytics.describe(app_name()?).await.map_err(error)?;
            json!({ "ApplicationDetail": describe(tenant, &detail) })
        }
        "ListApplications" => list(tenant, analytics, &request).await?,
        "DeleteApplication" => {
            let seconds = *required(request.create_timestamp.as_ref(), "CreateTimestamp")?;
            let created_ms = analytics
                .describe(app_name()?)
                .await
                .map_err(error)?
                .stored
                .created_ms;
            // botocore sends whole seconds; other SDKs send the milliseconds Describe gave.
            let same = (seconds * 1000.0).round() as u64 == created_ms
                || (seconds.fract() == 0.0 && seconds as u64 == created_ms / 1000);
            let given_ms = if same {
                created_ms
            } else {
                (seconds * 1000.0).round() as u64
            };
            analytics
                .delete(app_name()?, given_ms)
                .await
                .map_err(error)?;
            json!({})
        }
        "StartApplication" => {
            let stored = analytics.describe(app_name()?).await.map_err(error)?.stored;
            let position = starting_position(&request, &stored)?;
            analytics
                .start(app_name()?, position)
                .await
                .map_err(error)?;
            json!({})
        }
        "StopApplication" => {
            analytics.stop(app_name()?).await.map_err(error)?;
            json!({})
        }
        "UpdateApplication"
        | "AddApplicationInput"
        | "AddApplicationOutput"
        | "DeleteApplicationOutput"
        | "AddApplicationReferenceDataSource"
        | "DeleteApplicationReferenceDataSource" => {
            change(name, tenant, analytics, &request).await?
        }
        "DiscoverInputSchema" => discover(tenant, &request).await?,
        "TagResource" | "UntagResource" | "ListTagsForResource" => {
            tags(name, tenant, analytics, &request).await?
        }
        other => {
            return Err(ApiError::invalid_argument(format!(
                "{other}: input preprocessors and CloudWatch logging are not supported by this server yet."
            )));
        }
    };
    Ok(protocol.encode(&reply))
}

async fn create(
    tenant: &Tenant,
    analytics: &Analytics,
    request: &Request,
) -> Result<Value, ApiError> {
    let name = required(request.application_name.as_ref(), "ApplicationName")?;
    if request
        .cloud_watch_logging_options
        .as_ref()
        .is_some_and(|o| !o.is_empty())
    {
        return Err(ApiError::invalid_argument(
            "CloudWatchLoggingOptions are not supported by this server yet.",
        ));
    }
    let mut new = NewApplication::named(name.clone());
    new.description.clone_from(&request.application_description);
    new.code = request.application_code.clone().unwrap_or_default();
    let inputs = request.inputs.as_deref().unwrap_or_default();
    if inputs.len() > 1 {
        return Err(ApiError::limit_exceeded(
            "An application has at most one input.",
        ));
    }
    for input in inputs {
        let (input, role) = shapes::input(tenant, input)?;
        new.input = Some(input);
        new.metadata
            .extend(role.map(|r| ("input.RoleARN".to_owned(), r)));
    }
    for (i, output) in request.outputs.iter().flatten().enumerate() {
        let (output, role) = shapes::output(tenant, output)?;
        new.outputs.push(output);
        new.metadata
            .extend(role.map(|r| (format!("output.1.{}.RoleARN", i + 1), r)));
    }
    new.tags = tag_map(request)?;
    analytics.create(new).await.map_err(error)?;
    Ok(json!({"ApplicationSummary": {
        "ApplicationName": name,
        "ApplicationARN": arn(tenant, name),
        "ApplicationStatus": "READY",
    }}))
}

async fn change(
    operation: &str,
    tenant: &Tenant,
    analytics: &Analytics,
    request: &Request,
) -> Result<Value, ApiError> {
    let name = required(request.application_name.as_ref(), "ApplicationName")?;
    let version = version(request)?;
    let stored = analytics.describe(name).await.map_err(error)?.stored;
    let changes = match operation {
        "UpdateApplication" => {
            let update = required(request.application_update.as_ref(), "ApplicationUpdate")?;
            shapes::update(tenant, &stored, update)?
        }
        "AddApplicationInput" => {
            if stored.input.is_some() {
                return Err(ApiError::invalid_argument(format!(
                    "Application {name} has an input already: an application has at most one."
                )));
            }
            shapes::add_input(tenant, required(request.input.as_ref(), "Input")?)?
        }
        "AddApplicationOutput" => shapes::add_output(
            tenant,
            &stored,
            required(request.output.as_ref(), "Output")?,
        )?,
        "AddApplicationReferenceDataSource" => shapes::add_reference(required(
            request.reference_data_source.as_ref(),
            "ReferenceDataSource",
        )?)?,
        "DeleteApplicationReferenceDataSource" => {
            let id = required(request.reference_id.as_ref(), "ReferenceId")?;
            vec![
                sluice_analytics::Change::DeleteReference(id.clone()),
                sluice_analytics::Change::Metadata(shapes::reference_role(id), None),
            ]
        }
        _ => {
            let id = required(request.output_id.as_ref(), "OutputId")?;
            vec![
                sluice_analytics::Change::DeleteOutput(id.clone()),
                sluice_analytics::Change::Metadata(format!("output.{id}.RoleARN"), None),
            ]
        }
    };
    analytics
        .update(name, version, changes)
        .await
        .map_err(error)?;
    Ok(json!({}))
}

fn starting_position(
    request: &Request,
    stored: &sluice_analytics::StoredApplication,
) -> Result<StartingPosition, ApiError> {
    let configurations = request.input_configurations.as_deref().unwrap_or_default();
    let input_id = stored.input.as_ref().map(|(id, _)| id.as_str());
    if let Some(unknown) = configurations
        .iter()
        .find(|c| Some(c.id.as_str()) != input_id)
    {
        return Err(ApiError::invalid_argument(format!(
            "Application {} has no input {}.",
            stored.name, unknown.id
        )));
    }
    let position = configurations.first().and_then(|c| {
        c.input_starting_position_configuration
            .input_starting_position
            .as_deref()
    });
    match position {
        None | Some("LAST_STOPPED_POINT") => Ok(StartingPosition::LastStoppedPoint),
        Some("NOW") => Ok(StartingPosition::Now),
        Some("TRIM_HORIZON") => Ok(StartingPosition::TrimHorizon),
        Some(other) => Err(ApiError::invalid_argument(format!(
            "InputStartingPosition {other} is not NOW, TRIM_HORIZON or LAST_STOPPED_POINT."
        ))),
    }
}

async fn list(
    tenant: &Tenant,
    analytics: &Analytics,
    request: &Request,
) -> Result<Value, ApiError> {
    let limit = match request.limit {
        None => 40,
        Some(limit @ 1..=50) => limit as usize,
        Some(_) => return Err(ApiError::validation("Limit is 1 to 50.")),
    };
    let after = request.exclusive_start_application_name.as_deref();
    let all = analytics.list().await;
    let mut remaining = all
        .iter()
        .filter(|detail| after.is_none_or(|after| detail.stored.name.as_str() > after));
    let summaries: Vec<Value> = remaining
        .by_ref()
        .take(limit)
        .map(|detail| summary(tenant, detail))
        .collect();
    Ok(json!({
        "ApplicationSummaries": summaries,
        "HasMoreApplications": remaining.next().is_some(),
    }))
}

fn summary(tenant: &Tenant, detail: &ApplicationDetail) -> Value {
    json!({
        "ApplicationName": detail.stored.name,
        "ApplicationARN": arn(tenant, &detail.stored.name),
        "ApplicationStatus": detail.status,
    })
}

fn describe(tenant: &Tenant, detail: &ApplicationDetail) -> Value {
    let stored = &detail.stored;
    let (inputs, outputs) = shapes::describe_io(tenant, stored);
    json!({
        "ApplicationName": stored.name,
        "ApplicationDescription": stored.description,
        "ApplicationARN": arn(tenant, &stored.name),
        "ApplicationStatus": detail.status,
        "CreateTimestamp": Timestamp::from_ms(stored.created_ms),
        "LastUpdateTimestamp": Timestamp::from_ms(stored.updated_ms),
        "InputDescriptions": inputs,
        "OutputDescriptions": outputs,
        "ReferenceDataSourceDescriptions": shapes::describe_references(stored),
        "CloudWatchLoggingOptionDescriptions": [],
        "ApplicationCode": stored.code,
        "ApplicationVersionId": stored.version,
    })
}

async fn discover(tenant: &Tenant, request: &Request) -> Result<Value, ApiError> {
    if request.s3_configuration.is_some() || request.input_processing_configuration.is_some() {
        return Err(ApiError::invalid_argument(
            "Discovering a schema from S3 or through a preprocessor is not supported by this server yet.",
        ));
    }
    let arn = required(request.resource_arn.as_ref(), "ResourceARN")?;
    let stream = crate::arn::StreamArn::parse(arn)
        .filter(|a| a.account == tenant.account && a.region == tenant.region)
        .ok_or_else(|| {
            ApiError::invalid_argument(format!("{arn} is not a stream of this account and region."))
        })?;
    let stream = tenant
        .engine
        .stream(stream.stream)
        .map_err(|_| ApiError::not_found(format!("Stream {} is not found.", stream.stream)))?;
    let from_now = request
        .input_starting_position_configuration
        .as_ref()
        .and_then(|p| p.input_starting_position.as_deref())
        == Some("NOW");
    let found = sluice_analytics::discover(&stream, from_now)
        .await
        .map_err(|e| ApiError::new("UnableToDetectSchemaException", e.to_string()))?;
    Ok(json!({
        "InputSchema": shapes::describe_schema(&found.schema),
        "ParsedInputRecords": found.parsed,
        "ProcessedInputRecords": found.raw,
        "RawInputRecords": found.raw,
    }))
}

fn tag_map(request: &Request) -> Result<BTreeMap<String, String>, ApiError> {
    Ok(request
        .tags
        .iter()
        .flatten()
        .map(|t| (t.key.clone(), t.value.clone().unwrap_or_default()))
        .collect())
}

async fn tags(
    operation: &str,
    tenant: &Tenant,
    analytics: &Analytics,
    request: &Request,
) -> Result<Value, ApiError> {
    let arn = required(request.resource_arn.as_ref(), "ResourceARN")?;
    let name = named_by_arn(tenant, arn)?;
    match operation {
        "TagResource" => analytics
            .tag(name, &tag_map(request)?)
            .await
            .map_err(error)?,
        "UntagResource" => {
            let keys = required(request.tag_keys.as_ref(), "TagKeys")?;
            analytics.untag(name, keys).await.map_err(error)?;
        }
        _ => {
            let stored = analytics.describe(name).await.map_err(error)?.stored;
            let tags: Vec<Value> = stored
                .tags
                .iter()
                .map(|(key, value)| json!({"Key": key, "Value": value}))
                .collect();
            return Ok(json!({ "Tags": tags }));
        }
    }
    Ok(json!({}))
}

/// Counts of each running application as last recorded, so each sample records what came
/// since: (input records, output records) by application name, creation time and version
/// (an update or a new application of the name starts its counts again).
pub(crate) type Recorded = std::collections::HashMap<(String, u64, u64), (u64, u64)>;

/// Records the applications' metrics under `AWS/KinesisAnalytics`, as KDA publishes them:
/// `Records` for the input and the output (dimensions `Application`, `Flow`, `Id`) and the
/// input's `MillisBehindLatest`. Called by the tenant's upkeep thread; the counts are the
/// applications' own since the previous call.
pub(crate) async fn record_metrics(tenant: &Tenant, recorded: &mut Recorded) {
    use crate::cloudwatch::store::{SeriesKey, Stats};
    let Some(analytics) = tenant.analytics_opened() else {
        return;
    };
    let now_s = crate::clock::now_ms() / 1000;
    let mut points = Vec::new();
    let mut seen = Recorded::new();
    for detail in analytics.list().await {
        let Some(stats) = detail.stats else { continue };
        let name = detail.stored.name.clone();
        let run = (
            name.clone(),
            detail.stored.created_ms,
            detail.stored.version,
        );
        let (input_before, output_before) = recorded.get(&run).copied().unwrap_or_default();
        // A restarted application counts from 0 again.
        let input = stats
            .input_records
            .checked_sub(input_before)
            .unwrap_or(stats.input_records);
        let output = stats
            .output_records
            .checked_sub(output_before)
            .unwrap_or(stats.output_records);
        for (flow, records) in [("Input", input), ("Output", output)] {
            let dims = [
                ("Application", name.as_str()),
                ("Flow", flow),
                ("Id", "1.1"),
            ];
            let key = SeriesKey::new("AWS/KinesisAnalytics", "Records", &dims, "Count");
            points.push((key, Stats::one(records as f64)));
        }
        let dims = [
            ("Application", name.as_str()),
            ("Flow", "Input"),
            ("Id", "1.1"),
        ];
        let key = SeriesKey::new(
            "AWS/KinesisAnalytics",
            "MillisBehindLatest",
            &dims,
            "Milliseconds",
        );
        points.push((key, Stats::one(stats.millis_behind_latest as f64)));
        seen.insert(run, (stats.input_records, stats.output_records));
    }
    *recorded = seen;
    tenant.cloudwatch.store.record(now_s, &points);
}
