//! The agent's data processing options (docs/design/agent.md, "Parts"), applied to each
//! record in the order a flow lists them, as the Kinesis Agent applies them: `SINGLELINE`,
//! `CSVTOJSON`, `LOGTOJSON` (Apache common, combined and error logs, syslog with an RFC 3164
//! or RFC 3339 timestamp, RFC 5424 syslog, or a `matchPattern` with `customFieldNames`),
//! `ADDMETADATA` and `ADDBRACKETS`. An option that cannot convert a record (a log line its
//! pattern does not match) drops it.

use crate::AgentError;
use regex::Regex;

/// One processing option, ready to apply.
#[derive(Debug, Clone)]
pub enum Processor {
    /// `SINGLELINE`: a record's lines trimmed and joined, with one newline after them.
    SingleLine,
    /// `CSVTOJSON`: fields split by `delimiter` (a regular expression, `,` by default),
    /// named by `customFieldNames`.
    CsvToJson {
        /// The fields' names, in order.
        names: Vec<String>,
        /// Where fields split.
        delimiter: Regex,
    },
    /// `LOGTOJSON`: a line matched by its format's pattern (or `matchPattern`), its groups
    /// named by the format's fields (or `customFieldNames`).
    LogToJson {
        /// The whole line must match it.
        pattern: Regex,
        /// A name for each group.
        names: Vec<String>,
        /// Apache's formats write `-` as NULL; syslog keeps it.
        dash_is_null: bool,
    },
    /// `ADDMETADATA`: `{"metadata": <metadata>, "data": "<the record>"}`.
    AddMetadata {
        /// The `metadata` value, as the configuration gives it.
        metadata: serde_json::Value,
    },
    /// `ADDBRACKETS`: the record between `{` and `}`.
    AddBrackets,
}

/// The log formats `LOGTOJSON` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `COMMONAPACHELOG`.
    CommonApache,
    /// `COMBINEDAPACHELOG`.
    CombinedApache,
    /// `APACHEERRORLOG`.
    ApacheError,
    /// `SYSLOG`: RFC 3164 (`Mar 12 12:00:08 host prog[pid]: message`).
    Syslog,
    /// `RFC3339SYSLOG`: as `SYSLOG`, with an RFC 3339 timestamp.
    Rfc3339Syslog,
    /// `RFC5424SYSLOG`: `<pri>version timestamp host app procid msgid [data] message`.
    Rfc5424Syslog,
}

impl LogFormat {
    /// The format a configuration names.
    pub fn named(name: &str) -> Option<LogFormat> {
        Some(match name {
            "COMMONAPACHELOG" => LogFormat::CommonApache,
            "COMBINEDAPACHELOG" => LogFormat::CombinedApache,
            "APACHEERRORLOG" => LogFormat::ApacheError,
            "SYSLOG" => LogFormat::Syslog,
            "RFC3339SYSLOG" => LogFormat::Rfc3339Syslog,
            "RFC5424SYSLOG" => LogFormat::Rfc5424Syslog,
            _ => return None,
        })
    }

    /// Its pattern (matched against a whole line) and its fields' names.
    fn pattern(self) -> (String, &'static [&'static str]) {
        match self {
            LogFormat::CommonApache => (
                format!("{}{ANY}", common()),
                &[
                    "host", "ident", "authuser", "datetime", "request", "response", "bytes",
                ],
            ),
            LogFormat::CombinedApache => (
                format!(r#"{} "([^"]+)" "([^"]+)"{ANY}"#, common()),
                &[
                    "host", "ident", "authuser", "datetime", "request", "response", "bytes",
                    "referer", "agent",
                ],
            ),
            LogFormat::ApacheError => (
                format!(
                    r"\[({DAY}\s+{MONTH}\s+{MONTH_DAY}\s+{TIME}\s+{YEAR})\] \[(?:({WORD}):)?({WORD})\] \[pid ([0-9]+)(?::tid ([0-9]+))?\] \[client ({URI_HOST})\] ({ANY})"
                ),
                &[
                    "timestamp",
                    "module",
                    "severity",
                    "processid",
                    "threadid",
                    "client",
                    "message",
                ],
            ),
            LogFormat::Syslog => (
                syslog(&format!(r"{MONTH}\s+{MONTH_DAY}\s+{TIME}")),
                SYSLOG_FIELDS,
            ),
            LogFormat::Rfc3339Syslog => (syslog(RFC3339), SYSLOG_FIELDS),
            LogFormat::Rfc5424Syslog => (
                format!(
                    r"<([0-9]{{1,3}})>([1-9][0-9]{{0,2}}) (-|{RFC3339}) (\S{{1,255}}) (\S{{1,48}}) (\S{{1,128}}) (\S{{1,32}}) (-|(?:\[[^\]]*\])+)(?: ({ANY}))?"
                ),
                &[
                    "priority",
                    "version",
                    "timestamp",
                    "hostname",
                    "program",
                    "processid",
                    "messageid",
                    "structureddata",
                    "message",
                ],
            ),
        }
    }

    /// Apache's formats write a missing value as `-`, as does RFC 5424 (its NILVALUE);
    /// the agent's syslog formats keep it.
    fn dash_is_null(self) -> bool {
        !matches!(self, LogFormat::Syslog | LogFormat::Rfc3339Syslog)
    }
}

// The formats' building blocks, as the agent defines them, with Java's meaning: `\w`, `\d`
// and `\s` are ASCII, `.` stops at line ends.
const ANY: &str = r"[^\n\r\x{85}\x{2028}\x{2029}]*";
const WORD: &str = r"[A-Za-z0-9_]+";
const INT: &str = r"[+-]?[0-9]+";
const USER: &str = r"[a-zA-Z0-9._-]+";
const HOST: &str = r"(?:[A-Za-z0-9_-]+)(?:\.(?:[A-Za-z0-9_-]+))*\.?|[0-9.]+";
const URI_HOST: &str =
    r"(?:(?:[A-Za-z0-9_-]+)(?:\.(?:[A-Za-z0-9_-]+))*\.?|[0-9.]+)(?::[1-9][0-9]*)?";
const MONTH_DAY: &str = r"(?:0[1-9]|[12][0-9]|3[01]|[1-9])";
const DAY: &str = r"(?:Mon(?:day)?|Tue(?:sday)?|Wed(?:nesday)?|Thu(?:rsday)?|Fri(?:day)?|Sat(?:urday)?|Sun(?:day)?)";
const MONTH: &str = r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|Jun(?:e)?|Jul(?:y)?|Aug(?:ust)?|Sep(?:tember)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)";
const YEAR: &str = r"[1-9][0-9]*";
const TIME: &str = r"(?:2[0123]|[01]?[0-9]):[0-5][0-9]:(?:[0-5]?[0-9]|60)(?:[:.,][0-9]+)?";
const RFC3339: &str = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:Z|[-+][0-9]{2}:[0-9]{2})";
const SYSLOG_FIELDS: &[&str] = &["timestamp", "hostname", "program", "processid", "message"];

/// Apache's common log line, without what may follow it.
fn common() -> String {
    format!(
        r#"({HOST}) ({USER}) ({USER}) \[({MONTH_DAY}/{MONTH}/{YEAR}:{TIME}\s{INT})\] "([^"]+)" ({INT}|-) ({INT}|-)"#
    )
}

/// A syslog line with `timestamp`: host, program, optional `[pid]`, message. A facility
/// (`<n.n>`) before the host is skipped.
fn syslog(timestamp: &str) -> String {
    format!(
        r"({timestamp}) (?:<[0-9]+.[0-9]+> )?({USER}) ([A-Za-z0-9_./%-]+)(?:\[([1-9][0-9]*)\])?: ({ANY})"
    )
}

impl Processor {
    /// `LOGTOJSON` of `format`, with `matchPattern` and `customFieldNames` if given.
    pub fn log_to_json(
        format: LogFormat,
        match_pattern: Option<&str>,
        custom_names: Option<Vec<String>>,
    ) -> Result<Processor, AgentError> {
        let (default_pattern, default_names) = format.pattern();
        let (pattern, names) = match (match_pattern, custom_names) {
            (Some(pattern), Some(names)) => (pattern.to_owned(), names),
            (Some(_), None) => {
                return Err(AgentError::config(
                    "customFieldNames",
                    "LOGTOJSON with a matchPattern names its groups with customFieldNames",
                ));
            }
            (None, Some(names)) if names.len() != default_names.len() => {
                return Err(AgentError::config(
                    "customFieldNames",
                    format!(
                        "LOGTOJSON's format has {} fields ({}), not {}",
                        default_names.len(),
                        default_names.join(", "),
                        names.len()
                    ),
                ));
            }
            (None, names) => (
                default_pattern,
                names.unwrap_or_else(|| default_names.iter().map(|n| (*n).to_owned()).collect()),
            ),
        };
        refuse_twice(&names)?;
        let pattern = Regex::new(&format!("^(?:{pattern})$"))
            .map_err(|e| AgentError::config("matchPattern", e.to_string()))?;
        if pattern.captures_len() - 1 != names.len() {
            return Err(AgentError::config(
                "customFieldNames",
                format!(
                    "the pattern has {} groups for {} names",
                    pattern.captures_len() - 1,
                    names.len()
                ),
            ));
        }
        Ok(Processor::LogToJson {
            pattern,
            names,
            dash_is_null: format.dash_is_null(),
        })
    }

    /// `CSVTOJSON` with `names` and `delimiter` (a regular expression; `,` if none).
    pub fn csv_to_json(
        names: Vec<String>,
        delimiter: Option<&str>,
    ) -> Result<Processor, AgentError> {
        if names.is_empty() {
            return Err(AgentError::config(
                "customFieldNames",
                "CSVTOJSON names its fields",
            ));
        }
        refuse_twice(&names)?;
        let delimiter = Regex::new(delimiter.unwrap_or(","))
            .map_err(|e| AgentError::config("delimiter", e.to_string()))?;
        Ok(Processor::CsvToJson { names, delimiter })
    }

    /// The record converted, or `None` when it cannot be (it is dropped).
    pub fn apply(&self, record: &[u8]) -> Option<Vec<u8>> {
        let text = String::from_utf8_lossy(record);
        match self {
            Processor::SingleLine => Some(single_line(&text)),
            Processor::CsvToJson { names, delimiter } => {
                let line = text.strip_suffix('\n').unwrap_or(&text);
                let mut fields: Vec<&str> = delimiter.split(line).collect();
                // Java's split leaves out the empty fields at the end.
                while fields.len() > 1 && fields.last() == Some(&"") {
                    fields.pop();
                }
                let values = names
                    .iter()
                    .enumerate()
                    .map(|(i, _)| fields.get(i).copied());
                Some(json_object(names, values))
            }
            Processor::LogToJson {
                pattern,
                names,
                dash_is_null,
            } => {
                let line = text.strip_suffix('\n').unwrap_or(&text);
                let groups = pattern.captures(line)?;
                let values = (1..=names.len()).map(|i| {
                    groups
                        .get(i)
                        .map(|m| m.as_str())
                        .filter(|v| !(*dash_is_null && *v == "-"))
                });
                Some(json_object(names, values))
            }
            Processor::AddMetadata { metadata } => {
                // `metadata` first, as the agent writes it.
                let data = text.strip_suffix('\n').unwrap_or(&text);
                let data = serde_json::Value::from(data);
                Some(format!("{{\"metadata\":{metadata},\"data\":{data}}}\n").into_bytes())
            }
            Processor::AddBrackets => {
                let mut out = Vec::with_capacity(record.len() + 2);
                out.push(b'{');
                out.extend_from_slice(record);
                out.push(b'}');
                Some(out)
            }
        }
    }
}

/// Refuses a name given twice (a JSON object has each member once).
fn refuse_twice(names: &[String]) -> Result<(), AgentError> {
    match names
        .iter()
        .enumerate()
        .find(|(i, name)| names[..*i].contains(name))
    {
        Some((_, name)) => Err(AgentError::config(
            "customFieldNames",
            format!("{name} is named twice"),
        )),
        None => Ok(()),
    }
}

/// Applies `processors` in order; `None` when one drops the record. A record no option
/// converts comes back as it is, not copied.
pub fn process(processors: &[Processor], mut record: Vec<u8>) -> Option<Vec<u8>> {
    for processor in processors {
        record = processor.apply(&record)?;
    }
    Some(record)
}

/// `SINGLELINE`: each line trimmed of spaces and control characters at both ends, the
/// lines joined as they are, one newline after them.
fn single_line(text: &str) -> Vec<u8> {
    let mut lines: Vec<&str> = text.split('\n').collect();
    while lines.last() == Some(&"") {
        lines.pop();
    }
    let mut out: String = lines
        .iter()
        .map(|line| line.trim_matches(|c: char| c <= ' '))
        .collect();
    out.push('\n');
    out.into_bytes()
}

/// `{"name": "value", ...}` (values strings, or `null`), then a newline, names in order.
fn json_object<'v>(names: &[String], values: impl Iterator<Item = Option<&'v str>>) -> Vec<u8> {
    let mut out = String::from("{");
    for (i, (name, value)) in names.iter().zip(values).enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::Value::from(name.as_str()).to_string());
        out.push(':');
        match value {
            Some(value) => out.push_str(&serde_json::Value::from(value).to_string()),
            None => out.push_str("null"),
        }
    }
    out.push_str("}\n");
    out.into_bytes()
}
