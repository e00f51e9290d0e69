//! `agent.json`, read as the Kinesis Agent reads it: its keys, defaults and ranges, comments
//! allowed, numbers and booleans also as strings. A wrong value is refused naming its key;
//! keys this agent does not use (CloudWatch's, the Java agent's threads and logs) are listed
//! in [`AgentConfig::ignored`] so the person running it can see them.

use crate::AgentError;
use crate::process::{LogFormat, Processor};
use regex::bytes::Regex;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// `awsAccessKeyId` and `awsSecretAccessKey`, when given.
    pub credentials: Option<(String, String)>,
    /// `kinesis.endpoint`.
    pub kinesis_endpoint: Option<String>,
    /// `firehose.endpoint`.
    pub firehose_endpoint: Option<String>,
    /// `checkpointFile`: `agent-checkpoints.json` beside the configuration by default.
    pub checkpoint_file: PathBuf,
    /// `connectionTimeoutMillis` (10,000) plus `socketTimeoutMillis` (50,000): how long a
    /// put may take before it is given up and made again.
    pub put_timeout_ms: u64,
    /// The flows.
    pub flows: Vec<Flow>,
    /// Keys read and not used, as `flows[2].aggregatedRecordSizeBytes`.
    pub ignored: Vec<String>,
}

/// Where a flow's records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// `kinesisStream`.
    Stream(String),
    /// `deliveryStream` (it wins when both are given, as in the Java agent).
    DeliveryStream(String),
}

/// How a record's partition key is made (streams only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionKeyOption {
    /// `RANDOM`: spread over the shards.
    Random,
    /// `DETERMINISTIC`: the MD5 of the record, so equal records go to one shard.
    Deterministic,
}

/// One flow: a file pattern into a destination.
#[derive(Debug, Clone)]
pub struct Flow {
    /// Its checkpoint key, as the Java agent makes it: `kinesis:<stream>:<pattern>` or
    /// `fh:<delivery stream>:<pattern>`.
    pub id: String,
    /// `filePattern`.
    pub file_pattern: String,
    /// `kinesisStream` or `deliveryStream`.
    pub destination: Destination,
    /// `partitionKeyOption` (`RANDOM`).
    pub partition_key: PartitionKeyOption,
    /// `initialPosition` `END_OF_FILE` (the default) rather than `START_OF_FILE`.
    pub start_at_end: bool,
    /// `maxBufferAgeMillis` (60,000; 1,000 to 900,000).
    pub max_buffer_age_ms: u64,
    /// `maxBufferSizeRecords` (500; 1 to 500).
    pub max_buffer_records: usize,
    /// `maxBufferSizeBytes` (5 MiB for a stream, 4 MiB for a delivery stream, at most).
    pub max_buffer_bytes: usize,
    /// `multiLineStartPattern`.
    pub multi_line_start: Option<Regex>,
    /// `skipHeaderLines` (0).
    pub skip_header_lines: usize,
    /// `truncatedRecordTerminator` (a newline).
    pub truncated_record_terminator: String,
    /// `minTimeBetweenFilePollsMillis` (100).
    pub min_poll_interval_ms: u64,
    /// `retryInitialBackoffMillis` (100) and `retryMaxBackoffMillis` (10,000).
    pub retry_backoff_ms: (u64, u64),
    /// `dataProcessingOptions`, in order.
    pub processors: Vec<Processor>,
}

/// Top-level keys the agent takes but does not use.
const IGNORED_TOP: &[&str] = &[
    "cloudwatch.emitMetrics",
    "cloudwatch.endpoint",
    "cloudwatch.namespace",
    "cloudwatch.metricsBufferTimeMillis",
    "cloudwatch.metricsQueueSize",
    "sts.endpoint",
    "assumeRoleARN",
    "assumeRoleExternalId",
    "checkpointTimeToLiveDays",
    "shutdownTimeoutMillis",
    "maxSendingThreads",
    "maxSendingThreadsPerCore",
    "sendingThreadsKeepAliveMillis",
    "sendingThreadsMaxQueueSize",
    "maxConnections",
    "connectionTTLMillis",
    "useTcpKeepAlive",
    "useHttpGzip",
    "userAgent",
    "userAgentOverride",
    "log.level",
    "log.file",
    "log.maxBackupIndex",
    "log.maxFileSize",
    "log.emitMetrics",
    "log.emitInternalMetrics",
    "log.statusReportingPeriodSeconds",
];

/// The largest buffer a stream's `PutRecords` and a delivery stream's `PutRecordBatch` take.
const STREAM_BATCH_BYTES: usize = 5 * 1024 * 1024;
const DELIVERY_BATCH_BYTES: usize = 4 * 1024 * 1024;

impl AgentConfig {
    /// Reads the configuration file at `path`.
    pub fn read(path: &Path) -> Result<AgentConfig, AgentError> {
        let text = std::fs::read_to_string(path).map_err(|e| AgentError::io("read", path, e))?;
        let default_checkpoint = path.with_file_name("agent-checkpoints.json");
        AgentConfig::parse(&text, &default_checkpoint)
    }

    /// Reads a configuration's text; `default_checkpoint` when it names no `checkpointFile`.
    pub fn parse(text: &str, default_checkpoint: &Path) -> Result<AgentConfig, AgentError> {
        let mut stripped = String::new();
        std::io::Read::read_to_string(
            &mut json_comments::StripComments::new(text.as_bytes()),
            &mut stripped,
        )
        .map_err(|e| AgentError::config("agent.json", e.to_string()))?;
        let value: Value = serde_json::from_str(&stripped)
            .map_err(|e| AgentError::config("agent.json", e.to_string()))?;
        let Value::Object(top) = value else {
            return Err(AgentError::config("agent.json", "is not a JSON object"));
        };
        let mut keys = Keys::new(&top, "");
        let credentials = match (
            keys.text("awsAccessKeyId")?,
            keys.text("awsSecretAccessKey")?,
        ) {
            (Some(id), Some(secret)) => Some((id, secret)),
            (None, None) => None,
            _ => {
                return Err(AgentError::config(
                    "awsAccessKeyId",
                    "is given with awsSecretAccessKey, or neither is",
                ));
            }
        };
        let kinesis_endpoint = keys.text("kinesis.endpoint")?;
        let firehose_endpoint = keys.text("firehose.endpoint")?;
        let checkpoint_file = keys
            .text("checkpointFile")?
            .map_or_else(|| default_checkpoint.to_owned(), PathBuf::from);
        let put_timeout_ms = keys.number("connectionTimeoutMillis", 10_000, 1..=3_600_000)?
            + keys.number("socketTimeoutMillis", 50_000, 1..=3_600_000)?;
        let flows = match keys.take("flows") {
            Some(Value::Array(flows)) if !flows.is_empty() => flows,
            _ => return Err(AgentError::config("flows", "lists at least one flow")),
        };
        let mut ignored = keys.rest(IGNORED_TOP);
        let mut read = Vec::new();
        for (i, flow) in flows.iter().enumerate() {
            let at = format!("flows[{i}].");
            let Value::Object(flow) = flow else {
                return Err(AgentError::config(
                    format!("flows[{i}]"),
                    "is not an object",
                ));
            };
            let (flow, unused) = Flow::read(flow, &at)?;
            if read.iter().any(|f: &Flow| f.id == flow.id) {
                return Err(AgentError::config(
                    format!("flows[{i}]"),
                    format!("{} is the same flow as one before it", flow.id),
                ));
            }
            ignored.extend(unused);
            read.push(flow);
        }
        Ok(AgentConfig {
            credentials,
            kinesis_endpoint,
            firehose_endpoint,
            checkpoint_file,
            put_timeout_ms,
            flows: read,
            ignored,
        })
    }
}

impl Flow {
    /// Reads a flow (its keys named after `at`); returns it and the keys it left.
    fn read(flow: &Map<String, Value>, at: &str) -> Result<(Flow, Vec<String>), AgentError> {
        let mut keys = Keys::new(flow, at);
        let file_pattern = keys
            .text("filePattern")?
            .ok_or_else(|| AgentError::config(format!("{at}filePattern"), "is required"))?;
        let stream = keys.text("kinesisStream")?;
        let destination = match (keys.text("deliveryStream")?, stream) {
            (Some(name), _) => Destination::DeliveryStream(name),
            (None, Some(name)) => Destination::Stream(name),
            (None, None) => {
                return Err(AgentError::config(
                    format!("{at}kinesisStream"),
                    "a flow names a kinesisStream or a deliveryStream",
                ));
            }
        };
        let (id, batch_bytes) = match &destination {
            Destination::Stream(name) => {
                (format!("kinesis:{name}:{file_pattern}"), STREAM_BATCH_BYTES)
            }
            Destination::DeliveryStream(name) => {
                (format!("fh:{name}:{file_pattern}"), DELIVERY_BATCH_BYTES)
            }
        };
        let (partition_key, start_at_end) = choices(&mut keys)?;
        let multi_line_start = match keys
            .text("multiLineStartPattern")?
            .filter(|p| !p.is_empty())
        {
            Some(pattern) => Some(
                Regex::new(&format!("^(?:{pattern})"))
                    .map_err(|e| keys.wrong("multiLineStartPattern", e.to_string()))?,
            ),
            None => None,
        };
        let terminator = keys
            .text("truncatedRecordTerminator")?
            .unwrap_or_else(|| "\n".into());
        let processors = processors(&mut keys, at)?;
        let flow = Flow {
            id,
            file_pattern,
            destination,
            partition_key,
            start_at_end,
            max_buffer_age_ms: keys.number("maxBufferAgeMillis", 60_000, 1_000..=900_000)?,
            max_buffer_records: keys.number("maxBufferSizeRecords", 500, 1..=500)? as usize,
            max_buffer_bytes: keys.number(
                "maxBufferSizeBytes",
                batch_bytes as u64,
                1..=batch_bytes as u64,
            )? as usize,
            multi_line_start,
            skip_header_lines: keys.number("skipHeaderLines", 0, 0..=u64::from(u32::MAX))? as usize,
            truncated_record_terminator: terminator,
            min_poll_interval_ms: keys.number(
                "minTimeBetweenFilePollsMillis",
                100,
                1..=3_600_000,
            )?,
            retry_backoff_ms: (
                keys.number("retryInitialBackoffMillis", 100, 1..=3_600_000)?,
                keys.number("retryMaxBackoffMillis", 10_000, 1..=3_600_000)?,
            ),
            processors,
        };
        let unused = keys.rest(&[
            "maxTimeBetweenFileTrackerRefreshMillis",
            "publishQueueCapacity",
            "waitOnFullPublishQueueMillis",
            "waitOnEmptyPublishQueueMillis",
            "aggregatedRecordSizeBytes",
            "log.emitInternalMetrics",
        ]);
        Ok((flow, unused))
    }
}

/// `partitionKeyOption` and `initialPosition` (whether files start at their end).
fn choices(keys: &mut Keys<'_>) -> Result<(PartitionKeyOption, bool), AgentError> {
    let partition_key = match keys.text("partitionKeyOption")?.as_deref() {
        None | Some("RANDOM") => PartitionKeyOption::Random,
        Some("DETERMINISTIC") => PartitionKeyOption::Deterministic,
        Some(other) => {
            return Err(keys.wrong(
                "partitionKeyOption",
                format!("{other} is not RANDOM or DETERMINISTIC"),
            ));
        }
    };
    let start_at_end = match keys.text("initialPosition")?.as_deref() {
        None | Some("END_OF_FILE") => true,
        Some("START_OF_FILE") => false,
        Some(other) => {
            return Err(keys.wrong(
                "initialPosition",
                format!("{other} is not START_OF_FILE or END_OF_FILE"),
            ));
        }
    };
    Ok((partition_key, start_at_end))
}

/// `dataProcessingOptions`, in order.
fn processors(keys: &mut Keys<'_>, at: &str) -> Result<Vec<Processor>, AgentError> {
    Ok(match keys.take("dataProcessingOptions") {
        None => Vec::new(),
        Some(Value::Array(options)) => options
            .iter()
            .enumerate()
            .map(|(i, option)| processor(option, &format!("{at}dataProcessingOptions[{i}].")))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(keys.wrong("dataProcessingOptions", "is a list")),
    })
}

/// A `dataProcessingOptions` entry.
fn processor(option: &Value, at: &str) -> Result<Processor, AgentError> {
    let Value::Object(option) = option else {
        return Err(AgentError::config(
            at.trim_end_matches('.'),
            "is not an object",
        ));
    };
    let mut keys = Keys::new(option, at);
    let names = match keys.take("customFieldNames") {
        None => None,
        Some(Value::Array(names)) => Some(
            names
                .iter()
                .map(|n| n.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| keys.wrong("customFieldNames", "is a list of names"))?,
        ),
        Some(_) => return Err(keys.wrong("customFieldNames", "is a list of names")),
    };
    let name = keys
        .text("optionName")?
        .ok_or_else(|| keys.wrong("optionName", "is required"))?;
    let at_key = |key: &str| format!("{at}{key}");
    let located = |e: AgentError| match e {
        AgentError::Config { key, why } => AgentError::config(at_key(&key), why),
        other => other,
    };
    match name.as_str() {
        "SINGLELINE" => Ok(Processor::SingleLine),
        "ADDBRACKETS" => Ok(Processor::AddBrackets),
        "ADDMETADATA" => Ok(Processor::AddMetadata {
            metadata: keys.take("metadataFields").cloned().unwrap_or(Value::Null),
        }),
        "CSVTOJSON" => {
            let names = names
                .ok_or_else(|| keys.wrong("customFieldNames", "CSVTOJSON names its fields"))?;
            Processor::csv_to_json(names, keys.text("delimiter")?.as_deref()).map_err(located)
        }
        "LOGTOJSON" => {
            let format = keys
                .text("logFormat")?
                .ok_or_else(|| keys.wrong("logFormat", "is required"))?;
            let format = LogFormat::named(&format).ok_or_else(|| {
                keys.wrong(
                    "logFormat",
                    format!("{format} is not COMMONAPACHELOG, COMBINEDAPACHELOG, APACHEERRORLOG, SYSLOG, RFC3339SYSLOG or RFC5424SYSLOG"),
                )
            })?;
            Processor::log_to_json(format, keys.text("matchPattern")?.as_deref(), names)
                .map_err(located)
        }
        other => Err(keys.wrong(
            "optionName",
            format!("{other} is not SINGLELINE, CSVTOJSON, LOGTOJSON, ADDMETADATA or ADDBRACKETS"),
        )),
    }
}

/// An object's keys, taken one by one; what is left is reported.
struct Keys<'v> {
    map: &'v Map<String, Value>,
    taken: Vec<&'v str>,
    at: &'v str,
}

impl<'v> Keys<'v> {
    fn new(map: &'v Map<String, Value>, at: &'v str) -> Keys<'v> {
        Keys {
            map,
            taken: Vec::new(),
            at,
        }
    }

    fn take(&mut self, key: &'v str) -> Option<&'v Value> {
        self.taken.push(key);
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn wrong(&self, key: &str, why: impl Into<String>) -> AgentError {
        AgentError::config(format!("{}{key}", self.at), why)
    }

    /// A string (a number or a boolean is taken as written).
    fn text(&mut self, key: &'v str) -> Result<Option<String>, AgentError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(Some(v.to_string())),
            Some(_) => Err(self.wrong(key, "is a string")),
        }
    }

    /// A whole number in `range` (written as a number or a string), `default` if absent.
    fn number(
        &mut self,
        key: &'v str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<u64, AgentError> {
        let Some(text) = self.text(key)? else {
            return Ok(default);
        };
        text.trim()
            .parse::<u64>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                self.wrong(
                    key,
                    format!(
                        "{text} is not a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                )
            })
    }

    /// The keys not taken: `known` ones the agent leaves, and any other.
    fn rest(&self, known: &[&str]) -> Vec<String> {
        self.map
            .keys()
            .filter(|k| !self.taken.contains(&k.as_str()))
            .map(|k| {
                let note = if known.contains(&k.as_str()) {
                    ""
                } else {
                    " (unknown)"
                };
                format!("{}{k}{note}", self.at)
            })
            .collect()
    }
}
