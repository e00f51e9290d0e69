//! Records into the in-application input stream: each record's fields, by the input schema,
//! as one Arrow row with the record's arrival as `ROWTIME`. A record that does not fit the
//! schema is not a row: it goes to the error stream, with why.

use crate::error::AnalyticsError;
use crate::extract::{Extractor, Step};
use crate::schema::{InputSchema, RecordFormat};
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder, Float64Builder,
    Int8Builder, Int16Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMillisecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use serde_json::Value;
use std::sync::Arc;

/// A record that did not fit the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// When it arrived (ms since the epoch).
    pub arrival_ms: u64,
    /// Why.
    pub message: String,
    /// The record, as text (lossy UTF-8).
    pub data: String,
}

/// A JSONPath of member names and array indexes: `$.a.b`, `$.a[0].b`, `$["a b"]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JsonPath(Vec<Step>);

impl JsonPath {
    pub(crate) fn parse(text: &str) -> Result<JsonPath, AnalyticsError> {
        let bad = || {
            AnalyticsError::invalid(format!(
                "Mapping {text:?} is not a JSONPath this server reads ($.member, $.member[index], $[\"member\"])."
            ))
        };
        let mut rest = text.strip_prefix('$').ok_or_else(bad)?;
        let mut steps = Vec::new();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('.') {
                let end = after.find(['.', '[']).unwrap_or(after.len());
                if end == 0 {
                    return Err(bad());
                }
                steps.push(Step::Member(after[..end].to_owned()));
                rest = &after[end..];
            } else if let Some(after) = rest.strip_prefix("[\"") {
                let end = after.find("\"]").ok_or_else(bad)?;
                steps.push(Step::Member(after[..end].to_owned()));
                rest = &after[end + 2..];
            } else if let Some(after) = rest.strip_prefix('[') {
                let end = after.find(']').ok_or_else(bad)?;
                steps.push(Step::Index(after[..end].parse().map_err(|_| bad())?));
                rest = &after[end + 1..];
            } else {
                return Err(bad());
            }
        }
        Ok(JsonPath(steps))
    }
}

/// One field's value, converted to its column's type (atomic per record: a record's cells
/// are all made before any is appended).
enum Cell {
    Null,
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Millis(i64),
    Days(i32),
    Decimal(i128),
}

/// Decodes records by an input schema.
pub struct Decoder {
    schema: SchemaRef,
    types: Vec<DataType>,
    /// The columns' JSONPaths, read in one pass.
    extractor: Extractor,
    format: RecordFormat,
}

impl Decoder {
    /// A decoder for `input`.
    pub fn new(input: &InputSchema) -> Result<Decoder, AnalyticsError> {
        let schema = input.arrow_schema()?;
        let paths: Vec<JsonPath> = input
            .columns
            .iter()
            .map(|c| match &c.mapping {
                Some(mapping) => JsonPath::parse(mapping),
                None => Ok(JsonPath(vec![Step::Member(c.name.clone())])),
            })
            .collect::<Result<_, _>>()?;
        Ok(Decoder {
            schema,
            types: input.types()?,
            extractor: Extractor::new(paths.iter().map(|p| p.0.as_slice())),
            format: input.format.clone(),
        })
    }

    /// The in-application input stream's schema.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The rows of `records` (data, arrival in ms), and the records that did not fit.
    pub fn decode<'a>(
        &self,
        records: impl IntoIterator<Item = (&'a [u8], u64)>,
    ) -> Result<(RecordBatch, Vec<Rejected>), AnalyticsError> {
        let mut rows: Vec<(u64, Vec<Cell>)> = Vec::new();
        let mut rejected = Vec::new();
        for (data, arrival_ms) in records {
            match self.cells(data) {
                Ok(cells) => rows.extend(cells.into_iter().map(|row| (arrival_ms, row))),
                Err(message) => rejected.push(Rejected {
                    arrival_ms,
                    message,
                    data: String::from_utf8_lossy(data).into_owned(),
                }),
            }
        }
        Ok((self.batch(rows)?, rejected))
    }

    /// The rows of one record (a CSV record may hold several).
    fn cells(&self, data: &[u8]) -> Result<Vec<Vec<Cell>>, String> {
        let text = std::str::from_utf8(data).map_err(|_| "The record is not UTF-8.".to_owned())?;
        match &self.format {
            RecordFormat::Json => {
                let values = self
                    .extractor
                    .extract(text)
                    .map_err(|e| format!("The record is not JSON: {e}"))?;
                let cells = values
                    .into_iter()
                    .zip(&self.types)
                    .map(|(value, kind)| json_cell(value, kind))
                    .collect::<Result<_, _>>()?;
                Ok(vec![cells])
            }
            RecordFormat::Csv {
                row_delimiter,
                column_delimiter,
            } => text
                .split(row_delimiter.as_str())
                .filter(|row| !row.is_empty())
                .map(|row| {
                    let fields: Vec<&str> = row.split(column_delimiter.as_str()).collect();
                    if fields.len() != self.types.len() {
                        return Err(format!(
                            "The row has {} fields; the schema has {} columns.",
                            fields.len(),
                            self.types.len()
                        ));
                    }
                    fields
                        .iter()
                        .zip(&self.types)
                        .map(|(field, kind)| text_cell(field, kind))
                        .collect()
                })
                .collect(),
        }
    }

    fn batch(&self, rows: Vec<(u64, Vec<Cell>)>) -> Result<RecordBatch, AnalyticsError> {
        let mut rowtime = TimestampMillisecondBuilder::with_capacity(rows.len());
        let mut columns: Vec<Column> = self
            .types
            .iter()
            .map(|t| Column::new(t, rows.len()))
            .collect();
        for (arrival, cells) in rows {
            rowtime.append_value(arrival as i64);
            for (column, cell) in columns.iter_mut().zip(cells) {
                column.append(cell);
            }
        }
        let mut arrays: Vec<ArrayRef> = vec![Arc::new(rowtime.finish())];
        arrays.extend(columns.into_iter().map(Column::finish));
        RecordBatch::try_new(self.schema.clone(), arrays)
            .map_err(|e| AnalyticsError::execution("decode records", e))
    }
}

/// A JSON value as a cell of `kind`.
fn json_cell(value: Option<Value>, kind: &DataType) -> Result<Cell, String> {
    match value {
        None | Some(Value::Null) => Ok(Cell::Null),
        Some(Value::String(text)) if *kind == DataType::Utf8 => Ok(Cell::Text(text)),
        Some(Value::String(text)) => text_cell(&text, kind),
        Some(Value::Bool(b)) if *kind == DataType::Boolean => Ok(Cell::Bool(b)),
        // Numbers straight to their types (not through text) where nothing is lost.
        Some(Value::Number(n)) if n.is_i64() && is_integer(kind) => {
            let value = n.as_i64().expect("an i64");
            integer_cell(value, kind)
                .ok_or_else(|| format!("{:?} is not a value of type {kind}.", n.to_string()))
        }
        Some(Value::Number(n)) if matches!(kind, DataType::Float32 | DataType::Float64) => {
            Ok(Cell::Float(n.as_f64().expect("a JSON number is an f64")))
        }
        Some(value @ (Value::Number(_) | Value::Bool(_))) => text_cell(&value.to_string(), kind),
        Some(other) => match kind {
            DataType::Utf8 => Ok(Cell::Text(other.to_string())),
            _ => Err(format!("{other} is not a value of type {kind}.")),
        },
    }
}

fn is_integer(kind: &DataType) -> bool {
    matches!(
        kind,
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64
    )
}

/// An integer as a cell of the integer type `kind`, if it fits.
fn integer_cell(value: i64, kind: &DataType) -> Option<Cell> {
    let fits = match kind {
        DataType::Int8 => i8::try_from(value).is_ok(),
        DataType::Int16 => i16::try_from(value).is_ok(),
        DataType::Int32 => i32::try_from(value).is_ok(),
        _ => true,
    };
    fits.then_some(Cell::Int(value))
}

/// Text as a cell of `kind`.
fn text_cell(text: &str, kind: &DataType) -> Result<Cell, String> {
    let wrong = || format!("{text:?} is not a value of type {kind}.");
    let trimmed = text.trim();
    Ok(match kind {
        DataType::Utf8 => Cell::Text(text.to_owned()),
        _ if is_integer(kind) => {
            let value: i64 = trimmed.parse().map_err(|_| wrong())?;
            integer_cell(value, kind).ok_or_else(wrong)?
        }
        DataType::Float32 | DataType::Float64 => Cell::Float(trimmed.parse().map_err(|_| wrong())?),
        DataType::Boolean => match trimmed.to_ascii_lowercase().as_str() {
            "true" => Cell::Bool(true),
            "false" => Cell::Bool(false),
            _ => return Err(wrong()),
        },
        DataType::Timestamp(..) => Cell::Millis(timestamp_ms(trimmed).ok_or_else(wrong)?),
        DataType::Date32 => Cell::Days(date_days(trimmed).ok_or_else(wrong)?),
        DataType::Decimal128(precision, scale) => {
            let value = decimal(trimmed, *scale).ok_or_else(wrong)?;
            if value.unsigned_abs() >= 10u128.pow(u32::from(*precision)) {
                return Err(format!(
                    "{text:?} has more digits than DECIMAL({precision},{scale}) holds."
                ));
            }
            Cell::Decimal(value)
        }
        _ => return Err(wrong()),
    })
}

/// `yyyy-MM-dd HH:mm:ss[.SSS]` (or with `T`), or milliseconds since the epoch.
fn timestamp_ms(text: &str) -> Option<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Some(ms);
    }
    let (date, time) = text.split_once([' ', 'T'])?;
    let days = i64::from(date_days(date)?);
    let time = time.trim_end_matches('Z');
    let (hms, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut parts = hms.split(':').map(|p| p.parse::<u32>().ok().map(i64::from));
    let (h, m, s) = (
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    );
    if parts.next().is_some() || h > 23 || m > 59 || s > 59 {
        return None;
    }
    let millis = match fraction {
        "" => 0,
        f if f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{f:0<3}")[..3].parse::<i64>().ok()?
        }
        _ => return None,
    };
    Some(((days * 24 + h) * 60 + m) * 60_000 + s * 1000 + millis)
}

/// `yyyy-MM-dd` as days since 1970-01-01 (proleptic Gregorian).
fn date_days(text: &str) -> Option<i32> {
    let mut parts = text.split('-');
    let mut number = || parts.next()?.parse::<u32>().ok().map(i64::from);
    let (y, m, d) = (number()?, number()?, number()?);
    if parts.next().is_some() || !(1..=9999).contains(&y) || !(1..=12).contains(&m) {
        return None;
    }
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days_in_month = match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if !(1..=days_in_month).contains(&d) {
        return None;
    }
    // Howard Hinnant's days-from-civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    i32::try_from(era * 146_097 + doe - 719_468).ok()
}

/// A decimal's text as an integer of `scale` digits after the point (rounded half up).
fn decimal(text: &str, scale: i8) -> Option<i128> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let scale = usize::try_from(scale).ok()?;
    let mut value: i128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    for i in 0..scale {
        let digit = fraction
            .as_bytes()
            .get(i)
            .map_or(0, |b| i128::from(b - b'0'));
        value = value.checked_mul(10)?.checked_add(digit)?;
    }
    if fraction.as_bytes().get(scale).is_some_and(|b| *b >= b'5') {
        value = value.checked_add(1)?;
    }
    Some(if negative { -value } else { value })
}

/// A column being built.
enum Column {
    Text(StringBuilder),
    I8(Int8Builder),
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Bool(BooleanBuilder),
    Millis(TimestampMillisecondBuilder),
    Days(Date32Builder),
    Decimal(Decimal128Builder, DataType),
}

impl Column {
    fn new(kind: &DataType, rows: usize) -> Column {
        match kind {
            DataType::Int8 => Column::I8(Int8Builder::with_capacity(rows)),
            DataType::Int16 => Column::I16(Int16Builder::with_capacity(rows)),
            DataType::Int32 => Column::I32(Int32Builder::with_capacity(rows)),
            DataType::Int64 => Column::I64(Int64Builder::with_capacity(rows)),
            DataType::Float32 => Column::F32(Float32Builder::with_capacity(rows)),
            DataType::Float64 => Column::F64(Float64Builder::with_capacity(rows)),
            DataType::Boolean => Column::Bool(BooleanBuilder::with_capacity(rows)),
            DataType::Timestamp(..) => {
                Column::Millis(TimestampMillisecondBuilder::with_capacity(rows))
            }
            DataType::Date32 => Column::Days(Date32Builder::with_capacity(rows)),
            DataType::Decimal128(..) => {
                Column::Decimal(Decimal128Builder::with_capacity(rows), kind.clone())
            }
            _ => Column::Text(StringBuilder::with_capacity(rows, rows * 8)),
        }
    }

    /// Appends a cell made for this column's type.
    #[allow(clippy::cast_possible_truncation)] // checked in text_cell
    fn append(&mut self, cell: Cell) {
        match (self, cell) {
            (Column::Text(b), Cell::Text(v)) => b.append_value(v),
            (Column::I8(b), Cell::Int(v)) => b.append_value(v as i8),
            (Column::I16(b), Cell::Int(v)) => b.append_value(v as i16),
            (Column::I32(b), Cell::Int(v)) => b.append_value(v as i32),
            (Column::I64(b), Cell::Int(v)) => b.append_value(v),
            (Column::F32(b), Cell::Float(v)) => b.append_value(v as f32),
            (Column::F64(b), Cell::Float(v)) => b.append_value(v),
            (Column::Bool(b), Cell::Bool(v)) => b.append_value(v),
            (Column::Millis(b), Cell::Millis(v)) => b.append_value(v),
            (Column::Days(b), Cell::Days(v)) => b.append_value(v),
            (Column::Decimal(b, _), Cell::Decimal(v)) => b.append_value(v),
            (column, _) => column.append_null(),
        }
    }

    fn append_null(&mut self) {
        match self {
            Column::Text(b) => b.append_null(),
            Column::I8(b) => b.append_null(),
            Column::I16(b) => b.append_null(),
            Column::I32(b) => b.append_null(),
            Column::I64(b) => b.append_null(),
            Column::F32(b) => b.append_null(),
            Column::F64(b) => b.append_null(),
            Column::Bool(b) => b.append_null(),
            Column::Millis(b) => b.append_null(),
            Column::Days(b) => b.append_null(),
            Column::Decimal(b, _) => b.append_null(),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Column::Text(mut b) => Arc::new(b.finish()),
            Column::I8(mut b) => Arc::new(b.finish()),
            Column::I16(mut b) => Arc::new(b.finish()),
            Column::I32(mut b) => Arc::new(b.finish()),
            Column::I64(mut b) => Arc::new(b.finish()),
            Column::F32(mut b) => Arc::new(b.finish()),
            Column::F64(mut b) => Arc::new(b.finish()),
            Column::Bool(mut b) => Arc::new(b.finish()),
            Column::Millis(mut b) => Arc::new(b.finish()),
            Column::Days(mut b) => Arc::new(b.finish()),
            Column::Decimal(mut b, kind) => Arc::new(b.finish().with_data_type(kind)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::RecordColumn;
    use datafusion::arrow::util::pretty::pretty_format_batches;

    fn column(name: &str, sql_type: &str, mapping: Option<&str>) -> RecordColumn {
        RecordColumn {
            name: name.into(),
            sql_type: sql_type.into(),
            mapping: mapping.map(str::to_owned),
        }
    }

    #[test]
    fn json_records_become_rows_and_misfits_are_rejected() {
        let schema = InputSchema {
            columns: vec![
                column("TICKER", "VARCHAR(4)", Some("$.ticker")),
                column("PRICE", "DECIMAL(8,2)", Some("$.trade.price")),
                column("QTY", "INTEGER", Some("$.qty")),
                column("AT", "TIMESTAMP", Some("$.at")),
                column("FIRST_TAG", "VARCHAR(8)", Some("$.tags[0]")),
            ],
            format: RecordFormat::Json,
        };
        let decoder = Decoder::new(&schema).unwrap();
        let records: [(&[u8], u64); 4] = [
            (br#"{"ticker":"AMZN","trade":{"price":12.345},"qty":3,"at":"2026-12-05 10:00:01.5","tags":["a"]}"#, 1000),
            (br#"{"ticker":"QXZ","trade":{"price":"7"},"qty":"4","at":1796464800000}"#, 2000),
            (br#"{"ticker":"BAD","qty":"many"}"#, 3000),
            (b"not json", 4000),
        ];
        let (batch, rejected) = decoder.decode(records).unwrap();
        let shown = pretty_format_batches(&[batch]).unwrap().to_string();
        assert_eq!(
            shown.lines().collect::<Vec<_>>(),
            [
                "+---------------------+--------+-------+-----+-------------------------+-----------+",
                "| ROWTIME             | TICKER | PRICE | QTY | AT                      | FIRST_TAG |",
                "+---------------------+--------+-------+-----+-------------------------+-----------+",
                "| 1970-01-01T00:00:01 | AMZN   | 12.35 | 3   | 2026-12-05T10:00:01.500 | a         |",
                "| 1970-01-01T00:00:02 | QXZ    | 7.00  | 4   | 2026-12-05T10:00:00     |           |",
                "+---------------------+--------+-------+-----+-------------------------+-----------+",
            ]
        );
        assert_eq!(rejected.len(), 2);
        assert!(rejected[0].message.contains("\"many\""), "{rejected:?}");
        assert!(rejected[1].message.contains("not JSON"), "{rejected:?}");
        assert_eq!(
            (rejected[0].arrival_ms, &rejected[1].data[..]),
            (3000, "not json")
        );
    }

    #[test]
    fn csv_records_may_hold_several_rows() {
        let schema = InputSchema {
            columns: vec![column("A", "VARCHAR(8)", None), column("B", "DOUBLE", None)],
            format: RecordFormat::Csv {
                row_delimiter: "\n".into(),
                column_delimiter: "|".into(),
            },
        };
        let decoder = Decoder::new(&schema).unwrap();
        let records: [(&[u8], u64); 2] = [(b"x|1.5\ny|2\n", 10), (b"z|oops\n", 20)];
        let (batch, rejected) = decoder.decode(records).unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(rejected.len(), 1);
    }

    #[test]
    fn paths_dates_and_decimals_parse_as_written() {
        assert!(JsonPath::parse("$.a[0][\"b c\"].d").is_ok());
        for bad in ["a.b", "$..a", "$[x]", "$.a["] {
            assert!(JsonPath::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(date_days("1970-01-01"), Some(0));
        assert_eq!(date_days("2000-03-01"), Some(11_017));
        assert_eq!(timestamp_ms("1970-01-02T00:00:00.25Z"), Some(86_400_250));
        assert_eq!(decimal("-1.005", 2), Some(-101));
        assert_eq!(decimal("12", 2), Some(1200));
        assert_eq!(decimal("1.2.3", 2), None);
        assert_eq!(date_days("2026-02-29"), None);
        assert_eq!(date_days("2024-02-29"), Some(19_782));
        assert_eq!(date_days("99999999999999-01-01"), None);
        assert_eq!(timestamp_ms("2026-01-01 00:-30:00"), None);
        assert!(text_cell("123456.789", &DataType::Decimal128(4, 2)).is_err());
        assert!(text_cell("12.34", &DataType::Decimal128(4, 2)).is_ok());
    }
}
