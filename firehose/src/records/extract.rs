//! Firehose's `MetadataExtraction` processor for dynamic partitioning: a jq query
//! (`MetadataExtractionQuery`, `JsonParsingEngine` `JQ-1.6`) evaluated on each JSON record
//! gives the record's partition keys, `!{partitionKeyFromQuery:NAME}` in a prefix.
//!
//! Queries are parsed, compiled and run by jaq (jaq-core, jaq-std, jaq-json), the maintained
//! jq implementation in Rust, so that paths and functions mean exactly what they mean in jq.
//! The query is the user's, though, and jq is a full programming language, so only a subset
//! that always finishes quickly in memory proportional to the record is accepted:
//!
//! * the query is an object constructor `{name: value, ...}` (or `{name}` for `{name: .name}`)
//!   whose names are plain names or strings, so they are known when the delivery stream is
//!   created;
//! * a value is a path (`.a`, `.a.b`, `."quoted key"`, `.a[0]`, `.a[-1]`, `.["a"]`,
//!   `.a[2:4]`, any part optional with `?`), a number or string literal, `.`, `f | g`,
//!   `f // g`, or one of [`FUNCTIONS`] (their arguments string literals; `split` and
//!   `tostring` once each per value, see [`GROWING`]).
//!
//! Refused: `,` and `.[]` (more than one value), variables (`$ENV` would put the server's
//! environment in object names), definitions, `reduce`, `..`, and everything that can grow a
//! value without bound (arithmetic, `tojson`, formats, interpolation, `join`): with those, a
//! few characters of query turn a 1 MB record into gigabytes.
//!
//! jaq's parser is recursive, and 400 nested parentheses overflow a 2 MiB stack in a debug
//! build, which aborts the process; so parsing and compiling run on a thread of their own with
//! a large stack ([`PARSER_STACK_BYTES`], address space only, used as deep as the query goes),
//! and queries are at most Firehose's 5,120 characters (the deepest query of that length, 5,119
//! minus signs, needs under 64 MiB there). Past the parser, accepted queries nest at most
//! [`DEPTH_MAX`] deep, and records are parsed by serde_json, which refuses nesting over 128, so
//! evaluation's recursion is bounded too.

use std::collections::BTreeMap;
use std::fmt;

use jaq_core::data::JustLut;
use jaq_core::load::lex::{self, StrPart, Token};
use jaq_core::load::parse::{self, BinaryOp, Term};
use jaq_core::load::{Arena, File, Lexer, Loader, Parser};
use jaq_core::path::Part;
use jaq_core::{Compiler, Ctx, Vars};
use jaq_json::Val;

/// The error code Firehose gives a record whose partition keys cannot be extracted.
pub(crate) const EXTRACTION_FAILED_CODE: &str = "DynamicPartitioning.MetadataExtractionFailed";
/// The longest query: Firehose's limit on a processor parameter's value.
pub(crate) const QUERY_LENGTH_MAX: usize = 5120;
/// The longest partition key value, in bytes, so that a few keys fit in an S3 key (1,024).
pub(crate) const KEY_VALUE_BYTES_MAX: usize = 512;
/// How deeply a value's expression may nest (a pipe, an alternative or a path's base each add
/// one); real queries need a few.
const DEPTH_MAX: usize = 16;
/// The parsing thread's stack: four times what the worst query of [`QUERY_LENGTH_MAX`] needs.
const PARSER_STACK_BYTES: usize = 256 << 20;
/// The functions a value may call, with how many (string literal) arguments. None of them
/// makes its output much larger than its input.
pub(crate) const FUNCTIONS: [(&str, usize); 19] = [
    ("tostring", 0),
    ("tonumber", 0),
    ("ascii_downcase", 0),
    ("ascii_upcase", 0),
    ("length", 0),
    ("floor", 0),
    ("ceil", 0),
    ("round", 0),
    ("todate", 0),
    ("todateiso8601", 0),
    ("fromdate", 0),
    ("fromdateiso8601", 0),
    ("mktime", 0),
    ("gmtime", 0),
    ("strftime", 1),
    ("strptime", 1),
    ("ltrimstr", 1),
    ("rtrimstr", 1),
    ("split", 1),
];

/// The functions in [`FUNCTIONS`] whose output can be larger than their input: `split` (a
/// string of separators becomes an array of empty strings, three times as long in JSON) and
/// `tostring` (an array's quotes are escaped). Chained, `split(",") | tostring` repeated would
/// grow a value six-fold each time, so each may be used once per value.
const GROWING: [&str; 2] = ["split", "tostring"];

/// The compiled form jaq runs.
type Filter = jaq_core::Filter<JustLut<Val>>;

/// A parsed and checked `MetadataExtractionQuery`, ready to run on records.
pub(crate) struct Query {
    /// The partition key names, in the order the query writes them.
    names: Vec<String>,
    filter: Filter,
}

impl fmt::Debug for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Query")
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

impl Query {
    /// Parses a query, checks it is in the accepted subset (see the module's documentation) and
    /// compiles it. Errors say what is wrong and at which byte of `text`.
    pub(crate) fn parse(text: &str) -> Result<Query, String> {
        if text.chars().count() > QUERY_LENGTH_MAX {
            return Err(format!(
                "query is longer than {QUERY_LENGTH_MAX} characters"
            ));
        }
        let text = text.to_owned();
        std::thread::Builder::new()
            .name("jq-query-parser".to_owned())
            .stack_size(PARSER_STACK_BYTES)
            .spawn(move || parse_here(&text))
            .map_err(|e| format!("cannot start the query parser: {e}"))?
            .join()
            .map_err(|_| "the query parser failed".to_owned())?
    }

    /// The partition key names the query produces, in the order it writes them.
    pub(crate) fn names(&self) -> Vec<String> {
        self.names.clone()
    }

    /// Runs the query on one record and returns its partition keys by name. A string value is
    /// the key as it is; numbers and booleans are their JSON text (`42`, `12.5`, `true`). A
    /// record that is not JSON, a query that fails on it, and a value that is null (as when the
    /// field is missing), an object or an array, or not [`valid_key_value`], are errors: Firehose
    /// fails such a record with [`EXTRACTION_FAILED_CODE`].
    pub(crate) fn keys(&self, record: &[u8]) -> Result<BTreeMap<String, String>, String> {
        // serde_json refuses nesting past 128, which bounds jaq's recursion over the value.
        let input: Val =
            serde_json::from_slice(record).map_err(|e| format!("record is not JSON: {e}"))?;
        let ctx = Ctx::<JustLut<Val>>::new(&self.filter.lut, Vars::new([]));
        let output = self.filter.id.run((ctx, input)).next();
        let object = match output {
            Some(Ok(Val::Obj(object))) => object,
            Some(Ok(other)) => return Err(format!("query made {}, not an object", kind(&other))),
            // `get_err` fails only for `halt`, which a checked query cannot call.
            Some(Err(e)) => {
                return Err(match e.get_err() {
                    Ok(e) => format!("query failed on this record: {}", shorten(&e.to_string())),
                    Err(_) => "query halted".to_owned(),
                });
            }
            None => return Err("query made no value for this record".to_owned()),
        };
        let mut keys = BTreeMap::new();
        for name in &self.names {
            let value = object.get(&Val::from(name.clone())).unwrap_or(&Val::Null);
            let value = render(value).map_err(|e| format!("partition key {name:?} {e}"))?;
            if !valid_key_value(&value) {
                return Err(format!(
                    "partition key {name:?} is {:?}, which cannot be part of an object name",
                    shorten(&value)
                ));
            }
            keys.insert(name.clone(), value);
        }
        Ok(keys)
    }
}

/// Whether a partition key value can go into an object name: not empty, at most
/// [`KEY_VALUE_BYTES_MAX`] bytes, no control characters, and no `.` or `..` between slashes
/// (or as the whole value), so that keys stay in their bucket on a filesystem too. Any other
/// character is allowed, as in Firehose, `/` included (it makes more levels).
pub(crate) fn valid_key_value(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= KEY_VALUE_BYTES_MAX
        && !value.chars().any(char::is_control)
        && !value
            .split('/')
            .any(|segment| segment == "." || segment == "..")
}

/// A value as a partition key, or why it cannot be one.
fn render(value: &Val) -> Result<String, String> {
    match value {
        Val::TStr(bytes) => std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| "is not UTF-8".to_owned()),
        Val::Num(n) => {
            let text = n.to_string();
            // NaN and the infinities are not JSON numbers.
            if text.starts_with(|c: char| c.is_ascii_digit() || c == '-')
                && !text.ends_with("Infinity")
            {
                Ok(text)
            } else {
                Err(format!("is {text}"))
            }
        }
        Val::Bool(b) => Ok(b.to_string()),
        Val::Null => Err("is null (is the field missing from the record?)".to_owned()),
        other => Err(format!(
            "is {}, not a string, number or boolean",
            kind(other)
        )),
    }
}

/// What kind of value this is, for messages.
fn kind(value: &Val) -> &'static str {
    match value {
        Val::Null => "null",
        Val::Bool(_) => "a boolean",
        Val::Num(_) => "a number",
        Val::TStr(_) => "a string",
        Val::BStr(_) => "a byte string",
        Val::Arr(_) => "an array",
        Val::Obj(_) => "an object",
    }
}

/// At most 200 characters of `text`: jaq's messages quote whole values.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

/// [`Query::parse`]'s work, on a thread with a stack deep enough for any query.
fn parse_here(code: &str) -> Result<Query, String> {
    let tokens = Lexer::new(code)
        .lex()
        .map_err(|errors| lex_error(code, &errors))?;
    let term = Parser::new(&tokens)
        .parse(Parser::term)
        .map_err(|errors| parse_error(code, &errors))?;
    let names = check_query(code, &term)?;
    drop(term);
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs());
    let arena = Arena::default();
    let modules = Loader::new(defs)
        .load(&arena, File { code, path: () })
        .map_err(|_| "query does not parse".to_owned())?;
    let filter = Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|errors| {
            let undefined = errors
                .iter()
                .flat_map(|(_, e)| e)
                .map(|(name, _)| *name)
                .next();
            format!(
                "query does not compile: `{}` is undefined",
                undefined.unwrap_or("?")
            )
        })?;
    Ok(Query { names, filter })
}

/// The byte offset of `part` in `code`, if it is a slice of it (as jaq's tokens and terms are).
fn offset(code: &str, part: &str) -> Option<usize> {
    let start = (part.as_ptr() as usize).checked_sub(code.as_ptr() as usize)?;
    (start + part.len() <= code.len()).then_some(start)
}

/// " at byte N" where `part` is in `code`.
fn at(code: &str, part: Option<&str>) -> String {
    match part.and_then(|part| offset(code, part)) {
        Some(start) => format!(" at byte {start}"),
        None => String::new(),
    }
}

fn lex_error(code: &str, errors: &[lex::Error<&str>]) -> String {
    let Some((expected, found)) = errors.first() else {
        return "query does not parse".to_owned();
    };
    let expected = match expected {
        lex::Expect::Digit => "a digit",
        lex::Expect::Ident => "an identifier",
        lex::Expect::Delim("(") => "a closing parenthesis",
        lex::Expect::Delim("[") => "a closing bracket",
        lex::Expect::Delim("{") => "a closing brace",
        lex::Expect::Delim("\"") => "a closing quote",
        lex::Expect::Escape => "a string escape sequence",
        lex::Expect::Unicode => "four hexadecimal digits",
        _ => "a token",
    };
    format!(
        "query syntax error{}: expected {expected}",
        at(code, Some(found))
    )
}

fn parse_error(code: &str, errors: &[parse::TError<'_, &str>]) -> String {
    let Some((expected, found)) = errors.first() else {
        return "query does not parse".to_owned();
    };
    let found = Token::opt_as_str(*found, code);
    format!(
        "query syntax error{}: expected {}",
        at(code, Some(found)),
        expected.as_str()
    )
}

/// Checks the top level, `{name: value, ...}`, and returns the names.
fn check_query(code: &str, term: &Term<&str>) -> Result<Vec<String>, String> {
    let Term::Obj(entries) = term else {
        return Err(format!(
            "query must be an object constructor such as {{customer_id: .customer_id}}; \
             this one starts{}",
            at(code, first_slice(term))
        ));
    };
    if entries.is_empty() {
        return Err("query makes no partition keys".to_owned());
    }
    let mut names: Vec<String> = Vec::new();
    for (key, value) in entries {
        let name = literal(key)
            .filter(|name| !name.is_empty())
            .ok_or_else(|| {
                let at = at(code, first_slice(key));
                format!("a partition key's name must be a plain name or a non-empty string{at}")
            })?;
        if names.contains(&name) {
            return Err(format!(
                "partition key {name:?} is named twice{}",
                at(code, first_slice(key))
            ));
        }
        if let Some(value) = value {
            check_value(code, value, 1, &mut [false; GROWING.len()])?;
        }
        names.push(name);
    }
    Ok(names)
}

/// Checks one value's expression (see the module's documentation for what is accepted).
fn check_value(
    code: &str,
    term: &Term<&str>,
    depth: usize,
    grown: &mut [bool; GROWING.len()],
) -> Result<(), String> {
    if depth > DEPTH_MAX {
        return Err(format!(
            "query nests deeper than {DEPTH_MAX}{}",
            at(code, first_slice(term))
        ));
    }
    match term {
        Term::Id | Term::Num(_) => Ok(()),
        Term::Str(..) if literal(term).is_some() => Ok(()),
        Term::Neg(inner) if matches!(**inner, Term::Num(_)) => Ok(()),
        Term::Path(base, path) => {
            check_value(code, base, depth + 1, grown)?;
            path.0
                .iter()
                .try_for_each(|(part, _)| check_part(code, part, term))
        }
        Term::BinOp(left, BinaryOp::Pipe(None) | BinaryOp::Alt, right) => {
            check_value(code, left, depth + 1, grown)?;
            check_value(code, right, depth + 1, grown)
        }
        Term::Call(name, args) => check_call(code, name, args, grown),
        _ => Err(format!(
            "{} cannot be used in a partition key query{}",
            describe(term),
            at(code, first_slice(term))
        )),
    }
}

/// A path part: an index by a string or (possibly negative) integer literal, or a slice
/// with literal bounds. `.[]` is refused: it makes one value per element.
fn check_part(code: &str, part: &Part<Term<&str>>, path: &Term<&str>) -> Result<(), String> {
    let is_literal = |term: &Term<&str>| match term {
        Term::Num(_) => true,
        Term::Neg(inner) => matches!(**inner, Term::Num(_)),
        Term::Str(..) => literal(term).is_some(),
        _ => false,
    };
    let ok = match part {
        Part::Index(index) => is_literal(index),
        Part::Range(None, None) => false,
        Part::Range(from, to) => from.iter().chain(to).all(is_literal),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "a path's index must be a string or number (not `.[]` or an expression){}",
            at(code, first_slice(path))
        ))
    }
}

fn check_call(
    code: &str,
    name: &str,
    args: &[Term<&str>],
    grown: &mut [bool; GROWING.len()],
) -> Result<(), String> {
    let arity = FUNCTIONS
        .iter()
        .find(|(f, _)| *f == name)
        .map(|(_, arity)| *arity);
    if arity != Some(args.len()) {
        let list: Vec<_> = FUNCTIONS
            .iter()
            .map(|(f, arity)| format!("{f}/{arity}"))
            .collect();
        return Err(format!(
            "`{name}/{}` cannot be used in a partition key query{}; these can: {}",
            args.len(),
            at(code, Some(name)),
            list.join(", ")
        ));
    }
    for arg in args {
        match literal(arg) {
            // `split("")` would make an array of every character.
            Some(arg) if !(name == "split" && arg.is_empty()) => {}
            _ => {
                let what = if name == "split" {
                    "a non-empty string"
                } else {
                    "a string"
                };
                return Err(format!(
                    "`{name}`'s argument must be {what} literal{}",
                    at(code, Some(name))
                ));
            }
        }
    }
    if let Some(i) = GROWING.iter().position(|f| *f == name)
        && std::mem::replace(&mut grown[i], true)
    {
        return Err(format!(
            "`{name}` can be used once per partition key{}",
            at(code, Some(name))
        ));
    }
    Ok(())
}

/// The text of a plain string literal or name (`"a b"`, `a`); `None` for anything else
/// (interpolation, `@format` strings, expressions).
fn literal(term: &Term<&str>) -> Option<String> {
    let Term::Str(None, parts) = term else {
        return None;
    };
    let mut text = String::new();
    for part in parts {
        match part {
            StrPart::Str(s) => text.push_str(s),
            StrPart::Char(c) => text.push(*c),
            StrPart::Term(_) => return None,
        }
    }
    Some(text)
}

/// What a refused construct is, for messages.
fn describe(term: &Term<&str>) -> &'static str {
    match term {
        Term::Recurse => "`..`",
        Term::Str(Some(_), _) => "a `@format` string",
        Term::Str(None, _) => "string interpolation",
        Term::Arr(_) => "an array constructor",
        Term::Obj(_) => "an object constructor inside a value",
        Term::Neg(_) => "negation",
        Term::BinOp(_, op, _) => match op {
            BinaryOp::Pipe(Some(_)) => "`as` binding",
            BinaryOp::Comma => "`,` (it makes more than one value)",
            BinaryOp::Math(_) => "arithmetic",
            BinaryOp::Or | BinaryOp::And => "`and`/`or`",
            BinaryOp::Cmp(_) => "comparison",
            _ => "assignment",
        },
        Term::Label(..) | Term::Break(_) => "`label`/`break`",
        Term::Fold(..) => "`reduce`/`foreach`",
        Term::TryCatch(..) => "`try`",
        Term::IfThenElse(..) => "`if`",
        Term::Def(..) => "a definition",
        Term::Var(_) => "a variable",
        _ => "this",
    }
}

/// Some piece of source text inside `term`, to say where it is. It follows the first child
/// only (a loop, not recursion: the term may be nested arbitrarily deep).
fn first_slice<'s>(mut term: &Term<&'s str>) -> Option<&'s str> {
    loop {
        term = match term {
            Term::Num(s) | Term::Var(s) | Term::Break(s) | Term::Label(s, _) => return Some(s),
            Term::Call(s, _) | Term::Fold(s, ..) => return Some(s),
            Term::Str(Some(s), _) => return Some(s),
            Term::Str(None, parts) => match parts.first() {
                Some(StrPart::Str(s)) => return Some(s),
                Some(StrPart::Term(t)) => t,
                _ => return None,
            },
            Term::Path(base, path) => match (&**base, path.0.first()) {
                (Term::Id, Some((Part::Index(index), _))) => index,
                _ => base,
            },
            Term::BinOp(left, ..) => left,
            Term::Neg(inner) | Term::TryCatch(inner, _) => inner,
            Term::Arr(Some(inner)) => inner,
            Term::Obj(entries) => &entries.first()?.0,
            Term::IfThenElse(branches, _) => &branches.first()?.0,
            _ => return None,
        };
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn keys(query: &str, record: &serde_json::Value) -> Result<Vec<(String, String)>, String> {
        let query = Query::parse(query).unwrap();
        Ok(query
            .keys(&serde_json::to_vec(record).unwrap())?
            .into_iter()
            .collect())
    }

    fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// A clickstream event as a producer might send it to a partitioned delivery stream.
    fn event() -> serde_json::Value {
        json!({
            "customer_id": "c-4711",
            "device": {"region": "eu-west-1", "model": "X200", "tags": ["beta", "eu"]},
            "event time": "2024-05-01T10:00:00Z",
            "epoch": 1_714_557_600,
            "amount": 12.5,
            "count": 42,
            "big": 12_345_678_901_234_567_890_u64,
            "negative": -3,
            "paid": true,
            "missing_here": null,
            "nested": {"a": {"b": {"c": "deep"}}},
        })
    }

    #[test]
    fn the_firehose_documentation_example() {
        let query = Query::parse("{customer_id:.customer_id, region:.device.region}").unwrap();
        assert_eq!(query.names(), ["customer_id", "region"]);
        let record = serde_json::to_vec(&event()).unwrap();
        let keys: Vec<_> = query.keys(&record).unwrap().into_iter().collect();
        assert_eq!(
            keys,
            pairs(&[("customer_id", "c-4711"), ("region", "eu-west-1")])
        );
    }

    #[test]
    fn every_path_form() {
        let query = r#"{
            a: .customer_id, b: .device.region, c: ."event time", d: .device.tags[0],
            e: .["customer_id"], f: .device.tags[-1], g: .nested.a.b.c, h: .device["model"],
            i: .device?.model?, j: .customer_id[2:], k: ."device"."region", "l m": .count
        }"#;
        let expected = pairs(&[
            ("a", "c-4711"),
            ("b", "eu-west-1"),
            ("c", "2024-05-01T10:00:00Z"),
            ("d", "beta"),
            ("e", "c-4711"),
            ("f", "eu"),
            ("g", "deep"),
            ("h", "X200"),
            ("i", "X200"),
            ("j", "4711"),
            ("k", "eu-west-1"),
            ("l m", "42"),
        ]);
        assert_eq!(keys(query, &event()).unwrap(), expected);
        // `{name}` is `{name: .name}`.
        assert_eq!(
            keys("{customer_id}", &event()).unwrap(),
            pairs(&[("customer_id", "c-4711")])
        );
        assert_eq!(
            Query::parse("{z: .a, customer_id, y: .b}").unwrap().names(),
            ["z", "customer_id", "y"]
        );
    }

    #[test]
    fn numbers_and_booleans_are_their_json_text() {
        let query = "{a: .amount, b: .count, c: .big, d: .negative, e: .paid, f: 7, g: \"lit\"}";
        let expected = pairs(&[
            ("a", "12.5"),
            ("b", "42"),
            ("c", "12345678901234567890"),
            ("d", "-3"),
            ("e", "true"),
            ("f", "7"),
            ("g", "lit"),
        ]);
        assert_eq!(keys(query, &event()).unwrap(), expected);
    }

    #[test]
    fn functions_pipes_and_alternatives() {
        let query = r#"{
            year: .epoch | strftime("%Y"), month: .epoch | strftime("%m"),
            day: (."event time" | fromdateiso8601 | strftime("%d")),
            hour: (."event time" | strptime("%Y-%m-%dT%H:%M:%SZ") | mktime | todate[11:13]),
            region: .device.region | ascii_upcase | ltrimstr("EU-"),
            model: .device.model | ascii_downcase | rtrimstr("00"),
            first: .device.region | split("-")[0],
            plan: .plan // "free", count: .count | tostring | length
        }"#;
        let expected = pairs(&[
            ("count", "2"),
            ("day", "01"),
            ("first", "eu"),
            ("hour", "10"),
            ("model", "x2"),
            ("month", "05"),
            ("plan", "free"),
            ("region", "WEST-1"),
            ("year", "2024"),
        ]);
        assert_eq!(keys(query, &event()).unwrap(), expected);
    }

    #[test]
    fn every_allowed_function_compiles() {
        for (name, arity) in FUNCTIONS {
            let call = if arity == 0 {
                name.to_owned()
            } else {
                format!("{name}(\"x\")")
            };
            let query = format!("{{k: .a | {call}}}");
            assert!(
                Query::parse(&query).is_ok(),
                "{query}: {:?}",
                Query::parse(&query)
            );
        }
    }

    #[test]
    fn values_that_cannot_be_keys_fail_the_record() {
        let cases = [
            ("{k: .missing_here}", "is null"),
            ("{k: .not_there}", "is null"),
            ("{k: .device}", "is an object"),
            ("{k: .device.tags}", "is an array"),
            ("{k: .epoch | gmtime}", "is an array"),
            ("{k: .customer_id.x}", "query failed on this record"),
            ("{k: .count[0]}", "query failed on this record"),
            (
                "{k: .count | ltrimstr(\"4\") | strftime(\"%Y\")}",
                "query failed on this record",
            ),
            ("{k: .customer_id?.x?}", "no value"),
            ("{k: \"\"}", "cannot be part of an object name"),
            ("{k: \"..\"}", "cannot be part of an object name"),
            ("{k: .device.region, j: \"a/../b\"}", "partition key \"j\""),
        ];
        for (query, expected) in cases {
            let err = keys(query, &event()).unwrap_err();
            assert!(err.contains(expected), "{query}: {err}");
        }
        let query = Query::parse("{k: .a}").unwrap();
        let long = json!({"a": "x".repeat(KEY_VALUE_BYTES_MAX + 1)});
        assert!(query.keys(&serde_json::to_vec(&long).unwrap()).is_err());
        let exact = json!({"a": "x".repeat(KEY_VALUE_BYTES_MAX)});
        assert!(query.keys(&serde_json::to_vec(&exact).unwrap()).is_ok());
        assert!(
            query
                .keys(&serde_json::to_vec(&json!({"a": "tab\there"})).unwrap())
                .is_err()
        );
    }

    #[test]
    fn records_that_are_not_json_objects_fail() {
        let query = Query::parse("{k: .a}").unwrap();
        for record in [
            &b""[..],
            b"not json",
            b"{\"a\":",
            b"{\"a\":1} trailing",
            b"\xff\xfe",
        ] {
            let err = query.keys(record).unwrap_err();
            assert!(err.starts_with("record is not JSON"), "{err}");
        }
        // A JSON array is JSON, but `.a` of it fails.
        assert!(query.keys(b"[1, 2]").unwrap_err().contains("query failed"));
        // Nesting past serde_json's limit of 128 is refused before jaq sees it.
        let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(
            query
                .keys(deep.as_bytes())
                .unwrap_err()
                .starts_with("record is not JSON")
        );
    }

    #[test]
    fn records_nested_up_to_serde_json_limit_work() {
        // An object holding 120 levels of arrays, turned back into text by `tostring`.
        let query = Query::parse("{k: .a | tostring}").unwrap();
        let nested = format!("{}1{}", "[".repeat(120), "]".repeat(120));
        let record = format!("{{\"a\":{nested}}}");
        assert_eq!(query.keys(record.as_bytes()).unwrap()["k"], nested);
    }

    #[test]
    fn syntax_errors_name_the_byte() {
        let cases = [
            ("{a: .b", "at byte 6: expected a closing brace"),
            ("{a: .b | }", "at byte 9: expected term"),
            ("{a: .b \"c}", "at byte 10: expected a closing quote"),
            ("{a: .b} }", "at byte 8"),
            ("", "expected term"),
        ];
        for (query, expected) in cases {
            let err = Query::parse(query).unwrap_err();
            assert!(err.contains(expected), "{query}: {err}");
        }
    }

    #[test]
    fn queries_outside_the_subset_are_refused_naming_the_byte() {
        let cases = [
            (".customer_id", "must be an object constructor"),
            ("{}", "no partition keys"),
            ("{a: .b, a: .c}", "\"a\" is named twice at byte 8"),
            ("{(.k): .v}", "name must be a plain name"),
            (
                "{$x: .v}",
                "name must be a plain name or a non-empty string at byte 1",
            ),
            ("{\"\": .v}", "name must be a plain name"),
            (
                "{a: $ENV.HOME}",
                "a variable cannot be used in a partition key query at byte 4",
            ),
            (
                "{a: env.HOME}",
                "`env/0` cannot be used in a partition key query at byte 4",
            ),
            ("{a: .b | input}", "`input/0` cannot be used"),
            ("{a: .b | halt_error}", "`halt_error/0` cannot be used"),
            ("{a: .b | tojson}", "`tojson/0` cannot be used"),
            ("{a: .b | join(\",\")}", "`join/1` cannot be used"),
            (
                "{a: .b | split(\",\") | tostring | split(\",\")}",
                "`split` can be used once per partition key at byte 33",
            ),
            (
                "{a: .b | tostring // (.c | tostring)}",
                "`tostring` can be used once per partition key at byte 27",
            ),
            (
                "{a: .b | strftime(.fmt)}",
                "`strftime`'s argument must be a string literal at byte 9",
            ),
            (
                "{a: .b | split(\"\")}",
                "argument must be a non-empty string literal",
            ),
            ("{a: .b[]}", "index must be a string or number"),
            ("{a: .b[.c]}", "index must be a string or number"),
            (
                "{a: (.b, .c)}",
                "`,` (it makes more than one value) cannot be used",
            ),
            ("{a: .b * 1000}", "arithmetic cannot be used"),
            ("{a: .b + .b}", "arithmetic"),
            ("{a: \"\\(.b)\\(.b)\"}", "string interpolation"),
            ("{a: @base64 \"x\"}", "`@format` string"),
            ("{a: [.b] }", "an array constructor"),
            ("{a: {b: .c}}", "an object constructor inside a value"),
            ("{a: ..}", "`..`"),
            ("{a: reduce .[] as $x (0; . + $x)}", "`reduce`/`foreach`"),
            ("def f: f; {a: f}", "must be an object constructor"),
            ("{a: def f: f; f}", "a definition"),
            ("{a: if .b then .c else .d end}", "`if`"),
            ("{a: try .b}", "`try`"),
            ("{a: .b as $x | $x}", "`as` binding"),
            ("{a: .b == 1}", "comparison"),
            ("{a: .b and .c}", "`and`/`or`"),
            ("{a: .b |= 1}", "assignment"),
            ("{a: label $out | 1}", "`label`/`break`"),
            ("{a: - .b}", "negation"),
        ];
        for (query, expected) in cases {
            let err = Query::parse(query).unwrap_err();
            assert!(err.contains(expected), "{query}: {err}");
        }
    }

    #[test]
    fn deep_or_long_queries_are_errors_not_crashes() {
        // Each of these, parsed on a test thread's 2 MiB stack, aborts the process.
        let n = QUERY_LENGTH_MAX / 2 - 8;
        // Parentheses leave no trace in the syntax tree: this one is `{a: .}`.
        let parens = format!("{{a: {}.{}}}", "(".repeat(n), ")".repeat(n));
        assert_eq!(keys(&parens, &json!(1)).unwrap(), pairs(&[("a", "1")]));
        let deep = [
            format!("{{a: {}1}}", "-".repeat(QUERY_LENGTH_MAX - 7)),
            format!("{{a: .{}}}", " | .".repeat(n / 2)),
            format!("{{a: {}.}}", "try ".repeat(n / 2)),
        ];
        for query in deep {
            assert!(query.len() <= QUERY_LENGTH_MAX, "{}", query.len());
            let err = Query::parse(&query).unwrap_err();
            assert!(
                err.contains("cannot be used") || err.contains("nests deeper"),
                "{err}"
            );
        }
        // Pipes up to the depth limit are fine; past it they are refused.
        let pipes = |n: usize| format!("{{a: .b{}}}", " | ascii_downcase".repeat(n));
        assert!(Query::parse(&pipes(DEPTH_MAX - 2)).is_ok());
        assert!(
            Query::parse(&pipes(DEPTH_MAX))
                .unwrap_err()
                .contains("nests deeper than 16")
        );
        let long = format!("{{a: .{}}}", "b".repeat(QUERY_LENGTH_MAX));
        assert!(
            Query::parse(&long)
                .unwrap_err()
                .contains("longer than 5120")
        );
    }

    #[test]
    fn a_query_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>(_: &T) {}
        let query = Query::parse("{k: .a}").unwrap();
        shared(&query);
        let query = std::sync::Arc::new(query);
        let workers: Vec<_> = (0..4)
            .map(|i| {
                let query = query.clone();
                std::thread::spawn(move || query.keys(format!("{{\"a\":{i}}}").as_bytes()))
            })
            .collect();
        for (i, worker) in workers.into_iter().enumerate() {
            assert_eq!(worker.join().unwrap().unwrap()["k"], i.to_string());
        }
        assert_eq!(format!("{query:?}"), "Query { names: [\"k\"], .. }");
    }

    #[test]
    fn key_values_stay_in_their_bucket() {
        for good in [
            "a",
            "eu-west-1",
            "a/b",
            "x..y",
            ".hidden",
            "...",
            "ünïcødé ☃",
            "a b",
            "=?&",
        ] {
            assert!(valid_key_value(good), "{good:?}");
        }
        assert!(valid_key_value(&"x".repeat(KEY_VALUE_BYTES_MAX)));
        for bad in [
            "",
            ".",
            "..",
            "../etc",
            "a/../b",
            "a/./b",
            "a/..",
            "new\nline",
            "nul\0",
            "\u{7f}",
            "\u{85}",
        ] {
            assert!(!valid_key_value(bad), "{bad:?}");
        }
        assert!(!valid_key_value(&"x".repeat(KEY_VALUE_BYTES_MAX + 1)));
        assert!(!valid_key_value(&"é".repeat(KEY_VALUE_BYTES_MAX / 2 + 1)));
    }
}
