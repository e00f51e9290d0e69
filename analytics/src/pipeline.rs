//! An application's code running on DataFusion: its in-application streams as tables whose
//! rows are swapped for each run, its pumps planned once and run on each micro-batch
//! (per-row queries) or on each tumbling window's rows when the watermark passes its end
//! (docs/design/analytics.md, "Running a pump").

use crate::error::{AnalyticsError, Position};
use crate::forest::Forest;
use crate::retention::RowsKept;
use crate::schema::ROWTIME;
use crate::sql::{ANOMALY_SCORE, Code, FOREST_PREFIX, ForestDef, JoinDef, PumpDef, StreamDef};
use crate::types::{rowtime_type, sql_type};
use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, TimestampMillisecondArray, UInt32Array, new_null_array,
};
use datafusion::arrow::compute::{
    SortColumn, can_cast_types, cast, lexsort_to_indices, take_record_batch,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::TableReference;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::dataframe::DataFrame;
use datafusion::datasource::{MemTable, TableType, provider_as_source};
use datafusion::logical_expr::{Expr, LogicalPlan, WindowFunctionDefinition};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

/// The column a per-row pump's input `ROWTIME` comes back in.
const ROWTIME_CARRIED: &str = "__SLUICE_ROWTIME";

/// An in-application stream as a table: the rows of the run under way.
#[derive(Debug)]
struct SwapTable {
    schema: SchemaRef,
    batches: Mutex<Vec<RecordBatch>>,
}

#[async_trait]
impl TableProvider for SwapTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let batches = self
            .batches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        MemTable::try_new(self.schema.clone(), vec![batches])?
            .scan(state, projection, filters, limit)
            .await
    }
}

struct Stream {
    schema: SchemaRef,
    table: Arc<SwapTable>,
}

struct Pump {
    name: String,
    /// The stream whose rows it takes.
    from: String,
    into: String,
    /// The table its plan reads: `from`, or its forest's scored rows.
    reads: String,
    plan: LogicalPlan,
    /// For each of the target's columns (after `ROWTIME`), the query's column that fills it.
    fills: Vec<Option<usize>>,
    /// Tumbling: the width, and the open windows' rows by start.
    window: Option<(i64, BTreeMap<i64, Vec<RecordBatch>>)>,
    /// The window orders a per-row query's rows (they keep their `ROWTIME`) rather than
    /// grouping them.
    ordered: bool,
    /// Its `RANDOM_CUT_FOREST`: rows of `from` go through it, then the plan reads them.
    forest: Option<ForestStage>,
    /// Sliding: the rows kept for the windows of rows to come, and the rows waiting for
    /// the watermark.
    sliding: Option<SlidingRows>,
    /// Its windowed join of two streams (`from` is the left one).
    join: Option<JoinStage>,
}

impl Pump {
    /// Whether it takes the rows of `stream`.
    fn takes(&self, stream: &str) -> bool {
        match &self.join {
            Some(join) => join.streams.iter().any(|s| s == stream),
            None => self.from == stream,
        }
    }

    /// Its rows waiting for the watermark: a sliding pump's, or each side's of a join.
    fn waiting(&self) -> impl Iterator<Item = &SlidingRows> {
        self.sliding
            .iter()
            .chain(self.join.iter().flat_map(|join| join.rows.iter()))
    }

    /// The stream whose rows a checkpoint's `part` holds: a join's right side's, or its
    /// source's.
    fn part_stream(&self, part: WindowPart) -> &str {
        match (&self.join, part) {
            (Some(join), WindowPart::JoinedHistory | WindowPart::JoinedPending) => &join.streams[1],
            _ => &self.from,
        }
    }

    /// Where a checkpoint's rows of `part` go.
    fn held_rows(&mut self, part: WindowPart) -> Option<&mut SlidingRows> {
        match (part, &mut self.sliding, &mut self.join) {
            (WindowPart::SlidingHistory | WindowPart::SlidingPending, Some(sliding), _) => {
                Some(sliding)
            }
            (WindowPart::SlidingHistory | WindowPart::SlidingPending, None, Some(join)) => {
                Some(&mut join.rows[0])
            }
            (WindowPart::JoinedHistory | WindowPart::JoinedPending, _, Some(join)) => {
                Some(&mut join.rows[1])
            }
            _ => None,
        }
    }
}

/// A pump's windowed join of two streams (docs/design/analytics.md, "Stream-to-stream
/// joins"): each side's rows wait for the watermark as a sliding pump's do, and are kept
/// while rows of the other side to come may pair with them.
struct JoinStage {
    /// The streams of the left and the right side (one stream twice in a self-join).
    streams: [String; 2],
    /// The tables the plan reads for each side, holding its rows for the run under way.
    tables: [Arc<SwapTable>; 2],
    /// Each side's rows; `range_ms` is its window's.
    rows: [SlidingRows; 2],
}

/// A sliding-window pump's rows. A row is run once the watermark passes its `ROWTIME`
/// (every row of its window is in then), over the rows of the widest range before it.
#[derive(Debug, Clone)]
pub(crate) struct SlidingRows {
    /// The widest window.
    range_ms: i64,
    /// Its `ROWS` windows, which keep rows by partition.
    rows_windows: Vec<RowsKept>,
    /// Rows up to this `ROWTIME` have been run; a row that comes for it is late.
    pub released_to: i64,
    /// Rows run already, back to the widest range before `released_to`.
    pub history: Vec<RecordBatch>,
    /// Rows not run yet.
    pub pending: Vec<RecordBatch>,
}

impl SlidingRows {
    fn new(range_ms: i64, rows_windows: Vec<RowsKept>) -> SlidingRows {
        SlidingRows {
            range_ms,
            rows_windows,
            released_to: i64::MIN,
            history: Vec::new(),
            pending: Vec::new(),
        }
    }

    /// Whether rows wait at or before `bound`.
    fn has_due(&self, bound: i64) -> bool {
        self.pending
            .iter()
            .filter_map(|b| rowtimes(b).ok())
            .any(|times| times.values().iter().any(|t| *t <= bound))
    }

    /// Adds a batch's rows to those waiting; returns how many were late (at or before what
    /// was run already), which are left out.
    fn hold(&mut self, batch: &RecordBatch) -> Result<u64, AnalyticsError> {
        let (late, fresh) = split_by_rowtime(batch, self.released_to)?;
        self.pending.extend(fresh);
        Ok(late.map_or(0, |b| b.num_rows() as u64))
    }

    /// The rows a run up to `bound` reads (those kept, then those due), and those that
    /// wait on.
    fn due(&self, bound: i64) -> Result<(Vec<RecordBatch>, Vec<RecordBatch>), AnalyticsError> {
        let (mut rows, mut waiting) = (self.history.clone(), Vec::new());
        for batch in &self.pending {
            let (at_or_before, after) = split_by_rowtime(batch, bound)?;
            rows.extend(at_or_before);
            waiting.extend(after);
        }
        Ok((rows, waiting))
    }

    /// After a run up to `bound` over `rows`: keeps what runs to come read.
    fn ran(
        &mut self,
        rows: &[RecordBatch],
        waiting: Vec<RecordBatch>,
        bound: i64,
    ) -> Result<(), AnalyticsError> {
        let keep_after = bound.saturating_sub(self.range_ms);
        self.history = crate::retention::kept(rows, keep_after, &self.rows_windows)?;
        self.pending = waiting;
        self.released_to = bound;
        Ok(())
    }
}

/// A pump's `RANDOM_CUT_FOREST`: its cursor's plan over the pump's source, and the forest
/// that scores the cursor's rows into the stream `scored` (the cursor's columns, then
/// `ANOMALY_SCORE`).
struct ForestStage {
    plan: LogicalPlan,
    scored: String,
    /// The cursor's columns the scored rows keep, after its carried `ROWTIME`.
    kept: Vec<usize>,
    forest: Forest,
}

/// Rows an application made: an in-application stream's name and a batch of its rows.
pub type Produced = Vec<(String, RecordBatch)>;

/// What a pipeline holds between runs, for a checkpoint: the watermark, its counters and
/// the open windows' rows.
#[derive(Debug, Clone, Default)]
pub(crate) struct PipelineState {
    pub watermark_ms: i64,
    pub late_rows: u64,
    pub unfit_values: u64,
    pub windows: Vec<WindowRows>,
    /// Each `RANDOM_CUT_FOREST`'s pump and its forest, saved.
    pub forests: Vec<(String, Vec<u8>)>,
}

/// Rows a pump holds, of its source stream: an open tumbling window's (`start_ms` is its
/// start), or a sliding pump's kept or waiting rows (`start_ms` is what it ran up to).
#[derive(Debug, Clone)]
pub(crate) struct WindowRows {
    pub pump: String,
    pub part: WindowPart,
    pub start_ms: i64,
    pub schema: SchemaRef,
    pub rows: Vec<RecordBatch>,
}

/// Which rows a [`WindowRows`] holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum WindowPart {
    /// A tumbling window's.
    #[default]
    Tumbling,
    /// A sliding pump's rows run already, kept for the windows of rows to come; a join's
    /// left side's, kept for rows of the right side to come.
    SlidingHistory,
    /// A sliding pump's rows waiting for the watermark; a join's left side's.
    SlidingPending,
    /// A join's right side's rows run already, kept for rows of the left side to come.
    JoinedHistory,
    /// A join's right side's rows waiting for the watermark.
    JoinedPending,
}

/// An application's streams and pumps, ready to run.
pub struct Pipeline {
    ctx: SessionContext,
    streams: BTreeMap<String, Stream>,
    /// Reference tables, by name: rows queries join streams with, set by
    /// [`Pipeline::set_reference_rows`].
    references: BTreeMap<String, Arc<SwapTable>>,
    pumps: Vec<Pump>,
    /// The in-application input streams, the first of which [`Pipeline::push`] feeds.
    inputs: Vec<String>,
    /// The pumps, each after those whose rows it reads: the order rows waiting for the
    /// watermark are run in.
    upstream_first: Vec<usize>,
    watermark_ms: i64,
    /// Rows of windows closed already when they came.
    late_rows: u64,
    /// Values cast to NULL because they did not fit their column.
    unfit_values: std::sync::atomic::AtomicU64,
    /// Rows a failed call made before it failed, returned by the next call.
    undelivered: Produced,
}

impl Pipeline {
    /// Plans `code` over the input stream `input` (`SOURCE_SQL_STREAM_001`) of `schema`
    /// (which starts with `ROWTIME`). Refuses what it cannot run, saying where.
    pub async fn new(
        code: &Code,
        input: &str,
        schema: SchemaRef,
    ) -> Result<Pipeline, AnalyticsError> {
        Pipeline::with_inputs(code, &[input.to_owned()], schema, &[]).await
    }

    /// As [`Pipeline::new`], with several input streams of `schema` (KDA's input
    /// parallelism: `..._001`, `..._002`, ..., fed by [`Pipeline::push_into`]) and
    /// reference tables of these names and columns (empty until
    /// [`Pipeline::set_reference_rows`]), which queries may join streams with.
    pub async fn with_inputs(
        code: &Code,
        inputs: &[String],
        schema: SchemaRef,
        references: &[(String, SchemaRef)],
    ) -> Result<Pipeline, AnalyticsError> {
        if inputs.is_empty() {
            return Err(AnalyticsError::invalid("A pipeline has an input stream."));
        }
        let config = SessionConfig::new().with_target_partitions(1);
        let mut pipeline = Pipeline {
            ctx: SessionContext::new_with_config(config),
            streams: BTreeMap::new(),
            references: BTreeMap::new(),
            pumps: Vec::new(),
            inputs: inputs.to_vec(),
            upstream_first: Vec::new(),
            watermark_ms: i64::MIN,
            late_rows: 0,
            unfit_values: std::sync::atomic::AtomicU64::new(0),
            undelivered: Produced::new(),
        };
        for (name, columns) in references {
            pipeline.add_reference(name, columns.clone())?;
        }
        for input in inputs {
            pipeline.add_stream(input, schema.clone(), Position::default())?;
        }
        for stream in &code.streams {
            pipeline.add_code_stream(stream)?;
        }
        for pump in &code.pumps {
            refuse_pump_names(code, pump, inputs)?;
            let stage = match &pump.forest {
                Some(forest) => Some(pipeline.plan_forest(pump, forest).await?),
                None => None,
            };
            let mut planned = pipeline.plan(pump).await?;
            if let Some(stage) = stage {
                planned.reads = std::mem::replace(&mut planned.from, stage.1);
                planned.forest = Some(stage.0);
                // Rows are scored in ROWTIME order once the watermark passes them, as a
                // sliding window of no width runs them.
                planned.sliding = Some(SlidingRows::new(0, Vec::new()));
            }
            pipeline.pumps.push(planned);
        }
        pipeline.refuse_cycles()?;
        pipeline.refuse_windows_after_ordered()?;
        pipeline.upstream_first = pipeline.upstream_first();
        Ok(pipeline)
    }

    /// The pumps ordered so that each comes after every pump whose rows reach it: by how
    /// many pumps lie before it on the longest chain (pumps form no cycle), then as
    /// written. Rows waiting for the watermark are run in this order, so a pump's rows for
    /// a bound reach the pumps reading them before those run to it.
    fn upstream_first(&self) -> Vec<usize> {
        let mut depth = vec![0usize; self.pumps.len()];
        for _ in 0..self.pumps.len() {
            for (i, pump) in self.pumps.iter().enumerate() {
                depth[i] = self
                    .pumps
                    .iter()
                    .enumerate()
                    .filter(|(_, feeder)| pump.takes(&feeder.into))
                    .map(|(f, _)| depth[f] + 1)
                    .max()
                    .unwrap_or(0);
            }
        }
        let mut order: Vec<usize> = (0..self.pumps.len()).collect();
        order.sort_by_key(|&i| (depth[i], i));
        order
    }

    /// Adds one of the code's streams, refusing the names the pipeline keeps for itself.
    fn add_code_stream(&mut self, stream: &StreamDef) -> Result<(), AnalyticsError> {
        if stream.name.starts_with(FOREST_PREFIX) {
            return Err(AnalyticsError::code(
                format!("Stream {}: the name is a RANDOM_CUT_FOREST's", stream.name),
                stream.at,
            ));
        }
        if stream.name.eq_ignore_ascii_case(crate::ERROR_STREAM) {
            return Err(AnalyticsError::code(
                format!(
                    "Stream {}: error_stream is the application's error stream",
                    stream.name
                ),
                stream.at,
            ));
        }
        let mut fields = vec![Field::new(ROWTIME, rowtime_type(), false)];
        for (name, written) in &stream.columns {
            if name == ROWTIME || fields.iter().any(|f| f.name() == name) {
                return Err(AnalyticsError::code(
                    format!(
                        "Stream {}: column {name:?} is ROWTIME's, or named twice",
                        stream.name
                    ),
                    stream.at,
                ));
            }
            let kind =
                sql_type(written).map_err(|e| AnalyticsError::code(e.to_string(), stream.at))?;
            fields.push(Field::new(name, kind, true));
        }
        self.add_stream(&stream.name, Arc::new(Schema::new(fields)), stream.at)
    }

    /// Refuses pumps that feed their own input, through any chain of streams.
    fn refuse_cycles(&self) -> Result<(), AnalyticsError> {
        for start in &self.pumps {
            let mut reached = vec![start.into.as_str()];
            let mut at = 0;
            while at < reached.len() {
                let stream = reached[at];
                for pump in self.pumps.iter().filter(|p| p.takes(stream)) {
                    if start.takes(&pump.into) {
                        return Err(AnalyticsError::invalid(format!(
                            "Pump {} reads {:?}, which its own rows reach again (through pump {}): pumps may not form a cycle.",
                            start.name, start.from, pump.name
                        )));
                    }
                    if !reached.contains(&pump.into.as_str()) {
                        reached.push(&pump.into);
                    }
                }
                at += 1;
            }
        }
        Ok(())
    }

    /// Refuses windows over the rows of an ordered window, through any chain of per-row
    /// pumps: those rows keep their times, and come when their window closes, after
    /// windows of other pumps may have been run past them.
    fn refuse_windows_after_ordered(&self) -> Result<(), AnalyticsError> {
        for ordered in self.pumps.iter().filter(|p| p.ordered) {
            let mut reached = vec![ordered.into.as_str()];
            let mut at = 0;
            while at < reached.len() {
                let stream = reached[at];
                for pump in self.pumps.iter().filter(|p| p.takes(stream)) {
                    if pump.window.is_some() || pump.waiting().next().is_some() {
                        return Err(AnalyticsError::invalid(format!(
                            "Pump {} windows rows of pump {}'s ORDER BY window, which keep their times and come when that window closes: window the rows before ordering them.",
                            pump.name, ordered.name
                        )));
                    }
                    if !reached.contains(&pump.into.as_str()) {
                        reached.push(&pump.into);
                    }
                }
                at += 1;
            }
        }
        Ok(())
    }

    fn add_reference(&mut self, name: &str, schema: SchemaRef) -> Result<(), AnalyticsError> {
        if self.references.contains_key(name) {
            return Err(AnalyticsError::invalid(format!(
                "Two reference tables are named {name:?}."
            )));
        }
        let table = Arc::new(SwapTable {
            schema,
            batches: Mutex::new(Vec::new()),
        });
        self.ctx
            .register_table(TableReference::bare(name), table.clone())
            .map_err(|e| AnalyticsError::execution("register a reference table", e))?;
        self.references.insert(name.to_owned(), table);
        Ok(())
    }

    /// Sets a reference table's rows (of the columns it was made with); queries run from
    /// now on read them.
    pub fn set_reference_rows(&self, table: &str, rows: RecordBatch) -> Result<(), AnalyticsError> {
        let reference = self.references.get(table).ok_or_else(|| {
            AnalyticsError::invalid(format!("The pipeline has no reference table {table:?}."))
        })?;
        if rows.schema().fields() != reference.schema.fields() {
            return Err(AnalyticsError::invalid(format!(
                "Reference table {table:?}: the rows' columns are not the table's."
            )));
        }
        *reference.batches.lock().unwrap_or_else(|e| e.into_inner()) = vec![rows];
        Ok(())
    }

    fn add_stream(
        &mut self,
        name: &str,
        schema: SchemaRef,
        at: Position,
    ) -> Result<(), AnalyticsError> {
        if self.references.contains_key(name) {
            return Err(AnalyticsError::code(
                format!("Stream {name:?}: the name is a reference table's"),
                at,
            ));
        }
        if self.streams.contains_key(name) {
            return Err(AnalyticsError::code(
                format!("Stream {name:?} is created twice"),
                at,
            ));
        }
        let table = Arc::new(SwapTable {
            schema: schema.clone(),
            batches: Mutex::new(Vec::new()),
        });
        self.ctx
            .register_table(TableReference::bare(name), table.clone())
            .map_err(|e| AnalyticsError::code(e.to_string(), at))?;
        self.streams
            .insert(name.to_owned(), Stream { schema, table });
        Ok(())
    }

    async fn plan(&self, pump: &PumpDef) -> Result<Pump, AnalyticsError> {
        let at = pump.at;
        let failed = |e: &dyn std::fmt::Display| {
            AnalyticsError::code(format!("Pump {}: {e}", pump.name), at)
        };
        let target = self
            .streams
            .get(&pump.into)
            .ok_or_else(|| failed(&format!("stream {:?} does not exist", pump.into)))?;
        let plan = self
            .plan_tokens(pump.select.clone())
            .await
            .map_err(|e| failed(&with_join_hint(e)))?;
        let from = match &pump.join {
            Some(join) => self.join_sources(&plan, join),
            None => self.single_source(&plan),
        }
        .map_err(|e| failed(&e))?;
        let forest_rows = match &pump.join {
            Some(join) => join
                .sides
                .iter()
                .map(|side| &side.stream)
                .find(|s| s.starts_with(FOREST_PREFIX)),
            None => pump
                .forest
                .is_none()
                .then_some(&from)
                .filter(|s| s.starts_with(FOREST_PREFIX)),
        };
        if let Some(stream) = forest_rows {
            return Err(failed(&format!(
                "{stream:?} is a RANDOM_CUT_FOREST's rows, read by its own pump only"
            )));
        }
        refuse_unbounded(&plan, pump.window.is_some(), pump.sliding.is_some())
            .map_err(|e| failed(&e))?;
        let rows_windows = self
            .rows_windows(pump, &from, &plan)
            .map_err(|e| failed(&e))?;
        let grouped = grouped(pump, &plan).map_err(|e| failed(&e))?;
        let produced = plan.schema().fields().len();
        let (plan, join) = self
            .plan_run(pump, plan, grouped)
            .await
            .map_err(|e| failed(&e))?;
        let fills =
            fills(&target.schema, pump.columns.as_deref(), produced).map_err(|e| failed(&e))?;
        let carried = usize::from(!grouped);
        for (field, fill) in target.schema.fields().iter().skip(1).zip(&fills) {
            if let Some(i) = fill {
                let made = plan.schema().field(*i + carried).data_type();
                if !can_cast_types(made, field.data_type()) {
                    return Err(failed(&format!(
                        "the query's column {} ({made}) cannot go into column {} ({})",
                        *i + 1,
                        field.name(),
                        field.data_type()
                    )));
                }
            }
        }
        Ok(Pump {
            name: pump.name.clone(),
            reads: from.clone(),
            from,
            into: pump.into.clone(),
            plan,
            fills,
            window: pump.window.map(|w| (w.width_ms, BTreeMap::new())),
            ordered: pump.window.is_some_and(|w| w.ordered),
            forest: None,
            sliding: pump
                .sliding
                .as_ref()
                .map(|w| SlidingRows::new(w.range_ms, rows_windows.clone())),
            join,
        })
    }

    /// The plan a pump runs: a per-row query's carries its input's `ROWTIME` (a join's
    /// time) through, in a first column; a join's reads each side from its own table.
    async fn plan_run(
        &self,
        pump: &PumpDef,
        plan: LogicalPlan,
        grouped: bool,
    ) -> Result<(LogicalPlan, Option<JoinStage>), String> {
        let plan = if grouped {
            plan
        } else {
            let mut tokens = pump.select.clone();
            match &pump.join {
                Some(join) => carry_time(&mut tokens, &join.time),
                None => carry_rowtime(&mut tokens),
            }
            self.plan_tokens(tokens).await?
        };
        match &pump.join {
            Some(join) => {
                let stage = self.join_stage(join);
                Ok((self.bind_sides(plan, &stage.tables)?, Some(stage)))
            }
            None => Ok((plan, None)),
        }
    }

    /// A join's sides, each with a table of its stream's columns.
    fn join_stage(&self, join: &JoinDef) -> JoinStage {
        let side = |k: usize| {
            let stream = &join.sides[k].stream;
            let table = Arc::new(SwapTable {
                schema: self.streams[stream].schema.clone(),
                batches: Mutex::new(Vec::new()),
            });
            (
                stream.clone(),
                table,
                SlidingRows::new(join.sides[k].range_ms, Vec::new()),
            )
        };
        let ((left, left_table, left_rows), (right, right_table, right_rows)) = (side(0), side(1));
        JoinStage {
            streams: [left, right],
            tables: [left_table, right_table],
            rows: [left_rows, right_rows],
        }
    }

    /// `plan` reading each side of a join from its own table (a self-join's two sides
    /// hold different rows): the streams' scans, in order, left then right.
    fn bind_sides(
        &self,
        plan: LogicalPlan,
        tables: &[Arc<SwapTable>; 2],
    ) -> Result<LogicalPlan, String> {
        let mut side = 0;
        plan.transform_down_with_subqueries(|node| match node {
            LogicalPlan::TableScan(mut scan)
                if !self.references.contains_key(scan.table_name.table()) =>
            {
                let table = tables.get(side).ok_or_else(|| {
                    datafusion::error::DataFusionError::Plan("a join reads two streams".into())
                })?;
                scan.source = provider_as_source(table.clone());
                side += 1;
                Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
            }
            other => Ok(Transformed::no(other)),
        })
        .map(|t| t.data)
        .map_err(|e| e.to_string())
    }

    /// The left stream of a join's plan, which must read the join's two streams, in
    /// order, and no other.
    fn join_sources(&self, plan: &LogicalPlan, join: &JoinDef) -> Result<String, String> {
        let sources = self.sources(plan)?;
        let expected = [&join.sides[0].stream, &join.sides[1].stream];
        if sources.iter().collect::<Vec<_>>() != expected {
            return Err(format!(
                "a windowed join reads its two streams, {:?} and {:?}, and no other stream",
                expected[0], expected[1]
            ));
        }
        Ok(join.sides[0].stream.clone())
    }

    /// Plans `forest`'s cursor (a per-row query) and makes the stream of its scored rows;
    /// returns the stage and the stream the cursor reads.
    async fn plan_forest(
        &mut self,
        pump: &PumpDef,
        forest: &ForestDef,
    ) -> Result<(ForestStage, String), AnalyticsError> {
        let failed = |e: &dyn std::fmt::Display| {
            AnalyticsError::code(
                format!("Pump {}: RANDOM_CUT_FOREST: {e}", pump.name),
                forest.at,
            )
        };
        let mut tokens = forest.cursor.clone();
        carry_rowtime(&mut tokens);
        let plan = self.plan_tokens(tokens).await.map_err(|e| failed(&e))?;
        let from = self.single_source(&plan).map_err(|e| failed(&e))?;
        refuse_unbounded(&plan, false, false).map_err(|e| failed(&e))?;
        if has_aggregate(&plan) {
            return Err(failed(
                &"its cursor is a per-row query: aggregate in another pump",
            ));
        }
        let mut fields = vec![Field::new(ROWTIME, rowtime_type(), false)];
        let (mut kept, mut numeric) = (Vec::new(), Vec::new());
        for (i, field) in plan.schema().fields().iter().enumerate().skip(1) {
            if field.name() == ROWTIME {
                continue;
            }
            if field.name() == ANOMALY_SCORE || fields.iter().any(|f| f.name() == field.name()) {
                return Err(failed(&format!(
                    "its cursor gives a column {:?} twice, or one named {ANOMALY_SCORE}",
                    field.name()
                )));
            }
            if field.data_type().is_numeric() {
                numeric.push(kept.len());
            }
            kept.push(i);
            fields.push(Field::new(field.name(), field.data_type().clone(), true));
        }
        if numeric.is_empty() {
            return Err(failed(&"its cursor gives no numeric column to score"));
        }
        fields.push(Field::new(ANOMALY_SCORE, DataType::Float64, true));
        self.add_stream(&forest.stream, Arc::new(Schema::new(fields)), forest.at)?;
        let stage = ForestStage {
            plan,
            scored: forest.stream.clone(),
            kept,
            forest: Forest::new(&forest.options, numeric)?,
        };
        Ok((stage, from))
    }

    /// A pump's `ROWS` windows, their partitions' columns found in the stream `from` it
    /// reads. A reference table's columns could not be told apart from the stream's there,
    /// so such a pump reads no reference table.
    fn rows_windows(
        &self,
        pump: &PumpDef,
        from: &str,
        plan: &LogicalPlan,
    ) -> Result<Vec<RowsKept>, String> {
        let Some(sliding) = pump.sliding.as_ref().filter(|s| !s.rows.is_empty()) else {
            return Ok(Vec::new());
        };
        // The rows kept are the stream's; a filter before the window would leave fewer
        // of them in its frame than kept.
        if has_node(plan, |node| matches!(node, LogicalPlan::Filter(_))) {
            return Err(
                "a pump with a ROWS window filters no rows (WHERE): filter them in a pump before it"
                    .to_owned(),
            );
        }
        if has_node(
            plan,
            |node| matches!(node, LogicalPlan::TableScan(scan) if self.references.contains_key(scan.table_name.table())),
        ) {
            return Err("a pump with a ROWS window reads no reference table".to_owned());
        }
        let schema = &self.streams[from].schema;
        sliding
            .rows
            .iter()
            .map(|window| {
                let partition = window
                    .partition
                    .iter()
                    .map(|column| {
                        schema.index_of(column).map_err(|_| {
                            format!(
                                "a ROWS window's PARTITION BY {column} is not a column of {from:?}"
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?;
                Ok(RowsKept {
                    preceding: window.preceding,
                    partition,
                })
            })
            .collect()
    }

    /// The one in-application stream a plan reads (besides reference tables, which it may
    /// join it with; two streams are joined by a windowed join only).
    fn single_source(&self, plan: &LogicalPlan) -> Result<String, String> {
        match self.sources(plan)?.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err("a pump reads an in-application stream (FROM)".to_owned()),
            _ => Err(
                "a pump reads one in-application stream, or joins two with a window: JOIN <stream> OVER (RANGE INTERVAL '<n>' <unit> PRECEDING) AS b ON ..."
                    .to_owned(),
            ),
        }
    }

    /// The in-application streams a plan reads (its subqueries' included), in order.
    fn sources(&self, plan: &LogicalPlan) -> Result<Vec<String>, String> {
        let mut sources = Vec::new();
        plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node
                && !self.references.contains_key(scan.table_name.table())
            {
                sources.push(scan.table_name.table().to_owned());
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .map_err(|e| e.to_string())?;
        Ok(sources)
    }

    /// The plan of a `SELECT`'s tokens.
    async fn plan_tokens(&self, tokens: Vec<TokenWithSpan>) -> Result<LogicalPlan, String> {
        // The parser is not Send: it is gone before the planning is awaited, so the
        // pipeline's futures run on any runtime's workers.
        let statement = parse_select(tokens)?;
        let statement = datafusion::sql::parser::Statement::Statement(Box::new(statement));
        self.ctx
            .state()
            .statement_to_plan(statement)
            .await
            .map_err(|e| e.to_string())
    }

    /// Runs the pumps on rows of the input stream; returns every in-application stream's
    /// new rows (windows close in [`Pipeline::advance`]).
    ///
    /// Rows made before a failure are not lost: the next successful call returns them
    /// first.
    pub async fn push(&mut self, batch: RecordBatch) -> Result<Produced, AnalyticsError> {
        let input = self.inputs[0].clone();
        self.push_into(&input, batch).await
    }

    /// As [`Pipeline::push`], into the input stream `input`.
    pub async fn push_into(
        &mut self,
        input: &str,
        batch: RecordBatch,
    ) -> Result<Produced, AnalyticsError> {
        if !self.inputs.iter().any(|i| i == input) {
            return Err(AnalyticsError::invalid(format!(
                "{input:?} is not an input stream of the pipeline."
            )));
        }
        let mut produced = std::mem::take(&mut self.undelivered);
        let input = input.to_owned();
        let result = self
            .drain(VecDeque::from([(input, batch)]), &mut produced)
            .await;
        self.settle(result, produced)
    }

    /// The rows calls made before they failed (returned by the next call otherwise).
    pub(crate) fn take_undelivered(&mut self) -> Produced {
        std::mem::take(&mut self.undelivered)
    }

    /// Returns what a call made, or keeps it for the next call when it failed.
    fn settle(
        &mut self,
        result: Result<(), AnalyticsError>,
        produced: Produced,
    ) -> Result<Produced, AnalyticsError> {
        match result {
            Ok(()) => Ok(produced),
            Err(e) => {
                self.undelivered = produced;
                Err(e)
            }
        }
    }

    /// Moves the watermark to `watermark_ms` (no input row will arrive before it) and closes
    /// the windows that end at or before it, earliest end first (so the rows a window makes
    /// reach the windows of pumps reading them before those close); returns the rows made.
    /// A window leaves the state only once its rows are made: after a failure, the call can
    /// be made again, and it returns the rows made before the failure first.
    pub async fn advance(&mut self, watermark_ms: i64) -> Result<Produced, AnalyticsError> {
        let target = self.watermark_ms.max(watermark_ms);
        let mut produced = std::mem::take(&mut self.undelivered);
        let result = self.close_due(target, &mut produced).await;
        if result.is_ok() {
            self.watermark_ms = target;
        }
        self.settle(result, produced)
    }

    /// Closes the windows due by `target`, adding what they make to `produced`.
    async fn close_due(
        &mut self,
        target: i64,
        produced: &mut Produced,
    ) -> Result<(), AnalyticsError> {
        loop {
            let due = self.next_due(target);
            // Sliding rows before the next window's end go first: their rows may belong
            // in it. Rows at the watermark itself may still come, so they wait.
            let bound = due.map_or(target, |(end, _)| end).saturating_sub(1);
            if let Some(i) = self.next_release(bound) {
                if self.pumps[i].join.is_some() {
                    self.release_join(i, bound, produced).await?;
                } else {
                    self.release(i, bound, produced).await?;
                }
                continue;
            }
            let Some((end, i)) = due else {
                return Ok(());
            };
            let ordered = self.pumps[i].ordered;
            self.watermark_ms = self.watermark_ms.max(end);
            let (rows, width) = {
                let (width, open) = self.pumps[i].window.as_ref().expect("a windowed pump");
                let (_, rows) = open.first_key_value().expect("a due window");
                (rows.clone(), *width)
            };
            let made = self.run(i, rows, (!ordered).then_some(end)).await?;
            if let Some((_, open)) = &mut self.pumps[i].window {
                open.remove(&(end - width));
            }
            let into = self.pumps[i].into.clone();
            produced.push((into.clone(), made.clone()));
            self.drain(VecDeque::from([(into, made)]), produced).await?;
        }
    }

    /// A sliding or join pump with rows waiting at or before `bound`, none of the pumps
    /// feeding it having any.
    fn next_release(&self, bound: i64) -> Option<usize> {
        self.upstream_first
            .iter()
            .copied()
            .find(|&i| self.pumps[i].waiting().any(|rows| rows.has_due(bound)))
    }

    /// Runs sliding pump `i`'s rows up to `bound` over the rows kept before them; its rows
    /// for those rows go on.
    async fn release(
        &mut self,
        i: usize,
        bound: i64,
        produced: &mut Produced,
    ) -> Result<(), AnalyticsError> {
        let sliding = self.pumps[i].sliding.as_ref().expect("a sliding pump");
        let (rows, waiting) = sliding.due(bound)?;
        let released_to = sliding.released_to;
        let made = match self.pumps[i].forest {
            Some(_) => {
                let scored = self.score(i, rows.clone()).await?;
                self.run(i, vec![scored], None).await?
            }
            None => self.run(i, rows.clone(), None).await?,
        };
        // The rows of rows run before are theirs already.
        let (_, made) = split_by_rowtime(&made, released_to)?;
        let sliding = self.pumps[i].sliding.as_mut().expect("a sliding pump");
        sliding.ran(&rows, waiting, bound)?;
        self.emit(i, made, produced).await
    }

    /// Runs join pump `i` over each side's rows up to `bound` and those kept before them:
    /// the pairs whose time (the later row's) is after the last run go on.
    async fn release_join(
        &mut self,
        i: usize,
        bound: i64,
        produced: &mut Produced,
    ) -> Result<(), AnalyticsError> {
        let join = self.pumps[i].join.as_ref().expect("a join pump");
        let (left, left_waiting) = join.rows[0].due(bound)?;
        let (right, right_waiting) = join.rows[1].due(bound)?;
        let released_to = join.rows[0].released_to;
        let [left_table, right_table] = join.tables.clone();
        let inputs = vec![(left_table, left.clone()), (right_table, right.clone())];
        let made = self.run_over(i, inputs, None).await?;
        let (_, made) = split_by_rowtime(&made, released_to)?;
        let join = self.pumps[i].join.as_mut().expect("a join pump");
        join.rows[0].ran(&left, left_waiting, bound)?;
        join.rows[1].ran(&right, right_waiting, bound)?;
        self.emit(i, made, produced).await
    }

    /// Puts pump `i`'s rows into its target stream, for the pumps reading it.
    async fn emit(
        &mut self,
        i: usize,
        made: Option<RecordBatch>,
        produced: &mut Produced,
    ) -> Result<(), AnalyticsError> {
        let into = self.pumps[i].into.clone();
        if let Some(batch) = made {
            produced.push((into.clone(), batch.clone()));
            self.drain(VecDeque::from([(into, batch)]), produced)
                .await?;
        }
        Ok(())
    }

    /// Adds a batch's rows of `stream` to pump `i`'s rows waiting for the watermark (a
    /// sliding pump's, or those of each side of a join reading `stream`); those at or
    /// before what was run already are late.
    fn hold_waiting(
        &mut self,
        i: usize,
        stream: &str,
        batch: &RecordBatch,
    ) -> Result<(), AnalyticsError> {
        let pump = &mut self.pumps[i];
        let late = match (&mut pump.sliding, &mut pump.join) {
            (Some(sliding), _) => sliding.hold(batch)?,
            (None, Some(join)) => {
                let mut late = Vec::new();
                for (side, rows) in join.streams.iter().zip(&mut join.rows) {
                    if side == stream {
                        late.push(rows.hold(batch)?);
                    }
                }
                // A self-join's late row is one row.
                late.into_iter().max().unwrap_or(0)
            }
            (None, None) => 0,
        };
        self.late_rows += late;
        Ok(())
    }

    /// The earliest-ending open window that ends at or before `target`, and its pump.
    fn next_due(&self, target: i64) -> Option<(i64, usize)> {
        self.pumps
            .iter()
            .enumerate()
            .filter_map(|(i, pump)| {
                let (width, open) = pump.window.as_ref()?;
                let start = open.keys().next()?;
                Some((start + width, i))
            })
            .filter(|(end, _)| *end <= target)
            .min()
    }

    /// Its state, for a checkpoint.
    pub(crate) fn state(&self) -> Result<PipelineState, AnalyticsError> {
        let mut windows = Vec::new();
        for pump in &self.pumps {
            let rows = |part, start_ms, rows: &Vec<RecordBatch>| WindowRows {
                pump: pump.name.clone(),
                part,
                start_ms,
                schema: self.streams[pump.part_stream(part)].schema.clone(),
                rows: rows.clone(),
            };
            if let Some((_, open)) = &pump.window {
                for (start, held) in open {
                    windows.push(rows(WindowPart::Tumbling, *start, held));
                }
            }
            let parts = [
                (WindowPart::SlidingHistory, WindowPart::SlidingPending),
                (WindowPart::JoinedHistory, WindowPart::JoinedPending),
            ];
            for (waiting, (history, pending)) in pump.waiting().zip(parts) {
                let at = waiting.released_to;
                windows.push(rows(history, at, &waiting.history));
                windows.push(rows(pending, at, &waiting.pending));
            }
        }
        let mut forests = Vec::new();
        for pump in &self.pumps {
            if let Some(stage) = &pump.forest {
                forests.push((pump.name.clone(), stage.forest.save()?));
            }
        }
        Ok(PipelineState {
            watermark_ms: self.watermark_ms,
            late_rows: self.late_rows,
            unfit_values: self.unfit_values(),
            windows,
            forests,
        })
    }

    /// Takes up a state [`Pipeline::state`] gave (of a pipeline of the same code).
    pub(crate) fn restore(&mut self, state: PipelineState) -> Result<(), AnalyticsError> {
        self.watermark_ms = state.watermark_ms;
        self.late_rows = state.late_rows;
        self.unfit_values
            .store(state.unfit_values, std::sync::atomic::Ordering::Relaxed);
        for (name, saved) in &state.forests {
            let stage = self
                .pumps
                .iter_mut()
                .find(|p| &p.name == name)
                .and_then(|p| p.forest.as_mut())
                .ok_or_else(|| {
                    AnalyticsError::invalid(format!(
                        "The checkpoint holds a forest of pump {name:?}, which the code has not."
                    ))
                })?;
            stage.forest.restore(saved)?;
        }
        for window in state.windows {
            let pump = self
                .pumps
                .iter_mut()
                .find(|p| p.name == window.pump)
                .ok_or_else(|| {
                    AnalyticsError::invalid(format!(
                        "The checkpoint holds a window of pump {:?}, which the code has not.",
                        window.pump
                    ))
                })?;
            let expected = &self.streams[pump.part_stream(window.part)].schema;
            if window.schema.fields() != expected.fields() {
                return Err(AnalyticsError::invalid(format!(
                    "The checkpoint's rows of pump {:?} are not of its source's columns.",
                    window.pump
                )));
            }
            let unfit = || {
                AnalyticsError::invalid(format!(
                    "The checkpoint holds rows of pump {:?} of a window it has not.",
                    window.pump
                ))
            };
            if let (WindowPart::Tumbling, Some((_, open))) = (window.part, &mut pump.window) {
                open.insert(window.start_ms, window.rows);
                continue;
            }
            let held = pump.held_rows(window.part).ok_or_else(unfit)?;
            held.released_to = window.start_ms;
            match window.part {
                WindowPart::SlidingHistory | WindowPart::JoinedHistory => {
                    held.history = window.rows;
                }
                _ => held.pending = window.rows,
            }
        }
        // A join's pairs are released past one time for both sides (release_join).
        for pump in &self.pumps {
            if let Some(join) = &pump.join
                && join.rows[0].released_to != join.rows[1].released_to
            {
                return Err(AnalyticsError::invalid(format!(
                    "The checkpoint's rows of pump {:?} have its two sides run to different times.",
                    pump.name
                )));
            }
        }
        Ok(())
    }

    /// Rows that came for a window closed already (dropped).
    pub fn late_rows(&self) -> u64 {
        self.late_rows
    }

    /// Values that did not fit their output column's type (written as NULL).
    pub fn unfit_values(&self) -> u64 {
        self.unfit_values.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs the pumps reading each queued stream's rows, and those reading what they make.
    /// What they make is added to `produced` as it is made, so a failure keeps it.
    async fn drain(
        &mut self,
        mut queue: VecDeque<(String, RecordBatch)>,
        produced: &mut Produced,
    ) -> Result<(), AnalyticsError> {
        while let Some((stream, batch)) = queue.pop_front() {
            if batch.num_rows() == 0 {
                continue;
            }
            for i in 0..self.pumps.len() {
                if !self.pumps[i].takes(&stream) {
                    continue;
                }
                if self.pumps[i].window.is_some() {
                    self.hold(i, &batch)?;
                    continue;
                }
                if self.pumps[i].waiting().next().is_some() {
                    self.hold_waiting(i, &stream, &batch)?;
                    continue;
                }
                let made = self.run(i, vec![batch.clone()], None).await?;
                let into = self.pumps[i].into.clone();
                produced.push((into.clone(), made.clone()));
                queue.push_back((into, made));
            }
        }
        Ok(())
    }

    /// Adds a batch's rows to the open windows of pump `i`, each by its `ROWTIME`.
    fn hold(&mut self, i: usize, batch: &RecordBatch) -> Result<(), AnalyticsError> {
        let rowtime = rowtimes(batch)?;
        let watermark = self.watermark_ms;
        let Some((width, open)) = &mut self.pumps[i].window else {
            return Ok(());
        };
        let mut by_window: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        for (row, time) in rowtime.values().iter().enumerate() {
            by_window
                .entry(time.div_euclid(*width) * *width)
                .or_default()
                .push(row as u32);
        }
        for (start, rows) in by_window {
            if start + *width <= watermark {
                self.late_rows += rows.len() as u64;
                continue;
            }
            let taken = take_record_batch(batch, &UInt32Array::from(rows))
                .map_err(|e| AnalyticsError::execution("split rows by window", e))?;
            open.entry(start).or_default().push(taken);
        }
        Ok(())
    }

    /// Runs pump `i` over `rows` of its source; its rows for the target stream, with
    /// `ROWTIME` the window's end, or (per-row) the input's.
    async fn run(
        &self,
        i: usize,
        rows: Vec<RecordBatch>,
        window_end: Option<i64>,
    ) -> Result<RecordBatch, AnalyticsError> {
        let table = self.streams[&self.pumps[i].reads].table.clone();
        self.run_over(i, vec![(table, rows)], window_end).await
    }

    /// As [`Pipeline::run`], with each of these tables holding its rows.
    async fn run_over(
        &self,
        i: usize,
        inputs: Vec<(Arc<SwapTable>, Vec<RecordBatch>)>,
        window_end: Option<i64>,
    ) -> Result<RecordBatch, AnalyticsError> {
        let pump = &self.pumps[i];
        let results = self
            .collect(inputs, &pump.plan, &format!("pump {}", pump.name))
            .await?;
        let target = &self.streams[&pump.into].schema;
        let mut out = Vec::with_capacity(results.len());
        for result in results {
            let (shaped, unfit) = shape(&result, target, &pump.fills, window_end)?;
            self.unfit_values
                .fetch_add(unfit, std::sync::atomic::Ordering::Relaxed);
            out.push(shaped);
        }
        datafusion::arrow::compute::concat_batches(target, &out)
            .map_err(|e| AnalyticsError::execution("gather a pump's rows", e))
    }
}

impl Pipeline {
    /// Runs `plan` with each of these tables holding its rows.
    async fn collect(
        &self,
        inputs: Vec<(Arc<SwapTable>, Vec<RecordBatch>)>,
        plan: &LogicalPlan,
        what: &str,
    ) -> Result<Vec<RecordBatch>, AnalyticsError> {
        for (table, rows) in &inputs {
            *table.batches.lock().unwrap_or_else(|e| e.into_inner()) = rows.clone();
        }
        let results = DataFrame::new(self.ctx.state(), plan.clone())
            .collect()
            .await;
        for (table, _) in &inputs {
            table
                .batches
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
        }
        results.map_err(|e| AnalyticsError::execution(what, e))
    }

    /// Runs forest pump `i`'s cursor over `rows` and scores its rows in order of `ROWTIME`,
    /// then of their values (so the order the shards were read in changes nothing): the
    /// rows its plan reads.
    async fn score(
        &mut self,
        i: usize,
        rows: Vec<RecordBatch>,
    ) -> Result<RecordBatch, AnalyticsError> {
        let pump = &self.pumps[i];
        let stage = pump.forest.as_ref().expect("a forest pump");
        let what = format!("pump {}: RANDOM_CUT_FOREST", pump.name);
        let table = self.streams[&pump.from].table.clone();
        let results = self
            .collect(vec![(table, rows)], &stage.plan, &what)
            .await?;
        let cursor_schema = Arc::new(stage.plan.schema().as_arrow().clone());
        let failed = |e| AnalyticsError::execution(&what, e);
        let rows =
            datafusion::arrow::compute::concat_batches(&cursor_schema, &results).map_err(failed)?;
        let order: Vec<SortColumn> = rows
            .columns()
            .iter()
            .map(|values| SortColumn {
                values: values.clone(),
                options: None,
            })
            .collect();
        let rows = if rows.num_rows() > 1 {
            let sorted = lexsort_to_indices(&order, None).map_err(failed)?;
            take_record_batch(&rows, &sorted).map_err(failed)?
        } else {
            rows
        };
        let scored_schema = self.streams[&stage.scored].schema.clone();
        let stage = self.pumps[i].forest.as_mut().expect("a forest pump");
        let mut columns = vec![
            cast(rows.column(0), &rowtime_type())
                .map_err(|e| AnalyticsError::execution("carry ROWTIME", e))?,
        ];
        columns.extend(stage.kept.iter().map(|&k| rows.column(k).clone()));
        let scores = stage.forest.score(&columns[1..])?;
        columns.push(Arc::new(scores));
        RecordBatch::try_new(scored_schema, columns)
            .map_err(|e| AnalyticsError::execution(&what, e))
    }
}

/// Refuses a pump named twice, or inserting into a stream no pump may insert into.
fn refuse_pump_names(code: &Code, pump: &PumpDef, inputs: &[String]) -> Result<(), AnalyticsError> {
    if code.pumps.iter().filter(|p| p.name == pump.name).count() > 1 {
        return Err(AnalyticsError::code(
            format!("Pump {} is created twice", pump.name),
            pump.at,
        ));
    }
    if pump.into.starts_with(FOREST_PREFIX) {
        return Err(AnalyticsError::code(
            format!(
                "Pump {}: {:?} is a RANDOM_CUT_FOREST's rows, which no pump inserts into",
                pump.name, pump.into
            ),
            pump.at,
        ));
    }
    if let Some(input) = inputs.iter().find(|i| **i == pump.into) {
        return Err(AnalyticsError::code(
            format!(
                "Pump {}: the input stream {input:?} takes no pump's rows",
                pump.name
            ),
            pump.at,
        ));
    }
    Ok(())
}

/// A `SELECT`'s statement, refused when anything follows it.
fn parse_select(
    tokens: Vec<TokenWithSpan>,
) -> Result<datafusion::sql::sqlparser::ast::Statement, String> {
    let mut parser = Parser::new(&GenericDialect {}).with_tokens_with_locations(tokens);
    let statement = parser.parse_statement().map_err(|e| e.to_string())?;
    // sqlparser stops at the first token it cannot go on with: nothing may follow.
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(format!(
            "Expected the end of the pump's SELECT, found {} at line {}, column {} (a missing ; or operator?)",
            next.token, next.span.start.line, next.span.start.column
        ));
    }
    Ok(statement)
}

/// A per-row query's `SELECT` with the input's `ROWTIME` first, to carry it to the output.
fn carry_rowtime(tokens: &mut Vec<TokenWithSpan>) {
    let span = tokens[0].span;
    carry_time(
        tokens,
        &[TokenWithSpan {
            token: Token::make_word(ROWTIME, Some('"')),
            span,
        }],
    );
}

/// Where a `SELECT`'s first column goes: after `SELECT` and any `DISTINCT` or `ALL`.
fn carried_at(tokens: &[TokenWithSpan]) -> usize {
    match &tokens.get(1).map(|t| &t.token) {
        Some(Token::Word(w))
            if w.quote_style.is_none()
                && (w.value.eq_ignore_ascii_case("DISTINCT")
                    || w.value.eq_ignore_ascii_case("ALL")) =>
        {
            2
        }
        _ => 1,
    }
}

/// A planning error, with how to join two streams when it is the ambiguity of their
/// `ROWTIME`s in a join without a window.
fn with_join_hint(error: String) -> String {
    if error.contains(&format!(
        "Ambiguous reference to unqualified field \"{ROWTIME}\""
    )) {
        format!(
            "{error}: a join of two streams windows one of them (JOIN <stream> OVER (RANGE INTERVAL '<n>' <unit> PRECEDING) AS b ON ...), and ROWTIME is then the later row's"
        )
    } else {
        error
    }
}

/// A join's `SELECT` with its rows' time (`time`, rewritten) first, to carry it to the
/// output.
fn carry_time(tokens: &mut Vec<TokenWithSpan>, time: &[TokenWithSpan]) {
    let span = tokens[0].span;
    let at = carried_at(tokens);
    let mut carried: Vec<TokenWithSpan> = time.to_vec();
    carried.extend(
        [
            Token::make_keyword("AS"),
            Token::make_word(ROWTIME_CARRIED, Some('"')),
            Token::Comma,
        ]
        .map(|token| TokenWithSpan { token, span }),
    );
    tokens.splice(at..at, carried);
}

/// Whether a pump's query groups its rows by a tumbling window; refuses aggregates
/// without one, a window without aggregates, and DISTINCT in an ordered window.
fn grouped(pump: &PumpDef, plan: &LogicalPlan) -> Result<bool, &'static str> {
    let aggregates = has_aggregate(plan);
    if aggregates && pump.join.is_some() {
        return Err(
            "a pump joining streams is a per-row query: aggregate its rows in another pump",
        );
    }
    let grouped = pump.window.is_some_and(|w| !w.ordered);
    if !grouped
        && pump.window.is_some()
        && has_node(plan, |n| matches!(n, LogicalPlan::Distinct(_)))
    {
        return Err("DISTINCT in a window of ORDER BY is not supported");
    }
    match (aggregates, grouped) {
        (true, false) => Err(
            "aggregating a stream needs a tumbling window in GROUP BY: STEP(ROWTIME BY INTERVAL '<n>' <unit>) or FLOOR(ROWTIME TO <unit>)",
        ),
        (false, true) => Err("a window in GROUP BY needs an aggregate"),
        _ => Ok(grouped),
    }
}

/// Refuses what a micro-batch (or a tumbling window's rows) would answer wrongly: window
/// functions outside a sliding window's pump; DISTINCT, ORDER BY and LIMIT in a per-row or
/// sliding query, which a stream has no end to apply them to.
fn refuse_unbounded(plan: &LogicalPlan, windowed: bool, sliding: bool) -> Result<(), String> {
    let mut refused = None;
    plan.apply(|node| {
        refused = match node {
            LogicalPlan::Window(_) if !sliding => Some(
                "OVER needs a window RANGE INTERVAL '<n>' <unit> PRECEDING or ROWS <n> PRECEDING"
                    .to_owned(),
            ),
            LogicalPlan::Window(window) => window.window_expr.iter().find_map(frame_blind),
            LogicalPlan::Distinct(_) if !windowed => {
                Some("DISTINCT over a stream needs a tumbling window".to_owned())
            }
            LogicalPlan::Sort(_) if !windowed => {
                Some("ORDER BY over a stream needs a tumbling window".to_owned())
            }
            LogicalPlan::Limit(_) if !windowed => {
                Some("LIMIT over a stream needs a tumbling window".to_owned())
            }
            _ => None,
        };
        Ok(if refused.is_some() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })
    .map_err(|e| e.to_string())?;
    refused.map_or(Ok(()), Err)
}

/// A window function (not an aggregate) in `expr`, refused: its answer depends on the rows
/// before the window's frame (ROW_NUMBER counts from the first row, LAG reaches past it),
/// which a sliding pump does not keep.
fn frame_blind(expr: &Expr) -> Option<String> {
    let mut found = None;
    let _ = expr.apply(|e| {
        if let Expr::WindowFunction(function) = e
            && let WindowFunctionDefinition::WindowUDF(udf) = &function.fun
        {
            found = Some(format!(
                "{} is not supported in a sliding window (it reaches rows before the window's frame; aggregates do not)",
                udf.name()
            ));
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

fn has_aggregate(plan: &LogicalPlan) -> bool {
    has_node(plan, |node| matches!(node, LogicalPlan::Aggregate(_)))
}

/// Whether any node of `plan` is one `is` picks.
fn has_node(plan: &LogicalPlan, is: impl Fn(&LogicalPlan) -> bool) -> bool {
    let mut found = false;
    let _ = plan.apply(|node| {
        found |= is(node);
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}

/// Which query column fills each of the target's columns: the named ones in order, or all.
fn fills(
    target: &Schema,
    named: Option<&[String]>,
    produced: usize,
) -> Result<Vec<Option<usize>>, String> {
    let columns: Vec<&str> = target
        .fields()
        .iter()
        .skip(1)
        .map(|f| f.name().as_str())
        .collect();
    let mut fills = vec![None; columns.len()];
    let chosen: Vec<usize> = match named {
        None => (0..columns.len()).collect(),
        Some(named) => named
            .iter()
            .map(|n| {
                columns
                    .iter()
                    .position(|c| c == n)
                    .ok_or_else(|| format!("the target has no column {n:?}"))
            })
            .collect::<Result<_, _>>()?,
    };
    if chosen.len() != produced {
        return Err(format!(
            "the query gives {produced} columns for {} columns of the target",
            chosen.len()
        ));
    }
    for (query_column, target_column) in chosen.into_iter().enumerate() {
        fills[target_column] = Some(query_column);
    }
    Ok(fills)
}

/// A query's rows as the target stream's: `ROWTIME`, then each column cast to its type; and
/// how many values did not fit their type (written as NULL, as KDA writes them).
fn shape(
    result: &RecordBatch,
    target: &SchemaRef,
    fills: &[Option<usize>],
    window_end: Option<i64>,
) -> Result<(RecordBatch, u64), AnalyticsError> {
    let rows = result.num_rows();
    let (rowtime, offset): (ArrayRef, usize) = match window_end {
        Some(end) => (
            Arc::new(TimestampMillisecondArray::from(vec![end; rows])),
            0,
        ),
        None => (
            cast(result.column(0), &rowtime_type())
                .map_err(|e| AnalyticsError::execution("carry ROWTIME", e))?,
            1,
        ),
    };
    let mut columns = vec![rowtime];
    let mut unfit = 0;
    for (field, fill) in target.fields().iter().skip(1).zip(fills) {
        columns.push(match fill {
            Some(i) => {
                let made = result.column(i + offset);
                let cast = cast(made, field.data_type()).map_err(|e| {
                    AnalyticsError::execution(&format!("cast to column {}", field.name()), e)
                })?;
                unfit += cast.null_count().saturating_sub(made.null_count()) as u64;
                cast
            }
            None => new_null_array(field.data_type(), rows),
        });
    }
    let batch = RecordBatch::try_new(target.clone(), columns)
        .map_err(|e| AnalyticsError::execution("make a pump's rows", e))?;
    Ok((batch, unfit))
}

/// A batch's rows with `ROWTIME` at or before `at`, and those after (each left out when
/// empty).
fn split_by_rowtime(
    batch: &RecordBatch,
    at: i64,
) -> Result<(Option<RecordBatch>, Option<RecordBatch>), AnalyticsError> {
    let times = rowtimes(batch)?;
    let (mut before, mut after) = (Vec::new(), Vec::new());
    for (row, time) in times.values().iter().enumerate() {
        if *time <= at {
            before.push(row as u32);
        } else {
            after.push(row as u32);
        }
    }
    let take = |rows: Vec<u32>| -> Result<Option<RecordBatch>, AnalyticsError> {
        if rows.is_empty() {
            return Ok(None);
        }
        take_record_batch(batch, &UInt32Array::from(rows))
            .map(Some)
            .map_err(|e| AnalyticsError::execution("split rows by ROWTIME", e))
    };
    Ok((take(before)?, take(after)?))
}

fn rowtimes(batch: &RecordBatch) -> Result<&TimestampMillisecondArray, AnalyticsError> {
    batch
        .column_by_name(ROWTIME)
        .and_then(|c| c.as_any().downcast_ref::<TimestampMillisecondArray>())
        .ok_or_else(|| {
            AnalyticsError::execution(
                "read ROWTIME",
                "a stream's rows have no ROWTIME in milliseconds",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};

    const CODE: &str = r#"
        CREATE OR REPLACE STREAM "L" (id BIGINT);
        CREATE OR REPLACE STREAM "R" (id BIGINT);
        CREATE OR REPLACE PUMP "TAKE_L" AS INSERT INTO "L"
            SELECT STREAM id FROM "IN" WHERE side = 'L';
        CREATE OR REPLACE PUMP "TAKE_R" AS INSERT INTO "R"
            SELECT STREAM id FROM "IN" WHERE side = 'R';
        CREATE OR REPLACE STREAM "OUT" (l BIGINT, r BIGINT);
        CREATE OR REPLACE PUMP "PAIR" AS INSERT INTO "OUT"
            SELECT STREAM l.id, r.id FROM "L" OVER (RANGE INTERVAL '2' SECOND PRECEDING) AS l
            JOIN "R" OVER (RANGE INTERVAL '3' SECOND PRECEDING) AS r ON l.id % 7 = r.id % 7;"#;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new(ROWTIME, rowtime_type(), false),
            Field::new("ID", DataType::Int64, true),
            Field::new("SIDE", DataType::Utf8, true),
        ]))
    }

    /// Rows `ids`, one every 100 ms, sides alternating.
    fn rows(ids: std::ops::Range<i64>) -> RecordBatch {
        let ids: Vec<i64> = ids.collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(TimestampMillisecondArray::from(
                ids.iter().map(|i| i * 100).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(ids.clone())),
            Arc::new(StringArray::from(
                ids.iter()
                    .map(|i| if i % 2 == 0 { "L" } else { "R" })
                    .collect::<Vec<_>>(),
            )),
        ];
        RecordBatch::try_new(schema(), columns).unwrap()
    }

    /// Pushes rows `ids` ten at a time, the watermark 1 s behind, and to the end when
    /// `last`; returns the pairs made: time, left id, right id.
    async fn run(pipeline: &mut Pipeline, ids: std::ops::Range<i64>, last: bool) -> Vec<[i64; 3]> {
        let mut made = Vec::new();
        for start in ids.clone().step_by(10) {
            let end = (start + 10).min(ids.end);
            made.extend(pipeline.push(rows(start..end)).await.unwrap());
            made.extend(pipeline.advance(start * 100 - 1_000).await.unwrap());
        }
        if last {
            made.extend(pipeline.advance(i64::MAX).await.unwrap());
        }
        let mut pairs = Vec::new();
        for (_, batch) in made.iter().filter(|(stream, _)| stream == "OUT") {
            let id = |i: usize| {
                batch
                    .column(i)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
            };
            let time = rowtimes(batch).unwrap();
            for r in 0..batch.num_rows() {
                pairs.push([time.value(r), id(1).value(r), id(2).value(r)]);
            }
        }
        pairs
    }

    /// A join's kept and waiting rows, both sides', survive a checkpoint: a pipeline that
    /// takes up another's state in the middle of the rows pairs them as an uninterrupted
    /// one does.
    #[tokio::test]
    async fn a_joins_rows_survive_a_restore() {
        let code = crate::sql::parse(CODE).unwrap();
        let mut whole = Pipeline::new(&code, "IN", schema()).await.unwrap();
        let mut expected = run(&mut whole, 0..400, true).await;

        let mut first = Pipeline::new(&code, "IN", schema()).await.unwrap();
        let mut pairs = run(&mut first, 0..200, false).await;
        let state = first.state().unwrap();
        let parts = [
            WindowPart::SlidingHistory,
            WindowPart::SlidingPending,
            WindowPart::JoinedHistory,
            WindowPart::JoinedPending,
        ];
        for part in parts {
            let held: usize = state
                .windows
                .iter()
                .filter(|w| w.part == part)
                .flat_map(|w| &w.rows)
                .map(RecordBatch::num_rows)
                .sum();
            assert!(
                held > 0,
                "{part:?} holds no rows: the restore would be tested on nothing"
            );
        }
        drop(first);
        let mut second = Pipeline::new(&code, "IN", schema()).await.unwrap();
        second.restore(state).unwrap();
        pairs.extend(run(&mut second, 200..400, true).await);
        expected.sort_unstable();
        pairs.sort_unstable();
        assert!(expected.len() > 400, "{}", expected.len());
        assert!(
            pairs == expected,
            "{} pairs with a restore in the middle, {} without",
            pairs.len(),
            expected.len()
        );
    }
}
