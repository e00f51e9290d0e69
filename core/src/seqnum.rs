//! Sequence numbers and shard ids as Kinesis clients see them. Pure.

use std::fmt;

/// Decimal digits a client may send in a sequence number: Kinesis' model allows up to 129.
pub const SEQUENCE_NUMBER_DIGITS_MAX: usize = 129;

/// A sequence number: `shard_index << 64 | (log_seq + 1)` for the record at log position
/// `log_seq`. The low half 0 is the shard's starting sequence number, which precedes every
/// record of the shard (as Kinesis' `StartingSequenceNumber` does): "after the start" is a
/// position like any other, so a reader that has seen nothing can still name where it is.
/// Numeric order is write order within a shard, children sort after their parents, and
/// numbers are unique in a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SequenceNumber(pub u128);

impl SequenceNumber {
    /// The number of record `log_seq` in shard `shard_index`.
    pub fn new(shard_index: u32, log_seq: u64) -> SequenceNumber {
        debug_assert!(log_seq < u64::MAX, "log positions stay far below u64::MAX");
        SequenceNumber(u128::from(shard_index) << 64 | (u128::from(log_seq) + 1))
    }

    /// The starting sequence number of shard `shard_index`: below all of its records.
    pub fn shard_start(shard_index: u32) -> SequenceNumber {
        SequenceNumber(u128::from(shard_index) << 64)
    }

    /// The number just below log position `position` of shard `shard_index`: the last
    /// record before it, or the shard's start when `position` is 0 (a closed shard that
    /// never held a record ends there).
    pub fn last_before(shard_index: u32, position: u64) -> SequenceNumber {
        SequenceNumber(u128::from(shard_index) << 64 | u128::from(position))
    }

    /// For a reader's position (`Records::next_position`, a subscription's continuation):
    /// the number just below it, the last record before it or the shard's start. This is
    /// what a consumer checkpoints and resumes AFTER, as KCL does.
    pub fn checkpoint(self) -> SequenceNumber {
        let shard_index = self.shard_index().expect("a position names a shard");
        SequenceNumber::last_before(shard_index, self.log_seq())
    }

    /// The shard the number belongs to, if it names one (the high bits beyond a u32 are zero).
    pub fn shard_index(self) -> Option<u32> {
        u32::try_from(self.0 >> 64).ok()
    }

    /// The log position of the record this number names; `None` for a shard's start.
    pub fn record_log_seq(self) -> Option<u64> {
        (self.0 as u64).checked_sub(1)
    }

    /// The log position a reader starting AT this number reads first (a shard's start
    /// reads from position 0).
    pub fn log_seq(self) -> u64 {
        (self.0 as u64).saturating_sub(1)
    }

    /// The log position just after this number: where a reader starting AFTER it begins,
    /// and where one that has read up to it goes on.
    pub fn position_after(self) -> u64 {
        self.0 as u64
    }

    /// Parses a client's decimal sequence number (up to 129 digits; `0|[1-9]\d*`). A number
    /// too large for any sequence number Sluice issues is an error naming it.
    pub fn parse(text: &str) -> Result<SequenceNumber, SequenceNumberError> {
        let shape_ok = !text.is_empty()
            && text.len() <= SEQUENCE_NUMBER_DIGITS_MAX
            && text.bytes().all(|b| b.is_ascii_digit())
            && (text == "0" || !text.starts_with('0'));
        if !shape_ok {
            return Err(SequenceNumberError::Malformed(text.to_owned()));
        }
        text.parse::<u128>()
            .map(SequenceNumber)
            .map_err(|_| SequenceNumberError::NeverIssued(text.to_owned()))
    }
}

/// Why a client's sequence number was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SequenceNumberError {
    /// Not a decimal of 1 to 129 digits without leading zeros; the text as given.
    Malformed(String),
    /// A decimal larger than any number Sluice issues.
    NeverIssued(String),
}

impl fmt::Display for SequenceNumberError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SequenceNumberError::Malformed(text) => write!(
                f,
                "sequence number {text:?} is not a decimal of 1 to {SEQUENCE_NUMBER_DIGITS_MAX} digits"
            ),
            SequenceNumberError::NeverIssued(text) => {
                write!(f, "sequence number {text} was never issued")
            }
        }
    }
}

impl std::error::Error for SequenceNumberError {}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A shard id held inline (`shardId-` and 12 digits, 20 bytes): `Copy`, no allocation, and
/// usable wherever a `&str` is (it dereferences to one).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId([u8; 20]);

impl ShardId {
    /// The id of shard `index`.
    pub fn new(index: u32) -> ShardId {
        let mut bytes = *b"shardId-000000000000";
        let mut rest = index;
        for slot in bytes[8..].iter_mut().rev() {
            *slot = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        ShardId(bytes)
    }

    /// The shard's index.
    pub fn index(&self) -> u32 {
        parse_shard_id(self).expect("a ShardId is always well formed")
    }
}

impl std::ops::Deref for ShardId {
    type Target = str;

    fn deref(&self) -> &str {
        std::str::from_utf8(&self.0).expect("a ShardId is ASCII")
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

impl fmt::Debug for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl PartialEq<ShardId> for String {
    fn eq(&self, other: &ShardId) -> bool {
        **self == **other
    }
}

impl PartialEq<ShardId> for &str {
    fn eq(&self, other: &ShardId) -> bool {
        **self == **other
    }
}

impl From<ShardId> for String {
    fn from(id: ShardId) -> String {
        id.to_string()
    }
}

impl AsRef<str> for ShardId {
    fn as_ref(&self) -> &str {
        self
    }
}

impl PartialEq<str> for ShardId {
    fn eq(&self, other: &str) -> bool {
        **self == *other
    }
}

impl PartialEq<&str> for ShardId {
    fn eq(&self, other: &&str) -> bool {
        **self == **other
    }
}

impl PartialEq<String> for ShardId {
    fn eq(&self, other: &String) -> bool {
        **self == **other
    }
}

/// The index in a shard id (`shardId-000000000007` → 7). Also accepts the bare
/// `shardId-7` form some clients build by hand.
pub fn parse_shard_id(text: &str) -> Option<u32> {
    let digits = text.strip_prefix("shardId-")?;
    if digits.is_empty() || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_order_by_shard_then_position() {
        let a = SequenceNumber::new(0, u64::MAX - 1);
        let start = SequenceNumber::shard_start(1);
        let b = SequenceNumber::new(1, 0);
        assert!(a < start && start < b);
        assert_eq!((b.shard_index(), start.shard_index()), (Some(1), Some(1)));
        assert_eq!(a.log_seq(), u64::MAX - 1);
        assert_eq!(SequenceNumber::parse(&b.to_string()), Ok(b));
    }

    #[test]
    fn a_shards_start_precedes_its_first_record() {
        let start = SequenceNumber::shard_start(3);
        assert_eq!(start.record_log_seq(), None, "the start names no record");
        assert_eq!((start.log_seq(), start.position_after()), (0, 0));
        let fifth = SequenceNumber::new(3, 4);
        assert_eq!(fifth.record_log_seq(), Some(4));
        assert_eq!((fifth.log_seq(), fifth.position_after()), (4, 5));
        assert_eq!(SequenceNumber(fifth.0 - 1), SequenceNumber::new(3, 3));
        assert_eq!(SequenceNumber::last_before(3, 4), SequenceNumber::new(3, 3));
        assert_eq!(SequenceNumber::last_before(3, 0), start);
        assert_eq!(SequenceNumber::new(3, 0).checkpoint(), start);
        assert_eq!(fifth.checkpoint(), SequenceNumber::new(3, 3));
    }

    #[test]
    fn sequence_number_text_is_checked_without_overflow() {
        assert!(SequenceNumber::parse(&"9".repeat(129)).is_err());
        assert!(SequenceNumber::parse(&"9".repeat(130)).is_err());
        assert!(SequenceNumber::parse("007").is_err());
        assert!(SequenceNumber::parse("").is_err());
        assert!(SequenceNumber::parse("12a").is_err());
        assert_eq!(SequenceNumber::parse("0"), Ok(SequenceNumber(0)));
        // Too large for a shard index: parses, but names no shard.
        assert_eq!(SequenceNumber(u128::MAX).shard_index(), None);
    }

    #[test]
    fn inline_shard_ids_match_the_formatted_ones() {
        for index in [0, 7, 123_456, u32::MAX] {
            let id = ShardId::new(index);
            assert_eq!(&*id, format!("shardId-{index:012}"));
            assert_eq!(id.index(), index);
        }
    }

    #[test]
    fn shard_ids_round_trip() {
        assert_eq!(ShardId::new(7), "shardId-000000000007");
        assert_eq!(parse_shard_id("shardId-000000000007"), Some(7));
        assert_eq!(parse_shard_id("shardId-7"), Some(7));
        for bad in [
            "7",
            "shardId-",
            "shardId-x",
            "shardId-0000000000001",
            "shard-1",
        ] {
            assert_eq!(parse_shard_id(bad), None, "{bad}");
        }
    }
}
