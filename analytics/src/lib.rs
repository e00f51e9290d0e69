//! # sluice-analytics
//!
//! Kinesis Data Analytics SQL applications over Sluice streams, on Apache DataFusion: an
//! input stream's records mapped to a schema ([`InputSchema`], decoded by [`Decoder`] into
//! the in-application stream `SOURCE_SQL_STREAM_001`), application code in KDA's dialect
//! ([`sql::parse`]: `CREATE OR REPLACE STREAM`, `CREATE OR REPLACE PUMP ... AS INSERT INTO ...
//! SELECT STREAM ...`), and the [`Pipeline`] that runs its pumps: per-row queries on each
//! micro-batch, tumbling windows (`STEP(ROWTIME BY INTERVAL ...)`, `FLOOR(ROWTIME TO ...)`)
//! when the watermark passes their end. The design is in docs/design/analytics.md.
//!
//! ```
//! # async fn example() -> Result<(), sluice_analytics::AnalyticsError> {
//! use sluice_analytics::*;
//! let schema = InputSchema {
//!     columns: vec![RecordColumn { name: "TICKER".into(), sql_type: "VARCHAR(4)".into(), mapping: None }],
//!     format: RecordFormat::Json,
//! };
//! let decoder = Decoder::new(&schema)?;
//! let code = sql::parse(
//!     "CREATE OR REPLACE STREAM \"OUT\" (ticker VARCHAR(4), trades BIGINT);
//!      CREATE OR REPLACE PUMP \"P\" AS INSERT INTO \"OUT\"
//!        SELECT STREAM ticker, COUNT(*) FROM \"SOURCE_SQL_STREAM_001\"
//!        GROUP BY ticker, STEP(\"SOURCE_SQL_STREAM_001\".ROWTIME BY INTERVAL '60' SECOND);",
//! )?;
//! let mut pipeline = Pipeline::new(&code, "SOURCE_SQL_STREAM_001", decoder.schema()).await?;
//! let (rows, _rejected) = decoder.decode([(&br#"{"TICKER":"AMZN"}"#[..], 1_000)])?;
//! pipeline.push(rows).await?;
//! let closed = pipeline.advance(60_000).await?; // the first minute's counts
//! # Ok(()) }
//! ```

mod app;
mod catalog;
mod checkpoint;
mod decode;
mod discover;
mod error;
mod error_stream;
mod extract;
mod forest;
mod output;
mod pipeline;
mod reference;
mod retention;
mod schema;
pub mod sql;
mod streams;
mod task;
mod types;

pub use app::{
    Application, ApplicationSnapshot, ApplicationSpec, ApplicationStats, Input, Output,
    OutputFormat, PARALLELISM_MAX, RunConfig, StartAt,
};
pub use catalog::{
    Analytics, AnalyticsConfig, ApplicationDetail, Change, NewApplication, StartingPosition,
    StoredApplication,
};
pub use decode::{Decoder, Rejected};
pub use discover::{Discovered, discover};
pub use error::{AnalyticsError, Position};
pub use error_stream::ERROR_STREAM;
pub use pipeline::{Pipeline, Produced};
pub use reference::{ObjectRead, REFERENCE_BYTES_MAX, REFERENCE_ID, Reference, ReferenceObjects};
pub use schema::{InputSchema, ROWTIME, RecordColumn, RecordFormat};
pub use streams::{DeliveryStreams, StreamFound, StreamKind};
pub use types::sql_type;
