//! What the clients did and saw, and the checker that judges it.
//!
//! Every put carries a payload never sent before (`w<writer>-<attempt>`), so a payload held
//! twice was duplicated by the cluster, not by a retry. Acknowledged puts are kept with their
//! shard and number; puts that failed or timed out are "maybe" (they may have committed).
//! Readers, one per node, note every (shard, number) to payload they read while the faults
//! go on, and each must see numbers only grow.

use std::collections::{BTreeMap, BTreeSet};

/// A record's place: shard id and sequence number.
pub type Place = (String, u128);

/// The clients' record.
#[derive(Default)]
pub struct History {
    /// Acknowledged puts: payload to place.
    pub acknowledged: BTreeMap<String, Place>,
    /// Puts that failed or timed out: their payloads.
    pub maybe: BTreeSet<String>,
    /// What readers saw during the run: place to payload.
    pub observed: BTreeMap<Place, String>,
    /// Problems seen during the run (a number going back, a place changing payload, a read
    /// right after an acknowledgement missing it).
    pub violations: Vec<String>,
    /// Records each node's reader read.
    pub reads_by_node: BTreeMap<usize, usize>,
}

impl History {
    /// A reader on `node` read `payload` at `place`, after `last` (the number it read before
    /// on that shard, if any).
    pub fn read(&mut self, node: usize, place: Place, payload: &str, last: Option<u128>) {
        *self.reads_by_node.entry(node).or_default() += 1;
        if let Some(last) = last
            && place.1 <= last
        {
            self.violations.push(format!(
                "node {node} went back in time on {}: {} after {last}",
                place.0, place.1
            ));
        }
        match self.observed.get(&place) {
            Some(seen) if seen != payload => self.violations.push(format!(
                "{} {} read as {payload} on node {node}, as {seen} before",
                place.0, place.1
            )),
            Some(_) => {}
            None => {
                self.observed.insert(place, payload.to_owned());
            }
        }
    }
}

/// Every shard as one node reads it after healing: shard id to (number, payload) in the
/// order read.
pub type NodeRead = BTreeMap<String, Vec<(u128, String)>>;

/// Judges the run: every acknowledged record on every node at its number, no payload twice,
/// numbers rising within a shard, every node holding the same records, and what readers saw
/// during the run where it is now. Returns the violations (none: the run passed).
pub fn check(history: &History, reads: &[NodeRead]) -> Vec<String> {
    let mut violations = history.violations.clone();
    for (node, read) in reads.iter().enumerate() {
        let mut places: BTreeMap<&str, Place> = BTreeMap::new();
        for (shard, records) in read {
            for pair in records.windows(2) {
                if pair[1].0 <= pair[0].0 {
                    violations.push(format!(
                        "node {node}, {shard}: {} read after {}",
                        pair[1].0, pair[0].0
                    ));
                }
            }
            for (seq, payload) in records {
                let place = (shard.clone(), *seq);
                if let Some(first) = places.insert(payload, place.clone()) {
                    violations.push(format!(
                        "node {node}: {payload} held twice, at {first:?} and {place:?}"
                    ));
                }
                if !history.acknowledged.contains_key(payload) && !history.maybe.contains(payload) {
                    violations.push(format!("node {node}: {payload} was never written"));
                }
                if let Some(seen) = history.observed.get(&place)
                    && seen != payload
                {
                    violations.push(format!(
                        "node {node}: {place:?} holds {payload}, read as {seen} during the run"
                    ));
                }
            }
        }
        for (payload, place) in &history.acknowledged {
            if places.get(payload.as_str()) != Some(place) {
                violations.push(format!(
                    "node {node}: acknowledged {payload} at {place:?} is at {:?}",
                    places.get(payload.as_str())
                ));
            }
        }
        for (place, payload) in &history.observed {
            if places.get(payload.as_str()) != Some(place) {
                violations.push(format!(
                    "node {node}: {payload}, read at {place:?} during the run, is at {:?}",
                    places.get(payload.as_str())
                ));
            }
        }
        if let Some(first) = reads.first()
            && read != first
        {
            violations.push(format!("node {node} holds other records than node 0"));
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(records: &[(u128, &str)]) -> NodeRead {
        let records = records.iter().map(|(s, p)| (*s, p.to_string())).collect();
        BTreeMap::from([("shardId-000000000000".to_owned(), records)])
    }

    #[test]
    fn the_checker_finds_each_kind_of_violation() {
        let mut history = History::default();
        let place = |seq| ("shardId-000000000000".to_owned(), seq);
        history.acknowledged.insert("a".into(), place(1));
        history.acknowledged.insert("b".into(), place(2));
        history.maybe.insert("c".into());
        let good = shard(&[(1, "a"), (2, "b"), (5, "c")]);
        assert_eq!(
            check(&history, &[good.clone(), good.clone()]),
            Vec::<String>::new()
        );
        let cases: [(&str, NodeRead); 5] = [
            ("lost", shard(&[(1, "a"), (5, "c")])),
            ("moved", shard(&[(1, "a"), (3, "b")])),
            ("twice", shard(&[(1, "a"), (2, "b"), (5, "c"), (6, "c")])),
            ("unwritten", shard(&[(1, "a"), (2, "b"), (4, "x")])),
            ("disorder", shard(&[(2, "b"), (1, "a")])),
        ];
        for (what, bad) in cases {
            assert!(!check(&history, &[good.clone(), bad]).is_empty(), "{what}");
        }
        history.read(0, place(2), "b", Some(2));
        assert_eq!(history.violations.len(), 1, "a number read again");
        history.read(1, place(2), "x", None);
        assert_eq!(
            history.violations.len(),
            2,
            "a place read with two payloads"
        );
    }
}
