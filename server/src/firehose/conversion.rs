//! Firehose's record format conversion on the server: `DataFormatConversionConfiguration`
//! translated into a `Conversion`, the schema read from a Glue table as `aws glue get-table`
//! prints it, kept in the server's Glue directory (`--firehose-glue-dir`, by default
//! `<data dir>/glue`): table `T` of database `D` is `<dir>/D/T.json`. The schema is read
//! when the delivery stream is created (a later change of the file does not change it).

use super::shapes::unsupported;
use crate::tenant::Tenant;
use crate::wire::ApiError;
use serde::Deserialize;
use serde_json::Value;
use sluice_firehose::{Column, Conversion, ParquetCompression};
use std::collections::BTreeMap;

/// The metadata key that keeps the configuration as the client gave it, for Describe.
pub(super) const CONVERSION: &str = "DataFormatConversionConfiguration";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Configuration {
    schema_configuration: Option<SchemaConfiguration>,
    input_format_configuration: Option<Value>,
    output_format_configuration: Option<Value>,
    enabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct SchemaConfiguration {
    #[serde(rename = "RoleARN")]
    _role_arn: Option<String>,
    #[serde(rename = "CatalogId")]
    _catalog_id: Option<String>,
    database_name: Option<String>,
    table_name: Option<String>,
    #[serde(rename = "Region")]
    _region: Option<String>,
    #[serde(rename = "VersionId")]
    _version_id: Option<String>,
}

/// The conversion `config` (a `DataFormatConversionConfiguration`) asks for; `None` when
/// it is absent or disabled.
pub(super) fn conversion(
    tenant: &Tenant,
    config: Option<&Value>,
    metadata: &mut BTreeMap<String, String>,
) -> Result<Option<Conversion>, ApiError> {
    let Some(value) = config else {
        return Ok(None);
    };
    let config: Configuration = serde_json::from_value(value.clone()).map_err(|e| {
        ApiError::invalid_argument(format!("DataFormatConversionConfiguration: {e}"))
    })?;
    if config.enabled == Some(false) {
        return Ok(None);
    }
    if !cfg!(feature = "firehose-parquet") {
        return Err(unsupported(
            "DataFormatConversionConfiguration in this build (it needs the `parquet` feature: cargo build --release --features parquet)",
        ));
    }
    let case_insensitive = input_format(config.input_format_configuration.as_ref())?;
    let mut conversion = Conversion::new(columns(tenant, config.schema_configuration.as_ref())?);
    conversion.case_insensitive = case_insensitive;
    output_format(config.output_format_configuration.as_ref(), &mut conversion)?;
    metadata.insert(CONVERSION.to_owned(), value.to_string());
    Ok(Some(conversion))
}

/// The Glue table's columns.
fn columns(tenant: &Tenant, schema: Option<&SchemaConfiguration>) -> Result<Vec<Column>, ApiError> {
    let (Some(database), Some(table)) = (
        schema.and_then(|s| s.database_name.as_deref()),
        schema.and_then(|s| s.table_name.as_deref()),
    ) else {
        return Err(ApiError::invalid_argument(
            "SchemaConfiguration needs a DatabaseName and a TableName.",
        ));
    };
    let safe = |name: &str| {
        !name.is_empty()
            && name.len() <= 255
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
    };
    if !safe(database) || !safe(table) {
        return Err(ApiError::invalid_argument(
            "SchemaConfiguration's DatabaseName and TableName are letters, digits, _ and -.",
        ));
    }
    let dir = tenant
        .config
        .firehose_glue_dir
        .clone()
        .unwrap_or_else(|| tenant.config.data_dir.join("glue"));
    let path = dir.join(database).join(format!("{table}.json"));
    let text = std::fs::read_to_string(&path).map_err(|e| {
        ApiError::invalid_argument(format!(
            "Glue table {database}.{table} not found: put its `aws glue get-table` output at {} ({e}).",
            path.display()
        ))
    })?;
    let table_json: Value = serde_json::from_str(&text).map_err(|e| {
        ApiError::invalid_argument(format!("Glue table {}: not JSON: {e}", path.display()))
    })?;
    let table_json = table_json.get("Table").unwrap_or(&table_json);
    let listed = table_json
        .pointer("/StorageDescriptor/Columns")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            ApiError::invalid_argument(format!(
                "Glue table {}: no StorageDescriptor.Columns.",
                path.display()
            ))
        })?;
    listed
        .iter()
        .map(|column| {
            let field = |name: &str| column.get(name).and_then(Value::as_str);
            match (field("Name"), field("Type")) {
                (Some(name), Some(kind)) => Ok(Column {
                    name: name.to_owned(),
                    kind: kind.to_owned(),
                }),
                _ => Err(ApiError::invalid_argument(format!(
                    "Glue table {}: every column needs a Name and a Type.",
                    path.display()
                ))),
            }
        })
        .collect()
}

/// The JSON deserializer: OpenX (`CaseInsensitive`, true by default, matches keys to the
/// columns whatever their case) or Hive's (case-insensitive, as Hive is); the options this
/// server does not honour are refused. Whether keys are matched whatever their case.
fn input_format(config: Option<&Value>) -> Result<bool, ApiError> {
    let deserializer = config.and_then(|c| c.get("Deserializer"));
    match deserializer {
        None => Ok(true),
        Some(d) if d.get("OpenXJsonSerDe").is_some() => {
            let openx = &d["OpenXJsonSerDe"];
            if openx
                .get("ColumnToJsonKeyMappings")
                .is_some_and(|m| m.as_object().is_some_and(|m| !m.is_empty()))
            {
                return Err(unsupported("OpenXJsonSerDe's ColumnToJsonKeyMappings"));
            }
            if openx.get("ConvertDotsInJsonKeysToUnderscores") == Some(&Value::Bool(true)) {
                return Err(unsupported(
                    "OpenXJsonSerDe's ConvertDotsInJsonKeysToUnderscores",
                ));
            }
            Ok(openx.get("CaseInsensitive") != Some(&Value::Bool(false)))
        }
        Some(d) if d.get("HiveJsonSerDe").is_some() => {
            let formats = d["HiveJsonSerDe"].get("TimestampFormats");
            if formats.is_some_and(|f| f.as_array().is_some_and(|f| !f.is_empty())) {
                return Err(unsupported("HiveJsonSerDe's TimestampFormats"));
            }
            Ok(true)
        }
        Some(_) => Err(ApiError::invalid_argument(
            "InputFormatConfiguration's Deserializer is OpenXJsonSerDe or HiveJsonSerDe.",
        )),
    }
}

/// The Parquet serializer's settings into `conversion`; ORC is refused.
fn output_format(config: Option<&Value>, conversion: &mut Conversion) -> Result<(), ApiError> {
    let serializer = config.and_then(|c| c.get("Serializer"));
    let Some(serializer) = serializer else {
        return Err(ApiError::invalid_argument(
            "OutputFormatConfiguration needs a Serializer (ParquetSerDe).",
        ));
    };
    if serializer.get("OrcSerDe").is_some() {
        return Err(ApiError::invalid_argument(
            "OrcSerDe is not supported: there is no well-kept ORC writer for Rust; use ParquetSerDe.",
        ));
    }
    let Some(parquet) = serializer.get("ParquetSerDe") else {
        return Err(ApiError::invalid_argument(
            "OutputFormatConfiguration's Serializer is ParquetSerDe.",
        ));
    };
    let number = |name: &str| parquet.get(name).and_then(Value::as_u64);
    if let Some(bytes) = number("BlockSizeBytes") {
        conversion.block_bytes = bytes;
    }
    if let Some(bytes) = number("PageSizeBytes") {
        conversion.page_bytes = bytes;
    }
    conversion.dictionary = parquet
        .get("EnableDictionaryCompression")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    conversion.compression = match parquet.get("Compression").and_then(Value::as_str) {
        None | Some("SNAPPY") => ParquetCompression::Snappy,
        Some("GZIP") => ParquetCompression::Gzip,
        Some("UNCOMPRESSED") => ParquetCompression::Uncompressed,
        Some(other) => {
            return Err(ApiError::invalid_argument(format!(
                "ParquetSerDe's Compression must be SNAPPY, GZIP or UNCOMPRESSED, not {other}."
            )));
        }
    };
    conversion.writer_v2 = match parquet.get("WriterVersion").and_then(Value::as_str) {
        None | Some("V1") => false,
        Some("V2") => true,
        Some(other) => {
            return Err(ApiError::invalid_argument(format!(
                "ParquetSerDe's WriterVersion must be V1 or V2, not {other}."
            )));
        }
    };
    Ok(())
}
