//! Token buckets for per-shard throughput limits. Pure: time comes in as an argument.

/// A bucket of `capacity` tokens refilled at `rate_per_sec`, starting full (one second of
/// burst, like Kinesis).
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    rate_per_sec: u64,
    /// Tokens, in thousandths, so refills over milliseconds do not round away; negative
    /// after an oversized request (debt).
    milli_tokens: i128,
    last_ms: u64,
}

impl TokenBucket {
    pub(crate) fn new(rate_per_sec: u64, now_ms: u64) -> TokenBucket {
        TokenBucket {
            rate_per_sec,
            milli_tokens: i128::from(rate_per_sec) * 1000,
            last_ms: now_ms,
        }
    }

    fn refill(&mut self, now_ms: u64) {
        let elapsed_ms = now_ms.saturating_sub(self.last_ms);
        self.last_ms = self.last_ms.max(now_ms);
        let capacity = i128::from(self.rate_per_sec) * 1000;
        let added = i128::from(elapsed_ms) * i128::from(self.rate_per_sec);
        self.milli_tokens = (self.milli_tokens + added).min(capacity);
    }

    /// True when `amount` tokens are available now.
    pub(crate) fn has(&mut self, amount: u64, now_ms: u64) -> bool {
        self.refill(now_ms);
        // A request larger than a whole bucket passes when the bucket is full, as Kinesis lets
        // a large record through on its burst allowance.
        let capacity = i128::from(self.rate_per_sec) * 1000;
        let wanted = (i128::from(amount) * 1000).min(capacity);
        self.milli_tokens >= wanted
    }

    /// Takes `amount` tokens; may go into debt, which later refills pay back.
    pub(crate) fn take(&mut self, amount: u64, now_ms: u64) {
        self.refill(now_ms);
        self.milli_tokens -= i128::from(amount) * 1000;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_rate_per_second_then_refuses_until_refilled() {
        let mut bucket = TokenBucket::new(5, 0);
        for _ in 0..5 {
            assert!(bucket.has(1, 0));
            bucket.take(1, 0);
        }
        assert!(!bucket.has(1, 0));
        assert!(!bucket.has(1, 199));
        assert!(bucket.has(1, 200));
    }

    #[test]
    fn an_oversized_request_passes_only_on_a_full_bucket() {
        let mut bucket = TokenBucket::new(1000, 0);
        assert!(bucket.has(5000, 0));
        bucket.take(5000, 0);
        assert!(!bucket.has(1, 3000));
        assert!(bucket.has(1000, 5000));
    }
}
