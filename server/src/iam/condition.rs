//! Condition blocks: `{"Operator": {"key": value-or-values}}`, with the keys this server
//! knows about a request.

use super::policy::{PolicyError, strings};
use super::{Request, glob};
use serde_json::Value;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    StringEquals { fold: bool },
    StringLike,
    Bool,
    IpAddress,
    Numeric(Ordering),
    Date(Ordering),
    Null,
}

/// How a number or a date compares with a condition's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ordering {
    Equals,
    LessThan,
    LessThanEquals,
    GreaterThan,
    GreaterThanEquals,
}

impl Ordering {
    fn holds(self, actual: f64, value: f64) -> bool {
        match self {
            Ordering::Equals => actual == value,
            Ordering::LessThan => actual < value,
            Ordering::LessThanEquals => actual <= value,
            Ordering::GreaterThan => actual > value,
            Ordering::GreaterThanEquals => actual >= value,
        }
    }
}

/// One operator on one key.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Condition {
    operator: Operator,
    /// `StringNotEquals`, `NotIpAddress`...: true when no value matches.
    negated: bool,
    /// `...IfExists`: true when the key is absent.
    if_exists: bool,
    /// Lowercase: condition keys compare without case.
    key: String,
    values: Vec<String>,
}

fn error(message: impl Into<String>) -> PolicyError {
    PolicyError(message.into())
}

fn operator(name: &str) -> Option<(Operator, bool)> {
    use Ordering::*;
    let ordering = |rest: &str| match rest {
        "Equals" => Some((Equals, false)),
        "NotEquals" => Some((Equals, true)),
        "LessThan" => Some((LessThan, false)),
        "LessThanEquals" => Some((LessThanEquals, false)),
        "GreaterThan" => Some((GreaterThan, false)),
        "GreaterThanEquals" => Some((GreaterThanEquals, false)),
        _ => None,
    };
    Some(match name {
        "StringEquals" => (Operator::StringEquals { fold: false }, false),
        "StringNotEquals" => (Operator::StringEquals { fold: false }, true),
        "StringEqualsIgnoreCase" => (Operator::StringEquals { fold: true }, false),
        "StringNotEqualsIgnoreCase" => (Operator::StringEquals { fold: true }, true),
        "StringLike" => (Operator::StringLike, false),
        "StringNotLike" => (Operator::StringLike, true),
        "Bool" => (Operator::Bool, false),
        "IpAddress" => (Operator::IpAddress, false),
        "NotIpAddress" => (Operator::IpAddress, true),
        "Null" => (Operator::Null, false),
        _ => {
            if let Some(rest) = name.strip_prefix("Numeric") {
                let (ordering, negated) = ordering(rest)?;
                (Operator::Numeric(ordering), negated)
            } else {
                let (ordering, negated) = ordering(name.strip_prefix("Date")?)?;
                (Operator::Date(ordering), negated)
            }
        }
    })
}

impl Condition {
    /// A statement's `Condition` block.
    pub(super) fn parse_block(block: &Value) -> Result<Vec<Condition>, PolicyError> {
        let block = block
            .as_object()
            .ok_or_else(|| error("Condition must be an object of operators."))?;
        let mut conditions = Vec::new();
        for (name, keys) in block {
            let (base, if_exists) = match name.strip_suffix("IfExists") {
                Some(base) => (base, true),
                None => (name.as_str(), false),
            };
            let (operator, negated) = operator(base)
                .ok_or_else(|| error(format!("Unsupported condition operator {name}.")))?;
            let keys = keys
                .as_object()
                .ok_or_else(|| error(format!("{name} must be an object of condition keys.")))?;
            for (key, values) in keys {
                let values = match values {
                    Value::Bool(b) => vec![b.to_string()],
                    Value::Number(n) => vec![n.to_string()],
                    other => strings(other, key)?,
                };
                let condition = Condition {
                    operator,
                    negated,
                    if_exists,
                    key: key.to_ascii_lowercase(),
                    values,
                };
                condition.check_values()?;
                conditions.push(condition);
            }
        }
        Ok(conditions)
    }

    /// Values that can never match are refused when the policy is read.
    fn check_values(&self) -> Result<(), PolicyError> {
        for value in &self.values {
            let ok = match self.operator {
                Operator::IpAddress => parse_cidr(value).is_some(),
                Operator::Numeric(_) => value.parse::<f64>().is_ok(),
                Operator::Date(_) => parse_date(value).is_some(),
                Operator::Bool | Operator::Null => matches!(value.as_str(), "true" | "false"),
                Operator::StringEquals { .. } | Operator::StringLike => true,
            };
            if !ok {
                return Err(error(format!(
                    "{value:?} is not a valid value for condition key {}.",
                    self.key
                )));
            }
        }
        Ok(())
    }

    /// Whether the condition holds for `request`.
    pub(super) fn holds(&self, request: &Request<'_>) -> bool {
        let actual = context_value(&self.key, request);
        if self.operator == Operator::Null {
            let absent = actual.is_none();
            return self.values.iter().any(|v| (v == "true") == absent);
        }
        let Some(actual) = actual else {
            return self.if_exists || self.negated;
        };
        let any = self.values.iter().any(|value| self.matches(&actual, value));
        any != self.negated
    }

    fn matches(&self, actual: &str, value: &str) -> bool {
        match self.operator {
            Operator::StringEquals { fold: false } => actual == value,
            Operator::StringEquals { fold: true } => actual.eq_ignore_ascii_case(value),
            Operator::StringLike => glob::matches(value, actual, false),
            Operator::Bool => actual.eq_ignore_ascii_case(value),
            Operator::IpAddress => match (actual.parse::<IpAddr>(), parse_cidr(value)) {
                (Ok(ip), Some(cidr)) => in_cidr(ip, cidr),
                _ => false,
            },
            Operator::Numeric(ordering) => match (actual.parse(), value.parse()) {
                (Ok(a), Ok(v)) => ordering.holds(a, v),
                _ => false,
            },
            Operator::Date(ordering) => match (parse_date(actual), parse_date(value)) {
                (Some(a), Some(v)) => ordering.holds(a, v),
                _ => false,
            },
            Operator::Null => unreachable!("handled in holds"),
        }
    }
}

/// The value of a condition key for `request`; `None` when the request has none.
fn context_value(key: &str, request: &Request<'_>) -> Option<String> {
    let epoch_s = || {
        request
            .now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    };
    match key {
        "aws:sourceip" => request.source_ip.map(|ip| ip.to_string()),
        "aws:securetransport" => Some(request.secure_transport.to_string()),
        "aws:currenttime" => Some(humantime::format_rfc3339_seconds(request.now).to_string()),
        "aws:epochtime" => Some(epoch_s().to_string()),
        "aws:principalaccount" => Some(request.principal.account.clone()),
        "aws:principalarn" => Some(request.principal.arn()),
        "aws:username" => Some(request.principal.user.clone()),
        "aws:requestedregion" => Some(request.region.to_owned()),
        _ => None,
    }
}

/// Seconds since the epoch of an ISO 8601 date or an epoch-seconds number.
fn parse_date(text: &str) -> Option<f64> {
    if let Ok(seconds) = text.parse::<f64>() {
        return Some(seconds);
    }
    let time: SystemTime = humantime::parse_rfc3339_weak(text.trim_end_matches('Z'))
        .ok()
        .or_else(|| humantime::parse_rfc3339(text).ok())?;
    Some(time.duration_since(UNIX_EPOCH).ok()?.as_secs_f64())
}

/// `10.0.0.0/8`, `2001:db8::/32` or a single address.
fn parse_cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (address, bits) = match text.split_once('/') {
        Some((address, bits)) => (address, Some(bits.parse::<u8>().ok()?)),
        None => (text, None),
    };
    let address: IpAddr = address.parse().ok()?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    (bits <= max).then_some((address, bits))
}

fn in_cidr(ip: IpAddr, (network, bits): (IpAddr, u8)) -> bool {
    let prefix = |value: u128, width: u32| match bits {
        0 => 0,
        b => value >> (width - u32::from(b)),
    };
    match (ip, network) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            prefix(u128::from(u32::from(a)), 32) == prefix(u128::from(u32::from(n)), 32)
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => prefix(u128::from(a), 128) == prefix(u128::from(n), 128),
        // An IPv4 client on a dual-stack socket.
        (IpAddr::V6(a), IpAddr::V4(_)) => a
            .to_ipv4_mapped()
            .is_some_and(|a| in_cidr(IpAddr::V4(a), (network, bits))),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::Principal;
    use super::*;
    use std::time::Duration;

    fn request(principal: &Principal, ip: &str, secure: bool) -> Request<'static> {
        let principal: &'static Principal = Box::leak(Box::new(principal.clone()));
        Request {
            action: "kinesis:PutRecord",
            resource: "arn:aws:kinesis:us-east-1:111122223333:stream/s",
            principal,
            source_ip: Some(ip.parse().unwrap()),
            secure_transport: secure,
            now: UNIX_EPOCH + Duration::from_secs(1_796_000_000),
            region: "us-east-1",
        }
    }

    fn holds(block: &str, request: &Request<'_>) -> bool {
        let block: Value = serde_json::from_str(block).unwrap();
        Condition::parse_block(&block)
            .unwrap()
            .iter()
            .all(|c| c.holds(request))
    }

    #[test]
    fn conditions_compare_the_request_as_iam_does() {
        let me = Principal {
            account: "111122223333".into(),
            user: "AKID".into(),
        };
        let r = request(&me, "10.1.2.3", false);
        assert!(holds(
            r#"{"IpAddress": {"aws:SourceIp": ["192.168.0.0/16", "10.0.0.0/8"]}}"#,
            &r
        ));
        assert!(!holds(
            r#"{"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}"#,
            &r
        ));
        assert!(holds(r#"{"Bool": {"aws:SecureTransport": "false"}}"#, &r));
        assert!(!holds(r#"{"Bool": {"aws:SecureTransport": true}}"#, &r));
        assert!(holds(
            r#"{"StringEquals": {"aws:PrincipalAccount": "111122223333"}}"#,
            &r
        ));
        assert!(holds(
            r#"{"StringLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/AK*"}}"#,
            &r
        ));
        assert!(holds(
            r#"{"StringEqualsIgnoreCase": {"aws:RequestedRegion": "US-EAST-1"}}"#,
            &r
        ));
        assert!(holds(
            r#"{"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}"#,
            &r
        ));
        assert!(!holds(
            r#"{"DateGreaterThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}"#,
            &r
        ));
        assert!(holds(
            r#"{"NumericGreaterThan": {"aws:EpochTime": 1700000000}}"#,
            &r
        ));
        // Keys the request does not have: only IfExists, negated forms and Null match.
        assert!(!holds(
            r#"{"StringEquals": {"aws:SourceVpc": "vpc-1"}}"#,
            &r
        ));
        assert!(holds(
            r#"{"StringEqualsIfExists": {"aws:SourceVpc": "vpc-1"}}"#,
            &r
        ));
        assert!(holds(
            r#"{"StringNotEquals": {"aws:SourceVpc": "vpc-1"}}"#,
            &r
        ));
        assert!(holds(r#"{"Null": {"aws:SourceVpc": "true"}}"#, &r));
        // Operators AND, values OR.
        assert!(!holds(
            r#"{"Bool": {"aws:SecureTransport": "false"}, "IpAddress": {"aws:SourceIp": "192.168.0.0/16"}}"#,
            &r
        ));
        assert!(holds(
            r#"{"IpAddress": {"aws:SourceIp": "::/0"}}"#,
            &request(&me, "::1", true)
        ));
    }

    #[test]
    fn unusable_conditions_are_refused_when_read() {
        for bad in [
            r#"{"StringMaybe": {"aws:SourceIp": "x"}}"#,
            r#"{"IpAddress": {"aws:SourceIp": "10.0.0.0/33"}}"#,
            r#"{"NumericLessThan": {"aws:EpochTime": "soon"}}"#,
            r#"{"DateLessThan": {"aws:CurrentTime": "tomorrow"}}"#,
            r#"{"Bool": {"aws:SecureTransport": "yes"}}"#,
            r#"["StringEquals"]"#,
        ] {
            let block: Value = serde_json::from_str(bad).unwrap();
            assert!(Condition::parse_block(&block).is_err(), "{bad}");
        }
    }
}
