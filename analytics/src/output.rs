//! Output rows as records: encoded as JSON or CSV lines, each with a partition key that
//! names the step that made it and the row, so a replayed step finds the rows it put before
//! a crash.

use crate::app::OutputFormat;
use crate::error::AnalyticsError;
use datafusion::arrow::record_batch::RecordBatch;
use std::collections::HashMap;
use xxhash_rust::xxh3::Xxh3;

/// A batch's rows (not `ROWTIME`) as records.
pub(crate) fn encode(
    batch: &RecordBatch,
    format: OutputFormat,
) -> Result<Vec<Vec<u8>>, AnalyticsError> {
    let columns: Vec<usize> = (1..batch.num_columns()).collect();
    let batch = batch
        .project(&columns)
        .map_err(|e| AnalyticsError::execution("encode rows", e))?;
    let mut out = Vec::new();
    match format {
        OutputFormat::Json => {
            let mut writer = datafusion::arrow::json::LineDelimitedWriter::new(&mut out);
            writer
                .write(&batch)
                .map_err(|e| AnalyticsError::execution("encode rows as JSON", e))?;
            writer
                .finish()
                .map_err(|e| AnalyticsError::execution("encode rows as JSON", e))?;
        }
        OutputFormat::Csv => {
            let mut writer = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(false)
                .build(&mut out);
            writer
                .write(&batch)
                .map_err(|e| AnalyticsError::execution("encode rows as CSV", e))?;
        }
    }
    Ok(out
        .split_inclusive(|b| *b == b'\n')
        .map(<[u8]>::to_vec)
        .collect())
}

/// An in-application stream's rows of a step: (partition key, record) each.
pub(crate) type StreamRows = (String, Vec<(String, Vec<u8>)>);

/// A step's rows as records: per in-application stream, its lines (of every batch the step
/// made for it, in order), each with its key.
pub(crate) fn keyed_lines(
    application: &str,
    step: u64,
    produced: &[(String, RecordBatch)],
    format_of: impl Fn(&str) -> Option<OutputFormat>,
) -> Result<Vec<StreamRows>, AnalyticsError> {
    let mut by_stream: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
    for (stream, batch) in produced {
        let Some(format) = format_of(stream) else {
            continue;
        };
        let lines = encode(batch, format)?;
        match by_stream.iter_mut().find(|(s, _)| s == stream) {
            Some((_, all)) => all.extend(lines),
            None => by_stream.push((stream.clone(), lines)),
        }
    }
    Ok(by_stream
        .into_iter()
        .map(|(stream, lines)| {
            let keys = row_keys(application, &stream, step, &lines);
            (stream, keys.into_iter().zip(lines).collect())
        })
        .collect())
}

/// Each line's partition key: the step, and a hash of the application, the in-application
/// stream, the line and how many equal lines came before it in the step (over every batch
/// of the stream: two windows closed in one step may make equal lines). A step makes the
/// same lines when replayed (in any order), so the same keys.
fn row_keys(application: &str, stream: &str, step: u64, lines: &[Vec<u8>]) -> Vec<String> {
    let mut seen: HashMap<&[u8], u64> = HashMap::new();
    lines
        .iter()
        .map(|line| {
            let occurrence = seen.entry(line.as_slice()).or_insert(0);
            let mut hasher = Xxh3::new();
            for part in [application.as_bytes(), stream.as_bytes(), line.as_slice()] {
                hasher.update(&(part.len() as u64).to_le_bytes());
                hasher.update(part);
            }
            hasher.update(&occurrence.to_le_bytes());
            *occurrence += 1;
            format!("{step}-{:016x}", hasher.digest())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use std::sync::Arc;

    #[test]
    fn equal_rows_of_two_batches_of_a_step_get_keys_of_their_own() {
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "ROWTIME",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
            Field::new("N", DataType::Int64, true),
        ]));
        // Two windows closed in one step, each making the row {"N":1} (ROWTIME not written).
        let window = |end: i64| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(TimestampMillisecondArray::from(vec![end])),
                    Arc::new(Int64Array::from(vec![1])),
                ],
            )
            .unwrap()
        };
        let produced = vec![
            ("OUT".to_owned(), window(1_000)),
            ("OTHER".to_owned(), window(1_000)),
            ("OUT".to_owned(), window(2_000)),
        ];
        let keyed = keyed_lines("app", 3, &produced, |_| Some(OutputFormat::Json)).unwrap();
        assert_eq!(keyed.len(), 2);
        let (stream, rows) = &keyed[0];
        assert_eq!(stream, "OUT");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].1, rows[1].1, "the same line");
        assert_ne!(rows[0].0, rows[1].0, "two keys");
        let only_other = |s: &str| (s == "OTHER").then_some(OutputFormat::Csv);
        assert_eq!(
            keyed_lines("app", 3, &produced, only_other).unwrap().len(),
            1
        );
    }

    #[test]
    fn keys_tell_equal_lines_apart_and_do_not_depend_on_order() {
        let lines = |v: &[&str]| v.iter().map(|l| l.as_bytes().to_vec()).collect::<Vec<_>>();
        let keys = row_keys("app", "OUT", 7, &lines(&["a", "b", "a"]));
        assert_eq!(
            keys.iter().collect::<std::collections::HashSet<_>>().len(),
            3
        );
        assert!(keys.iter().all(|k| k.starts_with("7-")));
        let mut reordered = row_keys("app", "OUT", 7, &lines(&["b", "a", "a"]));
        let mut sorted = keys.clone();
        reordered.sort();
        sorted.sort();
        assert_eq!(reordered, sorted);
        assert_ne!(row_keys("app", "OUT", 8, &lines(&["a"]))[0], keys[0]);
        assert_ne!(row_keys("other", "OUT", 7, &lines(&["a"]))[0], keys[0]);
    }
}
