//! The KDA dialect's front end (docs/design/analytics.md, "The SQL front end"): application
//! code split into statements, `CREATE OR REPLACE STREAM` and `PUMP` headers read from
//! sqlparser's tokens, and each pump's `SELECT STREAM` rewritten, token by token (positions
//! kept), into a `SELECT` DataFusion plans: `STREAM` dropped, `STEP(x BY INTERVAL ...)` as
//! `date_bin`, `FLOOR(x TO unit)` as `date_trunc`, sliding windows' `RANGE INTERVAL ...
//! PRECEDING` as DataFusion's frames ordered by `ROWTIME`, unquoted names upper-cased (SQL's
//! rule, which KDA follows).

mod forest;
mod join;
mod table;
mod tumbling;

pub use forest::{ANOMALY_SCORE, FOREST_PREFIX, ForestDef, ForestOptions};
pub use join::{JoinDef, JoinSide};
pub use tumbling::{ITEM_COUNT, NUMBER_OF_DISTINCT_ITEMS};

use crate::error::{AnalyticsError, Position};
use crate::schema::ROWTIME;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer, Word};

/// An application's code, read.
#[derive(Debug, Clone)]
pub struct Code {
    /// `CREATE OR REPLACE STREAM` statements, in order.
    pub streams: Vec<StreamDef>,
    /// `CREATE OR REPLACE PUMP` statements, in order.
    pub pumps: Vec<PumpDef>,
}

/// An in-application stream.
#[derive(Debug, Clone)]
pub struct StreamDef {
    /// Its name (a quoted name as written, an unquoted one upper-cased).
    pub name: String,
    /// Each column's name and SQL type, as written.
    pub columns: Vec<(String, String)>,
    /// Where the statement starts.
    pub at: Position,
}

/// A pump: a continuous `INSERT INTO <into> SELECT ...`.
#[derive(Debug, Clone)]
pub struct PumpDef {
    /// Its name.
    pub name: String,
    /// The in-application stream it inserts into.
    pub into: String,
    /// The target's columns it names, if it names them.
    pub columns: Option<Vec<String>>,
    /// The `SELECT`, rewritten for DataFusion.
    pub select: Vec<TokenWithSpan>,
    /// Its tumbling window, when it groups by one.
    pub window: Option<Window>,
    /// Its sliding windows (`OVER`), when it has some.
    pub sliding: Option<Sliding>,
    /// The `RANDOM_CUT_FOREST` its `FROM` reads, when it reads one.
    pub forest: Option<ForestDef>,
    /// Its windowed join of two streams, when its `FROM` has one.
    pub join: Option<JoinDef>,
    /// Where the statement starts.
    pub at: Position,
}

/// A pump's sliding windows (`RANGE INTERVAL '<n>' <unit> PRECEDING` and `ROWS <n>
/// PRECEDING`, ordered by `ROWTIME`), as far as they say which rows are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sliding {
    /// The widest range (0 with `ROWS` windows only).
    pub range_ms: i64,
    /// Its `ROWS` windows.
    pub rows: Vec<RowsWindow>,
    /// Where the first window is.
    pub at: Position,
}

/// A `ROWS <n> PRECEDING` window: a row and the `n` rows before it in `ROWTIME` order, in
/// its partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowsWindow {
    /// `n`.
    pub preceding: usize,
    /// The columns of `PARTITION BY`.
    pub partition: Vec<String>,
}

/// The most rows a `ROWS` window reaches back.
pub const ROWS_PRECEDING_MAX: usize = 100_000;

/// A tumbling window on `ROWTIME` (`STEP(ROWTIME BY INTERVAL ...)`, `FLOOR(ROWTIME TO ...)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Its width.
    pub width_ms: i64,
    /// It orders a per-row query's rows (`ORDER BY FLOOR(ROWTIME TO SECOND), ...`): the
    /// window's rows go on sorted when it closes, with their own `ROWTIME`. Otherwise it
    /// groups them (`GROUP BY`).
    pub ordered: bool,
    /// Where the window's STEP or FLOOR is.
    pub at: Position,
}

/// Words kept as written: the SQL that structures a query, and type names. Any other
/// unquoted word is a name, upper-cased.
const KEPT: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP",
    "BY",
    "HAVING",
    "ORDER",
    "ASC",
    "DESC",
    "NULLS",
    "FIRST",
    "LAST",
    "LIMIT",
    "OFFSET",
    "AS",
    "AND",
    "OR",
    "NOT",
    "NULL",
    "IS",
    "IN",
    "BETWEEN",
    "LIKE",
    "ILIKE",
    "SIMILAR",
    "ESCAPE",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "INTERVAL",
    "DISTINCT",
    "ALL",
    "ON",
    "USING",
    "JOIN",
    "INNER",
    "LEFT",
    "RIGHT",
    "FULL",
    "OUTER",
    "CROSS",
    "UNION",
    "EXCEPT",
    "INTERSECT",
    "WINDOW",
    "OVER",
    "PARTITION",
    "RANGE",
    "ROWS",
    "PRECEDING",
    "FOLLOWING",
    "CURRENT",
    "ROW",
    "UNBOUNDED",
    "TRUE",
    "FALSE",
    "EXISTS",
    "ANY",
    "SOME",
    "TO",
    "FOR",
    "FILTER",
    "WITHIN",
    "WITH",
    "MILLISECOND",
    "SECOND",
    "MINUTE",
    "HOUR",
    "DAY",
    "WEEK",
    "MONTH",
    "YEAR",
    "VARCHAR",
    "CHAR",
    "CHARACTER",
    "VARYING",
    "INTEGER",
    "INT",
    "BIGINT",
    "SMALLINT",
    "TINYINT",
    "DOUBLE",
    "PRECISION",
    "REAL",
    "FLOAT",
    "DECIMAL",
    "NUMERIC",
    "BOOLEAN",
    "DATE",
    "TIMESTAMP",
    "TIME",
];

/// Reads `code` (statements separated by `;`).
pub fn parse(code: &str) -> Result<Code, AnalyticsError> {
    let tokens = Tokenizer::new(&GenericDialect {}, code)
        .tokenize_with_location()
        .map_err(|e| {
            let at = Position {
                line: e.location.line,
                column: e.location.column,
            };
            AnalyticsError::code(e.message, at)
        })?;
    let tokens: Vec<TokenWithSpan> = tokens
        .into_iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF))
        .collect();
    let mut code = Code {
        streams: Vec::new(),
        pumps: Vec::new(),
    };
    for statement in statements(&tokens) {
        let mut reader = Reader::new(statement);
        reader.keywords(&["CREATE", "OR", "REPLACE"])?;
        let at = reader.position();
        match reader.name_word()?.as_str() {
            "STREAM" => code.streams.push(stream(reader, at)?),
            "PUMP" => code.pumps.push(pump(reader, at)?),
            other => {
                return Err(AnalyticsError::code(
                    format!(
                        "CREATE OR REPLACE {other} is not a statement of application code (STREAM or PUMP)"
                    ),
                    at,
                ));
            }
        }
    }
    Ok(code)
}

/// The statements of `tokens`: split at `;` outside parentheses; empty ones left out.
fn statements(tokens: &[TokenWithSpan]) -> Vec<&[TokenWithSpan]> {
    let mut found = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, token) in tokens.iter().enumerate() {
        match token.token {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            Token::SemiColon if depth == 0 => {
                if i > start {
                    found.push(&tokens[start..i]);
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < tokens.len() {
        found.push(&tokens[start..]);
    }
    found
}

fn position(location: Location) -> Position {
    Position {
        line: location.line,
        column: location.column,
    }
}

/// Reads a statement's tokens in order.
struct Reader<'t> {
    tokens: &'t [TokenWithSpan],
    at: usize,
}

impl<'t> Reader<'t> {
    fn new(tokens: &'t [TokenWithSpan]) -> Reader<'t> {
        Reader { tokens, at: 0 }
    }

    fn position(&self) -> Position {
        match self.tokens.get(self.at).or(self.tokens.last()) {
            Some(t) => position(t.span.start),
            None => Position::default(),
        }
    }

    fn peek(&self) -> Option<&'t Token> {
        self.tokens.get(self.at).map(|t| &t.token)
    }

    fn error(&self, expected: &str) -> AnalyticsError {
        let found = self
            .peek()
            .map_or("the end of the statement".to_owned(), |t| format!("{t}"));
        AnalyticsError::code(
            format!("Expected {expected}, found {found}"),
            self.position(),
        )
    }

    /// The next token is the unquoted word `keyword` (any case).
    fn keyword(&mut self, keyword: &str) -> Result<(), AnalyticsError> {
        match self.peek() {
            Some(Token::Word(w))
                if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(keyword) =>
            {
                self.at += 1;
                Ok(())
            }
            _ => Err(self.error(keyword)),
        }
    }

    fn keywords(&mut self, keywords: &[&str]) -> Result<(), AnalyticsError> {
        keywords.iter().try_for_each(|k| self.keyword(k))
    }

    /// A name: a quoted word as written, an unquoted one upper-cased.
    fn name_word(&mut self) -> Result<String, AnalyticsError> {
        match self.peek() {
            Some(Token::Word(w)) => {
                self.at += 1;
                Ok(name_of(w))
            }
            _ => Err(self.error("a name")),
        }
    }

    fn token(&mut self, token: &Token) -> Result<(), AnalyticsError> {
        if self.peek() == Some(token) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.error(&format!("{token}")))
        }
    }

    fn rest(&self) -> &'t [TokenWithSpan] {
        &self.tokens[self.at..]
    }
}

fn name_of(word: &Word) -> String {
    match word.quote_style {
        Some(_) => word.value.clone(),
        None => word.value.to_ascii_uppercase(),
    }
}

/// `CREATE OR REPLACE STREAM name (column type, ...)`.
fn stream(mut reader: Reader<'_>, at: Position) -> Result<StreamDef, AnalyticsError> {
    let name = reader.name_word()?;
    reader.token(&Token::LParen)?;
    let mut columns = Vec::new();
    loop {
        let column = reader.name_word()?;
        let start = reader.at;
        let mut depth = 0usize;
        while let Some(token) = reader.peek() {
            match token {
                Token::LParen => depth += 1,
                Token::RParen if depth == 0 => break,
                Token::RParen => depth -= 1,
                Token::Comma if depth == 0 => break,
                _ => {}
            }
            reader.at += 1;
        }
        let written = text(&reader.tokens[start..reader.at]);
        if written.is_empty() {
            return Err(reader.error("a column type"));
        }
        crate::types::sql_type(&written).map_err(|e| {
            AnalyticsError::code(e.to_string(), position(reader.tokens[start].span.start))
        })?;
        columns.push((column, written));
        if reader.peek() == Some(&Token::Comma) {
            reader.at += 1;
            continue;
        }
        reader.token(&Token::RParen)?;
        break;
    }
    if !reader.rest().is_empty() {
        return Err(reader.error("the end of the statement"));
    }
    Ok(StreamDef { name, columns, at })
}

/// Tokens as text, a space between words.
fn text(tokens: &[TokenWithSpan]) -> String {
    let mut out = String::new();
    let mut last_word = false;
    for token in tokens {
        let word = matches!(token.token, Token::Word(_) | Token::Number(..));
        if word && last_word {
            out.push(' ');
        }
        out.push_str(&token.token.to_string());
        last_word = word;
    }
    out
}

/// `CREATE OR REPLACE PUMP name AS INSERT INTO stream [(columns)] SELECT STREAM ...`.
fn pump(mut reader: Reader<'_>, at: Position) -> Result<PumpDef, AnalyticsError> {
    let name = reader.name_word()?;
    reader.keywords(&["AS", "INSERT", "INTO"])?;
    let into = reader.name_word()?;
    let mut columns = None;
    if reader.peek() == Some(&Token::LParen) {
        reader.at += 1;
        let mut named = vec![reader.name_word()?];
        while reader.peek() == Some(&Token::Comma) {
            reader.at += 1;
            named.push(reader.name_word()?);
        }
        reader.token(&Token::RParen)?;
        columns = Some(named);
    }
    let select_at = reader.position();
    reader
        .keyword("SELECT")
        .map_err(|_| reader.error("SELECT STREAM"))?;
    reader.at -= 1;
    let select = tumbling::expand(reader.rest())?;
    let (select, forest) = forest::take_forest(&select, &name)?;
    let (select, join) = join::take_join(&select)?;
    if let Some(join) = &join
        && (windows(&select) || forest.is_some())
    {
        return Err(AnalyticsError::code(
            "A pump joining streams is a per-row query: window, aggregate or score its rows in another pump",
            join.at,
        ));
    }
    let mut rewrite = Rewrite::default();
    let select = rewrite.tokens(&select)?;
    if let Some(window) = rewrite.window
        && !rewrite.grouped
        && !rewrite.ordered
    {
        return Err(AnalyticsError::code(
            "A window (STEP or FLOOR of ROWTIME) is taken in GROUP BY or ORDER BY only",
            window.at,
        ));
    }
    let window = rewrite.window.map(|w| Window {
        ordered: !rewrite.grouped,
        ..w
    });
    if let Some(forest) = &forest
        && let Some(at) = window
            .map(|w| w.at)
            .or(rewrite.sliding.as_ref().map(|s| s.at))
    {
        return Err(AnalyticsError::code(
            format!(
                "A pump reading {} is a per-row query: window its rows in another pump",
                forest.stream
            ),
            at,
        ));
    }
    let _ = select_at;
    refuse_deep(&select, at)?;
    if let (Some(_), Some(sliding)) = (rewrite.window, &rewrite.sliding) {
        return Err(AnalyticsError::code(
            "A pump has a tumbling window (GROUP BY) or sliding windows (OVER), not both",
            sliding.at,
        ));
    }
    Ok(PumpDef {
        name,
        into,
        columns,
        select,
        window,
        sliding: rewrite.sliding,
        forest,
        join,
        at,
    })
}

/// Whether a `SELECT` windows its rows: `STEP(...)`, `FLOOR(... TO ...)` or `OVER`.
fn windows(select: &[TokenWithSpan]) -> bool {
    select.iter().enumerate().any(|(i, token)| {
        let call = select.get(i + 1).map(|t| &t.token) == Some(&Token::LParen);
        let word = |w| is_word(Some(&token.token), w);
        word("OVER")
            || (call && word("STEP"))
            || (call
                && word("FLOOR")
                && matching(select, i + 1).is_ok_and(|close| has_word(&select[i + 2..close], "TO")))
    })
}

/// Function calls nested deeper than this are refused (the rewrite recurses into each).
const NESTING_MAX: usize = 50;
/// Operators a pump's query may hold. A chain of `OR`s is a tree as deep as it is long, and
/// DataFusion clones and drops expression trees recursively: thousands would overflow the
/// stack of the thread planning them (its recursion protection does not cover those).
const OPERATORS_MAX: usize = 300;

/// Refuses a query with more operators than [`OPERATORS_MAX`].
fn refuse_deep(select: &[TokenWithSpan], at: Position) -> Result<(), AnalyticsError> {
    let operators = select
        .iter()
        .filter(|t| match &t.token {
            Token::Word(w) => {
                w.quote_style.is_none()
                    && (w.value.eq_ignore_ascii_case("AND") || w.value.eq_ignore_ascii_case("OR"))
            }
            Token::Eq
            | Token::DoubleEq
            | Token::Neq
            | Token::Lt
            | Token::Gt
            | Token::LtEq
            | Token::GtEq
            | Token::Plus
            | Token::Minus
            | Token::Mul
            | Token::Div
            | Token::Mod
            | Token::StringConcat => true,
            _ => false,
        })
        .count();
    if operators > OPERATORS_MAX {
        return Err(AnalyticsError::code(
            format!(
                "A pump's query has {operators} operators, more than {OPERATORS_MAX}: write long alternatives as IN (...) lists"
            ),
            at,
        ));
    }
    Ok(())
}

/// The rewrite of one `SELECT`.
#[derive(Default)]
struct Rewrite {
    /// Function calls being rewritten, one inside the other.
    depth: usize,
    window: Option<Window>,
    /// A `GROUP BY` holds the window.
    grouped: bool,
    in_group_by: bool,
    /// An `ORDER BY` holds the window (and no `GROUP BY` does).
    ordered: bool,
    in_order_by: bool,
    /// The call being rewritten is the first key of an `ORDER BY`.
    order_key_first: bool,
    sliding: Option<Sliding>,
    /// In a `WINDOW name AS (...)` clause.
    in_window_clause: bool,
    /// In a `FROM` clause, where `OVER` windows a joined stream.
    in_from: bool,
}

impl Rewrite {
    fn tokens(&mut self, tokens: &[TokenWithSpan]) -> Result<Vec<TokenWithSpan>, AnalyticsError> {
        let mut out = Vec::with_capacity(tokens.len());
        let mut i = 0;
        while i < tokens.len() {
            let token = &tokens[i];
            let next = tokens.get(i + 1).map(|t| &t.token);
            if token.token == Token::Mul && is_wildcard(out.last(), next) {
                wildcard(token, &mut out);
                i += 1;
                continue;
            }
            let Token::Word(word) = &token.token else {
                out.push(token.clone());
                i += 1;
                continue;
            };
            let upper = word.value.to_ascii_uppercase();
            let unquoted = word.quote_style.is_none();
            if unquoted && upper == "SELECT" && is_word(next, "STREAM") {
                // KDA's SELECT STREAM; sqlparser would read STREAM as a column's alias.
                out.push(token.clone());
                i += 2;
                continue;
            }
            if unquoted && upper == "SIMILAR" && is_word(next, "TO") {
                i = similar_to(tokens, i, &mut out)?;
                continue;
            }
            if unquoted {
                self.clause(&upper, next);
            }
            if unquoted && upper == "OVER" && self.in_from {
                return Err(AnalyticsError::code(
                    "A window in FROM is a joined stream's: FROM <stream> AS a JOIN <stream> OVER (...) AS b ON ...",
                    position(token.span.start),
                ));
            }
            let window_spec = upper == "OVER" || (upper == "AS" && self.in_window_clause);
            if unquoted && window_spec && next == Some(&Token::LParen) {
                let close = matching(tokens, i + 1)?;
                out.push(token.clone());
                out.push(tokens[i + 1].clone());
                out.extend(self.window_spec(&tokens[i + 1], &tokens[i + 2..close])?);
                out.push(tokens[close].clone());
                i = close + 1;
                continue;
            }
            if unquoted && next == Some(&Token::LParen) {
                self.order_key_first = out.len() >= 2
                    && is_word(Some(&out[out.len() - 1].token), "BY")
                    && is_word(Some(&out[out.len() - 2].token), "ORDER");
                let close = matching(tokens, i + 1)?;
                out.extend(self.call(&tokens[i..=close], &upper)?);
                i = close + 1;
                continue;
            }
            if unquoted && !KEPT.contains(&upper.as_str()) {
                out.push(with(token, Token::make_word(&upper, Some('"'))));
            } else {
                out.push(token.clone());
            }
            i += 1;
        }
        Ok(out)
    }

    /// A call, `name ( arguments )` in `call`: STEP and FLOOR rewritten, any other
    /// function named as DataFusion's registry has it.
    fn call(
        &mut self,
        call: &[TokenWithSpan],
        upper: &str,
    ) -> Result<Vec<TokenWithSpan>, AnalyticsError> {
        let (name, arguments) = (&call[0], &call[2..call.len() - 1]);
        if self.depth >= NESTING_MAX {
            return Err(AnalyticsError::code(
                format!("Function calls are nested more than {NESTING_MAX} deep"),
                position(name.span.start),
            ));
        }
        self.depth += 1;
        let made = match upper {
            "STEP" => self.step(name, arguments),
            "FLOOR" if has_word(arguments, "TO") => self.floor(name, arguments),
            _ => {
                let mut out = vec![with(
                    name,
                    Token::make_word(&upper.to_ascii_lowercase(), None),
                )];
                out.push(call[1].clone());
                self.tokens(arguments).map(|inner| {
                    out.extend(inner);
                    out.push(call[call.len() - 1].clone());
                    out
                })
            }
        };
        self.depth -= 1;
        made
    }

    /// Notes the clause a word starts: where a window is taken.
    fn clause(&mut self, upper: &str, next: Option<&Token>) {
        if upper == "GROUP" && is_word(next, "BY") {
            self.in_group_by = true;
            self.in_order_by = false;
            self.in_from = false;
        } else if matches!(
            upper,
            "HAVING" | "ORDER" | "WINDOW" | "LIMIT" | "SELECT" | "FROM" | "WHERE"
        ) {
            self.in_group_by = false;
            self.in_order_by = upper == "ORDER";
            self.in_window_clause = upper == "WINDOW";
            self.in_from = upper == "FROM";
        }
    }

    /// `STEP(<ts> BY INTERVAL '<n>' <UNIT>)` as `date_bin(INTERVAL '<n>' <UNIT>, <ts>)`.
    fn step(
        &mut self,
        name: &TokenWithSpan,
        arguments: &[TokenWithSpan],
    ) -> Result<Vec<TokenWithSpan>, AnalyticsError> {
        let at = position(name.span.start);
        let by = top_level_word(arguments, "BY").ok_or_else(|| {
            AnalyticsError::code("STEP takes (<time> BY INTERVAL '<n>' <unit>)", at)
        })?;
        let (over, interval) = (&arguments[..by], &arguments[by + 1..]);
        let width_ms = interval_ms(interval).ok_or_else(|| {
            AnalyticsError::code(
                "STEP's width must be INTERVAL '<n>' SECOND, MINUTE, HOUR or DAY",
                at,
            )
        })?;
        self.window(over, width_ms, at)?;
        let mut out = vec![
            with(name, Token::make_word("date_bin", None)),
            with(name, Token::LParen),
        ];
        out.extend(interval.iter().cloned());
        out.push(with(name, Token::Comma));
        out.extend(self.tokens(over)?);
        out.push(with(name, Token::RParen));
        Ok(out)
    }

    /// `FLOOR(<ts> TO <UNIT>)` as `date_trunc('<unit>', <ts>)`.
    fn floor(
        &mut self,
        name: &TokenWithSpan,
        arguments: &[TokenWithSpan],
    ) -> Result<Vec<TokenWithSpan>, AnalyticsError> {
        let at = position(name.span.start);
        let to = top_level_word(arguments, "TO").expect("checked by the caller");
        let (over, unit) = (&arguments[..to], &arguments[to + 1..]);
        let unit = match unit {
            [
                TokenWithSpan {
                    token: Token::Word(w),
                    ..
                },
            ] => w.value.to_ascii_lowercase(),
            _ => return Err(AnalyticsError::code("FLOOR takes (<time> TO <unit>)", at)),
        };
        let width_ms = unit_ms(&unit).ok_or_else(|| {
            AnalyticsError::code("FLOOR's unit must be SECOND, MINUTE, HOUR or DAY", at)
        })?;
        self.window(over, width_ms, at)?;
        let mut out = vec![
            with(name, Token::make_word("date_trunc", None)),
            with(name, Token::LParen),
            with(name, Token::SingleQuotedString(unit)),
            with(name, Token::Comma),
        ];
        out.extend(self.tokens(over)?);
        out.push(with(name, Token::RParen));
        Ok(out)
    }

    /// A sliding window's specification, KDA's `[PARTITION BY ...] RANGE INTERVAL '<n>'
    /// <unit> PRECEDING`, as DataFusion's: ordered by `ROWTIME`, `RANGE BETWEEN INTERVAL
    /// '<n>' <unit> PRECEDING AND CURRENT ROW`.
    fn window_spec(
        &mut self,
        open: &TokenWithSpan,
        spec: &[TokenWithSpan],
    ) -> Result<Vec<TokenWithSpan>, AnalyticsError> {
        let at = position(open.span.start);
        let refused = |why: &str| AnalyticsError::code(why, at);
        if top_level_word(spec, "ORDER").is_some() {
            return Err(refused(
                "A sliding window is ordered by ROWTIME: leave ORDER BY out of it",
            ));
        }
        if let Some(rows) = top_level_word(spec, "ROWS") {
            return self.rows_window(open, spec, rows);
        }
        let Some(range) = top_level_word(spec, "RANGE") else {
            return Err(refused(
                "A sliding window needs RANGE INTERVAL '<n>' <unit> PRECEDING or ROWS <n> PRECEDING",
            ));
        };
        let frame = &spec[range + 1..];
        let width_ms = match frame {
            [interval @ .., last] if is_word(Some(&last.token), "PRECEDING") => {
                interval_ms(interval)
            }
            _ => None,
        }
        .ok_or_else(|| {
            refused(
                "A sliding window's range is INTERVAL '<n>' SECOND, MINUTE, HOUR or DAY PRECEDING",
            )
        })?;
        let mut out = self.tokens(&spec[..range])?;
        for token in [
            Token::make_keyword("ORDER"),
            Token::make_keyword("BY"),
            Token::make_word(crate::schema::ROWTIME, Some('"')),
            Token::make_keyword("RANGE"),
            Token::make_keyword("BETWEEN"),
        ] {
            out.push(with(open, token));
        }
        out.extend(frame.iter().cloned());
        for token in [
            Token::make_keyword("AND"),
            Token::make_keyword("CURRENT"),
            Token::make_keyword("ROW"),
        ] {
            out.push(with(open, token));
        }
        let sliding = self.sliding.get_or_insert(Sliding {
            range_ms: 0,
            rows: Vec::new(),
            at,
        });
        sliding.range_ms = sliding.range_ms.max(width_ms);
        Ok(out)
    }

    /// KDA's `[PARTITION BY <column>, ...] ROWS <n> PRECEDING` (`ROWS` at `rows` in
    /// `spec`), as DataFusion's `ORDER BY "ROWTIME" ROWS BETWEEN <n> PRECEDING AND CURRENT
    /// ROW`. Its partition is of plain columns, so the rows a window needs are kept by
    /// their values.
    fn rows_window(
        &mut self,
        open: &TokenWithSpan,
        spec: &[TokenWithSpan],
        rows: usize,
    ) -> Result<Vec<TokenWithSpan>, AnalyticsError> {
        let at = position(open.span.start);
        let refused = |why: String| AnalyticsError::code(why, at);
        if top_level_word(spec, "RANGE").is_some() {
            return Err(refused("A window is RANGE or ROWS, not both".to_owned()));
        }
        let preceding = match &spec[rows + 1..] {
            [n, last] if is_word(Some(&last.token), "PRECEDING") => match &n.token {
                Token::Number(text, _) => text.parse::<usize>().ok(),
                _ => None,
            },
            _ => None,
        }
        .filter(|n| *n <= ROWS_PRECEDING_MAX)
        .ok_or_else(|| {
            refused(format!(
                "A ROWS window is ROWS <n> PRECEDING, n from 0 to {ROWS_PRECEDING_MAX}"
            ))
        })?;
        let partition = partition_columns(&spec[..rows]).ok_or_else(|| {
            refused(
                "A ROWS window's PARTITION BY names columns of the stream (<column>, ...)"
                    .to_owned(),
            )
        })?;
        let mut out = self.tokens(&spec[..rows])?;
        for token in [
            Token::make_keyword("ORDER"),
            Token::make_keyword("BY"),
            Token::make_word(crate::schema::ROWTIME, Some('"')),
            Token::make_keyword("ROWS"),
            Token::make_keyword("BETWEEN"),
            Token::Number(preceding.to_string(), false),
            Token::make_keyword("PRECEDING"),
            Token::make_keyword("AND"),
            Token::make_keyword("CURRENT"),
            Token::make_keyword("ROW"),
        ] {
            out.push(with(open, token));
        }
        self.sliding
            .get_or_insert(Sliding {
                range_ms: 0,
                rows: Vec::new(),
                at,
            })
            .rows
            .push(RowsWindow {
                preceding,
                partition,
            });
        Ok(out)
    }

    /// Notes the window of a STEP or FLOOR over `over`: on ROWTIME, one width per pump.
    fn window(
        &mut self,
        over: &[TokenWithSpan],
        width_ms: i64,
        at: Position,
    ) -> Result<(), AnalyticsError> {
        let last = over.last().map(|t| &t.token);
        let rowtime = matches!(last, Some(Token::Word(w)) if w.value.eq_ignore_ascii_case("ROWTIME"))
            && (over.len() == 1 || (over.len() == 3 && over[1].token == Token::Period));
        if !rowtime {
            return Err(AnalyticsError::code(
                "Windows over a column other than ROWTIME are not supported yet",
                at,
            ));
        }
        if self.window.is_some_and(|w| w.width_ms != width_ms) {
            return Err(AnalyticsError::code("A pump has one window width", at));
        }
        if self.in_order_by && !self.grouped && !self.order_key_first {
            return Err(AnalyticsError::code(
                "A window in ORDER BY is its first key: ORDER BY FLOOR(ROWTIME TO <unit>), ...",
                at,
            ));
        }
        self.grouped |= self.in_group_by;
        self.ordered |= self.in_order_by;
        self.window = Some(Window {
            width_ms,
            ordered: false,
            at,
        });
        Ok(())
    }
}

/// `[NOT] SIMILAR TO '<pattern>'` at `tokens[i]` (NOT already in `out`) as `~` (`!~`) and
/// the regular expression the pattern means; returns where the rewrite goes on. DataFusion
/// reads SIMILAR TO's pattern as an unanchored regular expression (`%` and `_` literal): a
/// silent wrong answer.
fn similar_to(
    tokens: &[TokenWithSpan],
    i: usize,
    out: &mut Vec<TokenWithSpan>,
) -> Result<usize, AnalyticsError> {
    let token = &tokens[i];
    let negated = matches!(out.last(), Some(TokenWithSpan { token: Token::Word(w), .. })
        if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("NOT"));
    if negated {
        out.pop();
    }
    let Some(Token::SingleQuotedString(pattern)) = tokens.get(i + 2).map(|t| &t.token) else {
        return Err(AnalyticsError::code(
            "SIMILAR TO takes a pattern in quotes",
            position(token.span.start),
        ));
    };
    if is_word(tokens.get(i + 3).map(|t| &t.token), "ESCAPE") {
        return Err(AnalyticsError::code(
            "SIMILAR TO ... ESCAPE is not supported (\\ escapes)",
            position(token.span.start),
        ));
    }
    let operator = if negated {
        Token::ExclamationMarkTilde
    } else {
        Token::Tilde
    };
    out.push(with(token, operator));
    let regex = similar_to_regex(pattern)
        .map_err(|why| AnalyticsError::code(why, position(tokens[i + 2].span.start)))?;
    out.push(with(&tokens[i + 2], Token::SingleQuotedString(regex)));
    Ok(i + 3)
}

/// A SQL `SIMILAR TO` pattern as the regular expression it means: the whole value must
/// match (new lines included); `%` is any text, `_` any character, `\\` takes the next
/// character literally, `.`, `^` and `$` are literal; `| * + ? {m,n} ( )` are as in regular
/// expressions, and a bracket expression `[...]` is copied as it is. A pattern that makes
/// no regular expression (or ends in a lone `\\`) is refused.
fn similar_to_regex(pattern: &str) -> Result<String, String> {
    let mut regex = String::from("(?s)^(?:");
    let mut chars = pattern.chars().peekable();
    let mut in_brackets = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let next = chars
                    .next()
                    .ok_or_else(|| "SIMILAR TO's pattern ends in a lone \\".to_owned())?;
                regex.push_str(&escape_regex(next));
            }
            ']' if in_brackets => {
                in_brackets = false;
                regex.push(c);
            }
            _ if in_brackets => regex.push(c),
            '[' => {
                in_brackets = true;
                regex.push(c);
                // A leading ^ negates; a leading ] is a member.
                for lead in ['^', ']'] {
                    if chars.peek() == Some(&lead) {
                        regex.push(lead);
                        chars.next();
                    }
                }
            }
            '%' => regex.push_str(".*"),
            '_' => regex.push('.'),
            '.' | '^' | '$' => regex.push_str(&escape_regex(c)),
            other => regex.push(other),
        }
    }
    regex.push_str(")$");
    regex::Regex::new(&regex)
        .map(|_| regex)
        .map_err(|e| format!("SIMILAR TO's pattern {pattern:?} is not one this server reads: {e}"))
}

fn escape_regex(c: char) -> String {
    if c.is_ascii_punctuation() {
        format!("\\{c}")
    } else {
        c.to_string()
    }
}

fn with(at: &TokenWithSpan, token: Token) -> TokenWithSpan {
    TokenWithSpan {
        token,
        span: at.span,
    }
}

/// A select list's `*` as KDA means it: every column but `ROWTIME`, which is every
/// stream's and which each pump sets.
fn wildcard(star: &TokenWithSpan, out: &mut Vec<TokenWithSpan>) {
    out.push(star.clone());
    out.push(with(star, Token::make_keyword("EXCLUDE")));
    out.push(with(star, Token::LParen));
    out.push(with(star, Token::make_word(ROWTIME, Some('"'))));
    out.push(with(star, Token::RParen));
}

/// A `*` between these is a select list's wildcard (`*` or `t.*`), not a product.
fn is_wildcard(before: Option<&TokenWithSpan>, after: Option<&Token>) -> bool {
    let before = before.map(|t| &t.token);
    let opens = matches!(before, Some(Token::Comma | Token::Period))
        || ["SELECT", "DISTINCT", "ALL"]
            .iter()
            .any(|w| is_word(before, w));
    let closes = matches!(after, None | Some(Token::Comma)) || is_word(after, "FROM");
    opens && closes
}

/// The columns of `PARTITION BY <column>, ...` (a column perhaps qualified); none for no
/// tokens; `None` for anything else.
fn partition_columns(tokens: &[TokenWithSpan]) -> Option<Vec<String>> {
    let Some(rest) = tokens.get(2..) else {
        return tokens.is_empty().then(Vec::new);
    };
    if !is_word(Some(&tokens[0].token), "PARTITION") || !is_word(Some(&tokens[1].token), "BY") {
        return None;
    }
    rest.split(|t| t.token == Token::Comma)
        .map(|item| match item {
            [
                TokenWithSpan {
                    token: Token::Word(column),
                    ..
                },
            ] => Some(name_of(column)),
            [
                TokenWithSpan {
                    token: Token::Word(_),
                    ..
                },
                TokenWithSpan {
                    token: Token::Period,
                    ..
                },
                TokenWithSpan {
                    token: Token::Word(column),
                    ..
                },
            ] => Some(name_of(column)),
            _ => None,
        })
        .collect()
}

fn is_word(token: Option<&Token>, value: &str) -> bool {
    matches!(token, Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(value))
}

fn has_word(tokens: &[TokenWithSpan], value: &str) -> bool {
    top_level_word(tokens, value).is_some()
}

/// Where the unquoted word `value` is in `tokens`, outside parentheses.
fn top_level_word(tokens: &[TokenWithSpan], value: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, token) in tokens.iter().enumerate() {
        match &token.token {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            t if depth == 0 && is_word(Some(t), value) => return Some(i),
            _ => {}
        }
    }
    None
}

/// The `)` matching the `(` at `open`.
fn matching(tokens: &[TokenWithSpan], open: usize) -> Result<usize, AnalyticsError> {
    let mut depth = 0usize;
    for (i, token) in tokens.iter().enumerate().skip(open) {
        match token.token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    return Ok(i);
                }
            }
            _ => {}
        }
    }
    Err(AnalyticsError::code(
        "This ( is not closed",
        position(tokens[open].span.start),
    ))
}

/// `INTERVAL '<n>' <UNIT>` in milliseconds.
fn interval_ms(tokens: &[TokenWithSpan]) -> Option<i64> {
    match tokens {
        [
            TokenWithSpan {
                token: Token::Word(interval),
                ..
            },
            TokenWithSpan {
                token: Token::SingleQuotedString(n),
                ..
            },
            TokenWithSpan {
                token: Token::Word(unit),
                ..
            },
        ] if interval.value.eq_ignore_ascii_case("INTERVAL") => {
            let n: i64 = n.trim().parse().ok().filter(|n| *n > 0)?;
            n.checked_mul(unit_ms(&unit.value.to_ascii_lowercase())?)
        }
        _ => None,
    }
}

fn unit_ms(unit: &str) -> Option<i64> {
    match unit {
        "second" => Some(1000),
        "minute" => Some(60_000),
        "hour" => Some(3_600_000),
        "day" => Some(86_400_000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similar_to_patterns_become_the_regular_expressions_sql_means() {
        let regex = |p: &str| similar_to_regex(p).unwrap();
        let matches = |p: &str, text: &str| regex::Regex::new(&regex(p)).unwrap().is_match(text);
        assert!(matches("a%", "a\nb"), "% spans new lines");
        assert!(
            matches("[^abc]x", "dx") && !matches("[^abc]x", "ax"),
            "negated brackets"
        );
        assert!(
            matches("[_-]", "_") && !matches("[_-]", "x"),
            "_ is literal in brackets"
        );
        assert!(
            matches("a.b", "a.b") && !matches("a.b", "axb"),
            ". is literal"
        );
        assert!(matches("(ab|cd)+", "abcd") && !matches("(ab|cd)+", "abce"));
        assert!(matches("50\\%", "50%") && !matches("50\\%", "500"));
        assert!(similar_to_regex("a\\").is_err(), "a lone backslash");
        assert!(similar_to_regex("(").is_err(), "no regular expression");
        let refused = parse(
            "CREATE OR REPLACE PUMP p AS INSERT INTO s SELECT STREAM x FROM src WHERE x SIMILAR TO '[a'",
        )
        .unwrap_err();
        assert!(
            refused.to_string().contains("SIMILAR TO's pattern"),
            "{refused}"
        );
    }

    fn select_text(pump: &PumpDef) -> String {
        text(&pump.select)
    }

    #[test]
    fn kda_statements_are_read_and_rewritten_for_datafusion() {
        let code = parse(
            r#"CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (ticker_symbol VARCHAR(4), "Avg" DOUBLE, n DECIMAL(8, 2));
            -- a comment
            CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
              SELECT STREAM ticker_symbol, AVG(price) AS a, COUNT(*)
              FROM "SOURCE_SQL_STREAM_001"
              GROUP BY ticker_symbol, STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '60' SECOND);"#,
        )
        .unwrap();
        assert_eq!(code.streams.len(), 1);
        let stream = &code.streams[0];
        assert_eq!(stream.name, "DESTINATION_SQL_STREAM");
        assert_eq!(
            stream.columns,
            [
                ("TICKER_SYMBOL".to_owned(), "VARCHAR(4)".to_owned()),
                ("Avg".to_owned(), "DOUBLE".to_owned()),
                ("N".to_owned(), "DECIMAL(8,2)".to_owned()),
            ]
        );
        let pump = &code.pumps[0];
        assert_eq!(
            (pump.name.as_str(), pump.into.as_str()),
            ("STREAM_PUMP", "DESTINATION_SQL_STREAM")
        );
        assert_eq!(pump.window.map(|w| w.width_ms), Some(60_000));
        assert_eq!(
            select_text(pump),
            r#"SELECT "TICKER_SYMBOL",avg("PRICE")AS "A",count(*)FROM "SOURCE_SQL_STREAM_001" GROUP BY "TICKER_SYMBOL",date_bin(INTERVAL'60'SECOND,"SOURCE_SQL_STREAM_001"."ROWTIME")"#
        );
        let floor = parse(
            "CREATE OR REPLACE PUMP p AS INSERT INTO s SELECT STREAM x FROM src GROUP BY x, FLOOR(src.ROWTIME TO MINUTE)",
        )
        .unwrap();
        assert_eq!(floor.pumps[0].window.map(|w| w.width_ms), Some(60_000));
        assert!(select_text(&floor.pumps[0]).ends_with(r#"date_trunc('minute',"SRC"."ROWTIME")"#));
    }

    #[test]
    fn what_is_not_application_code_is_refused_where_it_is() {
        let refused = |code: &str, message: &str, line: u64, column: u64| {
            let error = parse(code).unwrap_err();
            let AnalyticsError::Code { message: got, at } = &error else {
                panic!("{error:?}");
            };
            assert!(got.contains(message), "{got}");
            assert_eq!((at.line, at.column), (line, column), "{error}");
        };
        refused("SELECT 1", "Expected CREATE", 1, 1);
        let deep = format!(
            "CREATE OR REPLACE PUMP p AS INSERT INTO s SELECT STREAM {}1{} FROM src",
            "f(".repeat(20_000),
            ")".repeat(20_000)
        );
        assert!(
            parse(&deep)
                .unwrap_err()
                .to_string()
                .contains("nested more than 50")
        );
        refused("CREATE OR REPLACE TABLE t (a INT)", "STREAM or PUMP", 1, 19);
        refused("CREATE OR REPLACE STREAM s (a BLOB)", "BLOB", 1, 31);
        refused(
            "CREATE OR REPLACE PUMP p AS INSERT INTO s VALUES (1)",
            "SELECT STREAM",
            1,
            43,
        );
        refused(
            "CREATE OR REPLACE PUMP p AS INSERT INTO s\nSELECT STREAM COUNT(*) FROM src GROUP BY STEP(ts BY INTERVAL '1' MINUTE)",
            "other than ROWTIME",
            2,
            42,
        );
        refused(
            "CREATE OR REPLACE PUMP p AS INSERT INTO s SELECT STREAM COUNT(*) FROM src GROUP BY STEP(ROWTIME BY INTERVAL '1' FORTNIGHT)",
            "STEP's width",
            1,
            84,
        );
    }
}
