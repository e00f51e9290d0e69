//! What a delivery stream is: its source, its destination, how it buffers and compresses, and
//! Firehose's limits on each.

use crate::error::FirehoseError;
use crate::naming::{LAMBDA_KEY_PREFIX, Prefix, PrefixKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest delivery stream name.
pub const NAME_LENGTH_MAX: usize = 64;
/// Largest record data PutRecord and PutRecordBatch take: 1,000 KiB.
pub const RECORD_BYTES_MAX: usize = 1_000 * 1024;
/// Most records in one PutRecordBatch.
pub const BATCH_RECORDS_MAX: usize = 500;
/// Most bytes (record data) in one PutRecordBatch: 4 MiB.
pub const BATCH_BYTES_MAX: usize = 4 * 1024 * 1024;

/// A delivery stream as its creator describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryStreamSpec {
    /// `[a-zA-Z0-9_.-]{1,64}`.
    pub name: String,
    /// Where its records come from.
    pub source: Source,
    /// Where its objects go.
    pub destination: Destination,
    /// Settings the embedder keeps with the stream and this library does not read (the
    /// server keeps the IAM role ARNs a client gave, to describe them back).
    #[serde(default)]
    pub metadata: std::collections::BTreeMap<String, String>,
}

/// Where a delivery stream's records come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Source {
    /// PutRecord and PutRecordBatch, held in a backing stream of the delivery stream's own.
    DirectPut,
    /// A stream of the source engine, read along its lineage (`KinesisStreamAsSource`).
    Stream {
        /// The stream's name.
        name: String,
    },
}

/// Where a delivery stream's records go: objects in a bucket (Firehose's extended S3
/// destination), or requests to an HTTP endpoint with the bucket for what it did not take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    /// The bucket (`arn:aws:s3:::<bucket>` names it); the embedder's [`crate::Buckets`]
    /// resolve it to a store. With an HTTP target, only the error output goes there.
    pub bucket: String,
    /// Put before every object key; empty for none. Firehose adds `YYYY/MM/DD/HH/` after it,
    /// unless it holds `!{timestamp:<pattern>}` or `!{firehose:random-string}` expressions
    /// (evaluated at the arrival of the object's oldest record, in UTC).
    pub prefix: String,
    /// When to write a buffer out.
    pub buffering: BufferingHints,
    /// How objects are compressed.
    pub compression: Compression,
    /// What is done to each record (Firehose's processors).
    #[serde(default)]
    pub processors: Vec<Processor>,
    /// Where records a processor failed go (Firehose's `ErrorOutputPrefix`; may hold
    /// `!{firehose:error-output-type}`); empty for Firehose's default,
    /// `processing-failed/YYYY/MM/DD/HH/`.
    #[serde(default)]
    pub error_output_prefix: String,
    /// What receives the records.
    #[serde(default)]
    pub target: Target,
    /// Record format conversion: JSON records written as Parquet objects.
    #[serde(default)]
    pub conversion: Option<Conversion>,
    /// Source record backup: every record also written, as it was read, to a bucket.
    #[serde(default)]
    pub backup: Option<Backup>,
}

/// Source record backup (Firehose's `S3BackupMode` `Enabled`; `AllData` for an HTTP
/// endpoint): each flush's records, as read (before any processor), back to back in one
/// object of their own, written with the flush and named by its journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backup {
    /// The bucket.
    pub bucket: String,
    /// Put before every backup object's key, as [`Destination::prefix`] is (no partition
    /// keys: a backup object holds a whole flush).
    pub prefix: String,
    /// How backup objects are compressed.
    pub compression: Compression,
}

impl Destination {
    /// Objects in `bucket` with Firehose's defaults: no prefix (the hour directories only),
    /// 5 MiB or 300 s buffers, uncompressed, no processors, the default error output.
    pub fn new(bucket: impl Into<String>) -> Destination {
        Destination {
            bucket: bucket.into(),
            prefix: String::new(),
            buffering: BufferingHints::default(),
            compression: Compression::Uncompressed,
            processors: Vec::new(),
            error_output_prefix: String::new(),
            target: Target::Objects,
            conversion: None,
            backup: None,
        }
    }
}

/// Record format conversion (Firehose's `DataFormatConversionConfiguration`): each object's
/// JSON records decoded by a schema and written as one Parquet file (`.parquet`). Needs the
/// `parquet` feature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversion {
    /// The columns, as a Glue table lists them: a name and a Hive type.
    pub columns: Vec<Column>,
    /// The Parquet pages' compression.
    pub compression: ParquetCompression,
    /// Firehose's `BlockSizeBytes`: a row group's target size (at least 64 MiB; 256 MiB
    /// by default).
    pub block_bytes: u64,
    /// Firehose's `PageSizeBytes` (at least 64 KiB; 1 MiB by default).
    pub page_bytes: u64,
    /// Firehose's `EnableDictionaryCompression` (off by default).
    pub dictionary: bool,
    /// Firehose's `WriterVersion` `V2` (else `V1`).
    pub writer_v2: bool,
    /// JSON keys matched to the columns whatever their case (the OpenX SerDe's
    /// `CaseInsensitive`, on by default): keys and column names are lower-cased.
    #[serde(default)]
    pub case_insensitive: bool,
}

/// A column: its name (as JSON records name the field) and Hive type: `string`,
/// `varchar(n)`, `char(n)`, `tinyint`, `smallint`, `int`, `bigint`, `float`, `double`,
/// `boolean`, `timestamp`, `date` or `decimal(p,s)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// The name.
    pub name: String,
    /// The Hive type.
    pub kind: String,
}

/// A Parquet file's page compression (`ParquetSerDe.Compression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParquetCompression {
    /// `SNAPPY`, Firehose's default.
    Snappy,
    /// `GZIP`.
    Gzip,
    /// `UNCOMPRESSED`.
    Uncompressed,
}

impl Conversion {
    /// Firehose's defaults for `columns`: Snappy, 256 MiB row groups, 1 MiB pages, no
    /// dictionary, V1, keys matched whatever their case.
    pub fn new(columns: Vec<Column>) -> Conversion {
        Conversion {
            columns,
            compression: ParquetCompression::Snappy,
            block_bytes: 256 << 20,
            page_bytes: 1 << 20,
            dictionary: false,
            writer_v2: false,
            case_insensitive: true,
        }
    }

    fn validate(&self, destination: &Destination) -> Result<(), FirehoseError> {
        if !cfg!(feature = "parquet") {
            return Err(FirehoseError::invalid(
                "Record format conversion needs sluice-firehose's `parquet` feature.",
            ));
        }
        if destination.target != Target::Objects
            || destination.compression != Compression::Uncompressed
        {
            return Err(FirehoseError::invalid(
                "Record format conversion writes objects, with CompressionFormat UNCOMPRESSED (Parquet compresses its pages).",
            ));
        }
        if self.block_bytes < (64 << 20) || self.page_bytes < (64 << 10) {
            return Err(FirehoseError::invalid(
                "ParquetSerDe's BlockSizeBytes is at least 64 MiB and PageSizeBytes at least 64 KiB.",
            ));
        }
        if self.columns.is_empty() {
            return Err(FirehoseError::invalid("The schema has no columns."));
        }
        crate::delivery::check_conversion(self)
            .map_err(|e| FirehoseError::invalid(format!("SchemaConfiguration: {e}.")))?;
        let mut names = std::collections::BTreeSet::new();
        for column in &self.columns {
            if column.name.is_empty() || !names.insert(column.name.as_str()) {
                return Err(FirehoseError::invalid(format!(
                    "Column name {:?} is empty or given twice.",
                    column.name
                )));
            }
        }
        Ok(())
    }
}

/// What receives a delivery stream's records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// Objects in the bucket.
    #[default]
    Objects,
    /// Requests to an HTTP endpoint (Firehose's HTTP endpoint destination, `S3BackupMode`
    /// `FailedDataOnly`): the bucket receives only the records the endpoint did not take
    /// within the retry duration, under the error output prefix (`http-endpoint-failed/`
    /// by default). Needs the `http` feature.
    Http(HttpEndpoint),
    /// Rows of a PostgreSQL table (Firehose's Redshift destination, Redshift speaking
    /// PostgreSQL's protocol): each flush is staged as an object in the bucket, then loaded
    /// with `COPY` in one transaction that also records the object as loaded, so a restart
    /// never loads it twice. Needs the `postgres` feature.
    Postgres(PostgresTable),
}

/// A PostgreSQL table and how records become its rows. Its `Debug` leaves the connection
/// (which may hold a password) out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostgresTable {
    /// The connection: `postgresql://user:password@host:port/database` (or tokio-postgres'
    /// `key=value` form).
    pub url: String,
    /// `table` or `schema.table`, unquoted (`[A-Za-z_][A-Za-z0-9_$]*` each).
    pub table: String,
    /// The columns the records' fields fill, in order; empty for all of the table's.
    #[serde(default)]
    pub columns: Vec<String>,
    /// How a record (one line) is read.
    pub format: CopyFormat,
    /// How long a failed load is tried again before the flush's staged object is named in
    /// an error manifest (Firehose's `RetryOptions.DurationInSeconds` for Redshift, 0–7,200
    /// s; 3,600 s by default).
    pub retry_ms: u64,
}

/// How a record becomes a row (the part of Redshift's `CopyOptions` PostgreSQL can do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CopyFormat {
    /// Fields separated by `delimiter` (a tab by default), `\N` for null: COPY's text
    /// format.
    Text {
        /// The field separator.
        delimiter: char,
    },
    /// CSV (`CSV`, `DELIMITER 'c'`).
    Csv {
        /// The field separator.
        delimiter: char,
    },
    /// A JSON object per record, its keys matched to the columns by name (`JSON 'auto'`).
    JsonAuto,
}

impl PostgresTable {
    fn validate(&self) -> Result<(), FirehoseError> {
        if !cfg!(feature = "postgres") {
            return Err(FirehoseError::invalid(
                "PostgreSQL destinations need sluice-firehose's `postgres` feature.",
            ));
        }
        let parts: Vec<&str> = self.table.split('.').collect();
        if parts.len() > 2 || !parts.iter().all(|p| is_identifier(p)) {
            return Err(FirehoseError::invalid(format!(
                "CopyCommand.DataTableName {:?} must be table or schema.table, each [A-Za-z_][A-Za-z0-9_$]*.",
                self.table
            )));
        }
        if let Some(bad) = self.columns.iter().find(|c| !is_identifier(c)) {
            return Err(FirehoseError::invalid(format!(
                "CopyCommand.DataTableColumns: {bad:?} is not a column name ([A-Za-z_][A-Za-z0-9_$]*)."
            )));
        }
        let delimiter = match self.format {
            CopyFormat::Text { delimiter } | CopyFormat::Csv { delimiter } => Some(delimiter),
            CopyFormat::JsonAuto => None,
        };
        // What COPY takes: not a letter or digit, nor `\`, `.` (text) or `"` (CSV).
        let fits = |d: char| {
            (d == '\t' || d == ' ' || d.is_ascii_punctuation()) && !matches!(d, '\\' | '.' | '"')
        };
        if delimiter.is_some_and(|d| !fits(d)) {
            return Err(FirehoseError::invalid(
                "CopyOptions DELIMITER must be a tab, a space or an ASCII punctuation character other than \\, . and \".",
            ));
        }
        if self.retry_ms > HTTP_RETRY_MS_MAX {
            return Err(FirehoseError::invalid(
                "RetryOptions.DurationInSeconds must be between 0 and 7200.",
            ));
        }
        if self.url.is_empty() {
            return Err(FirehoseError::invalid("The database URL is required."));
        }
        Ok(())
    }
}

/// An unquoted SQL identifier, safe to put in a statement as it is.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        && name.len() <= 63
}

/// An HTTP endpoint as Firehose's HTTP endpoint destination describes it. Its `Debug`
/// leaves the access key out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpEndpoint {
    /// `https://host[:port][/path]` (the server's certificate checked against the
    /// system's trust roots, or those of `SSL_CERT_FILE` / `SSL_CERT_DIR` instead when
    /// set) or `http://...`.
    pub url: String,
    /// Sent as `X-Amz-Firehose-Access-Key` when set.
    #[serde(default)]
    pub access_key: Option<String>,
    /// Request bodies gzipped (`Content-Encoding: gzip`, Firehose's `ContentEncoding`).
    #[serde(default)]
    pub gzip: bool,
    /// Sent with every request as `X-Amz-Firehose-Common-Attributes`.
    #[serde(default)]
    pub common_attributes: BTreeMap<String, String>,
    /// How long a request is retried before its records go to the error output
    /// (Firehose's `RetryOptions.DurationInSeconds`, 0–7,200 s; 300 s by default). A
    /// request is always tried once.
    pub retry_ms: u64,
    /// An attempt with no answer after this has failed (and is retried).
    pub request_timeout_ms: u64,
    /// Sent as `X-Amz-Firehose-Source-Arn` (the delivery stream's ARN, which only the
    /// embedder knows); empty for `arn:aws:firehose:::deliverystream/<name>`.
    #[serde(default)]
    pub source_arn: String,
}

/// Longest retry duration of an HTTP endpoint (`RetryOptions.DurationInSeconds`).
pub const HTTP_RETRY_MS_MAX: u64 = 7_200_000;
/// Largest buffer an HTTP endpoint takes (`SizeInMBs` 1–64).
pub const HTTP_BUFFER_BYTES_MAX: u64 = 64 << 20;

impl HttpEndpoint {
    /// An endpoint at `url` with Firehose's defaults: no access key, no gzip, retried for
    /// 300 s, each attempt given 60 s.
    pub fn new(url: impl Into<String>) -> HttpEndpoint {
        HttpEndpoint {
            url: url.into(),
            access_key: None,
            gzip: false,
            common_attributes: BTreeMap::new(),
            retry_ms: 300_000,
            request_timeout_ms: 60_000,
            source_arn: String::new(),
        }
    }

    fn validate(&self, buffering: BufferingHints) -> Result<(), FirehoseError> {
        if !cfg!(feature = "http") {
            return Err(FirehoseError::invalid(
                "HTTP endpoint destinations need sluice-firehose's `http` feature.",
            ));
        }
        if !self.url.starts_with("http://") && !self.url.starts_with("https://") {
            return Err(FirehoseError::invalid(format!(
                "EndpointConfiguration.Url {:?} must be an https:// or http:// URL.",
                self.url
            )));
        }
        #[cfg(feature = "http")]
        {
            let uri: Option<hyper::Uri> = self.url.parse().ok();
            let authority = uri.as_ref().and_then(hyper::Uri::authority);
            let bad = |a: &hyper::http::uri::Authority| {
                let port_unread = a.as_str() != a.host() && a.port_u16().is_none();
                a.host().is_empty() || a.as_str().contains('@') || port_unread
            };
            if authority.is_none_or(bad) || self.url.len() > 1000 {
                return Err(FirehoseError::invalid(format!(
                    "EndpointConfiguration.Url {:?} is not a URL of a host (and port), without user information, of at most 1000 characters.",
                    self.url
                )));
            }
        }
        if self.retry_ms > HTTP_RETRY_MS_MAX || self.request_timeout_ms == 0 {
            return Err(FirehoseError::invalid(
                "RetryOptions.DurationInSeconds must be between 0 and 7200.",
            ));
        }
        if buffering.size_bytes > HTTP_BUFFER_BYTES_MAX {
            return Err(FirehoseError::invalid(
                "BufferingHints.SizeInMBs must be between 1 and 64 for an HTTP endpoint.",
            ));
        }
        let header_safe = |s: &str| s.chars().all(|c| c == ' ' || c.is_ascii_graphic());
        if self
            .access_key
            .as_deref()
            .is_some_and(|k| k.len() > 4096 || !header_safe(k))
        {
            return Err(FirehoseError::invalid(
                "EndpointConfiguration.AccessKey must be at most 4096 printable ASCII characters.",
            ));
        }
        // Firehose's limits; no control character (DEL included) can reach a header.
        let attribute = |s: &str, max: usize| {
            !s.is_empty() && s.len() <= max && !s.chars().any(char::is_control)
        };
        if self.common_attributes.len() > 50
            || !self
                .common_attributes
                .iter()
                .all(|(name, value)| attribute(name, 256) && attribute(value, 1024))
        {
            return Err(FirehoseError::invalid(
                "RequestConfiguration.CommonAttributes: at most 50, names of 1-256 and values of 1-1024 characters, no control characters.",
            ));
        }
        Ok(())
    }
}

impl std::fmt::Debug for HttpEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpEndpoint")
            .field("url", &self.url)
            .field("access_key", &self.access_key.as_ref().map(|_| "(hidden)"))
            .field("gzip", &self.gzip)
            .field("common_attributes", &self.common_attributes)
            .field("retry_ms", &self.retry_ms)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("source_arn", &self.source_arn)
            .finish()
    }
}

impl std::fmt::Debug for PostgresTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresTable")
            .field("url", &"(hidden)")
            .field("table", &self.table)
            .field("columns", &self.columns)
            .field("format", &self.format)
            .field("retry_ms", &self.retry_ms)
            .finish()
    }
}

/// A record processor (Firehose's `ProcessingConfiguration`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Processor {
    /// `AppendDelimiterToRecord`: a newline after every record (after the transform's
    /// output when there is one), so the records of an object are lines.
    AppendNewline,
    /// `Lambda`: records handed to `function` of the `Firehose`'s [`crate::Transforms`] in
    /// calls of at most `call_bytes` of records, a failed call retried `retries` times.
    Lambda {
        /// The function's name as the transforms know it (a Lambda ARN).
        function: String,
        /// Firehose's `NumberOfRetries` (0–300, 3 by default).
        retries: u32,
        /// Firehose's `BufferSizeInMBs` for the function, in bytes (0.2–3 MiB, 1 MiB by
        /// default).
        call_bytes: u64,
    },
    /// `RecordDeAggregation`: each record split into its sub-records, before the transform.
    DeAggregate(SubRecords),
    /// `Decompression` (`CompressionFormat` `GZIP`): each record gunzipped (as CloudWatch
    /// Logs subscriptions send them), before the transform; one that is not gzip fails.
    Gunzip,
    /// `CloudWatchLogProcessing` (`DataMessageExtraction` `true`): a CloudWatch Logs
    /// `DATA_MESSAGE` becomes one record per log event's message, a `CONTROL_MESSAGE`
    /// none; before the transform.
    CloudWatchLogs,
    /// `MetadataExtraction` (dynamic partitioning): `query`, a jq object constructor, gives
    /// each record's partition keys (`!{partitionKeyFromQuery:NAME}` in the prefix), after
    /// the transform. A record it fails on goes to the error output.
    ExtractMetadata {
        /// The `MetadataExtractionQuery`.
        query: String,
    },
}

impl Processor {
    /// Firehose's `Type` for it.
    pub fn firehose_type(&self) -> &'static str {
        match self {
            Processor::AppendNewline => "AppendDelimiterToRecord",
            Processor::Lambda { .. } => "Lambda",
            Processor::DeAggregate(_) => "RecordDeAggregation",
            Processor::Gunzip => "Decompression",
            Processor::CloudWatchLogs => "CloudWatchLogProcessing",
            Processor::ExtractMetadata { .. } => "MetadataExtraction",
        }
    }
}

/// What `RecordDeAggregation` splits a record into (its `SubRecordType`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubRecords {
    /// The Kinesis Producer Library's aggregated records (magic, protobuf, MD5); a record
    /// without the KPL's magic is one sub-record, as it is.
    Kpl,
    /// JSON objects one after another (`{...}{...}`).
    Json,
    /// Records separated by these bytes.
    Delimited(Vec<u8>),
}

impl SubRecords {
    /// `DELIMITED` sub-records of the `Delimiter` parameter (base64, as Firehose takes it).
    pub fn delimited_base64(delimiter: &str) -> Result<SubRecords, FirehoseError> {
        crate::records::parse_delimiter(delimiter)
            .map(SubRecords::Delimited)
            .map_err(|e| FirehoseError::invalid(format!("RecordDeAggregation's Delimiter: {e}")))
    }
}

/// Flush when the buffer holds `size_bytes`, or `interval_ms` after its first record came,
/// whichever is first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BufferingHints {
    /// 1–128 MiB (Firehose's `SizeInMBs`); 5 MiB by default.
    pub size_bytes: u64,
    /// 0–900 s (Firehose's `IntervalInSeconds`); 300 s by default.
    pub interval_ms: u64,
}

impl Default for BufferingHints {
    fn default() -> Self {
        BufferingHints {
            size_bytes: 5 << 20,
            interval_ms: 300_000,
        }
    }
}

impl BufferingHints {
    /// Hints in Firehose's units, checked against its ranges.
    pub fn new(size_mib: u64, interval_s: u64) -> Result<BufferingHints, FirehoseError> {
        if !(1..=128).contains(&size_mib) {
            return Err(FirehoseError::invalid(format!(
                "BufferingHints.SizeInMBs must be between 1 and 128, not {size_mib}."
            )));
        }
        if interval_s > 900 {
            return Err(FirehoseError::invalid(format!(
                "BufferingHints.IntervalInSeconds must be between 0 and 900, not {interval_s}."
            )));
        }
        Ok(BufferingHints {
            size_bytes: size_mib << 20,
            interval_ms: interval_s * 1000,
        })
    }
}

/// How objects are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Compression {
    /// As the records are.
    Uncompressed,
    /// One gzip member per object (`.gz`).
    Gzip,
    /// A ZIP archive of one deflated entry named as the object without `.zip` (`.zip`).
    Zip,
    /// Snappy's framing format, which snappy's stream readers take (`.snappy`).
    Snappy,
    /// Hadoop's Snappy block format, which Hadoop's `SnappyCodec` (Spark, Hive) reads
    /// (`.snappy`): blocks of at most 256 KiB, each its length and one raw Snappy chunk.
    HadoopSnappy,
}

impl Compression {
    /// Firehose's name for a compression format.
    pub fn from_firehose(name: &str) -> Result<Compression, FirehoseError> {
        match name {
            "UNCOMPRESSED" => Ok(Compression::Uncompressed),
            "GZIP" => Ok(Compression::Gzip),
            "ZIP" => Ok(Compression::Zip),
            "Snappy" => Ok(Compression::Snappy),
            "HADOOP_SNAPPY" => Ok(Compression::HadoopSnappy),
            other => Err(FirehoseError::invalid(format!(
                "CompressionFormat must be one of UNCOMPRESSED, GZIP, ZIP, Snappy, HADOOP_SNAPPY, not {other}."
            ))),
        }
    }

    /// Firehose's name for it.
    pub fn firehose_name(self) -> &'static str {
        match self {
            Compression::Uncompressed => "UNCOMPRESSED",
            Compression::Gzip => "GZIP",
            Compression::Zip => "ZIP",
            Compression::Snappy => "Snappy",
            Compression::HadoopSnappy => "HADOOP_SNAPPY",
        }
    }

    /// The object name's extension.
    pub(crate) fn extension(self) -> &'static str {
        match self {
            Compression::Uncompressed => "",
            Compression::Gzip => ".gz",
            Compression::Zip => ".zip",
            Compression::Snappy | Compression::HadoopSnappy => ".snappy",
        }
    }
}

impl DeliveryStreamSpec {
    /// Checks the name and the destination.
    pub fn validate(&self) -> Result<(), FirehoseError> {
        validate_name(&self.name)?;
        let hints = self.destination.buffering;
        BufferingHints::new(hints.size_bytes >> 20, hints.interval_ms / 1000)?;
        if !hints.size_bytes.is_multiple_of(1 << 20) || !hints.interval_ms.is_multiple_of(1000) {
            return Err(FirehoseError::invalid(
                "BufferingHints are whole MiB and whole seconds.",
            ));
        }
        validate_bucket(&self.destination.bucket)?;
        if let Some(conversion) = &self.destination.conversion {
            conversion.validate(&self.destination)?;
        }
        match &self.destination.target {
            Target::Objects => {}
            Target::Http(endpoint) => endpoint.validate(hints)?,
            Target::Postgres(table) => {
                table.validate()?;
                if !matches!(
                    self.destination.compression,
                    Compression::Uncompressed | Compression::Gzip
                ) {
                    return Err(FirehoseError::invalid(
                        "A PostgreSQL destination stages UNCOMPRESSED or GZIP objects only.",
                    ));
                }
            }
        }
        validate_template(&self.destination.prefix, PrefixKind::Objects)?;
        if let Some(backup) = &self.destination.backup {
            validate_bucket(&backup.bucket)?;
            validate_template(&backup.prefix, PrefixKind::Objects)?;
            if Prefix::parse(&backup.prefix, PrefixKind::Objects)?
                .partition_keys()
                .next()
                .is_some()
            {
                return Err(FirehoseError::invalid(
                    "A backup prefix takes no partition keys: a backup object holds a whole flush.",
                ));
            }
        }
        validate_template(
            &self.destination.error_output_prefix,
            PrefixKind::ErrorOutput,
        )?;
        self.validate_partitioning()?;
        for processor in &self.destination.processors {
            if let Processor::DeAggregate(SubRecords::Delimited(delimiter)) = processor
                && delimiter.is_empty()
            {
                return Err(FirehoseError::invalid(
                    "RecordDeAggregation's Delimiter must not be empty.",
                ));
            }
            if let Processor::Lambda {
                function,
                retries,
                call_bytes,
            } = processor
                && (function.is_empty()
                    || *retries > 300
                    || !((200 << 10)..=(3 << 20)).contains(call_bytes))
            {
                return Err(FirehoseError::invalid(
                    "A Lambda processor needs a function, at most 300 retries, and 0.2 to 3 MiB per call.",
                ));
            }
        }
        Ok(())
    }
}

impl DeliveryStreamSpec {
    /// Dynamic partitioning: a `MetadataExtraction` query whose keys the prefix names, every
    /// query key the prefix names produced by it, a Lambda processor for the keys it names
    /// from the transform's answers, objects as the target.
    fn validate_partitioning(&self) -> Result<(), FirehoseError> {
        let destination = &self.destination;
        let queries: Vec<&String> = destination
            .processors
            .iter()
            .filter_map(|p| match p {
                Processor::ExtractMetadata { query } => Some(query),
                _ => None,
            })
            .collect();
        let lambda = destination
            .processors
            .iter()
            .any(|p| matches!(p, Processor::Lambda { .. }));
        let prefix = Prefix::parse(&destination.prefix, PrefixKind::Objects)?;
        let (from_lambda, from_query): (Vec<&str>, Vec<&str>) = prefix
            .partition_keys()
            .partition(|k| k.starts_with(LAMBDA_KEY_PREFIX));
        if queries.len() > 1 {
            return Err(FirehoseError::invalid(
                "At most one MetadataExtraction processor is allowed.",
            ));
        }
        if !from_lambda.is_empty() && !lambda {
            return Err(FirehoseError::invalid(
                "A Prefix with !{partitionKeyFromLambda:...} needs a Lambda processor, whose answers give the keys.",
            ));
        }
        let partitioned = !queries.is_empty() || !from_lambda.is_empty();
        if partitioned && destination.target != Target::Objects {
            return Err(FirehoseError::invalid(
                "Dynamic partitioning is for object (S3) destinations only.",
            ));
        }
        let Some(query) = queries.first() else {
            if !from_query.is_empty() {
                return Err(FirehoseError::invalid(
                    "A Prefix with !{partitionKeyFromQuery:...} needs dynamic partitioning's MetadataExtraction processor.",
                ));
            }
            return Ok(());
        };
        let names = crate::records::Query::parse(query)
            .map_err(|e| {
                FirehoseError::invalid(format!("MetadataExtractionQuery is not valid: {e}"))
            })?
            .names();
        if let Some(reserved) = names.iter().find(|n| n.starts_with(LAMBDA_KEY_PREFIX)) {
            return Err(FirehoseError::invalid(format!(
                "The MetadataExtractionQuery's key {reserved:?} starts with {LAMBDA_KEY_PREFIX:?}, which names the Lambda's keys."
            )));
        }
        if from_query.is_empty() {
            return Err(FirehoseError::invalid(
                "Dynamic partitioning needs the Prefix to use its keys: !{partitionKeyFromQuery:NAME}.",
            ));
        }
        if let Some(missing) = from_query.iter().find(|n| !names.iter().any(|m| m == *n)) {
            return Err(FirehoseError::invalid(format!(
                "The Prefix names the partition key {missing:?}, which the MetadataExtractionQuery does not produce ({}).",
                names.join(", ")
            )));
        }
        Ok(())
    }
}

/// `[a-zA-Z0-9_.-]{1,64}`.
pub fn validate_name(name: &str) -> Result<(), FirehoseError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if name.is_empty() || name.len() > NAME_LENGTH_MAX || !name.chars().all(allowed) {
        return Err(FirehoseError::invalid(format!(
            "DeliveryStreamName {name:?} must be 1 to 64 characters of [a-zA-Z0-9_.-]."
        )));
    }
    Ok(())
}

/// 1999-12-31 23:59:59.999 UTC: every calendar field at its widest (two-digit month, day,
/// hour, minute, second), so a prefix evaluated then is as long as it ever gets.
const WIDEST_INSTANT_MS: u64 = 946_684_799_999;

/// A prefix with or without `!{...}` expressions: each expression must parse, and the
/// prefix evaluated must pass the rules of a plain prefix (expressions evaluate to
/// non-empty letters and digits whatever the instant, of a width only the calendar fields
/// change, so one evaluation at the widest instant stands for all).
pub fn validate_template(prefix: &str, kind: PrefixKind) -> Result<(), FirehoseError> {
    if prefix.len() > 1024 {
        return validate_prefix(prefix);
    }
    let parsed = Prefix::parse(prefix, kind)?;
    // A partition key stands for a value of safe characters (checked on each record).
    let keys = parsed
        .partition_keys()
        .map(|name| (name.to_owned(), "k".to_owned()))
        .collect();
    let evaluated = parsed.evaluate(WIDEST_INSTANT_MS, "processing-failed", &keys);
    validate_prefix(&evaluated).map_err(|_| {
        FirehoseError::invalid(format!(
            "Prefix {prefix:?} must evaluate to at most 1024 of the characters [A-Za-z0-9!_.'()=/-], with no empty, '.' or '..' part."
        ))
    })
}

/// At most 1,024 of S3's safe characters (`[A-Za-z0-9!_.'()=/-]`), with no empty, `.` or
/// `..` part but the last: a key stays inside its bucket whatever the store (a local bucket
/// is a directory), and every store names the object exactly as the key says (none
/// escapes a character).
fn validate_prefix(prefix: &str) -> Result<(), FirehoseError> {
    let safe = |c: char| c.is_ascii_alphanumeric() || "!_.'()=/-".contains(c);
    let parts: Vec<&str> = prefix.split('/').collect();
    let bad_part = parts[..parts.len() - 1]
        .iter()
        .chain(parts.last().filter(|p| !p.is_empty()))
        .any(|part| part.is_empty() || *part == "." || *part == "..");
    if prefix.len() > 1024 || !prefix.chars().all(safe) || (!prefix.is_empty() && bad_part) {
        return Err(FirehoseError::invalid(format!(
            "Prefix {prefix:?} must be at most 1024 of the characters [A-Za-z0-9!_.'()=/-], with no empty, '.' or '..' part."
        )));
    }
    Ok(())
}

/// S3's bucket naming rules, the part that keeps a bucket a safe directory name too:
/// 3–63 characters of `[a-z0-9.-]`, starting and ending with a letter or digit.
pub fn validate_bucket(bucket: &str) -> Result<(), FirehoseError> {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-');
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !(3..=63).contains(&bucket.len())
        || !bucket.chars().all(allowed)
        || !edge(bucket.chars().next())
        || !edge(bucket.chars().last())
        || bucket.contains("..")
    {
        return Err(FirehoseError::invalid(format!(
            "Bucket {bucket:?} is not a valid S3 bucket name."
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_names_and_buckets_are_checked_against_firehose_ranges() {
        assert!(BufferingHints::new(0, 60).is_err());
        assert!(BufferingHints::new(129, 60).is_err());
        assert!(BufferingHints::new(1, 901).is_err());
        assert_eq!(
            BufferingHints::new(128, 0).unwrap(),
            BufferingHints {
                size_bytes: 128 << 20,
                interval_ms: 0
            }
        );
        assert!(validate_name("orders.v1_x-2").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name(&"a".repeat(65)).is_err());
        assert!(validate_name("a/b").is_err());
        for good in ["", "logs/", "a/b-c_d/2026", "x", "year=2026/"] {
            assert!(validate_prefix(good).is_ok(), "{good}");
        }
        for bad in [
            "../up/",
            "a/../b",
            "/abs",
            "./x",
            "a/./b",
            "tab\there",
            "a//b",
            "données/",
            "#1/",
        ] {
            assert!(validate_prefix(bad).is_err(), "{bad}");
        }
        assert!(validate_prefix(&"p".repeat(1025)).is_err());
        for good in [
            "dt=!{timestamp:yyyy-MM-dd}/",
            "!{timestamp:yyyy/MM}/!{firehose:random-string}",
        ] {
            assert!(
                validate_template(good, PrefixKind::Objects).is_ok(),
                "{good}"
            );
        }
        // Under 1,024 at a one-digit day, over it on the 31st.
        let long = format!("!{{timestamp:{}}}", "d/".repeat(505));
        assert!(validate_template(&long, PrefixKind::Objects).is_err());
        for bad in [
            "!{timestamp:yyyy}//",
            "!{timestamp:'..'}/x",
            "!{timestamp:yyyy' 'MM}",
            "/!{timestamp:yyyy}",
            "!{firehose:error-output-type}/",
        ] {
            assert!(
                validate_template(bad, PrefixKind::Objects).is_err(),
                "{bad}"
            );
        }
        assert!(
            validate_template("e/!{firehose:error-output-type}/", PrefixKind::ErrorOutput).is_ok()
        );
        assert!(validate_bucket("my-bucket.1").is_ok());
        for bad in ["ab", "Upper", "-lead", "trail-", "a..b", "../x", "a/b"] {
            assert!(validate_bucket(bad).is_err(), "{bad}");
        }
        assert!(Compression::from_firehose("LZ4").is_err());
        for name in ["UNCOMPRESSED", "GZIP", "ZIP", "Snappy", "HADOOP_SNAPPY"] {
            assert_eq!(
                Compression::from_firehose(name).unwrap().firehose_name(),
                name
            );
        }
        assert_eq!(
            Compression::from_firehose("GZIP").unwrap(),
            Compression::Gzip
        );
    }
}
