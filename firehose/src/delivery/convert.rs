//! Record format conversion: an object's JSON records decoded by the schema's columns into
//! Arrow arrays (arrow-json) and written as one Parquet file (parquet's `ArrowWriter`),
//! as Firehose's `DataFormatConversionConfiguration` with the OpenX JSON SerDe and the
//! Parquet SerDe does. A record the schema cannot read goes to the error output
//! (`format-conversion-failed`), the others are converted.

use super::buffer::Records;
use crate::spec::Conversion;

/// Why a record could not be converted (Firehose's error code for it).
#[cfg_attr(not(feature = "parquet"), allow(dead_code))]
pub(super) const MALFORMED: &str = "DataFormatConversion.MalformedData";

/// What conversion made of an object's records.
pub(super) struct Converted {
    /// The Parquet file; `None` when no record could be converted.
    pub(super) parquet: Option<Vec<u8>>,
    /// The records that could not be, by index in the object, with why.
    pub(super) failed: Vec<(usize, String)>,
}

/// A conversion ready to run: the Arrow schema its columns make.
pub(super) struct Converter {
    #[cfg(feature = "parquet")]
    schema: arrow_schema::SchemaRef,
    #[cfg(feature = "parquet")]
    properties: parquet::file::properties::WriterProperties,
    /// Keys lower-cased before they are matched to the (lower-cased) columns.
    #[cfg_attr(not(feature = "parquet"), allow(dead_code))]
    case_insensitive: bool,
}

impl Converter {
    /// The converter of a validated conversion; a column type it cannot write is an error
    /// naming it.
    pub(super) fn new(conversion: &Conversion) -> Result<Converter, String> {
        #[cfg(feature = "parquet")]
        {
            use parquet::basic::{Compression, GzipLevel};
            use parquet::file::properties::{WriterProperties, WriterVersion};
            let fields = conversion
                .columns
                .iter()
                .map(|c| {
                    let name = match conversion.case_insensitive {
                        true => c.name.to_lowercase(),
                        false => c.name.clone(),
                    };
                    Ok(arrow_schema::Field::new(name, arrow_type(&c.kind)?, true))
                })
                .collect::<Result<Vec<_>, String>>()?;
            let compression = match conversion.compression {
                crate::spec::ParquetCompression::Snappy => Compression::SNAPPY,
                crate::spec::ParquetCompression::Gzip => Compression::GZIP(GzipLevel::default()),
                crate::spec::ParquetCompression::Uncompressed => Compression::UNCOMPRESSED,
            };
            let version = if conversion.writer_v2 {
                WriterVersion::PARQUET_2_0
            } else {
                WriterVersion::PARQUET_1_0
            };
            let properties = WriterProperties::builder()
                .set_compression(compression)
                .set_writer_version(version)
                .set_dictionary_enabled(conversion.dictionary)
                .set_data_page_size_limit(conversion.page_bytes as usize)
                .set_max_row_group_bytes(Some(conversion.block_bytes as usize))
                .set_created_by("sluice-firehose".to_owned())
                .build();
            Ok(Converter {
                schema: std::sync::Arc::new(arrow_schema::Schema::new(fields)),
                properties,
                case_insensitive: conversion.case_insensitive,
            })
        }
        #[cfg(not(feature = "parquet"))]
        {
            let _ = conversion;
            Err("record format conversion needs sluice-firehose's `parquet` feature".to_owned())
        }
    }

    /// Converts `records` (each a JSON object; a trailing delimiter is whitespace to JSON).
    /// The whole object is decoded at once; when that fails, each record alone, so that
    /// only the records the schema cannot read fail.
    #[cfg(feature = "parquet")]
    pub(super) fn convert(&self, records: &Records) -> Result<Converted, String> {
        let lowered;
        let records = match self.case_insensitive && records.data.iter().any(u8::is_ascii_uppercase)
        {
            true => {
                lowered = lower_keys(records);
                &lowered
            }
            false => records,
        };
        let count = records.len() as usize;
        // A record of whitespace alone would let another record's second value pass for
        // it: such an object is decoded record by record.
        let blank = records
            .iter()
            .any(|(data, _)| data.iter().all(u8::is_ascii_whitespace));
        let whole = match blank {
            true => Err(String::new()),
            false => self.decode(&records.data, count),
        };
        let (good, failed) = match whole {
            Ok(batch) => (vec![batch], Vec::new()),
            Err(_) => {
                let mut good = Vec::new();
                let mut failed = Vec::new();
                for (i, (data, _)) in records.iter().enumerate() {
                    match self.decode(data, 1) {
                        Ok(batch) => good.push(batch),
                        Err(e) => failed.push((i, e)),
                    }
                }
                (good, failed)
            }
        };
        let converted = good.iter().map(|b| b.num_rows() as u64).sum();
        let parquet = match converted {
            0 => None,
            _ => Some(self.write(&good)?),
        };
        Ok(Converted { parquet, failed })
    }

    #[cfg(not(feature = "parquet"))]
    pub(super) fn convert(&self, _records: &Records) -> Result<Converted, String> {
        Err("record format conversion needs sluice-firehose's `parquet` feature".to_owned())
    }

    /// `rows` JSON objects into one batch of the schema's columns (fields the schema lacks
    /// are ignored; a missing one is null); any other number of values is an error.
    #[cfg(feature = "parquet")]
    fn decode(&self, json: &[u8], rows: usize) -> Result<arrow_array::RecordBatch, String> {
        let mut decoder = arrow_json::ReaderBuilder::new(self.schema.clone())
            .with_batch_size(rows + 1)
            .build_decoder()
            .map_err(|e| e.to_string())?;
        let read = decoder.decode(json).map_err(|e| e.to_string())?;
        let batch = decoder.flush().map_err(|e| e.to_string())?;
        let made = batch.as_ref().map_or(0, arrow_array::RecordBatch::num_rows);
        if json[read..].iter().any(|b| !b.is_ascii_whitespace()) || made != rows {
            return Err(format!(
                "the data holds {made} or more JSON values, not {rows}"
            ));
        }
        batch.ok_or_else(|| "no JSON value".to_owned())
    }

    /// One Parquet file of `batches`, its row groups of at most `BlockSizeBytes`.
    #[cfg(feature = "parquet")]
    fn write(&self, batches: &[arrow_array::RecordBatch]) -> Result<Vec<u8>, String> {
        let properties = self.properties.clone();
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(Vec::new(), self.schema.clone(), Some(properties))
                .map_err(|e| e.to_string())?;
        for batch in batches {
            writer.write(batch).map_err(|e| e.to_string())?;
        }
        writer.into_inner().map_err(|e| e.to_string())
    }
}

/// The records with their JSON objects' keys lower-cased (those that are not JSON objects
/// are left as they are, for the decoder to fail).
#[cfg(feature = "parquet")]
fn lower_keys(records: &Records) -> Records {
    fn lower(value: serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => serde_json::Value::Object(
                map.into_iter()
                    .map(|(k, v)| (k.to_lowercase(), lower(v)))
                    .collect(),
            ),
            other => other,
        }
    }
    let mut out = Records::default();
    for (data, arrival) in records.iter() {
        match serde_json::from_slice::<serde_json::Value>(data) {
            Ok(value) => {
                let text = serde_json::to_vec(&lower(value)).expect("JSON into a Vec");
                out.push(&text, arrival);
            }
            Err(_) => out.push(data, arrival),
        }
    }
    out
}

/// The Arrow type of a Hive column type, as Glue names them.
#[cfg(feature = "parquet")]
fn arrow_type(kind: &str) -> Result<arrow_schema::DataType, String> {
    use arrow_schema::{DataType, TimeUnit};
    let kind = kind.trim().to_ascii_lowercase();
    let sized = |prefix: &str| kind.strip_prefix(prefix).and_then(|r| r.strip_suffix(')'));
    Ok(match kind.as_str() {
        "string" => DataType::Utf8,
        _ if sized("varchar(")
            .or_else(|| sized("char("))
            .is_some_and(|n| n.parse::<u32>().is_ok()) =>
        {
            DataType::Utf8
        }
        "tinyint" => DataType::Int8,
        "smallint" => DataType::Int16,
        "int" | "integer" => DataType::Int32,
        "bigint" => DataType::Int64,
        "float" => DataType::Float32,
        "double" => DataType::Float64,
        "boolean" => DataType::Boolean,
        "timestamp" => DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into())),
        "date" => DataType::Date32,
        _ => match sized("decimal(").and_then(|ps| ps.split_once(',')) {
            Some((p, s)) => {
                let precision: u8 = p
                    .trim()
                    .parse()
                    .map_err(|_| format!("column type {kind} is not valid"))?;
                let scale: i8 = s
                    .trim()
                    .parse()
                    .map_err(|_| format!("column type {kind} is not valid"))?;
                if !(1..=38).contains(&precision) || scale < 0 || scale as u8 > precision {
                    return Err(format!("column type {kind} is not valid"));
                }
                DataType::Decimal128(precision, scale)
            }
            None => {
                return Err(format!(
                    "column type {kind} is not supported (string, varchar, char, tinyint, smallint, int, bigint, float, double, boolean, timestamp, date, decimal)"
                ));
            }
        },
    })
}
