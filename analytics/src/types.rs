//! KDA's SQL types (`VARCHAR(n)`, `INTEGER`, `DOUBLE`, `TIMESTAMP`, ...) as Arrow types, for
//! input schemas and `CREATE OR REPLACE STREAM` columns.

use crate::error::AnalyticsError;
use datafusion::arrow::datatypes::{DataType, TimeUnit};

/// The Arrow type of a KDA SQL type (`VARCHAR(4)`, `DECIMAL(8,2)`, `DOUBLE`, ...); case
/// does not matter.
pub fn sql_type(text: &str) -> Result<DataType, AnalyticsError> {
    let compact: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_uppercase();
    let (base, arguments) = match compact.split_once('(') {
        Some((base, rest)) => {
            let arguments = rest.strip_suffix(')').ok_or_else(|| unknown(text))?;
            (base.trim(), Some(arguments))
        }
        None => (compact.as_str(), None),
    };
    let numbers: Vec<u32> = match arguments {
        Some(arguments) => arguments
            .split(',')
            .map(|n| n.trim().parse().map_err(|_| unknown(text)))
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    let plain = |t: DataType| {
        if numbers.is_empty() {
            Ok(t)
        } else {
            Err(unknown(text))
        }
    };
    match base {
        "VARCHAR" | "CHAR" | "CHARACTER" | "CHARACTER VARYING" if numbers.len() <= 1 => {
            Ok(DataType::Utf8)
        }
        "TINYINT" => plain(DataType::Int8),
        "SMALLINT" => plain(DataType::Int16),
        "INTEGER" | "INT" => plain(DataType::Int32),
        "BIGINT" => plain(DataType::Int64),
        "REAL" => plain(DataType::Float32),
        "DOUBLE" | "DOUBLE PRECISION" | "FLOAT" => plain(DataType::Float64),
        "BOOLEAN" => plain(DataType::Boolean),
        "DATE" => plain(DataType::Date32),
        "TIMESTAMP" => plain(DataType::Timestamp(TimeUnit::Millisecond, None)),
        "DECIMAL" | "NUMERIC" => match numbers[..] {
            [] => Ok(DataType::Decimal128(38, 10)),
            [p] if (1..=38).contains(&p) => Ok(DataType::Decimal128(p as u8, 0)),
            [p, s] if (1..=38).contains(&p) && s <= p => Ok(DataType::Decimal128(p as u8, s as i8)),
            _ => Err(unknown(text)),
        },
        _ => Err(unknown(text)),
    }
}

fn unknown(text: &str) -> AnalyticsError {
    AnalyticsError::invalid(format!(
        "SQL type {text:?} is not one this server knows (VARCHAR(n), CHAR(n), TINYINT, SMALLINT, INTEGER, BIGINT, REAL, DOUBLE, DECIMAL(p,s), BOOLEAN, DATE, TIMESTAMP)."
    ))
}

/// `ROWTIME`'s type: milliseconds since the epoch, UTC.
pub fn rowtime_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kda_types_map_to_arrow_types() {
        assert_eq!(sql_type("varchar(4)").unwrap(), DataType::Utf8);
        assert_eq!(sql_type("DOUBLE").unwrap(), DataType::Float64);
        assert_eq!(sql_type("INTEGER").unwrap(), DataType::Int32);
        assert_eq!(
            sql_type("DECIMAL(8, 2)").unwrap(),
            DataType::Decimal128(8, 2)
        );
        assert_eq!(sql_type("TIMESTAMP").unwrap(), rowtime_type());
        for bad in [
            "VARCHAR(x)",
            "INTEGER(3)",
            "DECIMAL(50,2)",
            "BLOB",
            "DOUBLE(",
        ] {
            assert!(sql_type(bad).is_err(), "{bad}");
        }
    }
}
