//! The stable numeric codes shared by every error area, the C ABI and the server.

/// Stable numeric codes. `0` is success in the C ABI and never an error here. The kinds
/// follow Kinesis' error kinds one to one, so a wire layer can name each after its
/// exception; the engine's own conditions (shutdown, a damaged metadata log) come after
/// them. A code is never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The stream, shard or consumer does not exist.
    ResourceNotFound = 1,
    /// The resource exists already, or is not in a state that allows the call.
    ResourceInUse = 2,
    /// A value is not acceptable (bad key, record too large, unknown sequence number...).
    InvalidArgument = 3,
    /// A quota would be exceeded (shards, tags...).
    LimitExceeded = 4,
    /// The shard's throughput limit was hit; retry later.
    ProvisionedThroughputExceeded = 5,
    /// The shard iterator is older than its lifetime.
    ExpiredIterator = 6,
    /// A pagination token is older than its lifetime.
    ExpiredNextToken = 7,
    /// The request does not satisfy the API's constraints.
    Validation = 8,
    /// The engine failed (I/O error, latched shard, corrupt data).
    InternalFailure = 9,
    /// The engine is shutting down or gone.
    EngineShutdown = 10,
    /// The engine did not open: its metadata log is damaged before its end (not a torn
    /// write) and was left as found, for a deliberate repair (`sluice repair-metadata`).
    MetadataDamaged = 11,
}

impl ErrorCode {
    /// The code's name, as the variant is spelled (`"ResourceNotFound"`).
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::ResourceNotFound => "ResourceNotFound",
            ErrorCode::ResourceInUse => "ResourceInUse",
            ErrorCode::InvalidArgument => "InvalidArgument",
            ErrorCode::LimitExceeded => "LimitExceeded",
            ErrorCode::ProvisionedThroughputExceeded => "ProvisionedThroughputExceeded",
            ErrorCode::ExpiredIterator => "ExpiredIterator",
            ErrorCode::ExpiredNextToken => "ExpiredNextToken",
            ErrorCode::Validation => "Validation",
            ErrorCode::InternalFailure => "InternalFailure",
            ErrorCode::EngineShutdown => "EngineShutdown",
            ErrorCode::MetadataDamaged => "MetadataDamaged",
        }
    }

    /// The numeric value shared with the C ABI.
    pub fn as_u32(self) -> u32 {
        self as u32
    }

    /// Every code, for tables and tests.
    pub const ALL: [ErrorCode; 11] = [
        ErrorCode::ResourceNotFound,
        ErrorCode::ResourceInUse,
        ErrorCode::InvalidArgument,
        ErrorCode::LimitExceeded,
        ErrorCode::ProvisionedThroughputExceeded,
        ErrorCode::ExpiredIterator,
        ErrorCode::ExpiredNextToken,
        ErrorCode::Validation,
        ErrorCode::InternalFailure,
        ErrorCode::EngineShutdown,
        ErrorCode::MetadataDamaged,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_distinct() {
        let values: Vec<u32> = ErrorCode::ALL.iter().map(|c| c.as_u32()).collect();
        assert_eq!(values, (1..=11).collect::<Vec<u32>>());
        assert_eq!(
            ErrorCode::ProvisionedThroughputExceeded.name(),
            "ProvisionedThroughputExceeded"
        );
    }
}
