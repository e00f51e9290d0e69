//! Object keys as Firehose writes them: `<prefix>YYYY/MM/DD/HH/<stream>-<version>-
//! YYYY-MM-DD-HH-MM-SS-<uuid>[.ext]`, in UTC; a prefix's `!{...}` expressions evaluated,
//! and no hour directories after one that holds a timestamp (Firehose's custom prefixes).

use crate::error::FirehoseError;
use crate::spec::Compression;
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// A record's partition keys (dynamic partitioning), by name.
pub(crate) type Keys = BTreeMap<String, String>;
/// No partition keys.
pub(crate) static NO_KEYS: Keys = BTreeMap::new();

/// Most expressions one prefix may hold.
const EXPRESSIONS_MAX: usize = 50;
/// `!{firehose:random-string}` is this many characters of `[0-9a-z]`.
const RANDOM_STRING_LEN: usize = 11;

/// A prefix, parsed: text and expressions in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Prefix {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    /// `!{timestamp:<Java DateTimeFormatter pattern>}`, parsed.
    Timestamp(Vec<Field>),
    /// `!{firehose:random-string}`.
    RandomString,
    /// `!{firehose:error-output-type}` (error output prefixes only).
    ErrorOutputType,
    /// `!{partitionKeyFromQuery:NAME}`: the record's partition key `NAME`;
    /// `!{partitionKeyFromLambda:NAME}`: its key [`lambda_key`]`(NAME)`.
    PartitionKey(String),
}

/// One element of a timestamp pattern: a calendar field at a width, or literal text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Field {
    Year(usize),
    Month(usize),
    Day(usize),
    Hour(usize),
    Minute(usize),
    Second(usize),
    /// Fraction of a second, `S` repeated: that many digits.
    Fraction(usize),
    Literal(String),
}

/// Which prefix is parsed: `!{firehose:error-output-type}` belongs to the error output's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixKind {
    /// The destination's `Prefix`.
    Objects,
    /// The destination's `ErrorOutputPrefix`.
    ErrorOutput,
}

impl Prefix {
    /// Parses `prefix`; each expression is checked (namespace, value, pattern letters).
    pub(crate) fn parse(prefix: &str, kind: PrefixKind) -> Result<Prefix, FirehoseError> {
        let mut parts = Vec::new();
        let mut rest = prefix;
        while let Some(start) = rest.find("!{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let body = &rest[start + 2..];
            let end = body
                .find('}')
                .ok_or_else(|| invalid(prefix, "an expression !{ is not closed by }"))?;
            parts.push(expression(prefix, &body[..end], kind)?);
            rest = &body[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        let expressions = parts.iter().filter(|p| !matches!(p, Part::Text(_))).count();
        if expressions > EXPRESSIONS_MAX {
            return Err(invalid(
                prefix,
                &format!("it holds {expressions} expressions, more than {EXPRESSIONS_MAX}"),
            ));
        }
        Ok(Prefix { parts })
    }

    /// Whether it holds a timestamp expression: one that does not gets `YYYY/MM/DD/HH/`
    /// after it (Firehose appends `!{timestamp:yyyy/MM/dd/HH/}` then).
    pub(crate) fn has_timestamp(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Timestamp(_)))
    }

    /// The partition keys it names.
    pub(crate) fn partition_keys(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::PartitionKey(name) => Some(name.as_str()),
            _ => None,
        })
    }

    /// The prefix at `at_ms` (every timestamp evaluates to that instant), for objects of
    /// the error output type `error_type` and records of partition `keys`.
    pub(crate) fn evaluate(&self, at_ms: u64, error_type: &str, keys: &Keys) -> String {
        let at = utc(at_ms);
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Timestamp(fields) => fields.iter().for_each(|f| f.write(&at, &mut out)),
                Part::RandomString => out.push_str(&random_string()),
                Part::ErrorOutputType => out.push_str(error_type),
                Part::PartitionKey(name) => {
                    out.push_str(keys.get(name).map_or("", String::as_str));
                }
            }
        }
        out
    }
}

/// How a partition key the transform gave is named among a record's keys (beside the
/// query's, which cannot start so: `validate_partitioning` refuses them).
pub(crate) const LAMBDA_KEY_PREFIX: &str = "lambda:";

/// The key a transform's partition key `name` is held under.
pub(crate) fn lambda_key(name: &str) -> String {
    format!("{LAMBDA_KEY_PREFIX}{name}")
}

fn invalid(prefix: &str, why: &str) -> FirehoseError {
    FirehoseError::invalid(format!("Prefix {prefix:?} is not valid: {why}."))
}

fn expression(prefix: &str, body: &str, kind: PrefixKind) -> Result<Part, FirehoseError> {
    let (namespace, value) = body.split_once(':').ok_or_else(|| {
        invalid(
            prefix,
            &format!("!{{{body}}} is not of the form !{{namespace:value}}"),
        )
    })?;
    match (namespace, value) {
        ("timestamp", pattern) => Ok(Part::Timestamp(timestamp_pattern(prefix, pattern)?)),
        ("firehose", "random-string") => Ok(Part::RandomString),
        ("firehose", "error-output-type") if kind == PrefixKind::ErrorOutput => {
            Ok(Part::ErrorOutputType)
        }
        ("firehose", "error-output-type") => Err(invalid(
            prefix,
            "!{firehose:error-output-type} belongs in ErrorOutputPrefix only",
        )),
        ("firehose", other) => Err(invalid(
            prefix,
            &format!(
                "the firehose namespace has random-string and error-output-type, not {other:?}"
            ),
        )),
        ("partitionKeyFromQuery", name) if name.starts_with(LAMBDA_KEY_PREFIX) => Err(invalid(
            prefix,
            &format!("a query's key may not start with {LAMBDA_KEY_PREFIX:?}"),
        )),
        ("partitionKeyFromQuery", name) if kind == PrefixKind::Objects && !name.is_empty() => {
            Ok(Part::PartitionKey(name.to_owned()))
        }
        ("partitionKeyFromQuery", _) => Err(invalid(
            prefix,
            "!{partitionKeyFromQuery:NAME} names a key, in the destination's Prefix only",
        )),
        ("partitionKeyFromLambda", name) if kind == PrefixKind::Objects && !name.is_empty() => {
            Ok(Part::PartitionKey(lambda_key(name)))
        }
        ("partitionKeyFromLambda", _) => Err(invalid(
            prefix,
            "!{partitionKeyFromLambda:NAME} names a key, in the destination's Prefix only",
        )),
        (other, _) => Err(invalid(
            prefix,
            &format!(
                "unknown namespace {other:?} (timestamp, firehose, partitionKeyFromQuery, partitionKeyFromLambda)"
            ),
        )),
    }
}

/// The quoted text starting at `chars[start]` (a quote) into `literal`: `''` alone is a
/// quote, and so is `''` inside quoted text (`'o''clock'`). Returns where the pattern goes
/// on.
fn quoted(
    prefix: &str,
    chars: &[char],
    start: usize,
    literal: &mut String,
) -> Result<usize, FirehoseError> {
    if chars.get(start + 1) == Some(&'\'') {
        literal.push('\'');
        return Ok(start + 2);
    }
    let mut i = start + 1;
    loop {
        match (chars.get(i), chars.get(i + 1)) {
            (Some('\''), Some('\'')) => {
                literal.push('\'');
                i += 2;
            }
            (Some('\''), _) => return Ok(i + 1),
            (Some(&c), _) => {
                literal.push(c);
                i += 1;
            }
            (None, _) => {
                return Err(invalid(
                    prefix,
                    "a quote in a timestamp pattern is not closed",
                ));
            }
        }
    }
}

/// A Java `DateTimeFormatter` pattern: the letters y, M, d, H, m, s and S (a run of one
/// letter is one field; its length is the width), other characters as they are (letters
/// only in quotes: `'T'`; `''` is a quote).
fn timestamp_pattern(prefix: &str, pattern: &str) -> Result<Vec<Field>, FirehoseError> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut fields = Vec::new();
    let mut literal = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            i = quoted(prefix, &chars, i, &mut literal)?;
            continue;
        }
        let run = chars[i..].iter().take_while(|&&r| r == c).count();
        let field = match c {
            'y' | 'u' if run <= 9 => Field::Year(run),
            'M' | 'L' if run <= 2 => Field::Month(run),
            'd' if run <= 2 => Field::Day(run),
            'H' if run <= 2 => Field::Hour(run),
            'm' if run <= 2 => Field::Minute(run),
            's' if run <= 2 => Field::Second(run),
            'S' if run <= 9 => Field::Fraction(run),
            c if c.is_ascii_alphabetic() => {
                return Err(invalid(
                    prefix,
                    &format!(
                        "the timestamp pattern letter {:?} is not supported (y, M, d, H, m, s, S; text in quotes)",
                        c.to_string().repeat(run)
                    ),
                ));
            }
            c => {
                literal.extend(std::iter::repeat_n(c, run));
                i += run;
                continue;
            }
        };
        if !literal.is_empty() {
            fields.push(Field::Literal(std::mem::take(&mut literal)));
        }
        fields.push(field);
        i += run;
    }
    if !literal.is_empty() {
        fields.push(Field::Literal(literal));
    }
    if fields.is_empty() {
        return Err(invalid(prefix, "a timestamp pattern is empty"));
    }
    Ok(fields)
}

impl Field {
    fn write(&self, at: &OffsetDateTime, out: &mut String) {
        use std::fmt::Write;
        let _ = match *self {
            // `yy` is the year's last two digits; any other width pads the whole year.
            Field::Year(2) => write!(out, "{:02}", at.year().rem_euclid(100)),
            Field::Year(w) => write!(out, "{:0w$}", at.year()),
            Field::Month(w) => write!(out, "{:0w$}", u8::from(at.month())),
            Field::Day(w) => write!(out, "{:0w$}", at.day()),
            Field::Hour(w) => write!(out, "{:0w$}", at.hour()),
            Field::Minute(w) => write!(out, "{:0w$}", at.minute()),
            Field::Second(w) => write!(out, "{:0w$}", at.second()),
            Field::Fraction(w) => {
                let nanos = format!("{:09}", at.nanosecond());
                write!(out, "{}", &nanos[..w])
            }
            Field::Literal(ref text) => write!(out, "{text}"),
        };
    }
}

fn utc(at_ms: u64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn random_string() -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes[..RANDOM_STRING_LEN]
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// The key of an object flushed at `now_ms` whose oldest record arrived at `oldest_ms`
/// (`error_type` for `!{firehose:error-output-type}`, in the error output):
/// the prefix evaluated at `oldest_ms` (with `YYYY/MM/DD/HH/` of it after a prefix without
/// a timestamp expression), then the name with the flush's time.
pub(crate) fn object_key(
    prefix: &Prefix,
    error_type: &str,
    keys: &Keys,
    (stream, version): (&str, u64),
    oldest_ms: u64,
    now_ms: u64,
    compression: Compression,
) -> String {
    let mut key = prefix.evaluate(oldest_ms, error_type, keys);
    if !prefix.has_timestamp() {
        let at = utc(oldest_ms);
        let (y, mo, d, h) = (at.year(), u8::from(at.month()), at.day(), at.hour());
        key.push_str(&format!("{y:04}/{mo:02}/{d:02}/{h:02}/"));
    }
    let at = utc(now_ms);
    let (y, mo, d, h) = (at.year(), u8::from(at.month()), at.day(), at.hour());
    let (mi, s) = (at.minute(), at.second());
    let id = uuid::Uuid::new_v4();
    let ext = compression.extension();
    key.push_str(&format!(
        "{stream}-{version}-{y:04}-{mo:02}-{d:02}-{h:02}-{mi:02}-{s:02}-{id}{ext}"
    ));
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-12-05 04:52:07.123 UTC
    const AT: u64 = 1_796_446_327_123;

    fn prefix(text: &str) -> Prefix {
        Prefix::parse(text, PrefixKind::Objects).unwrap()
    }

    #[test]
    fn keys_carry_the_hour_prefix_the_version_and_the_flush_time() {
        let key = object_key(
            &prefix("logs/"),
            "",
            &NO_KEYS,
            ("orders", 3),
            AT,
            AT,
            Compression::Gzip,
        );
        let (head, tail) = key.split_at("logs/2026/12/05/04/orders-3-2026-12-05-04-52-07-".len());
        assert_eq!(head, "logs/2026/12/05/04/orders-3-2026-12-05-04-52-07-");
        let id = tail.strip_suffix(".gz").unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{key}");
        let plain = object_key(
            &prefix(""),
            "",
            &NO_KEYS,
            ("s", 1),
            0,
            0,
            Compression::Uncompressed,
        );
        assert!(
            plain.starts_with("1970/01/01/00/s-1-1970-01-01-00-00-00-"),
            "{plain}"
        );
        assert!(!plain.ends_with(".gz"));
        // The hour directories are the oldest record's; the name is the flush's.
        let later = object_key(
            &prefix(""),
            "",
            &NO_KEYS,
            ("s", 1),
            0,
            AT,
            Compression::Uncompressed,
        );
        assert!(
            later.starts_with("1970/01/01/00/s-1-2026-12-05-04-52-07-"),
            "{later}"
        );
    }

    #[test]
    fn custom_prefixes_evaluate_at_the_oldest_record_and_add_no_hour_directories() {
        let custom = prefix("dt=!{timestamp:yyyy'-'MM'-'dd}/h=!{timestamp:HH}/");
        assert!(custom.has_timestamp());
        let key = object_key(
            &custom,
            "",
            &NO_KEYS,
            ("s", 2),
            AT,
            AT + 3_600_000,
            Compression::Uncompressed,
        );
        assert!(
            key.starts_with("dt=2026-12-05/h=04/s-2-2026-12-05-05-52-07-"),
            "{key}"
        );
        let all = prefix("!{timestamp:yy/M/d/H/m/s/SSS}-x!{timestamp:yyyy-MM-dd''HH}/");
        assert_eq!(
            all.evaluate(AT, "", &NO_KEYS),
            "26/12/5/4/52/7/123-x2026-12-05'04/"
        );
        let random = prefix("r/!{firehose:random-string}/");
        let (a, b) = (
            random.evaluate(AT, "", &NO_KEYS),
            random.evaluate(AT, "", &NO_KEYS),
        );
        assert_eq!(a.len(), "r//".len() + RANDOM_STRING_LEN);
        assert!(a[2..13].chars().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, b);
        let errors =
            Prefix::parse("e/!{firehose:error-output-type}/", PrefixKind::ErrorOutput).unwrap();
        assert_eq!(
            errors.evaluate(AT, "processing-failed", &NO_KEYS),
            "e/processing-failed/"
        );
        assert!(!prefix("plain/").has_timestamp());
        // Without a timestamp the hour directories come after the prefix.
        let random_only = prefix("r/!{firehose:random-string}/");
        assert!(!random_only.has_timestamp());
        let key = object_key(
            &random_only,
            "",
            &NO_KEYS,
            ("s", 1),
            AT,
            AT,
            Compression::Uncompressed,
        );
        assert_eq!(&key[..2], "r/");
        assert_eq!(&key[13..28], "/2026/12/05/04/", "{key}");
        let quoted = prefix("!{timestamp:'o''clock'HH}");
        assert_eq!(quoted.evaluate(AT, "", &NO_KEYS), "o'clock04");
    }

    #[test]
    fn a_bad_expression_is_refused_naming_what_is_wrong() {
        let refused = |text: &str, why: &str| {
            let error = Prefix::parse(text, PrefixKind::Objects)
                .unwrap_err()
                .to_string();
            assert!(error.contains(why), "{text}: {error}");
        };
        refused("a/!{timestamp:yyyy", "not closed");
        refused("!{nope}", "namespace:value");
        refused("!{nope:x}", "unknown namespace");
        refused("!{firehose:error-output-type}", "ErrorOutputPrefix only");
        refused("!{firehose:other}", "random-string and error-output-type");
        refused("!{timestamp:yyyy-EEE}", "\"EEE\" is not supported");
        refused("!{timestamp:yyyy'T}", "not closed");
        refused("!{timestamp:}", "empty");
        refused("!{partitionKeyFromQuery:}", "names a key");
        refused("!{partitionKeyFromLambda:}", "names a key");
        refused("!{partitionKeyFromQuery:lambda:x}", "may not start with");
        let errors = Prefix::parse("e/!{partitionKeyFromQuery:id}/", PrefixKind::ErrorOutput);
        assert!(errors.is_err(), "partition keys belong in the Prefix only");
        let keyed = prefix("t=!{partitionKeyFromQuery:tenant}/");
        assert_eq!(keyed.partition_keys().collect::<Vec<_>>(), ["tenant"]);
        let keys = [("tenant".to_owned(), "acme".to_owned())].into();
        assert_eq!(keyed.evaluate(AT, "", &keys), "t=acme/");
        refused(&"!{timestamp:yyyy}".repeat(51), "more than 50");
        refused(
            &format!("!{{timestamp:{}}}", "y".repeat(10)),
            "not supported",
        );
    }
}
