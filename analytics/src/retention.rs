//! Which rows a sliding pump keeps after running its windows up to a time: those a later
//! row's window may still reach. A `RANGE` window reaches back a time from the row; a
//! `ROWS <n> PRECEDING` window, the `n` rows before it in its partition, however old.

use crate::error::AnalyticsError;
use crate::schema::ROWTIME;
use datafusion::arrow::array::{Array, BooleanArray, TimestampMillisecondArray};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use std::collections::HashMap;

/// A `ROWS <n> PRECEDING` window, as what it keeps: `preceding` rows per partition.
#[derive(Debug, Clone)]
pub(crate) struct RowsKept {
    pub preceding: usize,
    /// The partition's columns, by index in the stream's rows.
    pub partition: Vec<usize>,
}

/// The rows of `rows` (all run already, so every later row comes after them in `ROWTIME`)
/// that a later row's windows may reach: those after `after_ms` (the widest `RANGE`), and
/// for each `ROWS` window the newest `preceding` of each partition. Rows tied in
/// `ROWTIME` with the oldest of those are kept too, whichever way a sort orders ties.
pub(crate) fn kept(
    rows: &[RecordBatch],
    after_ms: i64,
    windows: &[RowsKept],
) -> Result<Vec<RecordBatch>, AnalyticsError> {
    let times: Vec<&TimestampMillisecondArray> =
        rows.iter().map(rowtimes).collect::<Result<_, _>>()?;
    let mut keep: Vec<Vec<bool>> = times
        .iter()
        .map(|t| t.values().iter().map(|time| *time > after_ms).collect())
        .collect();
    for window in windows {
        let keys = partition_keys(rows, &window.partition)?;
        // Per partition, the times of its rows, then the time of its `preceding`-th newest
        // (none: keep nothing).
        let mut partitions: HashMap<&Option<OwnedRow>, Vec<i64>> = HashMap::new();
        for (keys, time) in keys.iter().zip(&times) {
            for (key, time) in keys.iter().zip(time.values()) {
                partitions.entry(key).or_default().push(*time);
            }
        }
        let oldest_kept: HashMap<&Option<OwnedRow>, i64> = partitions
            .into_iter()
            .map(|(key, mut times)| {
                let oldest = match window.preceding {
                    0 => i64::MAX,
                    n if n >= times.len() => i64::MIN,
                    n => *times.select_nth_unstable_by(n - 1, |a, b| b.cmp(a)).1,
                };
                (key, oldest)
            })
            .collect();
        for ((keys, time), keep) in keys.iter().zip(&times).zip(&mut keep) {
            for (i, key) in keys.iter().enumerate() {
                if time.value(i) >= oldest_kept[key] {
                    keep[i] = true;
                }
            }
        }
    }
    let mut out = Vec::new();
    for (batch, keep) in rows.iter().zip(keep) {
        let mask = BooleanArray::from(keep);
        let filtered = filter_record_batch(batch, &mask)
            .map_err(|e| AnalyticsError::execution("keep a window's rows", e))?;
        if filtered.num_rows() > 0 {
            out.push(filtered);
        }
    }
    Ok(out)
}

/// Each row's partition, as its columns' values (`None` for a window of no partition).
fn partition_keys(
    rows: &[RecordBatch],
    partition: &[usize],
) -> Result<Vec<Vec<Option<OwnedRow>>>, AnalyticsError> {
    let failed = |e: &dyn std::fmt::Display| AnalyticsError::execution("keep a window's rows", e);
    let Some(first) = rows.first().filter(|_| !partition.is_empty()) else {
        return Ok(rows.iter().map(|b| vec![None; b.num_rows()]).collect());
    };
    let fields = partition
        .iter()
        .map(|&i| SortField::new(first.schema().field(i).data_type().clone()))
        .collect();
    let converter = RowConverter::new(fields).map_err(|e| failed(&e))?;
    rows.iter()
        .map(|batch| {
            let columns: Vec<_> = partition.iter().map(|&i| batch.column(i).clone()).collect();
            let converted = converter
                .convert_columns(&columns)
                .map_err(|e| failed(&e))?;
            Ok(converted.iter().map(|row| Some(row.owned())).collect())
        })
        .collect()
}

fn rowtimes(batch: &RecordBatch) -> Result<&TimestampMillisecondArray, AnalyticsError> {
    batch
        .column_by_name(ROWTIME)
        .and_then(|c| c.as_any().downcast_ref::<TimestampMillisecondArray>())
        .ok_or_else(|| {
            AnalyticsError::execution("keep a window's rows", "the rows have no ROWTIME")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use std::sync::Arc;

    fn batch(rows: &[(i64, &str, i64)]) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new(
                ROWTIME,
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
            Field::new("TICKER", DataType::Utf8, true),
            Field::new("PRICE", DataType::Int64, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(TimestampMillisecondArray::from(
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap()
    }

    fn prices(batches: &[RecordBatch]) -> Vec<i64> {
        let mut found: Vec<i64> = batches
            .iter()
            .flat_map(|b| {
                let prices = b.column(2).as_any().downcast_ref::<Int64Array>().unwrap();
                prices.values().to_vec()
            })
            .collect();
        found.sort_unstable();
        found
    }

    #[test]
    fn each_partition_keeps_its_newest_rows_however_old_and_the_range_its_recent_ones() {
        let rows = [
            batch(&[(100, "A", 1), (900, "A", 2), (200, "B", 3), (300, "A", 4)]),
            batch(&[(50, "B", 5), (800, "C", 6), (950, "A", 7)]),
        ];
        let two = RowsKept {
            preceding: 2,
            partition: vec![1],
        };
        // A keeps 900 and 950, B its two (however old), C its one.
        assert_eq!(
            prices(&kept(&rows, i64::MAX, std::slice::from_ref(&two)).unwrap()),
            [2, 3, 5, 6, 7]
        );
        // The range keeps what is after 850 besides.
        let one = RowsKept {
            preceding: 1,
            partition: vec![1],
        };
        assert_eq!(prices(&kept(&rows, 850, &[one]).unwrap()), [2, 3, 6, 7]);
        // No partition: the newest two of all.
        let whole = RowsKept {
            preceding: 2,
            partition: vec![],
        };
        assert_eq!(prices(&kept(&rows, i64::MAX, &[whole]).unwrap()), [2, 7]);
        let none = RowsKept {
            preceding: 0,
            partition: vec![1],
        };
        assert!(kept(&rows, i64::MAX, &[none]).unwrap().is_empty());
    }

    #[test]
    fn rows_tied_with_the_oldest_kept_are_kept() {
        let rows = [batch(&[
            (100, "A", 1),
            (200, "A", 2),
            (200, "A", 3),
            (300, "A", 4),
        ])];
        let two = RowsKept {
            preceding: 2,
            partition: vec![1],
        };
        assert_eq!(prices(&kept(&rows, i64::MAX, &[two]).unwrap()), [2, 3, 4]);
    }
}
