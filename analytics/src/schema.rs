//! An application input's schema (KDA's `InputSchema`): the columns records map to, and how
//! records are written (JSON with JSONPath mappings, or CSV).

use crate::error::AnalyticsError;
use crate::types::{rowtime_type, sql_type};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The in-application input stream's own columns, before the schema's.
pub const ROWTIME: &str = "ROWTIME";

/// One column of an input schema (`RecordColumn`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordColumn {
    /// The column's name in the in-application stream.
    pub name: String,
    /// Its SQL type (`VARCHAR(8)`, `DOUBLE`, ...).
    pub sql_type: String,
    /// For JSON records, where its value is: a JSONPath of member names and array indexes
    /// (`$.ticker`, `$.trade.price`, `$.tags[0]`). `None`: the member named as the column.
    pub mapping: Option<String>,
}

/// How records are written (`RecordFormat`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordFormat {
    /// One JSON object per record.
    Json,
    /// Rows split by `row_delimiter`, fields by `column_delimiter`, in column order.
    Csv {
        /// Between rows (`\n` by default in KDA).
        row_delimiter: String,
        /// Between fields (`,` by default).
        column_delimiter: String,
    },
}

/// An input's schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputSchema {
    /// The columns, in order.
    pub columns: Vec<RecordColumn>,
    /// How records are written.
    pub format: RecordFormat,
}

impl InputSchema {
    /// The in-application input stream's Arrow schema: `ROWTIME`, then the columns.
    pub fn arrow_schema(&self) -> Result<SchemaRef, AnalyticsError> {
        self.validate()?;
        let mut fields = vec![Field::new(ROWTIME, rowtime_type(), false)];
        for column in &self.columns {
            fields.push(Field::new(&column.name, sql_type(&column.sql_type)?, true));
        }
        Ok(Arc::new(Schema::new(fields)))
    }

    /// The column types, in order.
    pub(crate) fn types(&self) -> Result<Vec<DataType>, AnalyticsError> {
        self.columns.iter().map(|c| sql_type(&c.sql_type)).collect()
    }

    fn validate(&self) -> Result<(), AnalyticsError> {
        if self.columns.is_empty() || self.columns.len() > 1000 {
            return Err(AnalyticsError::invalid(
                "An input schema has 1 to 1,000 columns.",
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for column in &self.columns {
            if column.name.is_empty() || column.name.eq_ignore_ascii_case(ROWTIME) {
                return Err(AnalyticsError::invalid(format!(
                    "Column name {:?} is empty or reserved.",
                    column.name
                )));
            }
            if !seen.insert(column.name.as_str()) {
                return Err(AnalyticsError::invalid(format!(
                    "Column {:?} is named twice.",
                    column.name
                )));
            }
            if let Some(mapping) = &column.mapping {
                crate::decode::JsonPath::parse(mapping)?;
            }
        }
        if let RecordFormat::Csv {
            row_delimiter,
            column_delimiter,
        } = &self.format
            && (row_delimiter.is_empty() || column_delimiter.is_empty())
        {
            return Err(AnalyticsError::invalid("CSV delimiters must not be empty."));
        }
        Ok(())
    }
}
