//! Schema discovery (KDA's `DiscoverInputSchema`): a sample of a stream's records, and the
//! input schema they fit. JSON objects give a column per scalar member (nested members by
//! their path: `$.trade.price` is `TRADE_PRICE`); anything else is read as comma-separated
//! values (`COL1`, `COL2`, ...). JSON columns come in the order of their paths. Names are
//! upper-cased so unquoted SQL names them; types are
//! the narrowest that every sampled value fits.

use crate::error::AnalyticsError;
use crate::schema::{InputSchema, RecordColumn, RecordFormat};
use serde_json::Value;
use sluice_core::{ReadError, Stream};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Records sampled at most.
const SAMPLE_RECORDS: usize = 100;
/// Columns a discovered schema has at most (KDA's limit).
const COLUMNS_MAX: usize = 1000;
/// Bytes of records sampled at most.
const SAMPLE_BYTES_MAX: usize = 8 << 20;
/// How long a sample from now waits for records.
const WAIT_FOR_RECORDS: Duration = Duration::from_secs(2);

/// A sample and the schema found for it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Discovered {
    /// The schema.
    pub schema: InputSchema,
    /// Each record's values, as text, in column order.
    pub parsed: Vec<Vec<String>>,
    /// The records, as text.
    pub raw: Vec<String>,
}

/// Samples `stream` (its oldest records, or those put within two seconds from now) and
/// finds the schema they fit.
pub async fn discover(stream: &Stream, from_now: bool) -> Result<Discovered, AnalyticsError> {
    let read_failed =
        |e: ReadError| AnalyticsError::execution(&format!("read {}", stream.name()), e);
    let mut reader = match from_now {
        true => stream.reader_after(&stream.ends().map_err(read_failed)?),
        false => stream.reader(),
    }
    .map_err(read_failed)?;
    let deadline = Instant::now() + WAIT_FOR_RECORDS;
    let mut raw = Vec::new();
    let mut empty_reads = 0;
    let mut sealed = 0;
    while raw.len() < SAMPLE_RECORDS
        && raw.iter().map(String::len).sum::<usize>() < SAMPLE_BYTES_MAX
    {
        match reader.read(Some(SAMPLE_RECORDS - raw.len())) {
            Ok(Some(read)) => {
                empty_reads = if read.records.is_empty() {
                    empty_reads + 1
                } else {
                    0
                };
                for record in read.records.records() {
                    if record.encrypted {
                        sealed += 1;
                    } else {
                        raw.push(String::from_utf8_lossy(record.data).into_owned());
                    }
                }
            }
            Ok(None) => break,
            Err(ReadError::Throttled { .. }) => empty_reads += 1,
            Err(e) => return Err(read_failed(e)),
        }
        let idle = empty_reads >= reader.active_shards().len().max(1);
        if idle && (!from_now || Instant::now() >= deadline) {
            break;
        }
        if idle {
            empty_reads = 0;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    if raw.is_empty() {
        return Err(nothing_to_sample(stream, sealed));
    }
    let (schema, parsed) = schema_of(&raw, stream.name())?;
    Ok(Discovered {
        schema,
        parsed,
        raw,
    })
}

fn nothing_to_sample(stream: &Stream, sealed: usize) -> AnalyticsError {
    let why = if sealed > 0 {
        format!("its {sealed} records are encrypted (KMS), which discovery does not open")
    } else {
        "it has no records".to_owned()
    };
    AnalyticsError::invalid(format!(
        "No schema can be discovered from stream {}: {why}.",
        stream.name()
    ))
}

/// The schema a sample fits, and its values by column.
fn schema_of(
    raw: &[String],
    stream: &str,
) -> Result<(InputSchema, Vec<Vec<String>>), AnalyticsError> {
    let parsed: Vec<Option<serde_json::Map<String, Value>>> = raw
        .iter()
        .map(|r| match serde_json::from_str(r) {
            Ok(Value::Object(object)) => Some(object),
            _ => None,
        })
        .collect();
    let objects = parsed.iter().filter(|o| o.is_some()).count();
    let (schema, parsed) = if objects == parsed.len() {
        json_schema(&parsed.into_iter().flatten().collect::<Vec<_>>())
    } else if objects == 0 {
        csv_schema(raw)
    } else {
        return Err(AnalyticsError::invalid(format!(
            "Of {} records of {stream}, {objects} are JSON objects and the rest are not: no one format fits them.",
            raw.len(),
        )));
    };
    if schema.columns.is_empty() || schema.columns.len() > COLUMNS_MAX {
        return Err(AnalyticsError::invalid(format!(
            "The records of {stream} make {} columns; a schema has 1 to {COLUMNS_MAX}.",
            schema.columns.len()
        )));
    }
    // What was found must be what a create takes.
    schema.arrow_schema()?;
    Ok((schema, parsed))
}

/// What the values of a column were.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Boolean,
    Integer,
    BigInt,
    Double,
    Text,
}

#[derive(Debug, Default)]
struct Column {
    kind: Option<Kind>,
    longest: usize,
}

impl Column {
    fn saw(&mut self, kind: Kind, text: &str) {
        self.longest = self.longest.max(text.chars().count());
        self.kind = Some(match (self.kind, kind) {
            (None, kind) => kind,
            (Some(a), b) if a == b => a,
            (Some(Kind::Boolean), _) | (_, Kind::Boolean) => Kind::Text,
            (Some(a), b) => a.max(b),
        });
    }

    fn sql_type(&self) -> String {
        match self.kind {
            Some(Kind::Boolean) => "BOOLEAN".to_owned(),
            Some(Kind::Integer) => "INTEGER".to_owned(),
            Some(Kind::BigInt) => "BIGINT".to_owned(),
            Some(Kind::Double) => "DOUBLE".to_owned(),
            // As KDA: a power of two at least as long as the longest value seen (at most
            // VARCHAR's 65535).
            _ => format!(
                "VARCHAR({})",
                self.longest.max(1).next_power_of_two().clamp(4, 65_535)
            ),
        }
    }
}

fn kind_of_number(text: &str) -> Kind {
    match text.parse::<i64>() {
        Ok(n) if i32::try_from(n).is_ok() => Kind::Integer,
        Ok(_) => Kind::BigInt,
        Err(_) if text.parse::<f64>().is_ok_and(f64::is_finite) => Kind::Double,
        Err(_) => Kind::Text,
    }
}

/// Scalar members by path (in the order of their names: serde_json's maps are sorted).
fn flatten(object: &serde_json::Map<String, Value>, path: &str, out: &mut Vec<(String, Value)>) {
    for (name, value) in object {
        let plain = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '$');
        let here = if plain {
            format!("{path}.{name}")
        } else if !name.contains("\"]") {
            format!("{path}[\"{name}\"]")
        } else {
            continue;
        };
        match value {
            Value::Object(inner) => flatten(inner, &here, out),
            Value::Array(_) | Value::Null => {}
            scalar => out.push((here, scalar.clone())),
        }
    }
}

fn column_name(path: &str) -> String {
    let name: String = path
        .trim_start_matches('$')
        .chars()
        .filter(|c| !matches!(c, '[' | ']' | '"'))
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    name.trim_start_matches('_').to_owned()
}

/// Column names made unique, none `ROWTIME` (the stream's own), none empty: a clash gets
/// `_2`, `_3`, ...
fn unique_names(names: Vec<String>) -> Vec<String> {
    let mut taken = std::collections::BTreeSet::from([crate::schema::ROWTIME.to_owned()]);
    names
        .into_iter()
        .map(|name| {
            let base = if name.is_empty() {
                "COL".to_owned()
            } else {
                name
            };
            let mut candidate = base.clone();
            let mut n = 1;
            while taken.contains(&candidate) {
                n += 1;
                candidate = format!("{base}_{n}");
            }
            taken.insert(candidate.clone());
            candidate
        })
        .collect()
}

fn json_schema(objects: &[serde_json::Map<String, Value>]) -> (InputSchema, Vec<Vec<String>>) {
    let mut order: Vec<String> = Vec::new();
    let mut columns: BTreeMap<String, Column> = BTreeMap::new();
    let mut rows = Vec::with_capacity(objects.len());
    for object in objects {
        let mut members = Vec::new();
        flatten(object, "$", &mut members);
        let mut row = BTreeMap::new();
        for (path, value) in members {
            let text = match &value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let kind = match &value {
                Value::Bool(_) => Kind::Boolean,
                Value::Number(_) => kind_of_number(&text),
                _ => Kind::Text,
            };
            if !columns.contains_key(&path) {
                order.push(path.clone());
            }
            columns.entry(path.clone()).or_default().saw(kind, &text);
            row.insert(path, text);
        }
        rows.push(row);
    }
    let parsed = rows
        .into_iter()
        .map(|row| {
            order
                .iter()
                .map(|p| row.get(p).cloned().unwrap_or_default())
                .collect()
        })
        .collect();
    let names = unique_names(order.iter().map(|p| column_name(p)).collect());
    let columns = order
        .iter()
        .zip(names)
        .map(|(path, name)| RecordColumn {
            name,
            sql_type: columns[path].sql_type(),
            mapping: Some(path.clone()),
        })
        .collect();
    (
        InputSchema {
            columns,
            format: RecordFormat::Json,
        },
        parsed,
    )
}

fn csv_schema(raw: &[String]) -> (InputSchema, Vec<Vec<String>>) {
    let parsed: Vec<Vec<String>> = raw
        .iter()
        .flat_map(|record| record.split('\n'))
        .filter(|line| !line.is_empty())
        .map(|line| line.split(',').map(str::to_owned).collect())
        .collect();
    let width = parsed.iter().map(Vec::len).max().unwrap_or(0);
    let mut columns: Vec<Column> = (0..width).map(|_| Column::default()).collect();
    for row in &parsed {
        for (column, value) in columns.iter_mut().zip(row) {
            let kind = match value.as_str() {
                "true" | "false" => Kind::Boolean,
                text => kind_of_number(text),
            };
            column.saw(kind, value);
        }
    }
    let columns = columns
        .iter()
        .enumerate()
        .map(|(i, column)| RecordColumn {
            name: format!("COL{}", i + 1),
            sql_type: column.sql_type(),
            mapping: None,
        })
        .collect();
    (
        InputSchema {
            columns,
            format: RecordFormat::Csv {
                row_delimiter: "\n".to_owned(),
                column_delimiter: ",".to_owned(),
            },
        },
        parsed,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(records: &[&str]) -> Vec<serde_json::Map<String, Value>> {
        records
            .iter()
            .map(|r| serde_json::from_str(r).unwrap())
            .collect()
    }

    #[test]
    fn json_members_become_columns_of_the_narrowest_type_every_value_fits() {
        let (schema, parsed) = json_schema(&objects(&[
            r#"{"ticker":"AMZN","price":84.5,"count":3,"big":1,"ok":true,"trade":{"venue":"X"}}"#,
            r#"{"ticker":"NVDA","price":90,"count":4,"big":9000000000,"ok":false,"trade":{"venue":"NASDAQ"}}"#,
        ]));
        let columns: Vec<(&str, &str, &str)> = schema
            .columns
            .iter()
            .map(|c| {
                (
                    c.name.as_str(),
                    c.sql_type.as_str(),
                    c.mapping.as_deref().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            columns,
            [
                ("BIG", "BIGINT", "$.big"),
                ("COUNT", "INTEGER", "$.count"),
                ("OK", "BOOLEAN", "$.ok"),
                ("PRICE", "DOUBLE", "$.price"),
                ("TICKER", "VARCHAR(4)", "$.ticker"),
                ("TRADE_VENUE", "VARCHAR(8)", "$.trade.venue"),
            ]
        );
        assert_eq!(
            parsed[1],
            ["9000000000", "4", "false", "90", "NVDA", "NASDAQ"]
        );
        // The schema it found decodes the records.
        schema.arrow_schema().unwrap();
    }

    #[test]
    fn odd_member_names_get_paths_and_columns_a_create_takes() {
        let (schema, _) = json_schema(&objects(&[
            r#"{"a.b":1,"a_b":2,"rowtime":3,"price":4,"Price":5,"x\"]":6}"#,
        ]));
        let columns: Vec<(&str, &str)> = schema
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.mapping.as_deref().unwrap()))
            .collect();
        assert_eq!(
            columns,
            [
                ("PRICE", "$.Price"),
                ("A_B", "$[\"a.b\"]"),
                ("A_B_2", "$.a_b"),
                ("PRICE_2", "$.price"),
                ("ROWTIME_2", "$.rowtime"),
            ]
        );
        schema.arrow_schema().unwrap();
    }

    #[test]
    fn other_records_are_read_as_comma_separated_values() {
        let raw = ["AMZN,84.5,3".to_owned(), "NVDA,90,x".to_owned()];
        let (schema, parsed) = csv_schema(&raw);
        let types: Vec<&str> = schema.columns.iter().map(|c| c.sql_type.as_str()).collect();
        assert_eq!(types, ["VARCHAR(4)", "DOUBLE", "VARCHAR(4)"]);
        assert_eq!(schema.columns[0].name, "COL1");
        assert_eq!(parsed[1], ["NVDA", "90", "x"]);
    }
}
