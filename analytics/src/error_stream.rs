//! KDA's in-application error stream, `error_stream` (docs/design/analytics.md, "The error
//! stream"): a row for each source record that could not be taken in, which an output may
//! send to a stream like any in-application stream's rows. Its rows come from a step's
//! records alone (their times are the records' arrival times, not the clock), so a replayed
//! step makes them again, with the same keys.

use crate::decode::Rejected;
use crate::error::AnalyticsError;
use crate::schema::ROWTIME;
use crate::types::rowtime_type;
use datafusion::arrow::array::{ArrayRef, StringArray, TimestampMillisecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use std::sync::Arc;

/// The error stream's name, as outputs name it.
pub const ERROR_STREAM: &str = "error_stream";

/// KDA's lengths of `MESSAGE` and `DATA_ROW` (`VARCHAR(4096)`, `VARCHAR(49152)`), in
/// characters: longer ones are cut. A rejected record may be as large as any record, and
/// its row, escaped as JSON, must still fit in a record of the output stream.
const MESSAGE_CHARS: usize = 4_096;
const DATA_ROW_CHARS: usize = 49_152;

/// Why a record is on the error stream (`ERROR_NAME`).
pub(crate) const DOES_NOT_FIT: &str = "RECORD_DOES_NOT_FIT_SCHEMA";
pub(crate) const SEALED: &str = "RECORD_SEALED";

/// KDA's error stream columns: `ERROR_TIME`, `ERROR_LEVEL`, `ERROR_NAME`, `MESSAGE`,
/// `DATA_ROWTIME`, `DATA_ROW`, `PUMP_NAME` (after `ROWTIME`, which is not written).
pub(crate) fn schema() -> SchemaRef {
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    Arc::new(Schema::new(vec![
        Field::new(ROWTIME, rowtime_type(), false),
        Field::new("ERROR_TIME", rowtime_type(), false),
        text("ERROR_LEVEL"),
        text("ERROR_NAME"),
        text("MESSAGE"),
        Field::new("DATA_ROWTIME", rowtime_type(), true),
        text("DATA_ROW"),
        text("PUMP_NAME"),
    ]))
}

/// One error: the record's arrival time, why, and the record as text (none when it may not
/// be shown, as a sealed record's ciphertext).
pub(crate) struct ErrorRow<'a> {
    pub arrival_ms: u64,
    pub name: &'static str,
    pub message: &'a str,
    pub data: Option<&'a str>,
}

impl<'a> From<&'a Rejected> for ErrorRow<'a> {
    fn from(rejected: &'a Rejected) -> ErrorRow<'a> {
        ErrorRow {
            arrival_ms: rejected.arrival_ms,
            name: DOES_NOT_FIT,
            message: &rejected.message,
            data: Some(&rejected.data),
        }
    }
}

/// The error stream's rows for `errors`.
pub(crate) fn rows(errors: &[ErrorRow<'_>]) -> Result<RecordBatch, AnalyticsError> {
    let times =
        || TimestampMillisecondArray::from_iter_values(errors.iter().map(|e| e.arrival_ms as i64));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(times()),
        Arc::new(times()),
        Arc::new(StringArray::from_iter_values(
            errors.iter().map(|_| "ERROR"),
        )),
        Arc::new(StringArray::from_iter_values(errors.iter().map(|e| e.name))),
        Arc::new(StringArray::from_iter_values(
            errors.iter().map(|e| cut(e.message, MESSAGE_CHARS)),
        )),
        Arc::new(times()),
        Arc::new(
            errors
                .iter()
                .map(|e| e.data.map(|d| cut(d, DATA_ROW_CHARS)))
                .collect::<StringArray>(),
        ),
        Arc::new(StringArray::new_null(errors.len())),
    ];
    RecordBatch::try_new(schema(), columns)
        .map_err(|e| AnalyticsError::execution("make the error stream's rows", e))
}

/// `text`'s first `chars` characters.
fn cut(text: &str, chars: usize) -> &str {
    match text.char_indices().nth(chars) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_records_and_messages_are_cut_to_kdas_lengths() {
        let data = "é".repeat(DATA_ROW_CHARS + 10);
        let message = "m".repeat(MESSAGE_CHARS * 2);
        let batch = rows(&[ErrorRow {
            arrival_ms: 5,
            name: DOES_NOT_FIT,
            message: &message,
            data: Some(&data),
        }])
        .unwrap();
        let text = |i: usize| {
            batch
                .column(i)
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .value(0)
                .to_owned()
        };
        assert_eq!(text(4).chars().count(), MESSAGE_CHARS);
        assert_eq!(text(6).chars().count(), DATA_ROW_CHARS);
        assert!(data.starts_with(&text(6)));
        assert_eq!(cut("short", 10), "short");
    }
}
