//! Windowed joins of two streams in a pump's `FROM` (docs/design/analytics.md,
//! "Stream-to-stream joins"): `FROM <stream> [OVER (RANGE ...)] [AS] a [INNER | LEFT
//! [OUTER]] JOIN <stream> [OVER (RANGE ...)] [AS] b ON ...`, reference tables joined after
//! them. The windows are taken out of `FROM`, the time condition they mean is added to
//! `ON`, and an unqualified `ROWTIME` means the later of the two rows' times.

use super::{Rewrite, interval_ms, is_word, matching, name_of, position, with};
use crate::error::{AnalyticsError, Position};
use crate::schema::ROWTIME;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan};

/// A pump's windowed join of two streams.
#[derive(Debug, Clone)]
pub struct JoinDef {
    /// The left stream (after `FROM`) and the right one (after `JOIN`).
    pub sides: [JoinSide; 2],
    /// A `LEFT JOIN`: a left row no right row matches goes on with NULLs.
    pub left_outer: bool,
    /// The joined row's time, rewritten: the later of the two rows' `ROWTIME`s.
    pub time: Vec<TokenWithSpan>,
    /// Where the first window is.
    pub at: Position,
}

/// One side of a [`JoinDef`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinSide {
    /// The in-application stream it reads.
    pub stream: String,
    /// Its window's range (`RANGE INTERVAL ... PRECEDING`); 0 without `OVER` (its current
    /// row only).
    pub range_ms: i64,
}

/// Words that end a `FROM` clause.
const FROM_ENDS: &[&str] = &[
    "WHERE",
    "GROUP",
    "HAVING",
    "ORDER",
    "WINDOW",
    "LIMIT",
    "UNION",
    "EXCEPT",
    "INTERSECT",
];

/// Words that start a join.
const JOIN_WORDS: &[&str] = &[
    "JOIN", "INNER", "LEFT", "RIGHT", "FULL", "CROSS", "NATURAL", "OUTER",
];

const FORM: &str = "A windowed join's two streams come first, each windowed at most once: FROM <stream> [OVER (...)] AS a [INNER | LEFT] JOIN <stream> OVER (...) AS b ON ..., reference tables after them";

/// A `FROM` item: a stream's name, its window, the name the query qualifies its columns
/// with (its alias, or the stream's name).
struct Item<'t> {
    name: &'t TokenWithSpan,
    stream: String,
    window: Option<StreamWindow<'t>>,
    qualifier: String,
}

/// A joined stream's `OVER (RANGE INTERVAL '<n>' <unit> PRECEDING)`.
#[derive(Clone, Copy)]
struct StreamWindow<'t> {
    range_ms: i64,
    /// Its `INTERVAL '<n>' <unit>`.
    interval: &'t [TokenWithSpan],
    /// Where `OVER` is.
    at: Position,
}

impl Item<'_> {
    fn side(&self) -> JoinSide {
        JoinSide {
            stream: self.stream.clone(),
            range_ms: self.window.map_or(0, |w| w.range_ms),
        }
    }
}

/// Takes a windowed join out of a pump's `SELECT` tokens: the tokens with the time
/// condition in `ON` and the windows left out, and the join. A `SELECT` whose `FROM` holds
/// no `OVER` comes back as it is.
pub(super) fn take_join(
    select: &[TokenWithSpan],
) -> Result<(Vec<TokenWithSpan>, Option<JoinDef>), AnalyticsError> {
    let Some(from) = from_clause(select) else {
        return Ok((select.to_vec(), None));
    };
    let end = top_level_from(select, from + 1, FROM_ENDS).unwrap_or(select.len());
    let clause = &select[from + 1..end];
    if !windows_a_stream(clause) {
        return Ok((select.to_vec(), None));
    }
    let join = Clause::read(clause, &select[from])?;
    let (q1, q2) = (join.left.qualifier.clone(), join.right.qualifier.clone());
    if q1 == q2 {
        return Err(AnalyticsError::code(
            "The two joined streams need names of their own: AS a, AS b",
            position(join.right.name.span.start),
        ));
    }
    let here = join.on;
    let mut later = vec![
        with(here, Token::make_word("GREATEST", None)),
        with(here, Token::LParen),
    ];
    later.extend(rowtime_of(here, &q1));
    later.push(with(here, Token::Comma));
    later.extend(rowtime_of(here, &q2));
    later.push(with(here, Token::RParen));
    let mut out = both_sides(&select[..from], [&q1, &q2], join.rest.is_empty())?;
    out.push(select[from].clone());
    out.extend(join.rewritten(&q1, &q2));
    out.extend(select[end..].iter().cloned());
    let out = later_rowtime(&out, &later);
    let time = Rewrite::default().tokens(&later)?;
    let Some(window) = join.left.window.or(join.right.window) else {
        return Err(AnalyticsError::code(
            FORM,
            position(select[from].span.start),
        ));
    };
    let at = window.at;
    Ok((
        out,
        Some(JoinDef {
            sides: [join.left.side(), join.right.side()],
            left_outer: join.left_outer,
            time,
            at,
        }),
    ))
}

/// Where a `SELECT`'s `FROM` clause starts: its first `FROM` outside parentheses that is
/// not `IS [NOT] DISTINCT FROM`.
fn from_clause(select: &[TokenWithSpan]) -> Option<usize> {
    let mut start = 0;
    loop {
        let at = top_level_from(select, start, &["FROM"])?;
        let before = at.checked_sub(1).map(|j| &select[j].token);
        if !is_word(before, "DISTINCT") {
            return Some(at);
        }
        start = at + 1;
    }
}

/// Whether a `FROM` clause windows a stream: `OVER` right after a name that starts the
/// clause or follows `JOIN`.
fn windows_a_stream(clause: &[TokenWithSpan]) -> bool {
    let mut depth = 0usize;
    clause.iter().enumerate().any(|(i, token)| {
        match token.token {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            _ => {}
        }
        let named = i >= 1 && matches!(clause[i - 1].token, Token::Word(_));
        let starts = i == 1 || (i >= 2 && is_word(Some(&clause[i - 2].token), "JOIN"));
        depth == 0 && is_word(Some(&token.token), "OVER") && named && starts
    })
}

/// `<q>."ROWTIME"`.
fn rowtime_of(here: &TokenWithSpan, q: &str) -> [TokenWithSpan; 3] {
    [
        with(here, Token::make_word(q, Some('"'))),
        with(here, Token::Period),
        with(here, Token::make_word(ROWTIME, Some('"'))),
    ]
}

/// A windowed join's `FROM` clause, read.
struct Clause<'t> {
    left: Item<'t>,
    /// `[INNER | LEFT [OUTER]] JOIN`.
    kind: &'t [TokenWithSpan],
    left_outer: bool,
    right: Item<'t>,
    on: &'t TokenWithSpan,
    condition: &'t [TokenWithSpan],
    /// What follows: joins of reference tables.
    rest: &'t [TokenWithSpan],
}

impl<'t> Clause<'t> {
    fn read(
        clause: &'t [TokenWithSpan],
        from: &TokenWithSpan,
    ) -> Result<Clause<'t>, AnalyticsError> {
        let refused = |why: &str, at: Option<&TokenWithSpan>| {
            AnalyticsError::code(why, position(at.unwrap_or(from).span.start))
        };
        let (left, kind_at) = item(clause, 0)?;
        let mut i = kind_at;
        while join_word(clause, i) {
            i += 1;
        }
        let kind = &clause[kind_at..i];
        let words: Vec<String> = kind
            .iter()
            .map(|t| t.token.to_string().to_ascii_uppercase())
            .collect();
        let left_outer = match words.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            ["JOIN"] | ["INNER", "JOIN"] => false,
            ["LEFT", "JOIN"] | ["LEFT", "OUTER", "JOIN"] => true,
            [] => return Err(refused(FORM, clause.get(i))),
            _ => {
                return Err(refused(
                    "A windowed join of streams is a JOIN (INNER) or a LEFT JOIN",
                    kind.first(),
                ));
            }
        };
        let (right, after) = item(clause, i)?;
        let on = clause
            .get(after)
            .filter(|t| is_word(Some(&t.token), "ON"))
            .ok_or_else(|| {
                refused(
                    "A windowed join of streams takes ON <condition>",
                    clause.get(after),
                )
            })?;
        let condition_end = condition_end(clause, after + 1);
        let rest = &clause[condition_end..];
        if let Some(over) = top_level_from(rest, 0, &["OVER"]) {
            return Err(refused(FORM, rest.get(over)));
        }
        if let (true, Some(window)) = (left_outer, left.window) {
            return Err(AnalyticsError::code(
                "A LEFT JOIN of streams leaves the left stream unwindowed (OVER on the right only)",
                window.at,
            ));
        }
        Ok(Clause {
            left,
            kind,
            left_outer,
            right,
            on,
            condition: &clause[after + 1..condition_end],
            rest,
        })
    }

    /// The clause without its windows, both streams named `q1` and `q2`, and the time
    /// condition of the windows first in `ON`.
    fn rewritten(&self, q1: &str, q2: &str) -> Vec<TokenWithSpan> {
        let on = self.on;
        let mut out = Vec::new();
        for (item, q) in [(&self.left, q1), (&self.right, q2)] {
            if !out.is_empty() {
                out.extend(self.kind.iter().cloned());
            }
            out.push(item.name.clone());
            out.push(with(item.name, Token::make_keyword("AS")));
            out.push(with(item.name, Token::make_word(q, Some('"'))));
        }
        out.push(on.clone());
        out.push(with(on, Token::LParen));
        // The right row's time is within [left - right's range, left + left's range].
        let bounds = [
            (Token::GtEq, Token::Minus, self.right.window),
            (Token::LtEq, Token::Plus, self.left.window),
        ];
        for (k, (compare, shift, window)) in bounds.into_iter().enumerate() {
            if k > 0 {
                out.push(with(on, Token::make_keyword("AND")));
            }
            out.extend(rowtime_of(on, q2));
            out.push(with(on, compare));
            out.extend(rowtime_of(on, q1));
            if let Some(window) = window {
                out.push(with(on, shift));
                out.extend(window.interval.iter().cloned());
            }
        }
        out.push(with(on, Token::RParen));
        out.push(with(on, Token::make_keyword("AND")));
        out.push(with(on, Token::LParen));
        out.extend(self.condition.iter().cloned());
        out.push(with(on, Token::RParen));
        out.extend(self.rest.iter().cloned());
        out
    }
}

/// A `FROM` item at `clause[i]`: `<stream> [OVER (RANGE INTERVAL '<n>' <unit> PRECEDING)]
/// [[AS] alias]`; and where the clause goes on.
fn item(clause: &[TokenWithSpan], i: usize) -> Result<(Item<'_>, usize), AnalyticsError> {
    let refused = |why: &str, at: Option<&TokenWithSpan>| {
        let at = at.or(clause.last()).expect("a FROM clause");
        AnalyticsError::code(why, position(at.span.start))
    };
    let name = match clause.get(i) {
        Some(
            t @ TokenWithSpan {
                token: Token::Word(_),
                ..
            },
        ) if !join_word(clause, i) && !is_word(Some(&t.token), "ON") => t,
        other => return Err(refused(FORM, other)),
    };
    if matches!(
        clause.get(i + 1).map(|t| &t.token),
        Some(Token::LParen | Token::Period)
    ) {
        return Err(refused(FORM, clause.get(i + 1)));
    }
    let (window, mut i) = stream_window(clause, i + 1)?;
    let mut alias = None;
    if is_word(clause.get(i).map(|t| &t.token), "AS") {
        match clause.get(i + 1) {
            Some(
                t @ TokenWithSpan {
                    token: Token::Word(_),
                    ..
                },
            ) => alias = Some(t),
            other => return Err(refused("Expected a name after AS", other)),
        }
        i += 2;
    } else if let Some(
        t @ TokenWithSpan {
            token: Token::Word(_),
            ..
        },
    ) = clause.get(i)
        && !join_word(clause, i)
        && !is_word(Some(&t.token), "ON")
        && !is_word(Some(&t.token), "USING")
    {
        alias = Some(t);
        i += 1;
    }
    let word = |t: &TokenWithSpan| match &t.token {
        Token::Word(w) => name_of(w),
        _ => String::new(),
    };
    Ok((
        Item {
            name,
            stream: word(name),
            window,
            qualifier: word(alias.unwrap_or(name)),
        },
        i,
    ))
}

/// A stream's window at `clause[i]`, if `OVER` is there; and where the clause goes on.
fn stream_window(
    clause: &[TokenWithSpan],
    i: usize,
) -> Result<(Option<StreamWindow<'_>>, usize), AnalyticsError> {
    let Some(over) = clause.get(i).filter(|t| is_word(Some(&t.token), "OVER")) else {
        return Ok((None, i));
    };
    let refused = |why: &str| AnalyticsError::code(why, position(over.span.start));
    if clause.get(i + 1).map(|t| &t.token) != Some(&Token::LParen) {
        return Err(refused(
            "A joined stream's window is written where the stream is named: OVER (RANGE INTERVAL '<n>' <unit> PRECEDING)",
        ));
    }
    let close = matching(clause, i + 1)?;
    let range = match &clause[i + 2..close] {
        [range, interval @ .., last]
            if is_word(Some(&range.token), "RANGE") && is_word(Some(&last.token), "PRECEDING") =>
        {
            interval_ms(interval).map(|ms| (ms, interval))
        }
        _ => None,
    };
    let (ms, interval) = range.ok_or_else(|| {
        refused(
            "A joined stream's window is OVER (RANGE INTERVAL '<n>' SECOND, MINUTE, HOUR or DAY PRECEDING)",
        )
    })?;
    let window = StreamWindow {
        range_ms: ms,
        interval,
        at: position(over.span.start),
    };
    Ok((Some(window), close + 1))
}

/// Whether `tokens[i]` is a word of a join (`LEFT JOIN`, not the function `LEFT(...)`).
fn join_word(tokens: &[TokenWithSpan], i: usize) -> bool {
    let Some(token) = tokens.get(i) else {
        return false;
    };
    let call = tokens.get(i + 1).map(|t| &t.token) == Some(&Token::LParen);
    !call && JOIN_WORDS.iter().any(|w| is_word(Some(&token.token), w))
}

/// Where an `ON` condition starting at `clause[start]` ends: where another join starts, at
/// a `,`, or at the clause's end.
fn condition_end(clause: &[TokenWithSpan], start: usize) -> usize {
    let mut depth = 0usize;
    for (i, token) in clause.iter().enumerate().skip(start) {
        match token.token {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            Token::Comma if depth == 0 => return i,
            _ if depth == 0 && join_word(clause, i) => return i,
            _ => {}
        }
    }
    clause.len()
}

/// The first of `words` in `tokens` from `start` on, outside parentheses.
fn top_level_from(tokens: &[TokenWithSpan], start: usize, words: &[&str]) -> Option<usize> {
    let mut depth = 0usize;
    for (i, token) in tokens.iter().enumerate() {
        match &token.token {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            t if i >= start && depth == 0 && words.iter().any(|w| is_word(Some(t), w)) => {
                return Some(i);
            }
            _ => {}
        }
    }
    None
}

/// `tokens` with each unqualified `ROWTIME` (not after or before a `.`, not an alias) as
/// `later`.
fn later_rowtime(tokens: &[TokenWithSpan], later: &[TokenWithSpan]) -> Vec<TokenWithSpan> {
    let mut out = Vec::with_capacity(tokens.len());
    for (i, token) in tokens.iter().enumerate() {
        let rowtime = matches!(&token.token, Token::Word(w) if name_of(w) == ROWTIME);
        let before = i.checked_sub(1).map(|j| &tokens[j].token);
        let qualified = before == Some(&Token::Period)
            || tokens.get(i + 1).map(|t| &t.token) == Some(&Token::Period)
            || is_word(before, "AS");
        if rowtime && !qualified {
            out.extend(later.iter().map(|t| with(token, t.token.clone())));
        } else {
            out.push(token.clone());
        }
    }
    out
}

/// The select list `list` with a bare `*` as both streams' columns (`a.*, b.*`; with
/// reference tables joined too, it is refused: their columns would be left out).
fn both_sides(
    list: &[TokenWithSpan],
    qualifiers: [&str; 2],
    streams_only: bool,
) -> Result<Vec<TokenWithSpan>, AnalyticsError> {
    let mut out = Vec::with_capacity(list.len());
    for (i, token) in list.iter().enumerate() {
        let before = i.checked_sub(1).map(|j| &list[j].token);
        let opens = before == Some(&Token::Comma)
            || ["SELECT", "STREAM", "DISTINCT", "ALL"]
                .iter()
                .any(|w| is_word(before, w));
        let closes = matches!(list.get(i + 1).map(|t| &t.token), None | Some(Token::Comma));
        if token.token != Token::Mul || !opens || !closes {
            out.push(token.clone());
            continue;
        }
        if !streams_only {
            return Err(AnalyticsError::code(
                "SELECT * of a windowed join with reference tables: name the columns, or a.*, b.*",
                position(token.span.start),
            ));
        }
        for (k, q) in qualifiers.iter().enumerate() {
            if k > 0 {
                out.push(with(token, Token::Comma));
            }
            out.push(with(token, Token::make_word(q, Some('"'))));
            out.push(with(token, Token::Period));
            out.push(token.clone());
        }
    }
    Ok(out)
}
