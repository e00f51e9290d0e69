//! `RANDOM_CUT_FOREST` in a pump's `FROM` (docs/design/analytics.md, "RANDOM_CUT_FOREST"):
//! `TABLE(RANDOM_CUT_FOREST(CURSOR(SELECT STREAM ...), trees, sample, decay, shingle))` is
//! taken out of the pump's `SELECT`. The cursor's `SELECT` is rewritten on its own, and the
//! outer query reads a stream of the pipeline's making in its place: the cursor's rows with
//! an `ANOMALY_SCORE` column.

use super::{Rewrite, position, refuse_deep, table, with};
use crate::error::{AnalyticsError, Position};
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan};

/// How the streams of a forest's scored rows begin (`RANDOM_CUT_FOREST(<pump>)`): the
/// pipeline's own names, which code may not use.
pub const FOREST_PREFIX: &str = "RANDOM_CUT_FOREST(";

/// The column `RANDOM_CUT_FOREST` adds to its cursor's.
pub const ANOMALY_SCORE: &str = "ANOMALY_SCORE";

/// KDA's table functions not built: refused by name where they are called.
const NOT_BUILT: &[&str] = &["RANDOM_CUT_FOREST_WITH_EXPLANATION"];

/// A pump's `RANDOM_CUT_FOREST`.
#[derive(Debug, Clone)]
pub struct ForestDef {
    /// The cursor's `SELECT`, rewritten for DataFusion (a per-row query).
    pub cursor: Vec<TokenWithSpan>,
    /// The forest's parameters.
    pub options: ForestOptions,
    /// The name the outer query reads the scored rows by.
    pub stream: String,
    /// Where `RANDOM_CUT_FOREST` is.
    pub at: Position,
}

/// `RANDOM_CUT_FOREST`'s parameters, with KDA's defaults and ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForestOptions {
    /// `numberOfTrees`: 1 to 1000, 100 by default.
    pub trees: usize,
    /// `subSampleSize`: points each tree keeps, 10 to 1000, 256 by default.
    pub sample_size: usize,
    /// `timeDecay`: how many recent points weigh in, 1 to 2^31-1, 100,000 by default.
    pub time_decay: u64,
    /// `shingleSize`: consecutive rows scored as one point, 1 to 30, 1 by default.
    pub shingle_size: usize,
}

impl Default for ForestOptions {
    fn default() -> ForestOptions {
        ForestOptions {
            trees: 100,
            sample_size: 256,
            time_decay: 100_000,
            shingle_size: 1,
        }
    }
}

/// The parameters in order: name, least, greatest.
const PARAMETERS: [(&str, u64, u64); 4] = [
    ("numberOfTrees", 1, 1000),
    ("subSampleSize", 10, 1000),
    ("timeDecay", 1, 2_147_483_647),
    ("shingleSize", 1, 30),
];

/// Takes `TABLE(RANDOM_CUT_FOREST(...))` out of a pump's raw `SELECT` tokens: returns the
/// tokens with the call replaced by the name of the scored rows, and the forest. A
/// `SELECT` without it comes back as it is. Table functions not built are refused.
pub(super) fn take_forest(
    select: &[TokenWithSpan],
    pump: &str,
) -> Result<(Vec<TokenWithSpan>, Option<ForestDef>), AnalyticsError> {
    for (i, token) in select.iter().enumerate() {
        if let Token::Word(w) = &token.token
            && NOT_BUILT.iter().any(|name| table::calls(select, i, name))
        {
            return Err(AnalyticsError::code(
                format!("{} is not supported yet", w.value.to_ascii_uppercase()),
                position(token.span.start),
            ));
        }
    }
    let form = |_: &str| {
        "RANDOM_CUT_FOREST is read from as FROM TABLE(RANDOM_CUT_FOREST(CURSOR(SELECT STREAM ...)[, numberOfTrees, subSampleSize, timeDecay, shingleSize]))".to_owned()
    };
    let Some(call) = table::find(select, &["RANDOM_CUT_FOREST"], form)? else {
        return Ok((select.to_vec(), None));
    };
    let at = call.at;
    let options = parameters(call.arguments)?;
    let mut rewrite = Rewrite::default();
    let cursor = rewrite.tokens(call.cursor)?;
    refuse_deep(&cursor, at)?;
    if let Some(at) = rewrite
        .window
        .map(|w| w.at)
        .or(rewrite.sliding.as_ref().map(|s| s.at))
    {
        return Err(AnalyticsError::code(
            "RANDOM_CUT_FOREST's cursor is a per-row query: window its scored rows in another pump",
            at,
        ));
    }
    let more = |tokens: &[TokenWithSpan]| {
        (0..tokens.len()).any(|i| table::calls(tokens, i, "RANDOM_CUT_FOREST"))
    };
    if more(&cursor) || more(call.after()) {
        return Err(AnalyticsError::code(
            "A pump reads one RANDOM_CUT_FOREST",
            at,
        ));
    }
    let stream = format!("{FOREST_PREFIX}{pump})");
    let outer = call.replaced([with(call.here(), Token::make_word(&stream, Some('"')))]);
    Ok((
        outer,
        Some(ForestDef {
            cursor,
            options,
            stream,
            at,
        }),
    ))
}

/// The parameters after the cursor: `, <n>` each, in order, each in its range.
fn parameters(tokens: &[TokenWithSpan]) -> Result<ForestOptions, AnalyticsError> {
    let mut values = Vec::new();
    let mut rest = tokens;
    while let [comma, value, tail @ ..] = rest {
        let (Token::Comma, Token::Number(n, _)) = (&comma.token, &value.token) else {
            break;
        };
        let (name, least, greatest) = *PARAMETERS.get(values.len()).ok_or_else(|| {
            AnalyticsError::code(
                "RANDOM_CUT_FOREST takes at most four numbers after its cursor",
                position(value.span.start),
            )
        })?;
        let n = n
            .parse::<u64>()
            .ok()
            .filter(|n| (least..=greatest).contains(n))
            .ok_or_else(|| {
                AnalyticsError::code(
                    format!("RANDOM_CUT_FOREST's {name} is a whole number from {least} to {greatest}, not {n}"),
                    position(value.span.start),
                )
            })?;
        values.push(n);
        rest = tail;
    }
    if let Some(token) = rest.first() {
        return Err(AnalyticsError::code(
            format!(
                "RANDOM_CUT_FOREST's parameters are whole numbers after the cursor, found {}",
                token.token
            ),
            position(token.span.start),
        ));
    }
    let mut options = ForestOptions::default();
    for (i, n) in values.into_iter().enumerate() {
        match i {
            0 => options.trees = n as usize,
            1 => options.sample_size = n as usize,
            2 => options.time_decay = n,
            _ => options.shingle_size = n as usize,
        }
    }
    Ok(options)
}
