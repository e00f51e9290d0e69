//! Reference data (KDA's `AddApplicationReferenceDataSource`): a table of rows read from an
//! object when the application starts, which its queries join streams with.
//!
//! The object as loaded is kept in the application's state directory with the checkpoint,
//! so a restart replays the journal's steps over the table they ran with, even when the
//! object has changed since (docs/design/analytics.md, "Reference data").

use crate::decode::Decoder;
use crate::error::AnalyticsError;
use crate::schema::{InputSchema, ROWTIME, RecordFormat};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use xxhash_rust::xxh3::{Xxh3, xxh3_64};

/// The id of an application's reference data source (it has at most one).
pub const REFERENCE_ID: &str = "1.1";
/// The largest reference object (KDA's limit).
pub const REFERENCE_BYTES_MAX: usize = 1 << 30;
/// Saved references' file names start with it.
pub(crate) const REFERENCE_PREFIX: &str = "reference-";
/// What a saved reference starts with.
const MAGIC: &[u8; 8] = b"SLKDARF1";

/// A reference table: the rows of an object in a bucket, mapped by a schema as a source's
/// records are (JSON: one object a line; CSV: rows split by the row delimiter).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    /// The in-application table's name, as queries name it.
    pub table: String,
    /// The bucket holding the object.
    pub bucket: String,
    /// The object's key.
    pub key: String,
    /// How its rows map to columns.
    pub schema: InputSchema,
}

/// An object's bytes, or why they cannot be read.
pub type ObjectRead<'a> = Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send + 'a>>;

/// Where reference objects are read from (`sluice serve`: the Firehose buckets).
pub trait ReferenceObjects: Send + Sync + std::fmt::Debug {
    /// Reads `key` in `bucket`.
    fn get<'a>(&'a self, bucket: &'a str, key: &'a str) -> ObjectRead<'a>;
}

/// A reference table's object as loaded: its rows, and what a checkpoint keeps of it.
#[derive(Debug)]
pub(crate) struct LoadedReference {
    pub table: String,
    /// Its rows, decoded once.
    pub rows: RecordBatch,
    /// Its saved copy's start: magic, header length, header (table and schema).
    prefix: Vec<u8>,
    object: Vec<u8>,
    /// Of the prefix and the object: names the saved copy and ends it as its checksum.
    digest: u64,
}

/// A reference table's columns: its schema's, without `ROWTIME`.
pub(crate) fn table_schema(schema: &InputSchema) -> Result<SchemaRef, AnalyticsError> {
    let with_rowtime = schema.arrow_schema()?;
    let fields: Vec<_> = with_rowtime.fields().iter().skip(1).cloned().collect();
    Ok(Arc::new(Schema::new(fields)))
}

/// Checks a reference's names and schema.
pub(crate) fn check(reference: &Reference) -> Result<(), AnalyticsError> {
    let table = &reference.table;
    if !(1..=32).contains(&table.chars().count()) {
        return Err(AnalyticsError::invalid(format!(
            "Reference table name {table:?} is not 1 to 32 characters."
        )));
    }
    if reference.bucket.is_empty() || reference.key.is_empty() {
        return Err(AnalyticsError::invalid(format!(
            "Reference table {table}: its bucket and file key must be given."
        )));
    }
    if reference.schema.columns.iter().any(|c| c.name == ROWTIME) {
        return Err(AnalyticsError::invalid(format!(
            "Reference table {table}: a reference table has no ROWTIME column."
        )));
    }
    table_schema(&reference.schema).map(|_| ())
}

/// Reads the objects of `references`.
pub(crate) async fn load(
    references: &[Reference],
    objects: Option<&dyn ReferenceObjects>,
) -> Result<Vec<LoadedReference>, AnalyticsError> {
    let mut loaded = Vec::with_capacity(references.len());
    for reference in references {
        let Some(objects) = objects else {
            return Err(AnalyticsError::invalid(format!(
                "Reference table {}: this application has no store to read s3://{}/{} from.",
                reference.table, reference.bucket, reference.key
            )));
        };
        let object = objects
            .get(&reference.bucket, &reference.key)
            .await
            .map_err(|e| {
                AnalyticsError::invalid(format!(
                    "Reference table {}: s3://{}/{} cannot be read: {e}",
                    reference.table, reference.bucket, reference.key
                ))
            })?;
        if object.len() > REFERENCE_BYTES_MAX {
            return Err(AnalyticsError::invalid(format!(
                "Reference table {}: s3://{}/{} is {} bytes; reference data is at most {REFERENCE_BYTES_MAX}.",
                reference.table,
                reference.bucket,
                reference.key,
                object.len()
            )));
        }
        // Refused now, with the object named, rather than when a query first reads it.
        let one = LoadedReference::new(reference.table.clone(), reference.schema.clone(), object)
            .map_err(|e| {
            AnalyticsError::invalid(format!("s3://{}/{}: {e}", reference.bucket, reference.key))
        })?;
        loaded.push(one);
    }
    Ok(loaded)
}

#[derive(Serialize, Deserialize)]
struct SavedHeader {
    table: String,
    schema: InputSchema,
}

impl LoadedReference {
    /// `object` as `table`'s rows, refused if they do not fit `schema`.
    fn new(
        table: String,
        schema: InputSchema,
        object: Vec<u8>,
    ) -> Result<LoadedReference, AnalyticsError> {
        let header = serde_json::to_vec(&SavedHeader {
            table: table.clone(),
            schema: schema.clone(),
        })
        .map_err(|e| AnalyticsError::execution("save a reference table", e))?;
        let mut prefix = Vec::with_capacity(MAGIC.len() + 4 + header.len());
        prefix.extend_from_slice(MAGIC);
        prefix.extend_from_slice(&(header.len() as u32).to_le_bytes());
        prefix.extend_from_slice(&header);
        let mut digest = Xxh3::new();
        digest.update(&prefix);
        digest.update(&object);
        let rows = decode_rows(&table, &schema, &object)?;
        Ok(LoadedReference {
            table,
            rows,
            prefix,
            object,
            digest: digest.digest(),
        })
    }

    /// The name of its saved copy in a state directory.
    pub fn file_name(&self) -> String {
        format!("{REFERENCE_PREFIX}{:016x}", self.digest)
    }

    /// Its saved copy's size.
    pub fn saved_len(&self) -> u64 {
        (self.prefix.len() + self.object.len() + 8) as u64
    }

    /// Writes its saved copy. Layout: magic, header length (u32 LE), header (JSON: table
    /// and schema), the object, then the xxh3-64 of everything before it.
    pub fn write_to(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        out.write_all(&self.prefix)?;
        out.write_all(&self.object)?;
        out.write_all(&self.digest.to_le_bytes())
    }

    /// A saved copy read back; a damaged one is refused.
    pub fn decode(mut bytes: Vec<u8>) -> Result<LoadedReference, String> {
        let body_len = bytes
            .len()
            .checked_sub(8)
            .filter(|&n| n >= MAGIC.len() + 4)
            .ok_or("it is too short")?;
        let sum: [u8; 8] = bytes[body_len..].try_into().expect("8 bytes");
        if xxh3_64(&bytes[..body_len]).to_le_bytes() != sum {
            return Err("its checksum does not match: it is damaged".to_owned());
        }
        if &bytes[..MAGIC.len()] != MAGIC {
            return Err("it is not a saved reference table".to_owned());
        }
        let at = MAGIC.len();
        let header_len =
            u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let header_end = (at + 4)
            .checked_add(header_len)
            .filter(|&end| end <= body_len)
            .ok_or("its header runs past its end")?;
        let header: SavedHeader =
            serde_json::from_slice(&bytes[at + 4..header_end]).map_err(|e| e.to_string())?;
        // The object, moved down in place rather than copied.
        bytes.truncate(body_len);
        bytes.drain(..header_end);
        LoadedReference::new(header.table, header.schema, bytes).map_err(|e| e.to_string())
    }
}

/// `table`'s rows of `object`, or why the object does not fit `schema`.
fn decode_rows(
    table: &str,
    schema: &InputSchema,
    object: &[u8],
) -> Result<RecordBatch, AnalyticsError> {
    let decoder = Decoder::new(schema)?;
    let text = std::str::from_utf8(object).map_err(|_| {
        AnalyticsError::invalid(format!("Reference table {table}: the object is not UTF-8."))
    })?;
    let rows: Vec<&str> = match &schema.format {
        RecordFormat::Json => text.lines().filter(|l| !l.trim().is_empty()).collect(),
        RecordFormat::Csv { row_delimiter, .. } => text
            .split(row_delimiter.as_str())
            .filter(|row| !row.is_empty())
            .collect(),
    };
    let (batch, rejected) = decoder.decode(rows.iter().map(|row| (row.as_bytes(), 0)))?;
    if let Some(first) = rejected.first() {
        let shown: String = first.data.chars().take(200).collect();
        return Err(AnalyticsError::invalid(format!(
            "Reference table {table}: {} of its {} rows do not fit its schema; the first, {shown:?}: {}",
            rejected.len(),
            rows.len(),
            first.message
        )));
    }
    // Without ROWTIME, which the decoder puts first.
    let columns: Vec<usize> = (1..batch.num_columns()).collect();
    batch
        .project(&columns)
        .map_err(|e| AnalyticsError::execution("make a reference table", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::RecordColumn;

    fn csv_reference(object: &str) -> Result<LoadedReference, AnalyticsError> {
        let schema = InputSchema {
            columns: vec![
                RecordColumn {
                    name: "TICKER".into(),
                    sql_type: "VARCHAR(4)".into(),
                    mapping: None,
                },
                RecordColumn {
                    name: "COMPANY".into(),
                    sql_type: "VARCHAR(32)".into(),
                    mapping: None,
                },
            ],
            format: RecordFormat::Csv {
                row_delimiter: "\n".into(),
                column_delimiter: ",".into(),
            },
        };
        LoadedReference::new("COMPANIES".into(), schema, object.as_bytes().to_vec())
    }

    fn saved(reference: &LoadedReference) -> Vec<u8> {
        let mut out = Vec::new();
        reference.write_to(&mut out).unwrap();
        assert_eq!(out.len() as u64, reference.saved_len());
        out
    }

    #[test]
    fn a_saved_copy_reads_back_and_a_damaged_one_is_refused() {
        let one = csv_reference("AMZN,Amazon\nMSFT,Microsoft\n").unwrap();
        let saved = saved(&one);
        let back = LoadedReference::decode(saved.clone()).expect("reads back");
        assert_eq!(back.file_name(), one.file_name());
        assert_eq!(back.rows, one.rows);
        assert_eq!(back.rows.num_rows(), 2);
        for at in [0, 12, saved.len() / 2, saved.len() - 1] {
            let mut damaged = saved.clone();
            damaged[at] ^= 0x10;
            assert!(LoadedReference::decode(damaged).is_err(), "byte {at}");
        }
        assert!(LoadedReference::decode(saved[..10].to_vec()).is_err());
    }

    #[test]
    fn rows_that_do_not_fit_are_refused_naming_the_table_and_row() {
        let error = csv_reference("AMZN,Amazon\nMSFT\n").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("COMPANIES"), "{message}");
        assert!(message.contains("1 of its 2 rows"), "{message}");
        assert!(message.contains("MSFT"), "{message}");
    }

    #[test]
    fn another_object_is_another_copy() {
        let a = csv_reference("AMZN,Amazon\n").unwrap();
        let b = csv_reference("AMZN,Amazon Inc\n").unwrap();
        assert_ne!(a.file_name(), b.file_name());
    }
}
