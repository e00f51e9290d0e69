//! Kinesis Data Analytics' request shapes (JSON 1.1, `KinesisAnalytics_20150814`) and their
//! translation into the library's inputs, outputs and changes, and back for Describe. A
//! setting this server does not run yet (Lambda outputs and preprocessors) is refused with
//! InvalidArgumentException naming it, never ignored.

use crate::arn::StreamArn;
use crate::tenant::Tenant;
use crate::wire::ApiError;
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_analytics::{
    Change, Input, InputSchema, Output, OutputFormat, REFERENCE_ID, RecordColumn, RecordFormat,
    Reference, StoredApplication, StreamKind,
};

/// Every member any operation takes; each operation reads its own.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Request {
    pub(super) application_name: Option<String>,
    pub(super) application_description: Option<String>,
    pub(super) application_code: Option<String>,
    pub(super) inputs: Option<Vec<InputShape>>,
    pub(super) input: Option<InputShape>,
    pub(super) outputs: Option<Vec<OutputShape>>,
    pub(super) output: Option<OutputShape>,
    pub(super) output_id: Option<String>,
    pub(super) current_application_version_id: Option<i64>,
    pub(super) application_update: Option<UpdateShape>,
    pub(super) input_configurations: Option<Vec<InputConfiguration>>,
    pub(super) create_timestamp: Option<f64>,
    pub(super) limit: Option<i64>,
    pub(super) exclusive_start_application_name: Option<String>,
    #[serde(rename = "ResourceARN")]
    pub(super) resource_arn: Option<String>,
    pub(super) tags: Option<Vec<Tag>>,
    pub(super) tag_keys: Option<Vec<String>>,
    pub(super) input_starting_position_configuration: Option<StartingPosition>,
    pub(super) cloud_watch_logging_options: Option<Vec<Value>>,
    pub(super) s3_configuration: Option<Value>,
    pub(super) input_processing_configuration: Option<Value>,
    pub(super) reference_data_source: Option<ReferenceShape>,
    pub(super) reference_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ReferenceShape {
    table_name: String,
    s3_reference_data_source: Option<S3Reference>,
    reference_schema: SchemaShape,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct S3Reference {
    #[serde(rename = "BucketARN")]
    bucket_arn: String,
    file_key: String,
    #[serde(rename = "ReferenceRoleARN")]
    reference_role_arn: String,
}

/// An object's key: 1 to 1024 characters (the model's bounds).
fn check_file_key(member: &str, key: &str) -> Result<(), ApiError> {
    if (1..=1024).contains(&key.chars().count()) {
        Ok(())
    } else {
        Err(ApiError::validation(format!(
            "{member} is 1 to 1024 characters."
        )))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ReferenceUpdate {
    reference_id: String,
    table_name_update: Option<String>,
    s3_reference_data_source_update: Option<S3ReferenceUpdate>,
    reference_schema_update: Option<SchemaShape>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct S3ReferenceUpdate {
    #[serde(rename = "BucketARNUpdate")]
    bucket_arn_update: Option<String>,
    file_key_update: Option<String>,
    #[serde(rename = "ReferenceRoleARNUpdate")]
    reference_role_arn_update: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Tag {
    pub(super) key: String,
    pub(super) value: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ResourceRole {
    #[serde(rename = "ResourceARN")]
    resource_arn: String,
    #[serde(rename = "RoleARN")]
    role_arn: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct InputShape {
    name_prefix: String,
    kinesis_streams_input: Option<ResourceRole>,
    kinesis_firehose_input: Option<ResourceRole>,
    input_processing_configuration: Option<Value>,
    input_parallelism: Option<Parallelism>,
    input_schema: SchemaShape,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Parallelism {
    count: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SchemaShape {
    record_format: RecordFormatShape,
    record_encoding: Option<String>,
    record_columns: Vec<ColumnShape>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RecordFormatShape {
    record_format_type: String,
    mapping_parameters: Option<MappingParameters>,
}

#[derive(Debug, Clone, Deserialize)]
struct MappingParameters {
    #[serde(rename = "JSONMappingParameters")]
    json: Option<JsonMapping>,
    #[serde(rename = "CSVMappingParameters")]
    csv: Option<CsvMapping>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct JsonMapping {
    record_row_path: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CsvMapping {
    record_row_delimiter: String,
    record_column_delimiter: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ColumnShape {
    name: String,
    mapping: Option<String>,
    sql_type: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct OutputShape {
    name: String,
    kinesis_streams_output: Option<ResourceRole>,
    kinesis_firehose_output: Option<ResourceRole>,
    lambda_output: Option<Value>,
    destination_schema: DestinationSchema,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DestinationSchema {
    record_format_type: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct UpdateShape {
    input_updates: Option<Vec<InputUpdate>>,
    application_code_update: Option<String>,
    output_updates: Option<Vec<OutputUpdate>>,
    reference_data_source_updates: Option<Vec<ReferenceUpdate>>,
    cloud_watch_logging_option_updates: Option<Vec<Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InputUpdate {
    input_id: String,
    name_prefix_update: Option<String>,
    kinesis_streams_input_update: Option<ResourceRoleUpdate>,
    kinesis_firehose_input_update: Option<ResourceRoleUpdate>,
    input_processing_configuration_update: Option<Value>,
    input_schema_update: Option<SchemaUpdate>,
    input_parallelism_update: Option<ParallelismUpdate>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResourceRoleUpdate {
    #[serde(rename = "ResourceARNUpdate")]
    resource_arn_update: Option<String>,
    #[serde(rename = "RoleARNUpdate")]
    role_arn_update: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SchemaUpdate {
    record_format_update: Option<RecordFormatShape>,
    record_encoding_update: Option<String>,
    record_column_updates: Option<Vec<ColumnShape>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ParallelismUpdate {
    count_update: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct OutputUpdate {
    output_id: String,
    name_update: Option<String>,
    kinesis_streams_output_update: Option<ResourceRoleUpdate>,
    kinesis_firehose_output_update: Option<ResourceRoleUpdate>,
    lambda_output_update: Option<Value>,
    destination_schema_update: Option<DestinationSchema>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct InputConfiguration {
    pub(super) id: String,
    pub(super) input_starting_position_configuration: StartingPosition,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct StartingPosition {
    pub(super) input_starting_position: Option<String>,
}

/// The metadata key of the input's role, and of an output's.
const INPUT_ROLE: &str = "input.RoleARN";
fn output_role(id: &str) -> String {
    format!("output.{id}.RoleARN")
}
/// The metadata key of a reference data source's role.
pub(super) fn reference_role(id: &str) -> String {
    format!("reference.{id}.RoleARN")
}

/// The bucket an S3 bucket ARN names.
fn bucket_of(arn: &str) -> Result<String, ApiError> {
    let bucket = arn.strip_prefix("arn:aws:s3:::").ok_or_else(|| {
        ApiError::invalid_argument(format!("BucketARN {arn} is not an S3 bucket ARN."))
    })?;
    // S3's naming rules, which keep a local bucket a safe directory name.
    #[cfg(feature = "firehose")]
    sluice_firehose::validate_bucket(bucket)
        .map_err(|e| ApiError::invalid_argument(e.to_string()))?;
    Ok(bucket.to_owned())
}

/// Changes that add a reference data source (its id is `1.1`: one an application) and
/// its role.
pub(super) fn add_reference(shape: &ReferenceShape) -> Result<Vec<Change>, ApiError> {
    let s3 = shape.s3_reference_data_source.as_ref().ok_or_else(|| {
        ApiError::invalid_argument("A reference data source needs S3ReferenceDataSource.")
    })?;
    check_file_key("FileKey", &s3.file_key)?;
    let reference = Reference {
        table: shape.table_name.clone(),
        bucket: bucket_of(&s3.bucket_arn)?,
        key: s3.file_key.clone(),
        schema: schema(&shape.reference_schema)?,
    };
    Ok(vec![
        Change::AddReference(reference),
        Change::Metadata(
            reference_role(REFERENCE_ID),
            Some(s3.reference_role_arn.clone()),
        ),
    ])
}

fn reference_update(
    stored: &StoredApplication,
    update: &ReferenceUpdate,
) -> Result<Vec<Change>, ApiError> {
    let Some((_, current)) = stored
        .references
        .iter()
        .find(|(id, _)| *id == update.reference_id)
    else {
        return Err(ApiError::not_found(format!(
            "Reference data source {} is not found.",
            update.reference_id
        )));
    };
    let mut reference = current.clone();
    let mut changes = Vec::new();
    if let Some(table) = &update.table_name_update {
        reference.table.clone_from(table);
    }
    if let Some(s3) = &update.s3_reference_data_source_update {
        if let Some(arn) = &s3.bucket_arn_update {
            reference.bucket = bucket_of(arn)?;
        }
        if let Some(key) = &s3.file_key_update {
            check_file_key("FileKeyUpdate", key)?;
            reference.key.clone_from(key);
        }
        if let Some(role) = &s3.reference_role_arn_update {
            changes.push(Change::Metadata(
                reference_role(&update.reference_id),
                Some(role.clone()),
            ));
        }
    }
    if let Some(shape) = &update.reference_schema_update {
        reference.schema = schema(shape)?;
    }
    changes.push(Change::UpdateReference(
        update.reference_id.clone(),
        reference,
    ));
    Ok(changes)
}

/// An in-application stream's name or prefix: 1 to 32 characters (the model's bounds).
fn check_in_app_name(member: &str, name: &str) -> Result<(), ApiError> {
    if (1..=32).contains(&name.chars().count()) {
        Ok(())
    } else {
        Err(ApiError::validation(format!(
            "{member} {name:?} is not 1 to 32 characters."
        )))
    }
}

fn not_yet(what: &str) -> ApiError {
    ApiError::invalid_argument(format!("{what} is not supported by this server yet."))
}

/// The stream an ARN names, in the caller's account and region.
fn stream_of(tenant: &Tenant, arn: &str) -> Result<String, ApiError> {
    let parsed = StreamArn::parse(arn)
        .ok_or_else(|| ApiError::invalid_argument(format!("{arn} is not a Kinesis stream ARN.")))?;
    if parsed.account != tenant.account || parsed.region != tenant.region {
        return Err(ApiError::invalid_argument(format!(
            "Stream {arn} is not in account {} and region {}.",
            tenant.account, tenant.region
        )));
    }
    Ok(parsed.stream.to_owned())
}

/// A schema shape as the library's.
pub(super) fn schema(shape: &SchemaShape) -> Result<InputSchema, ApiError> {
    if let Some(encoding) = &shape.record_encoding
        && encoding != "UTF-8"
    {
        return Err(ApiError::invalid_argument(format!(
            "RecordEncoding {encoding}: only UTF-8 is read."
        )));
    }
    let mapping = shape.record_format.mapping_parameters.as_ref();
    let format = match shape.record_format.record_format_type.as_str() {
        "JSON" => {
            if let Some(json) = mapping.and_then(|m| m.json.as_ref())
                && json.record_row_path != "$"
            {
                return Err(not_yet(&format!(
                    "RecordRowPath {:?} (records other than one object each, $)",
                    json.record_row_path
                )));
            }
            RecordFormat::Json
        }
        "CSV" => {
            let csv = mapping.and_then(|m| m.csv.as_ref());
            RecordFormat::Csv {
                row_delimiter: csv.map_or("\n", |c| &c.record_row_delimiter).to_owned(),
                column_delimiter: csv.map_or(",", |c| &c.record_column_delimiter).to_owned(),
            }
        }
        other => {
            return Err(ApiError::invalid_argument(format!(
                "RecordFormatType {other} is not JSON or CSV."
            )));
        }
    };
    let columns = shape
        .record_columns
        .iter()
        .map(|c| RecordColumn {
            name: c.name.clone(),
            sql_type: c.sql_type.clone(),
            mapping: c.mapping.clone(),
        })
        .collect();
    let schema = InputSchema { columns, format };
    schema.arrow_schema().map_err(super::error)?;
    Ok(schema)
}

/// An input shape as the library's input, and the role it names.
pub(super) fn input(
    tenant: &Tenant,
    shape: &InputShape,
) -> Result<(Input, Option<String>), ApiError> {
    if shape.input_processing_configuration.is_some() {
        return Err(not_yet(
            "InputProcessingConfiguration (a Lambda preprocessor)",
        ));
    }
    let parallelism = parallelism(shape.input_parallelism.as_ref().and_then(|p| p.count))?;
    let (source, kind) = one_of(
        shape.kinesis_streams_input.as_ref(),
        shape.kinesis_firehose_input.as_ref(),
        "An input needs KinesisStreamsInput or KinesisFirehoseInput",
    )?;
    check_in_app_name("NamePrefix", &shape.name_prefix)?;
    let input = Input {
        stream: named_by(tenant, kind, &source.resource_arn)?,
        name_prefix: shape.name_prefix.clone(),
        schema: schema(&shape.input_schema)?,
        parallelism,
        kind,
    };
    Ok((input, source.role_arn.clone()))
}

/// The one of a stream's and a delivery stream's member given, and what it names.
fn one_of<'s, T>(
    stream: Option<&'s T>,
    delivery_stream: Option<&'s T>,
    missing: &str,
) -> Result<(&'s T, StreamKind), ApiError> {
    match (stream, delivery_stream) {
        (Some(stream), None) => Ok((stream, StreamKind::Stream)),
        (None, Some(delivery_stream)) => Ok((delivery_stream, StreamKind::DeliveryStream)),
        _ => Err(ApiError::invalid_argument(format!(
            "{missing}, one of them."
        ))),
    }
}

/// The stream or delivery stream an ARN names, in the caller's account and region.
fn named_by(tenant: &Tenant, kind: StreamKind, arn: &str) -> Result<String, ApiError> {
    match kind {
        StreamKind::Stream => stream_of(tenant, arn),
        StreamKind::DeliveryStream => {
            let prefix = format!(
                "arn:aws:firehose:{}:{}:deliverystream/",
                tenant.region, tenant.account
            );
            // Firehose's names: 1 to 64 of [A-Za-z0-9_.-].
            arn.strip_prefix(&prefix)
                .filter(|name| {
                    (1..=64).contains(&name.len())
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
                })
                .map(str::to_owned)
                .ok_or_else(|| {
                    ApiError::invalid_argument(format!(
                        "{arn} is not a delivery stream ARN of account {} and region {}.",
                        tenant.account, tenant.region
                    ))
                })
        }
    }
}

/// An ARN of what `kind` names.
fn arn_of(tenant: &Tenant, kind: StreamKind, name: &str) -> String {
    match kind {
        StreamKind::Stream => StreamArn::format(&tenant.region, &tenant.account, name),
        StreamKind::DeliveryStream => format!(
            "arn:aws:firehose:{}:{}:deliverystream/{name}",
            tenant.region, tenant.account
        ),
    }
}

/// A `KinesisStreams...Update` or `KinesisFirehose...Update`: the stream or delivery stream
/// it names now, and the role change it makes under `role_key`.
fn resource_update(
    tenant: &Tenant,
    (stream, delivery_stream): (Option<&ResourceRoleUpdate>, Option<&ResourceRoleUpdate>),
    (name, kind): (&mut String, &mut StreamKind),
    role_key: String,
    changes: &mut Vec<Change>,
) -> Result<(), ApiError> {
    if stream.is_some() && delivery_stream.is_some() {
        return Err(ApiError::invalid_argument(
            "An update names a stream or a delivery stream, not both.",
        ));
    }
    for (update, to) in [
        (stream, StreamKind::Stream),
        (delivery_stream, StreamKind::DeliveryStream),
    ] {
        let Some(update) = update else { continue };
        if let Some(arn) = &update.resource_arn_update {
            *name = named_by(tenant, to, arn)?;
            *kind = to;
        }
        if let Some(role) = &update.role_arn_update {
            changes.push(Change::Metadata(role_key.clone(), Some(role.clone())));
        }
    }
    Ok(())
}

/// An `InputParallelism` count (1 when not given), in KDA's bounds.
fn parallelism(count: Option<i64>) -> Result<u32, ApiError> {
    let count = count.unwrap_or(1);
    u32::try_from(count)
        .ok()
        .filter(|c| (1..=sluice_analytics::PARALLELISM_MAX).contains(c))
        .ok_or_else(|| {
            ApiError::invalid_argument(format!(
                "InputParallelism Count {count} is not 1 to {}.",
                sluice_analytics::PARALLELISM_MAX
            ))
        })
}

/// An output shape as the library's output, and the role it names.
pub(super) fn output(
    tenant: &Tenant,
    shape: &OutputShape,
) -> Result<(Output, Option<String>), ApiError> {
    if shape.lambda_output.is_some() {
        return Err(not_yet("LambdaOutput"));
    }
    let (target, kind) = one_of(
        shape.kinesis_streams_output.as_ref(),
        shape.kinesis_firehose_output.as_ref(),
        "An output needs KinesisStreamsOutput or KinesisFirehoseOutput",
    )?;
    check_in_app_name("Name", &shape.name)?;
    let output = Output {
        in_app_stream: shape.name.clone(),
        stream: named_by(tenant, kind, &target.resource_arn)?,
        format: format(shape.destination_schema.record_format_type.as_deref())?,
        kind,
    };
    Ok((output, target.role_arn.clone()))
}

fn format(record_format_type: Option<&str>) -> Result<OutputFormat, ApiError> {
    match record_format_type {
        Some("JSON") => Ok(OutputFormat::Json),
        Some("CSV") => Ok(OutputFormat::Csv),
        other => Err(ApiError::invalid_argument(format!(
            "DestinationSchema RecordFormatType {other:?} is not JSON or CSV."
        ))),
    }
}

/// Changes that add an input and its role.
pub(super) fn add_input(tenant: &Tenant, shape: &InputShape) -> Result<Vec<Change>, ApiError> {
    let (input, role) = input(tenant, shape)?;
    Ok(vec![
        Change::Input(input),
        Change::Metadata(INPUT_ROLE.to_owned(), role),
    ])
}

/// Changes that add an output (its id is the next) and its role.
pub(super) fn add_output(
    tenant: &Tenant,
    stored: &StoredApplication,
    shape: &OutputShape,
) -> Result<Vec<Change>, ApiError> {
    let (output, role) = output(tenant, shape)?;
    let next = stored.outputs.len() + 1;
    let id = stored
        .outputs
        .iter()
        .filter_map(|(id, _)| id.strip_prefix("1.")?.parse::<usize>().ok())
        .max()
        .map_or(next, |max| max + 1);
    Ok(vec![
        Change::AddOutput(output),
        Change::Metadata(output_role(&format!("1.{id}")), role),
    ])
}

/// The changes an `ApplicationUpdate` makes.
pub(super) fn update(
    tenant: &Tenant,
    stored: &StoredApplication,
    update: &UpdateShape,
) -> Result<Vec<Change>, ApiError> {
    if update
        .cloud_watch_logging_option_updates
        .as_ref()
        .is_some_and(|u| !u.is_empty())
    {
        return Err(not_yet("CloudWatchLoggingOptionUpdates"));
    }
    let mut changes = Vec::new();
    if let Some(code) = &update.application_code_update {
        changes.push(Change::Code(code.clone()));
    }
    for input in update.input_updates.iter().flatten() {
        changes.extend(input_update(tenant, stored, input)?);
    }
    for output in update.output_updates.iter().flatten() {
        changes.extend(output_update(tenant, stored, output)?);
    }
    for reference in update.reference_data_source_updates.iter().flatten() {
        changes.extend(reference_update(stored, reference)?);
    }
    Ok(changes)
}

fn input_update(
    tenant: &Tenant,
    stored: &StoredApplication,
    update: &InputUpdate,
) -> Result<Vec<Change>, ApiError> {
    let Some((id, current)) = &stored.input else {
        return Err(ApiError::not_found(format!(
            "Input {} is not found.",
            update.input_id
        )));
    };
    if *id != update.input_id {
        return Err(ApiError::not_found(format!(
            "Input {} is not found.",
            update.input_id
        )));
    }
    if update.input_processing_configuration_update.is_some() {
        return Err(not_yet("InputProcessingConfigurationUpdate"));
    }
    let mut input = current.clone();
    if let Some(count) = update
        .input_parallelism_update
        .as_ref()
        .and_then(|p| p.count_update)
    {
        input.parallelism = parallelism(Some(count))?;
    }
    let mut changes = Vec::new();
    if let Some(prefix) = &update.name_prefix_update {
        check_in_app_name("NamePrefixUpdate", prefix)?;
        input.name_prefix.clone_from(prefix);
    }
    resource_update(
        tenant,
        (
            update.kinesis_streams_input_update.as_ref(),
            update.kinesis_firehose_input_update.as_ref(),
        ),
        (&mut input.stream, &mut input.kind),
        INPUT_ROLE.to_owned(),
        &mut changes,
    )?;
    if let Some(schema_update) = &update.input_schema_update {
        let current_format = describe_schema(&input.schema)["RecordFormat"].clone();
        let shape = SchemaShape {
            record_format: match &schema_update.record_format_update {
                Some(format) => format.clone(),
                None => serde_json::from_value(current_format).map_err(ApiError::serialization)?,
            },
            record_encoding: schema_update.record_encoding_update.clone(),
            record_columns: match &schema_update.record_column_updates {
                Some(columns) => columns.clone(),
                None => input
                    .schema
                    .columns
                    .iter()
                    .map(|c| ColumnShape {
                        name: c.name.clone(),
                        mapping: c.mapping.clone(),
                        sql_type: c.sql_type.clone(),
                    })
                    .collect(),
            },
        };
        input.schema = schema(&shape)?;
    }
    changes.push(Change::Input(input));
    Ok(changes)
}

fn output_update(
    tenant: &Tenant,
    stored: &StoredApplication,
    update: &OutputUpdate,
) -> Result<Vec<Change>, ApiError> {
    let Some((_, current)) = stored
        .outputs
        .iter()
        .find(|(id, _)| *id == update.output_id)
    else {
        return Err(ApiError::not_found(format!(
            "Output {} is not found.",
            update.output_id
        )));
    };
    if update.lambda_output_update.is_some() {
        return Err(not_yet("LambdaOutputUpdate"));
    }
    let mut output = current.clone();
    let mut changes = Vec::new();
    if let Some(name) = &update.name_update {
        check_in_app_name("NameUpdate", name)?;
        output.in_app_stream.clone_from(name);
    }
    resource_update(
        tenant,
        (
            update.kinesis_streams_output_update.as_ref(),
            update.kinesis_firehose_output_update.as_ref(),
        ),
        (&mut output.stream, &mut output.kind),
        output_role(&update.output_id),
        &mut changes,
    )?;
    if let Some(schema) = &update.destination_schema_update {
        output.format = format(schema.record_format_type.as_deref())?;
    }
    changes.push(Change::UpdateOutput(update.output_id.clone(), output));
    Ok(changes)
}

/// An input schema as Describe and DiscoverInputSchema show it.
pub(super) fn describe_schema(schema: &InputSchema) -> Value {
    let (format_type, mapping) = match &schema.format {
        RecordFormat::Json => (
            "JSON",
            json!({"JSONMappingParameters": {"RecordRowPath": "$"}}),
        ),
        RecordFormat::Csv {
            row_delimiter,
            column_delimiter,
        } => (
            "CSV",
            json!({"CSVMappingParameters": {
                "RecordRowDelimiter": row_delimiter,
                "RecordColumnDelimiter": column_delimiter,
            }}),
        ),
    };
    let columns: Vec<Value> = schema
        .columns
        .iter()
        .map(|c| json!({"Name": c.name, "Mapping": c.mapping, "SqlType": c.sql_type}))
        .collect();
    json!({
        "RecordFormat": {"RecordFormatType": format_type, "MappingParameters": mapping},
        "RecordEncoding": "UTF-8",
        "RecordColumns": columns,
    })
}

/// The reference data sources as Describe shows them.
pub(super) fn describe_references(stored: &StoredApplication) -> Value {
    let references: Vec<Value> = stored
        .references
        .iter()
        .map(|(id, reference)| {
            json!({
                "ReferenceId": id,
                "TableName": reference.table,
                "S3ReferenceDataSourceDescription": {
                    "BucketARN": format!("arn:aws:s3:::{}", reference.bucket),
                    "FileKey": reference.key,
                    "ReferenceRoleARN": stored.metadata.get(&reference_role(id)).cloned().unwrap_or_default(),
                },
                "ReferenceSchema": describe_schema(&reference.schema),
            })
        })
        .collect();
    Value::Array(references)
}

/// The input and outputs as Describe shows them.
pub(super) fn describe_io(tenant: &Tenant, stored: &StoredApplication) -> (Value, Value) {
    // `KinesisStreams...Description` or `KinesisFirehose...Description`, by what it names.
    let resource = |side: &str, kind: StreamKind, name: &str, role: Option<&String>| {
        let member = match kind {
            StreamKind::Stream => format!("KinesisStreams{side}Description"),
            StreamKind::DeliveryStream => format!("KinesisFirehose{side}Description"),
        };
        (
            member,
            json!({"ResourceARN": arn_of(tenant, kind, name), "RoleARN": role}),
        )
    };
    let inputs: Vec<Value> = stored
        .input
        .iter()
        .map(|(id, input)| {
            let mut described = json!({
                "InputId": id,
                "NamePrefix": input.name_prefix,
                "InAppStreamNames": input.in_app_names(),
                "InputSchema": describe_schema(&input.schema),
                "InputParallelism": {"Count": input.parallelism},
            });
            let (member, value) = resource(
                "Input",
                input.kind,
                &input.stream,
                stored.metadata.get(INPUT_ROLE),
            );
            described[member] = value;
            described
        })
        .collect();
    let outputs: Vec<Value> = stored
        .outputs
        .iter()
        .map(|(id, output)| {
            let mut described = json!({
                "OutputId": id,
                "Name": output.in_app_stream,
                "DestinationSchema": {"RecordFormatType": match output.format {
                    OutputFormat::Json => "JSON",
                    OutputFormat::Csv => "CSV",
                }},
            });
            let (member, value) = resource(
                "Output",
                output.kind,
                &output.stream,
                stored.metadata.get(&output_role(id)),
            );
            described[member] = value;
            described
        })
        .collect();
    (Value::Array(inputs), Value::Array(outputs))
}
