//! The 128-bit hash key space: partition-key hashing, ranges, even splits. Pure.

use md5::{Digest, Md5};

/// The largest hash key, 2^128 − 1.
pub const HASH_KEY_MAX: u128 = u128::MAX;

/// The hash key of a partition key: MD5 of its UTF-8 bytes, read as a big-endian integer.
pub fn partition_key_hash(partition_key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into())
}

/// Why an explicit hash key was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKeyError {
    /// Not a decimal matching `0|([1-9]\d{0,38})` (a request validation error); the text as
    /// given, cut to 64 characters.
    Malformed(String),
    /// A well-formed decimal above 2^128 − 1.
    OutOfRange(String),
}

impl HashKeyError {
    /// The stable code: a malformed key breaks the request's shape, a key out of range is a
    /// bad value.
    pub fn code(&self) -> crate::ErrorCode {
        match self {
            HashKeyError::Malformed(_) => crate::ErrorCode::Validation,
            HashKeyError::OutOfRange(_) => crate::ErrorCode::InvalidArgument,
        }
    }
}

impl std::fmt::Display for HashKeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HashKeyError::Malformed(text) => {
                write!(f, "hash key {text:?} is not a decimal of 1 to 39 digits")
            }
            HashKeyError::OutOfRange(text) => {
                write!(f, "hash key {text} is outside 0..={HASH_KEY_MAX}")
            }
        }
    }
}

impl std::error::Error for HashKeyError {}

/// Parses an explicit hash key: a decimal matching `0|([1-9]\d{0,38})` within 0..=2^128−1.
pub fn parse_hash_key(text: &str) -> Result<u128, HashKeyError> {
    let shape_ok = !text.is_empty()
        && text.len() <= 39
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if !shape_ok {
        return Err(HashKeyError::Malformed(text.chars().take(64).collect()));
    }
    parse_decimal_u128(text).ok_or_else(|| HashKeyError::OutOfRange(text.to_owned()))
}

/// Powers of ten up to 10^19.
const POW10: [u128; 20] = {
    let mut table = [1u128; 20];
    let mut i = 1;
    while i < table.len() {
        table[i] = table[i - 1] * 10;
        i += 1;
    }
    table
};

/// Parses up to 39 ASCII digits (checked by the caller) into a u128, `None` on overflow.
/// Nineteen digits at a time in a u64, so a 39-digit key costs three u128 multiplications
/// rather than thirty-nine (this runs once per record on the put path). Up to 38 digits
/// cannot overflow (10^38 < 2^128), so only 39-digit keys pay for checked arithmetic.
fn parse_decimal_u128(digits: &str) -> Option<u128> {
    let may_overflow = digits.len() >= 39;
    let mut value: u128 = 0;
    for chunk in digits.as_bytes().chunks(19) {
        let part = chunk
            .iter()
            .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
        let scale = POW10[chunk.len()];
        value = if may_overflow {
            value.checked_mul(scale)?.checked_add(u128::from(part))?
        } else {
            value * scale + u128::from(part)
        };
    }
    Some(value)
}

/// An inclusive range of hash keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashKeyRange {
    /// First key in the range.
    pub start: u128,
    /// Last key in the range (inclusive).
    pub end: u128,
}

impl HashKeyRange {
    /// The whole key space.
    pub const ALL: HashKeyRange = HashKeyRange {
        start: 0,
        end: HASH_KEY_MAX,
    };

    /// True when `key` lies in the range.
    pub fn contains(&self, key: u128) -> bool {
        self.start <= key && key <= self.end
    }

    /// Splits the key space into `n` ranges the way Kinesis does at stream creation: range *i*
    /// is `[i·⌊2^128/n⌋, (i+1)·⌊2^128/n⌋ − 1]` and the last one ends at 2^128 − 1.
    pub fn even_split(n: u32) -> Vec<HashKeyRange> {
        assert!(n > 0, "a stream has at least one shard");
        if n == 1 {
            return vec![HashKeyRange::ALL];
        }
        // ⌊2^128/n⌋ computed without 2^128: (2^128 − 1)/n, plus one when n divides 2^128.
        let step = HASH_KEY_MAX / u128::from(n)
            + u128::from(HASH_KEY_MAX % u128::from(n) == u128::from(n) - 1);
        (0..u128::from(n))
            .map(|i| HashKeyRange {
                start: i * step,
                end: if i + 1 == u128::from(n) {
                    HASH_KEY_MAX
                } else {
                    (i + 1) * step - 1
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_split_of_two_halves_the_space_exactly() {
        let halves = HashKeyRange::even_split(2);
        assert_eq!(halves[0].end, (1u128 << 127) - 1);
        assert_eq!(halves[1].start, 1u128 << 127);
        assert_eq!(halves[1].end, u128::MAX);
    }

    #[test]
    fn even_split_is_contiguous_for_awkward_counts() {
        for n in [1u32, 3, 5, 7, 10, 11, 1000] {
            let ranges = HashKeyRange::even_split(n);
            assert_eq!(ranges.len(), n as usize);
            assert_eq!(ranges[0].start, 0);
            assert_eq!(ranges.last().unwrap().end, u128::MAX);
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].end + 1, pair[1].start, "n = {n}");
            }
            // Kinesis' rule: every range but the last is ⌊2^128/n⌋ keys wide; the last takes
            // the remainder (fewer than n extra keys).
            let width = |r: &HashKeyRange| r.end - r.start;
            let first = width(&ranges[0]);
            assert!(ranges[..ranges.len() - 1].iter().all(|r| width(r) == first));
            let extra = width(ranges.last().unwrap()) - first;
            assert!(extra < u128::from(n), "n = {n}: last range too wide");
        }
    }

    #[test]
    fn chunked_decimal_parsing_agrees_with_std() {
        let mut x: u128 = 1;
        for _ in 0..200 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407)
                ^ (x >> 7);
            let text = x.to_string();
            assert_eq!(parse_decimal_u128(&text), Some(x), "{text}");
        }
        for text in ["0", "9", "1000000000000000000", "10000000000000000000"] {
            assert_eq!(parse_decimal_u128(text), text.parse::<u128>().ok());
        }
        assert_eq!(parse_decimal_u128(&u128::MAX.to_string()), Some(u128::MAX));
        assert_eq!(
            parse_decimal_u128("340282366920938463463374607431768211456"),
            None
        );
        assert_eq!(
            parse_decimal_u128("999999999999999999999999999999999999999"),
            None
        );
    }

    #[test]
    fn hash_key_text_must_be_a_canonical_decimal_in_range() {
        assert_eq!(parse_hash_key("0"), Ok(0));
        assert_eq!(parse_hash_key(&u128::MAX.to_string()), Ok(u128::MAX));
        for bad in [
            "",
            "01",
            "-1",
            "1.0",
            " 1",
            "1234567890123456789012345678901234567890",
        ] {
            assert!(
                matches!(parse_hash_key(bad), Err(HashKeyError::Malformed(_))),
                "{bad:?}"
            );
        }
        let above = "340282366920938463463374607431768211456";
        assert_eq!(
            parse_hash_key(above),
            Err(HashKeyError::OutOfRange(above.into()))
        );
    }
}
