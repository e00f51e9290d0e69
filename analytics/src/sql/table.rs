//! `FROM TABLE(<function>(CURSOR(SELECT STREAM ...), <arguments>))`, as KDA's table
//! functions are called in a pump's `SELECT`: found, taken apart, and replaced.

use super::{is_word, matching, position};
use crate::error::{AnalyticsError, Position};
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan};

/// A table function's call in a `SELECT`'s tokens.
pub(super) struct TableCall<'t> {
    /// The `SELECT` it is in.
    select: &'t [TokenWithSpan],
    /// Where `TABLE` is, and its `)`.
    table: usize,
    table_close: usize,
    /// The cursor's `SELECT`.
    pub cursor: &'t [TokenWithSpan],
    /// What follows the cursor, up to the function's `)`.
    pub arguments: &'t [TokenWithSpan],
    /// The function's name and where it is.
    pub name: &'static str,
    pub at: Position,
}

/// Whether `tokens[i]` calls `name` (`name(`).
pub(super) fn calls(tokens: &[TokenWithSpan], i: usize, name: &str) -> bool {
    is_word(Some(&tokens[i].token), name)
        && tokens.get(i + 1).map(|t| &t.token) == Some(&Token::LParen)
}

/// The first call of one of `names` in `select`, which must be `FROM TABLE(...)` as `form`
/// says, or none.
pub(super) fn find<'t>(
    select: &'t [TokenWithSpan],
    names: &[&'static str],
    form: impl Fn(&str) -> String,
) -> Result<Option<TableCall<'t>>, AnalyticsError> {
    let found = (0..select.len()).find_map(|i| {
        names
            .iter()
            .find(|name| calls(select, i, name))
            .map(|name| (i, *name))
    });
    let Some((call, name)) = found else {
        return Ok(None);
    };
    let at = position(select[call].span.start);
    let wrong = || AnalyticsError::code(form(name), at);
    let table = call.checked_sub(2).ok_or_else(wrong)?;
    if table == 0
        || !is_word(Some(&select[table - 1].token), "FROM")
        || !calls(select, table, "TABLE")
        || !calls(select, call + 2, "CURSOR")
    {
        return Err(wrong());
    }
    let table_close = matching(select, table + 1)?;
    let call_close = matching(select, call + 1)?;
    let cursor_close = matching(select, call + 3)?;
    let cursor = &select[call + 4..cursor_close];
    if call_close + 1 != table_close
        || !cursor
            .first()
            .is_some_and(|t| is_word(Some(&t.token), "SELECT"))
    {
        return Err(wrong());
    }
    Ok(Some(TableCall {
        select,
        table,
        table_close,
        cursor,
        arguments: &select[cursor_close + 1..call_close],
        name,
        at,
    }))
}

impl TableCall<'_> {
    /// The `SELECT` with `TABLE(...)` replaced by `tokens`.
    pub fn replaced(&self, tokens: impl IntoIterator<Item = TokenWithSpan>) -> Vec<TokenWithSpan> {
        let mut out = self.select[..self.table].to_vec();
        out.extend(tokens);
        out.extend_from_slice(&self.select[self.table_close + 1..]);
        out
    }

    /// What follows `TABLE(...)` in the `SELECT`.
    pub fn after(&self) -> &[TokenWithSpan] {
        &self.select[self.table_close + 1..]
    }

    /// The function's token, for the spans of tokens made in its place.
    pub fn here(&self) -> &TokenWithSpan {
        &self.select[self.table + 2]
    }
}
