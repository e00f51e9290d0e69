//! KDA's tumbling table functions, `TOP_K_ITEMS_TUMBLING(CURSOR(...), 'column', K,
//! windowSeconds)` and `COUNT_DISTINCT_ITEMS_TUMBLING(CURSOR(...), 'column',
//! windowSeconds)` (docs/design/analytics.md, "Tumbling table functions"): written as the
//! tumbling `GROUP BY` they mean, a derived table in the pump's `FROM`, before the rewrite.
//! KDA approximates both; these are exact, which their definitions allow.

use super::table::{self, TableCall};
use super::{is_word, position, top_level_word, with};
use crate::error::AnalyticsError;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan};

/// The count column of `TOP_K_ITEMS_TUMBLING`'s rows (after the item).
pub const ITEM_COUNT: &str = "ITEM_COUNT";
/// `COUNT_DISTINCT_ITEMS_TUMBLING`'s one column.
pub const NUMBER_OF_DISTINCT_ITEMS: &str = "NUMBER_OF_DISTINCT_ITEMS";

const FUNCTIONS: [&str; 2] = ["TOP_K_ITEMS_TUMBLING", "COUNT_DISTINCT_ITEMS_TUMBLING"];

/// `select` with a `FROM TABLE(<function>(...))` written as its `GROUP BY`; `select` as it
/// is when it calls neither function.
pub(super) fn expand(select: &[TokenWithSpan]) -> Result<Vec<TokenWithSpan>, AnalyticsError> {
    let form = |name: &str| {
        if name == FUNCTIONS[0] {
            "TOP_K_ITEMS_TUMBLING is read from as FROM TABLE(TOP_K_ITEMS_TUMBLING(CURSOR(SELECT STREAM ...), 'column', K, windowSeconds))"
        } else {
            "COUNT_DISTINCT_ITEMS_TUMBLING is read from as FROM TABLE(COUNT_DISTINCT_ITEMS_TUMBLING(CURSOR(SELECT STREAM ...), 'column', windowSeconds))"
        }
        .to_owned()
    };
    let Some(call) = table::find(select, &FUNCTIONS, form)? else {
        return Ok(select.to_vec());
    };
    let name = call.name;
    let later = call.after();
    if let Some(i) = (0..later.len()).find(|&i| FUNCTIONS.iter().any(|f| table::calls(later, i, f)))
    {
        return Err(AnalyticsError::code(
            "A pump reads one tumbling table function",
            position(later[i].span.start),
        ));
    }
    let (column, k, seconds) = arguments(&call, &form(name))?;
    let Token::SingleQuotedString(column) = &column.token else {
        return Err(AnalyticsError::code(
            format!("{name}'s column is named in single quotes ('column')"),
            position(column.span.start),
        ));
    };
    let k = k.map(|k| number(k, name, "K", 1, 100_000)).transpose()?;
    let seconds = number(seconds, name, "windowSize", 1, 3_600)?;
    Ok(call.replaced(derived(&call, column, k, seconds)))
}

/// The arguments after the cursor: the column, K (`TOP_K_ITEMS_TUMBLING`'s) and the window.
fn arguments<'t>(
    call: &TableCall<'t>,
    form: &str,
) -> Result<
    (
        &'t TokenWithSpan,
        Option<&'t TokenWithSpan>,
        &'t TokenWithSpan,
    ),
    AnalyticsError,
> {
    let comma = |t: &TokenWithSpan| t.token == Token::Comma;
    match (call.name == FUNCTIONS[0], call.arguments) {
        (true, [c1, column, c2, k, c3, seconds]) if comma(c1) && comma(c2) && comma(c3) => {
            Ok((column, Some(k), seconds))
        }
        (false, [c1, column, c2, seconds]) if comma(c1) && comma(c2) => Ok((column, None, seconds)),
        _ => Err(AnalyticsError::code(form, call.at)),
    }
}

/// The derived table a call means, `TOP_K_ITEMS_TUMBLING`'s (with `k`):
/// `(SELECT "<column>", COUNT(*) AS "ITEM_COUNT", MAX("ROWTIME") AS "ROWTIME"
///   FROM (<cursor with ROWTIME>) GROUP BY "<column>", STEP(ROWTIME BY INTERVAL '<s>' SECOND)
///   ORDER BY "ITEM_COUNT" DESC, "<column>" LIMIT <k>)`,
/// or `COUNT_DISTINCT_ITEMS_TUMBLING`'s: `(SELECT COUNT(DISTINCT "<column>") AS
/// "NUMBER_OF_DISTINCT_ITEMS", MAX("ROWTIME") AS "ROWTIME" FROM (...) GROUP BY STEP(...))`.
/// `MAX("ROWTIME")` gives the derived table the column a `*` leaves out.
fn derived(call: &TableCall<'_>, column: &str, k: Option<u64>, seconds: u64) -> Vec<TokenWithSpan> {
    let here = call.here();
    let word = |w: &str| with(here, Token::make_word(w, None));
    let quoted = |w: &str| with(here, Token::make_word(w, Some('"')));
    let punct = |t: Token| with(here, t);
    let mut out = vec![punct(Token::LParen), word("SELECT")];
    if k.is_some() {
        out.extend([quoted(column), punct(Token::Comma), word("COUNT")]);
        out.extend([
            punct(Token::LParen),
            punct(Token::Mul),
            punct(Token::RParen),
        ]);
        out.extend([word("AS"), quoted(ITEM_COUNT)]);
    } else {
        out.extend([word("COUNT"), punct(Token::LParen), word("DISTINCT")]);
        out.extend([quoted(column), punct(Token::RParen)]);
        out.extend([word("AS"), quoted(NUMBER_OF_DISTINCT_ITEMS)]);
    }
    out.extend([punct(Token::Comma), word("MAX"), punct(Token::LParen)]);
    out.extend([
        quoted("ROWTIME"),
        punct(Token::RParen),
        word("AS"),
        quoted("ROWTIME"),
    ]);
    out.extend([word("FROM"), punct(Token::LParen)]);
    out.extend(with_rowtime(call.cursor));
    out.push(punct(Token::RParen));
    if k.is_some() {
        // NULL is no item (a distinct count leaves NULL out as well).
        out.extend([
            word("WHERE"),
            quoted(column),
            word("IS"),
            word("NOT"),
            word("NULL"),
        ]);
    }
    out.extend([word("GROUP"), word("BY")]);
    if k.is_some() {
        out.extend([quoted(column), punct(Token::Comma)]);
    }
    out.extend([
        word("STEP"),
        punct(Token::LParen),
        word("ROWTIME"),
        word("BY"),
    ]);
    out.extend([
        word("INTERVAL"),
        punct(Token::SingleQuotedString(seconds.to_string())),
    ]);
    out.extend([word("SECOND"), punct(Token::RParen)]);
    if let Some(k) = k {
        out.extend([word("ORDER"), word("BY"), quoted(ITEM_COUNT), word("DESC")]);
        out.extend([punct(Token::Comma), quoted(column), word("LIMIT")]);
        out.push(punct(Token::Number(k.to_string(), false)));
    }
    out.push(punct(Token::RParen));
    out
}

/// The cursor's `SELECT` with `ROWTIME` first among its columns: the window is over it.
fn with_rowtime(cursor: &[TokenWithSpan]) -> Vec<TokenWithSpan> {
    let from = top_level_word(cursor, "FROM").unwrap_or(cursor.len());
    let names_rowtime = cursor[..from]
        .iter()
        .any(|t| matches!(&t.token, Token::Word(w) if w.value.eq_ignore_ascii_case("ROWTIME")));
    if names_rowtime {
        return cursor.to_vec();
    }
    let mut at = 1;
    for word in ["STREAM", "DISTINCT", "ALL"] {
        if is_word(cursor.get(at).map(|t| &t.token), word) {
            at += 1;
        }
    }
    let mut out = cursor[..at].to_vec();
    out.push(with(&cursor[0], Token::make_word("ROWTIME", Some('"'))));
    out.push(with(&cursor[0], Token::Comma));
    out.extend_from_slice(&cursor[at..]);
    out
}

/// A whole number argument in its range.
fn number(
    token: &TokenWithSpan,
    function: &str,
    name: &str,
    least: u64,
    greatest: u64,
) -> Result<u64, AnalyticsError> {
    match &token.token {
        Token::Number(n, _) => n
            .parse::<u64>()
            .ok()
            .filter(|n| (least..=greatest).contains(n)),
        _ => None,
    }
    .ok_or_else(|| {
        AnalyticsError::code(
            format!("{function}'s {name} is a whole number from {least} to {greatest}"),
            position(token.span.start),
        )
    })
}
