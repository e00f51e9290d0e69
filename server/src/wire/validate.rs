//! The model's constraints, reported the way Kinesis (Coral) does: every violation at once,
//! `2 validation errors detected: Value null at 'streamName' failed to satisfy constraint:
//! Member must not be null; ...`.

use crate::wire::ApiError;

/// An input struct that checks its members against the model.
pub trait Validate {
    /// Records every violation in `v`.
    fn validate(&self, v: &mut Validator);
}

/// Collects violations.
#[derive(Debug, Default)]
pub struct Validator {
    errors: Vec<String>,
}

/// Stream and consumer names.
pub const NAME_PATTERN: &str = "[a-zA-Z0-9_.-]+";
/// Hash keys.
pub const HASH_KEY_PATTERN: &str = "0|([1-9]\\d{0,38})";
/// Sequence numbers.
pub const SEQUENCE_NUMBER_PATTERN: &str = "0|([1-9]\\d{0,128})";
/// Stream ARNs.
pub const STREAM_ARN_PATTERN: &str = "arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+";

impl Validator {
    fn fail(&mut self, value: Option<&str>, member: &str, constraint: &str) {
        let value = match value {
            Some(value) => format!("'{value}'"),
            None => "null".to_owned(),
        };
        self.errors.push(format!(
            "Value {value} at '{member}' failed to satisfy constraint: Member must {constraint}"
        ));
    }

    /// `Ok` when nothing failed, else the ValidationException.
    pub fn finish(self) -> Result<(), ApiError> {
        match self.errors.len() {
            0 => Ok(()),
            1 => Err(ApiError::validation(format!(
                "1 validation error detected: {}",
                self.errors[0]
            ))),
            n => Err(ApiError::validation(format!(
                "{n} validation errors detected: {}",
                self.errors.join("; ")
            ))),
        }
    }

    /// A required member.
    pub fn required<T>(&mut self, member: &str, value: &Option<T>) {
        if value.is_none() {
            self.fail(None, member, "not be null");
        }
    }

    /// A string's length in characters.
    pub fn length(&mut self, member: &str, value: &Option<String>, min: usize, max: usize) {
        if let Some(text) = value {
            let chars = text.chars().count();
            if chars < min {
                self.fail(
                    Some(text),
                    member,
                    &format!("have length greater than or equal to {min}"),
                );
            } else if chars > max {
                self.fail(
                    Some(text),
                    member,
                    &format!("have length less than or equal to {max}"),
                );
            }
        }
    }

    /// A stream or consumer name: 1..=128 characters of `[a-zA-Z0-9_.-]`.
    pub fn name(&mut self, member: &str, value: &Option<String>) {
        self.length(member, value, 1, 128);
        if let Some(text) = value {
            let ok = text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
            if !ok && !text.is_empty() {
                self.pattern_failed(member, text, NAME_PATTERN);
            }
        }
    }

    /// A decimal number without leading zeros and with at most `digits_max` digits.
    pub fn decimal(
        &mut self,
        member: &str,
        value: &Option<String>,
        digits_max: usize,
        pattern: &str,
    ) {
        if let Some(text) = value {
            let digits = text.bytes().all(|b| b.is_ascii_digit());
            let ok = digits
                && !text.is_empty()
                && text.len() <= digits_max
                && (text == "0" || !text.starts_with('0'));
            if !ok {
                self.pattern_failed(member, text, pattern);
            }
        }
    }

    /// A stream ARN: `arn:aws…:kinesis:…:<12 digits>:stream/<name>`.
    pub fn stream_arn(&mut self, member: &str, value: &Option<String>) {
        self.length(member, value, 1, 2048);
        if let Some(text) = value
            && crate::arn::StreamArn::parse(text).is_none()
            && !text.is_empty()
        {
            self.pattern_failed(member, text, STREAM_ARN_PATTERN);
        }
    }

    /// StreamName and StreamARN (at least one must resolve; the service checks that).
    pub fn stream(&mut self, name: &Option<String>, arn: &Option<String>) {
        self.name("streamName", name);
        self.stream_arn("streamARN", arn);
    }

    /// A value that does not match the model's pattern.
    pub fn pattern_failed(&mut self, member: &str, value: &str, pattern: &str) {
        self.fail(
            Some(value),
            member,
            &format!("satisfy regular expression pattern: {pattern}"),
        );
    }

    /// An integer range.
    pub fn range(&mut self, member: &str, value: Option<i64>, min: Option<i64>, max: Option<i64>) {
        if let Some(number) = value {
            let text = number.to_string();
            if let Some(min) = min.filter(|&min| number < min) {
                self.fail(
                    Some(&text),
                    member,
                    &format!("have value greater than or equal to {min}"),
                );
            } else if let Some(max) = max.filter(|&max| number > max) {
                self.fail(
                    Some(&text),
                    member,
                    &format!("have value less than or equal to {max}"),
                );
            }
        }
    }

    /// An enum member.
    pub fn one_of(&mut self, member: &str, value: &Option<String>, allowed: &[&str]) {
        if let Some(text) = value
            && !allowed.contains(&text.as_str())
        {
            self.fail(
                Some(text),
                member,
                &format!("satisfy enum value set: [{}]", allowed.join(", ")),
            );
        }
    }

    /// A list's or map's size.
    pub fn size(&mut self, member: &str, len: Option<usize>, min: usize, max: usize) {
        if let Some(len) = len {
            let text = format!("{len} items");
            if len < min {
                self.fail(
                    Some(&text),
                    member,
                    &format!("have length greater than or equal to {min}"),
                );
            } else if len > max {
                self.fail(
                    Some(&text),
                    member,
                    &format!("have length less than or equal to {max}"),
                );
            }
        }
    }

    /// A blob's size.
    pub fn blob_size(&mut self, member: &str, len: Option<usize>, max: usize) {
        if let Some(len) = len.filter(|&len| len > max) {
            self.fail(
                Some(&format!(
                    "java.nio.HeapByteBuffer[pos=0 lim={len} cap={len}]"
                )),
                member,
                &format!("have length less than or equal to {max}"),
            );
        }
    }
}
