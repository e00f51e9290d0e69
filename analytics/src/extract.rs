//! The values a schema's JSONPaths name, read from a JSON record in one pass: members no
//! path names are skipped as they are parsed, without building the record as a tree of
//! values first. Skipped values are still read as serde_json reads any value (numbers in
//! range, escapes whole, nesting within its limit), so a record is refused exactly when
//! parsing it whole would refuse it. Decoding is
//! most of an application's time, and building the tree was most of decoding's (perf
//! profile in docs/benchmarks.md, "Analytics").

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::borrow::Cow;

/// The visitor methods of JSON's scalars, each taking the value and keeping nothing.
macro_rules! accept_scalars {
    () => {
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
    };
}

/// One step of a path: a member's name, or an array's index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    Member(String),
    Index(usize),
}

/// The paths as a tree: where some columns' paths end, and where others go on.
#[derive(Debug, Default)]
struct Node {
    /// The columns whose path ends here.
    columns: Vec<usize>,
    /// The columns whose path ends here or below: a member named again replaces what an
    /// earlier one of its name gave them, as the last of equal names wins in a whole parse.
    below: Vec<usize>,
    members: Vec<(String, Node)>,
    indexes: Vec<(usize, Node)>,
}

impl Node {
    fn child(&mut self, step: &Step) -> &mut Node {
        let at = match step {
            Step::Member(name) => match self.members.iter().position(|(n, _)| n == name) {
                Some(at) => at,
                None => {
                    self.members.push((name.clone(), Node::default()));
                    self.members.len() - 1
                }
            },
            Step::Index(i) => match self.indexes.iter().position(|(n, _)| n == i) {
                Some(at) => at,
                None => {
                    self.indexes.push((*i, Node::default()));
                    self.indexes.len() - 1
                }
            },
        };
        match step {
            Step::Member(_) => &mut self.members[at].1,
            Step::Index(_) => &mut self.indexes[at].1,
        }
    }

    fn member(&self, name: &str) -> Option<&Node> {
        self.members
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, node)| node)
    }

    fn index(&self, i: usize) -> Option<&Node> {
        self.indexes
            .iter()
            .find(|(n, _)| *n == i)
            .map(|(_, node)| node)
    }

    /// Fills the slots of this node's columns, and of those below it, from `value`.
    fn fill_from(&self, value: &Value, found: &mut [Option<Value>]) {
        for &column in &self.columns {
            found[column] = Some(value.clone());
        }
        for (name, node) in &self.members {
            if let Some(inner) = value.get(name) {
                node.fill_from(inner, found);
            }
        }
        for (i, node) in &self.indexes {
            if let Some(inner) = value.get(i) {
                node.fill_from(inner, found);
            }
        }
    }
}

/// Reads the values of a set of paths from JSON records.
#[derive(Debug)]
pub(crate) struct Extractor {
    root: Node,
    width: usize,
}

impl Extractor {
    /// An extractor of `paths` (column `i`'s value is where `paths[i]` leads).
    pub fn new<'p>(paths: impl IntoIterator<Item = &'p [Step]>) -> Extractor {
        let mut root = Node::default();
        let mut width = 0;
        for (column, path) in paths.into_iter().enumerate() {
            let mut node = &mut root;
            for step in path {
                node.below.push(column);
                node = node.child(step);
            }
            node.columns.push(column);
            node.below.push(column);
            width = column + 1;
        }
        Extractor { root, width }
    }

    /// Each path's value in `text` (none where it leads nowhere), or why `text` is not JSON.
    pub fn extract(&self, text: &str) -> Result<Vec<Option<Value>>, serde_json::Error> {
        let mut found = vec![None; self.width];
        let mut parser = serde_json::Deserializer::from_str(text);
        Seed {
            node: &self.root,
            found: &mut found,
        }
        .deserialize(&mut parser)?;
        parser.end()?;
        Ok(found)
    }
}

/// Reads the value at `node`: the whole value where a column's path ends, or only the
/// members and elements that paths go on through.
struct Seed<'n, 'f> {
    node: &'n Node,
    found: &'f mut [Option<Value>],
}

impl<'de> DeserializeSeed<'de> for Seed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        for &column in &self.node.below {
            self.found[column] = None;
        }
        if self.node.columns.is_empty() {
            return deserializer.deserialize_any(self);
        }
        let value = Value::deserialize(deserializer)?;
        match self.node.columns[..] {
            // The common case, one column's path ending here: the value itself, not a copy.
            [column] if self.node.members.is_empty() && self.node.indexes.is_empty() => {
                self.found[column] = Some(value);
            }
            _ => self.node.fill_from(&value, self.found),
        }
        Ok(())
    }
}

impl<'de> Visitor<'de> for Seed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(Key)? {
            match self.node.member(&key) {
                Some(node) => map.next_value_seed(Seed {
                    node,
                    found: self.found,
                })?,
                None => map.next_value_seed(Skip)?,
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        for i in 0.. {
            let more = match self.node.index(i) {
                Some(node) => seq
                    .next_element_seed(Seed {
                        node,
                        found: self.found,
                    })?
                    .is_some(),
                None => seq.next_element_seed(Skip)?.is_some(),
            };
            if !more {
                break;
            }
        }
        Ok(())
    }

    // A scalar where a path goes on: the path leads nowhere.
    accept_scalars!();
}

/// A value no path goes into, read through and dropped. Unlike serde's `IgnoredAny` (which
/// serde_json skips by scanning), it goes through serde_json's own reading of each value,
/// so numbers out of range, broken escapes and too deep nesting are refused as they are in
/// a whole parse. Strings without escapes are borrowed, not copied.
struct Skip;

impl<'de> DeserializeSeed<'de> for Skip {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(Key)?.is_some() {
            map.next_value_seed(Skip)?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Skip)?.is_some() {}
        Ok(())
    }

    accept_scalars!();
}

/// A member's name, borrowed from the record unless it holds escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a member's name")
    }

    fn visit_borrowed_str<E>(self, name: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(name))
    }

    fn visit_str<E>(self, name: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str) -> Step {
        Step::Member(name.to_owned())
    }

    /// The extractor finds what a tree of the whole record would, for every path.
    #[test]
    fn paths_find_what_the_whole_record_holds() {
        let paths = [
            vec![member("a")],
            vec![member("b"), member("c")],
            vec![member("b")],
            vec![member("list"), Step::Index(1)],
            vec![member("list"), Step::Index(7)],
            vec![member("missing"), member("x")],
            vec![member("n"), member("deeper")],
            vec![member("esc\"aped")],
        ];
        let extractor = Extractor::new(paths.iter().map(Vec::as_slice));
        let record = r#"{"a": 1, "skip": {"x": [1, {"y": null}]}, "b": {"c": "two", "d": 3},
            "list": [10, {"k": true}, 30], "n": 5, "esc\"aped": "yes", "a": 2.5}"#;
        let found = extractor.extract(record).unwrap();
        let whole: Value = serde_json::from_str(record).unwrap();
        for (path, got) in paths.iter().zip(&found) {
            let expected = path.iter().try_fold(&whole, |at, step| match step {
                Step::Member(name) => at.get(name),
                Step::Index(i) => at.get(i),
            });
            assert_eq!(got.as_ref(), expected, "{path:?}");
        }
        assert_eq!(
            found[0],
            Some(serde_json::json!(2.5)),
            "the last of equal names"
        );
    }

    /// A member named twice: the last wins, for the paths through it too.
    #[test]
    fn a_member_named_again_replaces_what_the_first_gave() {
        let paths = [
            vec![member("b"), member("c")],
            vec![member("b")],
            vec![member("list"), Step::Index(1)],
        ];
        let extractor = Extractor::new(paths.iter().map(Vec::as_slice));
        for record in [
            r#"{"b": {"c": 1}, "b": {}}"#,
            r#"{"b": {"c": 1}, "b": 7}"#,
            r#"{"b": {"c": 1}, "b": {"d": 2}, "list": [1, 2], "list": [3]}"#,
            r#"{"b": {}, "b": {"c": 1}, "list": [3], "list": [1, 2]}"#,
        ] {
            let whole: Value = serde_json::from_str(record).unwrap();
            let expected: Vec<Option<Value>> = paths
                .iter()
                .map(|path| {
                    path.iter()
                        .try_fold(&whole, |at, step| match step {
                            Step::Member(name) => at.get(name),
                            Step::Index(i) => at.get(i),
                        })
                        .cloned()
                })
                .collect();
            assert_eq!(extractor.extract(record).unwrap(), expected, "{record}");
        }
    }

    #[test]
    fn records_that_are_not_json_are_refused_even_where_no_path_goes() {
        let extractor = Extractor::new([[member("a")].as_slice()]);
        let deep = format!(r#"{{"a": 1, "b": {}{}}}"#, "[".repeat(200), "]".repeat(200));
        for bad in [
            r#"{"a": 1, "b": [1, }"#,
            r#"{"a": 1} trailing"#,
            "",
            r#"{"a": tru}"#,
            r#"{"a": 1, "b": 1e400}"#,
            r#"{"a": 1, "b": "\ud800"}"#,
            r#"{"a": 1, "\ud800": 2}"#,
            deep.as_str(),
        ] {
            assert!(extractor.extract(bad).is_err(), "{bad}");
            assert!(
                serde_json::from_str::<Value>(bad).is_err(),
                "a whole parse refuses {bad}"
            );
        }
        assert_eq!(extractor.extract("[1, 2]").unwrap(), vec![None]);
        assert_eq!(extractor.extract("7").unwrap(), vec![None]);
    }
}
