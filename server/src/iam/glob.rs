//! IAM wildcards: `*` any run of characters, `?` any one character.

/// Whether `text` matches `pattern`; `fold_case` compares ASCII letters without case
/// (actions), else exactly (resources). Allocates nothing when both are ASCII (ARNs and
/// actions are): evaluation runs on every request.
pub fn matches(pattern: &str, text: &str, fold_case: bool) -> bool {
    if pattern.is_ascii() && text.is_ascii() {
        let same = |a: u8, b: u8| a == b || (fold_case && a.eq_ignore_ascii_case(&b));
        return matches_units(pattern.as_bytes(), text.as_bytes(), b'*', b'?', same);
    }
    // `?` is one character, not one byte.
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let same = |a: char, b: char| a == b || (fold_case && a.eq_ignore_ascii_case(&b));
    matches_units(&p, &t, '*', '?', same)
}

/// Classic two-pointer matching with one backtrack point for the last `*`.
fn matches_units<T: Copy + PartialEq>(
    p: &[T],
    t: &[T],
    star_unit: T,
    any_unit: T,
    same: impl Fn(T, T) -> bool,
) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == any_unit || (p[pi] != star_unit && same(p[pi], t[ti]))) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == star_unit {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((star_p, star_t)) = star {
            pi = star_p + 1;
            ti = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == star_unit)
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn wildcards_match_as_iam_documents() {
        assert!(matches("kinesis:Get*", "kinesis:GetRecords", false));
        assert!(matches("kinesis:get*", "kinesis:GetRecords", true));
        assert!(!matches("kinesis:get*", "kinesis:GetRecords", false));
        assert!(matches("*", "", false));
        assert!(matches(
            "arn:aws:kinesis:*:111122223333:stream/orders-?",
            "arn:aws:kinesis:us-east-1:111122223333:stream/orders-1",
            false
        ));
        assert!(!matches(
            "arn:aws:kinesis:*:111122223333:stream/orders-?",
            "arn:aws:kinesis:us-east-1:111122223333:stream/orders-12",
            false
        ));
        assert!(matches("a*b*c", "aXXbYYbc", false));
        assert!(!matches("a*b*c", "aXXbYYb", false));
        assert!(matches(
            "*/consumer/*",
            "arn:x:stream/s/consumer/c:1",
            false
        ));
        assert!(!matches("kinesis:PutRecord", "kinesis:PutRecords", true));
        // Beyond ASCII, `?` is one character.
        assert!(matches("stream/caf?", "stream/café", false));
        assert!(!matches("stream/caf??", "stream/café", false));
    }
}
