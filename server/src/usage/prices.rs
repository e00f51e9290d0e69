//! A price table the user supplies, turning usage into a cost estimate.

use super::{USAGE_TYPES, UsageLine};
use std::collections::BTreeMap;

/// Prices per usage type.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceTable {
    /// `USD`, or whatever the table says.
    pub currency: String,
    /// Price of one unit of each usage type.
    per_unit: BTreeMap<String, f64>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default = "usd")]
    currency: String,
    prices: BTreeMap<String, Price>,
}

fn usd() -> String {
    "USD".to_owned()
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Price {
    PerUnit(f64),
    Per {
        price: f64,
        #[serde(default = "one")]
        per: f64,
    },
}

fn one() -> f64 {
    1.0
}

impl PriceTable {
    /// Reads a table: `{"currency": "USD", "prices": {"Kinesis:ShardHour": 0.015,
    /// "Kinesis:PutRequestPayloadUnits": {"price": 0.014, "per": 1000000}}}`. Unknown usage
    /// types and negative prices are refused, naming them.
    pub fn parse(text: &str) -> Result<PriceTable, String> {
        let file: File = serde_json::from_str(text).map_err(|e| format!("the price table: {e}"))?;
        let mut per_unit = BTreeMap::new();
        for (usage, price) in file.prices {
            if !USAGE_TYPES.iter().any(|u| u.name == usage) {
                let known: Vec<&str> = USAGE_TYPES.iter().map(|u| u.name).collect();
                return Err(format!(
                    "the price table names {usage:?}, which is not a usage type (they are: {})",
                    known.join(", ")
                ));
            }
            let (price, per) = match price {
                Price::PerUnit(price) => (price, 1.0),
                Price::Per { price, per } => (price, per),
            };
            if !(price.is_finite() && price >= 0.0 && per.is_finite() && per > 0.0) {
                return Err(format!(
                    "the price of {usage} must be a price of 0 or more per a positive quantity"
                ));
            }
            per_unit.insert(usage, price / per);
        }
        Ok(PriceTable {
            currency: file.currency,
            per_unit,
        })
    }

    /// The cost of a line, or `None` when the table has no price for its usage type.
    pub fn cost(&self, line: &UsageLine) -> Option<f64> {
        self.per_unit
            .get(line.usage_type)
            .map(|price| price * line.quantity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_per_unit_or_per_million_and_refusals() {
        let table = PriceTable::parse(
            r#"{"prices": {"Kinesis:ShardHour": 0.015,
                "Kinesis:PutRequestPayloadUnits": {"price": 0.014, "per": 1000000}}}"#,
        )
        .unwrap();
        let line = |usage_type, quantity| UsageLine {
            account: "a".into(),
            region: "r".into(),
            resource: "stream/s".into(),
            usage_type,
            quantity,
            unit: "",
        };
        assert_eq!(table.currency, "USD");
        assert!((table.cost(&line("Kinesis:ShardHour", 3.0)).unwrap() - 0.045).abs() < 1e-12);
        let units = table
            .cost(&line("Kinesis:PutRequestPayloadUnits", 2000.0))
            .unwrap();
        assert!((units - 0.000_028).abs() < 1e-12);
        assert_eq!(table.cost(&line("Firehose:Ingested-GB", 1.0)), None);
        let error = PriceTable::parse(r#"{"prices": {"ShardHours": 1}}"#).unwrap_err();
        assert!(
            error.contains("\"ShardHours\"") && error.contains("Kinesis:ShardHour"),
            "{error}"
        );
        assert!(PriceTable::parse(r#"{"prices": {"Kinesis:ShardHour": -1}}"#).is_err());
        assert!(PriceTable::parse(r#"{"price": {}}"#).is_err());
    }
}
