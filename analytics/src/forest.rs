//! `RANDOM_CUT_FOREST`'s scores (docs/design/analytics.md, "RANDOM_CUT_FOREST"): each row's
//! numeric columns are a point, scored against the forest before it joins it, in the order
//! the rows come. The forest is AWS's Random Cut Forest (rcflib), seeded alike in every
//! application, and saved whole in the checkpoint, its random state included: a replay from
//! the checkpoint scores every row as the run it replays did.

use crate::error::AnalyticsError;
use crate::sql::ForestOptions;
use datafusion::arrow::array::{Array, ArrayRef, Float64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use rcflib::rcf::{AugmentedRCF, RCFBuilder, RCFLarge, RCFOptionsBuilder};

/// Every forest's seed: the scores depend on the rows alone.
const SEED: u64 = 0x5EED_F0E5;

/// A pump's forest, and which of its cursor's columns make a point.
pub(crate) struct Forest {
    model: RCFLarge<u64, u64>,
    /// The numeric columns of the cursor's rows, in order.
    numeric: Vec<usize>,
}

fn failed(what: &str, e: impl std::fmt::Display) -> AnalyticsError {
    AnalyticsError::execution(&format!("RANDOM_CUT_FOREST: {what}"), e)
}

impl Forest {
    /// A new forest over points of `numeric`'s columns.
    pub fn new(options: &ForestOptions, numeric: Vec<usize>) -> Result<Forest, AnalyticsError> {
        let mut builder = RCFBuilder::new(numeric.len(), options.shingle_size);
        builder
            .number_of_trees(options.trees)
            .tree_capacity(options.sample_size)
            .time_decay(1.0 / options.time_decay as f64)
            .random_seed(SEED)
            .parallel_enabled(false)
            .internal_shingling(true);
        let model = builder
            .build_large_simple::<u64>()
            .map_err(|e| failed("make the forest", format!("{e:?}")))?;
        Ok(Forest { model, numeric })
    }

    /// Scores `columns`' rows in order, each before it joins the forest. A row with a NULL
    /// among its numeric columns, or a value that is not a finite number as a 32-bit float
    /// (NaN, infinities, beyond ±3.4e38), is scored NULL and left out of the forest: the
    /// forest's cuts cannot split such a point.
    pub fn score(&mut self, columns: &[ArrayRef]) -> Result<Float64Array, AnalyticsError> {
        let values = self
            .numeric
            .iter()
            .map(|&i| {
                let column =
                    cast(&columns[i], &DataType::Float64).map_err(|e| failed("read", e))?;
                Ok(column
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .expect("cast to Float64")
                    .clone())
            })
            .collect::<Result<Vec<_>, AnalyticsError>>()?;
        let rows = columns.first().map_or(0, |c| c.len());
        let mut point = vec![0f32; values.len()];
        let mut scores = Vec::with_capacity(rows);
        'rows: for row in 0..rows {
            for (slot, column) in point.iter_mut().zip(&values) {
                *slot = column.value(row) as f32;
                if column.is_null(row) || !slot.is_finite() {
                    scores.push(None);
                    continue 'rows;
                }
            }
            let score = self
                .model
                .score(&point)
                .map_err(|e| failed("score", format!("{e:?}")))?;
            self.model
                .update(&point, 0)
                .map_err(|e| failed("update", format!("{e:?}")))?;
            scores.push(Some(score));
        }
        Ok(Float64Array::from(scores))
    }

    /// The forest, for a checkpoint (CBOR).
    pub fn save(&self) -> Result<Vec<u8>, AnalyticsError> {
        let mut bytes = Vec::new();
        ciborium::into_writer(&self.model, &mut bytes).map_err(|e| failed("save", e))?;
        Ok(bytes)
    }

    /// Takes up a forest [`Forest::save`] gave, refused unless its points are this one's.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<(), AnalyticsError> {
        let model: RCFLarge<u64, u64> =
            ciborium::from_reader(bytes).map_err(|e| failed("read the checkpoint's forest", e))?;
        if model.dimensions() != self.model.dimensions()
            || model.shingle_size() != self.model.shingle_size()
        {
            return Err(failed(
                "read the checkpoint's forest",
                "its points are not of the cursor's columns",
            ));
        }
        self.model = model;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn signal(n: usize, spikes: &[usize]) -> ArrayRef {
        Arc::new(Float64Array::from_iter_values((0..n).map(|i| {
            let base = 50.0 + 10.0 * (i as f64 / 10.0).sin();
            if spikes.contains(&i) {
                base + 200.0
            } else {
                base
            }
        })))
    }

    #[test]
    fn spikes_score_highest_and_a_saved_forest_scores_on_alike() {
        let spikes = [600, 750, 900];
        let column = signal(1000, &spikes);
        let options = ForestOptions::default();
        let mut whole = Forest::new(&options, vec![0]).unwrap();
        let scores = whole.score(std::slice::from_ref(&column)).unwrap();
        let mut ranked: Vec<usize> = (0..scores.len()).collect();
        ranked.sort_by(|a, b| scores.value(*b).total_cmp(&scores.value(*a)));
        let mut top: Vec<usize> = ranked[..spikes.len()].to_vec();
        top.sort_unstable();
        assert_eq!(top, spikes, "the spikes rank highest");
        assert_eq!(
            scores.value(0),
            0.0,
            "no score before the forest holds points"
        );

        // Halfway saved and restored into a fresh forest: the same scores after.
        let mut first = Forest::new(&options, vec![0]).unwrap();
        let head = first.score(&[column.slice(0, 500)]).unwrap();
        let saved = first.save().unwrap();
        let mut second = Forest::new(&options, vec![0]).unwrap();
        second.restore(&saved).unwrap();
        let tail = second.score(&[column.slice(500, 500)]).unwrap();
        let resumed: Vec<f64> = head.values().iter().chain(tail.values()).copied().collect();
        assert_eq!(resumed, scores.values().to_vec());

        let mut other = Forest::new(&options, vec![0, 1]).unwrap();
        assert!(other.restore(&saved).is_err(), "points of two columns");
    }

    #[test]
    fn rows_with_null_are_scored_null_and_not_learned() {
        let column: ArrayRef = Arc::new(Float64Array::from(vec![
            Some(f64::NAN),
            Some(1.0),
            None,
            Some(f64::INFINITY),
            Some(1e300),
            Some(2.0),
        ]));
        let mut forest = Forest::new(&ForestOptions::default(), vec![0]).unwrap();
        let scores = forest.score(&[column]).unwrap();
        let nulls: Vec<usize> = (0..scores.len()).filter(|&i| scores.is_null(i)).collect();
        assert_eq!(nulls, [0, 2, 3, 4]);
        assert_eq!(forest.model.entries_seen(), 2);
        // The forest goes on scoring after them.
        let more: ArrayRef = Arc::new(Float64Array::from(vec![3.0; 100]));
        let scores = forest.score(&[more]).unwrap();
        assert_eq!(scores.null_count(), 0);
    }
}
