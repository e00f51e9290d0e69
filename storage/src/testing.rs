//! What Sluice's tests share (the `testing` feature): deterministic keys and payloads for
//! tests, benches and `sluice bench`, and the check a test makes for the tools it needs.
//!
//! Keys and payloads: The same seed gives the same bytes on every run and machine: a failing run
//! replays from its seed, and a reader checks what a writer wrote by generating it again.
//!
//! The storage fixtures (storage/tests/fixtures) hold these bytes: [`payload`] and [`key`]
//! must not change, or `the_format_matches_the_checked_in_fixture_byte_for_byte` fails.

/// A small seeded generator: xorshift64 (Marsaglia's 13/7/17 triple). Fast and good enough
/// to vary test data and pick test actions; not for anything that must be unpredictable.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value; the state is never 0).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0) has no value to give");
        self.next_u64() % n
    }

    /// Fills `out`, one step per byte (the low byte of each value).
    pub fn fill(&mut self, out: &mut [u8]) {
        for byte in out {
            *byte = self.next_u64() as u8;
        }
    }
}

/// `len` bytes for `seed`, the same on every call; a longer payload of a seed extends a
/// shorter one, and a few thousand bytes hold every byte value.
pub fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut data = vec![0; len];
    Rng::new(seed).fill(&mut data);
    data
}

/// The partition key of record `n`: `key-{n}`.
pub fn key(n: u64) -> String {
    format!("key-{n}")
}

/// The one opt-out for tests that need what a machine may lack (root, a compiler, a client
/// tool). CI never sets it.
pub const ALLOW_SKIP: &str = "SLUICE_ALLOW_SKIP";

/// Whether a test that needs `what` may go on: `present` says the machine has it. When it
/// does not, the test fails, saying what is missing and `how` to get it, unless
/// `SLUICE_ALLOW_SKIP=1` is set: then it prints that it is skipped, and the caller returns.
pub fn needs(present: bool, what: &str, how: &str) -> bool {
    if present {
        return true;
    }
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("this test");
    if std::env::var_os(ALLOW_SKIP).is_some_and(|v| v == "1") {
        eprintln!("{test}: skipped, it needs {what} ({ALLOW_SKIP}=1)");
        return false;
    }
    panic!(
        "{test} needs {what}: {how}. ({ALLOW_SKIP}=1 skips such tests instead; CI never sets it.)"
    );
}

/// Whether `program args` runs here and exits 0.
pub fn runs(program: &str, args: &[&str]) -> bool {
    std::process::Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_of_a_seed_is_pinned() {
        // What the checked-in storage fixtures and the benches' filler hold.
        assert_eq!(
            payload(0, 8),
            [0x41, 0x41, 0x29, 0x25, 0x65, 0x01, 0x71, 0x0D]
        );
        assert_eq!(payload(1, 4), [0xAD, 0x76, 0x36, 0x74]);
        assert_eq!(key(7), "key-7");
    }

    #[test]
    fn a_longer_payload_extends_a_shorter_one_of_the_same_seed() {
        assert_eq!(payload(9, 1000)[..300], payload(9, 300)[..]);
        assert_ne!(payload(9, 300), payload(10, 300));
    }

    #[test]
    fn a_payload_of_a_few_thousand_bytes_holds_every_byte_value() {
        let data = payload(3, 4096);
        let mut seen = [false; 256];
        data.iter().for_each(|&b| seen[usize::from(b)] = true);
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn below_stays_below_its_bound() {
        let mut rng = Rng::new(42);
        assert!((0..1000).all(|_| rng.below(7) < 7));
    }
}
