//! Lists and maps decoded with a bound: past `MAX` items the rest are only counted (through
//! `IgnoredAny`, which allocates nothing), so a 16 MiB body of `{}`s cannot become millions
//! of structs before validation says "at most 500". Validation reports the real count.

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

/// A list member of at most `MAX` items (more are counted, not kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundedVec<T, const MAX: usize> {
    /// The first `MAX` items.
    pub items: Vec<T>,
    /// How many the request held.
    pub count: usize,
}

impl<T, const MAX: usize> BoundedVec<T, MAX> {
    /// The items, when the request held no more than `MAX` (validation checks that first).
    pub fn into_items(self) -> Vec<T> {
        self.items
    }
}

impl<'de, T: Deserialize<'de>, const MAX: usize> Deserialize<'de> for BoundedVec<T, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SeqVisitor<T, const MAX: usize>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const MAX: usize> Visitor<'de> for SeqVisitor<T, MAX> {
            type Value = BoundedVec<T, MAX>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX));
                let mut count = 0;
                while count < MAX {
                    match seq.next_element()? {
                        Some(item) => items.push(item),
                        None => return Ok(BoundedVec { items, count }),
                    }
                    count += 1;
                }
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    count += 1;
                }
                Ok(BoundedVec { items, count })
            }
        }
        deserializer.deserialize_seq(SeqVisitor::<T, MAX>(PhantomData))
    }
}

/// A string map member of at most `MAX` entries (more are counted, not kept).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BoundedMap<const MAX: usize> {
    /// The first `MAX` entries.
    pub entries: BTreeMap<String, String>,
    /// How many the request held.
    pub count: usize,
}

impl<'de, const MAX: usize> Deserialize<'de> for BoundedMap<MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<const MAX: usize>;
        impl<'de, const MAX: usize> Visitor<'de> for MapVisitor<MAX> {
            type Value = BoundedMap<MAX>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = BTreeMap::new();
                let mut count = 0;
                while count < MAX {
                    match map.next_entry::<String, String>()? {
                        Some((key, value)) => {
                            entries.insert(key, value);
                        }
                        None => return Ok(BoundedMap { entries, count }),
                    }
                    count += 1;
                }
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {
                    count += 1;
                }
                Ok(BoundedMap { entries, count })
            }
        }
        deserializer.deserialize_map(MapVisitor::<MAX>)
    }
}

/// Tag maps (the model's TagMap: at most 200 entries).
pub type TagMap = BoundedMap<200>;
/// Tag key lists (the model's TagKeyList: at most 50).
pub type TagKeys = BoundedVec<String, 50>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_bound_items_are_counted_not_kept() {
        let list: BoundedVec<u32, 3> = serde_json::from_str("[1, 2, 3, 4, {\"x\": [5]}]").unwrap();
        assert_eq!((list.items, list.count), (vec![1, 2, 3], 5));
        let short: BoundedVec<u32, 3> = serde_json::from_str("[7]").unwrap();
        assert_eq!((short.items, short.count), (vec![7], 1));
        let map: BoundedMap<1> = serde_json::from_str(r#"{"a": "1", "b": "2"}"#).unwrap();
        assert_eq!((map.entries.len(), map.count), (1, 2));
        assert!(serde_json::from_str::<BoundedVec<u32, 3>>("[1, \"x\"]").is_err());
    }
}
