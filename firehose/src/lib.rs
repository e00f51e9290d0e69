//! # sluice-firehose
//!
//! Firehose delivery streams over Sluice engines: records come in by PutRecord and
//! PutRecordBatch (held durably in a backing stream) or from a stream (read along its
//! lineage), are buffered by size and time, and are written to a bucket as objects named
//! as Firehose names them, gzipped if asked. A record acknowledged is in a Sluice log, never
//! only in memory; positions are committed only after the object is durable, and a flush a
//! crash interrupted is settled on restart by looking for its object, so delivery to an
//! object store neither loses nor duplicates a record. The design is in
//! docs/design/firehose.md.
//!
//! ```no_run
//! # async fn example(engine: sluice_core::Engine) -> Result<(), sluice_firehose::FirehoseError> {
//! use sluice_firehose::*;
//! use std::sync::Arc;
//! let firehose = Firehose::open(FirehoseConfig {
//!     dir: "data/firehose".into(),
//!     backing_engine: engine.clone(),
//!     backing_prefix: "firehose.".into(),
//!     source_engine: engine,
//!     buckets: Arc::new(LocalBuckets::new("buckets")),
//!     runtime: tokio::runtime::Handle::current(),
//!     metric_labels: Vec::new(),
//!     buffer_bytes_max: 1 << 30,
//!     transforms: None,
//!     envelopes: None,
//! })?;
//! firehose
//!     .create(DeliveryStreamSpec {
//!         name: "clicks".into(),
//!         source: Source::DirectPut,
//!         destination: Destination {
//!             bucket: "analytics".into(),
//!             prefix: "clicks/".into(),
//!             buffering: BufferingHints::new(5, 60)?,
//!             compression: Compression::Gzip,
//!             processors: Vec::new(),
//!             error_output_prefix: String::new(),
//!             target: Target::Objects,
//!             conversion: None,
//!             backup: None,
//!         },
//!         metadata: Default::default(),
//!     })
//!     .await?;
//! firehose.put_record("clicks", b"{\"page\":\"/\"}\n").await?;
//! # Ok(()) }
//! ```

mod bucket;
mod catalogue;
mod compress;
mod delivery;
mod envelopes;
mod error;
mod files;
mod intent;
mod naming;
mod put;
mod records;
#[cfg(test)]
mod recovery_tests;
mod service;
mod spec;
mod stats;
mod transform;

#[cfg(feature = "s3")]
pub use bucket::S3Buckets;
pub use bucket::{Bucket, Buckets, LocalBuckets};
pub use envelopes::{Envelopes, SealFuture, backing_scope};
pub use error::FirehoseError;
pub use naming::PrefixKind;
pub use service::{
    DELIVERY_STREAMS_MAX, DeliveryStreamInfo, Firehose, FirehoseConfig, RecordFailure, TAGS_MAX,
};
pub use spec::{
    BATCH_BYTES_MAX, BATCH_RECORDS_MAX, Backup, BufferingHints, Column, Compression, Conversion,
    CopyFormat, DeliveryStreamSpec, Destination, HTTP_BUFFER_BYTES_MAX, HTTP_RETRY_MS_MAX,
    HttpEndpoint, NAME_LENGTH_MAX, ParquetCompression, PostgresTable, Processor, RECORD_BYTES_MAX,
    Source, SubRecords, Target, validate_bucket, validate_name, validate_template,
};
pub use stats::{DeliverySnapshot, DeliveryStats};
pub use transform::{
    InputRecord, Invocation, OutputRecord, RecordResult, TransformFuture, Transforms,
    parse_lambda_response,
};
