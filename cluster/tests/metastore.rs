//! The control plane's conformance suite: every test runs against the in-memory store and,
//! with the `etcd` feature, against a real etcd started for it. The two must agree on
//! registration, election, fencing, all-or-nothing changes and watches.

#[macro_use]
mod support;

use std::time::Duration;

use sluice_cluster::{
    Backend, BackendWatch, Change, Claim, ClusterEvent, ClusterMeta, MetaError, NodeId, Op,
    ShardPlacement, StreamPlacement, StreamSettings, StreamStatus,
};
use support::{TTL, node, within};

fn stream(name: &str, uid: u64, status: StreamStatus) -> StreamPlacement {
    let replicas = ["a", "b", "c"].map(|n| NodeId::new(n).unwrap()).to_vec();
    let shard = ShardPlacement {
        index: 0,
        starting_hash_key: 0,
        ending_hash_key: u128::MAX,
        parents: vec![],
        replicas,
        epoch: 1,
        closed: false,
        ending_seq: None,
        closed_ms: None,
        expired: false,
    };
    StreamPlacement {
        uid,
        name: name.into(),
        status,
        replication: 3,
        shards: vec![shard],
        created_ms: 0,
        settings: StreamSettings::default(),
        resharding: None,
    }
}

async fn registration_is_exclusive_and_ends_with_its_lease<B: Backend>(meta: ClusterMeta<B>) {
    let start = meta.snapshot().await.unwrap();
    let mut a = meta.register(node("a"), TTL).await.unwrap();
    let b = meta.register(node("b"), TTL).await.unwrap();
    assert!(
        matches!(meta.register(node("a"), TTL).await, Err(MetaError::NodeIdTaken(id)) if id == "a")
    );
    let now = meta.snapshot().await.unwrap();
    assert_eq!(
        now.nodes.keys().map(NodeId::as_str).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(now.nodes[&a.node().id], node("a"));
    let mut watch = meta.watch(start.revision + 1).await.unwrap();
    // Seen joining, in order, from before either registered.
    let joined = within("two joins", watch.next()).await.unwrap();
    let mut seen: Vec<ClusterEvent> = joined.into_iter().map(|(_, e)| e).collect();
    if seen.len() < 2 {
        seen.extend(
            within("the second join", watch.next())
                .await
                .unwrap()
                .into_iter()
                .map(|(_, e)| e),
        );
    }
    assert_eq!(
        seen,
        [
            ClusterEvent::NodeJoined(node("a")),
            ClusterEvent::NodeJoined(node("b"))
        ]
    );
    // b leaves on purpose: gone at once. a stops renewing, as a crashed node: gone after its TTL.
    b.revoke().await.unwrap();
    assert_eq!(
        within("b leaves", watch.next()).await.unwrap()[0].1,
        ClusterEvent::NodeLeft(NodeId::new("b").unwrap())
    );
    a.stop_renewing();
    assert_eq!(
        within("a's lease expires", watch.next()).await.unwrap()[0].1,
        ClusterEvent::NodeLeft(NodeId::new("a").unwrap())
    );
    within("a's registration is known lost", a.lost()).await;
    assert!(meta.snapshot().await.unwrap().nodes.is_empty());
    // The id is free again.
    let again = meta.register(node("a"), TTL).await.unwrap();
    assert_eq!(meta.snapshot().await.unwrap().nodes.len(), 1);
    again.revoke().await.unwrap();
}

async fn one_controller_at_a_time_and_a_deposed_one_is_fenced<B: Backend>(meta: ClusterMeta<B>) {
    let (n1, n2) = (NodeId::new("n1").unwrap(), NodeId::new("n2").unwrap());
    // A longer lease than the others: the first must hold through the wait below even if a
    // renewal stalls on a busy machine.
    let ttl = TTL * 2;
    let mut first = meta.campaign(&n1, ttl).await.unwrap();
    assert_eq!(meta.controller().await.unwrap(), Some(n1.clone()));
    let second = tokio::spawn({
        let (meta, n2) = (meta.clone(), n2.clone());
        async move { meta.campaign(&n2, ttl).await }
    });
    // The second candidate waits while the first holds the office and renews it.
    tokio::time::sleep(ttl).await;
    assert!(!second.is_finished(), "two controllers at once");
    let created = meta
        .commit(
            &first,
            &[Change::PutStream {
                placement: stream("orders", 1, StreamStatus::Creating),
                replaces: None,
            }],
        )
        .await
        .unwrap();
    // The first controller hangs: its candidacy expires and the second is elected.
    first.stop_renewing();
    let second = within("the second is elected", second)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(meta.controller().await.unwrap(), Some(n2.clone()));
    assert!(second.revision() > first.revision(), "fencing tokens grow");
    // Whatever the deposed one writes is refused, even a change that would otherwise apply.
    let late = Change::PutStream {
        placement: stream("orders", 1, StreamStatus::Active),
        replaces: Some(created),
    };
    assert!(matches!(
        meta.commit(&first, std::slice::from_ref(&late)).await,
        Err(MetaError::Fenced)
    ));
    within("the first knows it lost", first.lost()).await;
    assert!(!first.is_held());
    // The new controller writes, with the revision it read.
    let stale = Change::PutStream {
        placement: stream("orders", 1, StreamStatus::Active),
        replaces: Some(created - 1),
    };
    assert!(
        matches!(meta.commit(&second, &[stale]).await, Err(MetaError::Conflict { key }) if key == "streams/orders")
    );
    meta.commit(&second, &[late]).await.unwrap();
    let map = meta.snapshot().await.unwrap();
    assert_eq!(map.streams["orders"].value.status, StreamStatus::Active);
    assert_eq!(map.controller, Some(n2));
    second.resign().await.unwrap();
    assert_eq!(meta.controller().await.unwrap(), None);
}

async fn resignation_hands_the_office_to_the_oldest_candidate<B: Backend>(meta: ClusterMeta<B>) {
    let ids: Vec<NodeId> = ["c1", "c2", "c3"].map(|n| NodeId::new(n).unwrap()).to_vec();
    let first = meta.campaign(&ids[0], TTL).await.unwrap();
    let mut waiting = Vec::new();
    for id in &ids[1..] {
        let (candidate, id) = (meta.clone(), id.clone());
        waiting.push(tokio::spawn(
            async move { candidate.campaign(&id, TTL).await },
        ));
        // Candidates queue in the order they stood.
        while meta_candidates(&meta).await < waiting.len() + 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    first.resign().await.unwrap();
    let second = within("c2 is elected", waiting.remove(0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.node(), &ids[1]);
    assert!(!waiting[0].is_finished(), "c3 waits for c2");
    second.resign().await.unwrap();
    let third = within("c3 is elected", waiting.remove(0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(third.node(), &ids[2]);
    assert_eq!(meta.controller().await.unwrap(), Some(ids[2].clone()));
}

async fn meta_candidates<B: Backend>(meta: &ClusterMeta<B>) -> usize {
    meta.backend()
        .range("/sluice/test/controller/")
        .await
        .unwrap()
        .0
        .len()
}

async fn changes_are_all_or_nothing_and_watched_in_order<B: Backend>(meta: ClusterMeta<B>) {
    let office = meta
        .campaign(&NodeId::new("ctl").unwrap(), TTL)
        .await
        .unwrap();
    let before = meta.snapshot().await.unwrap();
    assert_eq!((before.uid_next.value, before.uid_next.revision), (1, 0));
    let mut watch = meta.watch(before.revision + 1).await.unwrap();
    // A stream and the uid counter together.
    let create = [
        Change::PutStream {
            placement: stream("a", 1, StreamStatus::Creating),
            replaces: None,
        },
        Change::UidNext {
            next: 2,
            replaces: 0,
        },
    ];
    let r1 = meta.commit(&office, &create).await.unwrap();
    // The same again is a conflict (the counter moved): nothing of it is written.
    let again = [
        Change::PutStream {
            placement: stream("b", 1, StreamStatus::Creating),
            replaces: None,
        },
        Change::UidNext {
            next: 2,
            replaces: 0,
        },
    ];
    assert!(
        matches!(meta.commit(&office, &again).await, Err(MetaError::Conflict { key }) if key == "uid-next")
    );
    let map = meta.snapshot().await.unwrap();
    assert!(
        !map.streams.contains_key("b"),
        "a refused change wrote part of itself"
    );
    assert_eq!((map.uid_next.value, map.uid_next.revision), (2, r1));
    let r2 = meta
        .commit(
            &office,
            &[Change::PutStream {
                placement: stream("a", 1, StreamStatus::Active),
                replaces: Some(r1),
            }],
        )
        .await
        .unwrap();
    let r3 = meta
        .commit(
            &office,
            &[Change::DeleteStream {
                name: "a".into(),
                replaces: r2,
            }],
        )
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        seen.extend(within("the changes", watch.next()).await.unwrap());
    }
    let revisions: Vec<i64> = seen.iter().map(|(r, _)| *r).collect();
    assert_eq!(revisions, [r1, r2, r3]);
    assert!(
        matches!(&seen[0].1, ClusterEvent::StreamChanged(s) if s.value.status == StreamStatus::Creating && s.revision == r1)
    );
    assert!(
        matches!(&seen[1].1, ClusterEvent::StreamChanged(s) if s.value.status == StreamStatus::Active && s.revision == r2)
    );
    assert_eq!(seen[2].1, ClusterEvent::StreamRemoved("a".into()));
    assert!(meta.snapshot().await.unwrap().streams.is_empty());
}

async fn a_compacted_revision_and_a_foreign_value_are_reported<B: Backend>(meta: ClusterMeta<B>) {
    let office = meta
        .campaign(&NodeId::new("ctl").unwrap(), TTL)
        .await
        .unwrap();
    let early = meta.snapshot().await.unwrap().revision;
    let mut last = meta
        .commit(
            &office,
            &[Change::PutStream {
                placement: stream("s", 1, StreamStatus::Active),
                replaces: None,
            }],
        )
        .await
        .unwrap();
    for uid in 2..5 {
        last = meta
            .commit(
                &office,
                &[Change::PutStream {
                    placement: stream("s", uid, StreamStatus::Active),
                    replaces: Some(last),
                }],
            )
            .await
            .unwrap();
    }
    meta.backend().compact(last).await.unwrap();
    let compacted = async {
        let mut watch = meta.watch(early).await?;
        watch.next().await
    };
    assert!(
        matches!(compacted.await, Err(MetaError::Compacted { .. })),
        "a watch from a compacted revision"
    );
    // From the compaction point on, it works.
    let mut watch = meta.watch(last).await.unwrap();
    assert!(
        matches!(&within("the last change", watch.next()).await.unwrap()[0].1, ClusterEvent::StreamChanged(s) if s.value.uid == 4)
    );
    // A value Sluice did not write is an error, never a guess.
    let junk = Op::Put {
        key: "/sluice/test/streams/junk".into(),
        value: b"{\"uid\":".to_vec(),
        lease: 0,
    };
    meta.backend().txn(vec![], vec![junk]).await.unwrap();
    assert!(
        matches!(meta.snapshot().await, Err(MetaError::Corrupt { key, .. }) if key == "streams/junk")
    );
}

async fn a_lease_the_store_ends_is_noticed_and_a_dropped_one_is_revoked<B: Backend>(
    meta: ClusterMeta<B>,
) {
    let office = meta
        .campaign(&NodeId::new("ctl").unwrap(), TTL)
        .await
        .unwrap();
    let registration = meta.register(node("a"), TTL).await.unwrap();
    // The store ends both leases behind their holders' backs (as an operator's
    // `etcdctl lease revoke` would): the renewals find out.
    meta.backend().revoke(office.lease()).await.unwrap();
    meta.backend().revoke(registration.lease()).await.unwrap();
    within("the office is known lost", office.lost()).await;
    assert!(!office.is_held());
    within("the registration is known lost", registration.lost()).await;
    // A registration dropped (a node shutting down without a word) leaves the cluster.
    let start = meta.snapshot().await.unwrap().revision;
    drop(meta.register(node("b"), TTL).await.unwrap());
    let mut watch = meta.watch(start + 1).await.unwrap();
    let mut seen = Vec::new();
    while !seen.contains(&ClusterEvent::NodeLeft(NodeId::new("b").unwrap())) {
        seen.extend(
            within("b leaves", watch.next())
                .await
                .unwrap()
                .into_iter()
                .map(|(_, e)| e),
        );
    }
}

async fn the_stores_agree_on_edge_cases<B: Backend>(meta: ClusterMeta<B>) {
    let store = meta.backend();
    let put = |key: &str| Op::Put {
        key: key.into(),
        value: b"v".to_vec(),
        lease: 0,
    };
    let first = store.txn(vec![], vec![put("/k/a")]).await.unwrap().revision;
    // Two writes to one key in one transaction are refused, and writing nothing moves nothing.
    let twice = store
        .txn(vec![], vec![put("/k/b"), Op::Delete("/k/b".into())])
        .await;
    assert!(
        matches!(twice, Err(MetaError::InvalidRequest(_))),
        "{twice:?}"
    );
    let absent = store
        .txn(vec![], vec![Op::Delete("/k/none".into())])
        .await
        .unwrap();
    assert_eq!((absent.succeeded, absent.revision), (true, first));
    assert_eq!(store.range("/k/").await.unwrap().1, first);
    // A watch from revision 0 starts now: it sees the next write, not the history.
    let mut watch = store.watch("/k/", 0).await.unwrap();
    let next = store.txn(vec![], vec![put("/k/c")]).await.unwrap().revision;
    let events = within("the next write", watch.next()).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.revision()).collect::<Vec<_>>(),
        [next]
    );
    // A commit naming one stream twice is refused before it reaches the store.
    let office = meta
        .campaign(&NodeId::new("ctl").unwrap(), TTL)
        .await
        .unwrap();
    let two = [
        Change::PutStream {
            placement: stream("s", 1, StreamStatus::Active),
            replaces: None,
        },
        Change::DeleteStream {
            name: "s".into(),
            replaces: 0,
        },
    ];
    assert!(matches!(
        meta.commit(&office, &two).await,
        Err(MetaError::InvalidRequest(_))
    ));
    // Compaction: not to a future revision, not twice to the same one.
    let now = store.range("/").await.unwrap().1;
    assert!(matches!(
        store.compact(now + 10).await,
        Err(MetaError::InvalidRequest(_))
    ));
    store.compact(now).await.unwrap();
    assert!(matches!(
        store.compact(now).await,
        Err(MetaError::Compacted { .. })
    ));
}

/// The first node to ask stores its candidate; every later ask gets that one, and the
/// secret is not a stream, a node or anything a snapshot or a watch reports.
async fn a_shared_secret_is_the_first_one_stored<B: Backend>(meta: ClusterMeta<B>) {
    let before = meta.snapshot().await.unwrap();
    let mut watch = meta.watch(before.revision + 1).await.unwrap();
    let first = meta.shared_secret("k", b"one".to_vec()).await.unwrap();
    let second = meta.shared_secret("k", b"two".to_vec()).await.unwrap();
    assert_eq!(
        (first.as_slice(), second.as_slice()),
        (&b"one"[..], &b"one"[..])
    );
    let other = meta
        .shared_secret("other", b"three".to_vec())
        .await
        .unwrap();
    assert_eq!(other, b"three");
    let after = meta.snapshot().await.unwrap();
    assert!(after.revision > before.revision);
    assert_eq!((after.nodes, after.streams), (before.nodes, before.streams));
    let _registration = meta.register(node("a"), TTL).await.unwrap();
    let seen = within("the next change", watch.next()).await.unwrap();
    assert!(
        matches!(&seen[..], [(_, ClusterEvent::NodeJoined(n))] if n.id.as_str() == "a"),
        "{seen:?}"
    );
}

/// A claim within the quiet time of the last one is refused (and the standing one
/// returned), whatever the claimers' clocks say; once the store's quiet time is over a later
/// one takes it over; only the holder of the revision that wrote it lets it go. Account
/// settings: the last write wins. Neither is anything a snapshot reports.
async fn claims_and_account_settings<B: Backend>(meta: ClusterMeta<B>) {
    let before = meta.snapshot().await.unwrap();
    let claim = |holder: &str, since_ms| Claim {
        holder: holder.into(),
        since_ms,
    };
    let quiet = Duration::from_secs(2);
    let first = meta
        .claim("s/1", &claim("a/1", 10_000), quiet)
        .await
        .unwrap();
    let first = first.expect("nothing held it");
    // A clock far ahead changes nothing: the quiet time is the store's.
    let refused = meta
        .claim("s/1", &claim("b/1", 90_000), quiet)
        .await
        .unwrap();
    assert_eq!(refused, Err(claim("a/1", 10_000)));
    let other = meta
        .claim("s/10", &claim("b/1", 10_001), quiet)
        .await
        .unwrap();
    assert!(other.is_ok(), "another name is another claim");
    let second = within("the quiet time ends", async {
        loop {
            let claimed = meta.claim("s/1", &claim("b/2", 10_002), quiet).await;
            if let Ok(granted) = claimed.unwrap() {
                return granted;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(second > first);
    assert_eq!(
        meta.claim_of("s/1").await.unwrap(),
        Some((claim("b/2", 10_002), second))
    );
    // The replaced holder letting go removes nothing; the holder does.
    meta.release("s/1", first).await.unwrap();
    assert!(meta.claim_of("s/1").await.unwrap().is_some());
    meta.release("s/1", second).await.unwrap();
    assert_eq!(meta.claim_of("s/1").await.unwrap(), None);

    assert_eq!(meta.account_setting("commitment").await.unwrap(), None);
    (meta
        .set_account_setting("commitment", b"ENABLED".to_vec())
        .await)
        .unwrap();
    (meta
        .set_account_setting("commitment", b"DISABLED".to_vec())
        .await)
        .unwrap();
    let setting = meta.account_setting("commitment").await.unwrap();
    assert_eq!(setting.as_deref(), Some(&b"DISABLED"[..]));
    let after = meta.snapshot().await.unwrap();
    assert_eq!((after.nodes, after.streams), (before.nodes, before.streams));
}

/// A stream's entry read from the store by name: exactly that name (not one it begins),
/// at the revision that wrote it; `streams_named` lists by prefix.
async fn streams_read_by_name<B: Backend>(meta: ClusterMeta<B>) {
    let office = meta
        .campaign(&NodeId::new("ctl").unwrap(), TTL)
        .await
        .unwrap();
    for (uid, name) in (1..).zip(["orders", "orders-eu", "pay"]) {
        let put = Change::PutStream {
            placement: stream(name, uid, StreamStatus::Active),
            replaces: None,
        };
        meta.commit(&office, &[put]).await.unwrap();
    }
    let map = meta.snapshot().await.unwrap();
    let orders = meta.stream("orders").await.unwrap().unwrap();
    assert_eq!(orders, map.streams["orders"]);
    assert_eq!(meta.stream("order").await.unwrap(), None);
    let named = meta.streams_named("orders").await.unwrap();
    assert_eq!(named.keys().collect::<Vec<_>>(), ["orders", "orders-eu"]);
    assert_eq!(meta.streams_named("").await.unwrap(), map.streams);
}

/// A node's data directory: the first recorded stays for good (a second is not written);
/// each node id has its own; no snapshot reports them.
async fn a_nodes_first_data_directory_stays_recorded<B: Backend>(meta: ClusterMeta<B>) {
    let before = meta.snapshot().await.unwrap();
    let a = NodeId::new("a").unwrap();
    assert_eq!(meta.identity_of(&a).await.unwrap(), None);
    assert!(meta.record_identity(&a, "disk-1").await.unwrap());
    assert!(!meta.record_identity(&a, "disk-2").await.unwrap());
    let recorded = meta.identity_of(&a).await.unwrap();
    assert_eq!(recorded.as_deref(), Some("disk-1"));
    let other = NodeId::new("ab").unwrap();
    assert_eq!(meta.identity_of(&other).await.unwrap(), None);
    assert!(meta.record_identity(&other, "disk-2").await.unwrap());
    let recorded = meta.identity_of(&a).await.unwrap();
    assert_eq!(recorded.as_deref(), Some("disk-1"));
    let after = meta.snapshot().await.unwrap();
    assert_eq!((after.nodes, after.streams), (before.nodes, before.streams));
}

/// Four streams whose entries are near the largest one may take (1.5 MB): the map, over 4
/// MiB (gRPC's default message limit), reads back whole, and a watch from before sees each.
async fn a_map_larger_than_a_message_reads_back<B: Backend>(meta: ClusterMeta<B>) {
    let office = meta
        .campaign(&NodeId::new("ctl").unwrap(), TTL)
        .await
        .unwrap();
    let before = meta.snapshot().await.unwrap();
    let mut watch = meta.watch(before.revision + 1).await.unwrap();
    let mut written = 0;
    for (uid, name) in (1..).zip(["a", "b", "c", "d"]) {
        let mut placement = stream(name, uid, StreamStatus::Active);
        let shard = placement.shards[0].clone();
        placement.shards = (0..8_000)
            .map(|index| ShardPlacement {
                index,
                ..shard.clone()
            })
            .collect();
        written += serde_json::to_vec(&placement).unwrap().len();
        let put = Change::PutStream {
            placement,
            replaces: None,
        };
        meta.commit(&office, &[put]).await.unwrap();
    }
    assert!(written > 4 << 20, "{written} bytes");
    let map = meta.snapshot().await.unwrap();
    assert_eq!(map.streams.len(), 4);
    assert!(map.streams.values().all(|s| s.value.shards.len() == 8_000));
    let mut seen = 0;
    while seen < 4 {
        let events = within("the watch", watch.next()).await.unwrap();
        seen += events
            .iter()
            .filter(|(_, e)| matches!(e, ClusterEvent::StreamChanged(_)))
            .count();
    }
}

conformance!(
    a_map_larger_than_a_message_reads_back,
    registration_is_exclusive_and_ends_with_its_lease,
    one_controller_at_a_time_and_a_deposed_one_is_fenced,
    resignation_hands_the_office_to_the_oldest_candidate,
    changes_are_all_or_nothing_and_watched_in_order,
    a_compacted_revision_and_a_foreign_value_are_reported,
    a_lease_the_store_ends_is_noticed_and_a_dropped_one_is_revoked,
    the_stores_agree_on_edge_cases,
    a_shared_secret_is_the_first_one_stored,
    claims_and_account_settings,
    streams_read_by_name,
    a_nodes_first_data_directory_stays_recorded,
);

/// etcd serving clients over TLS only, each with a certificate its authority signed: a node
/// with one registers and reads the map back; a node without a certificate, one with another
/// authority's, and plain HTTP to the port get nothing.
#[cfg(feature = "etcd")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_over_tls_takes_the_clusters_clients_only() {
    use sluice_cluster::{EtcdBackend, EtcdTls};
    let pki = support::pki::Pki::new();
    pki.authority("cluster");
    pki.authority("rogue");
    let server = support::etcd::Etcd::start_tls(&pki).await;
    let meta = ClusterMeta::new(server.backend().await, "tls").unwrap();
    let _registration = meta.register(node("a"), TTL).await.unwrap();
    let map = meta.snapshot().await.unwrap();
    assert_eq!(
        map.nodes.keys().map(NodeId::as_str).collect::<Vec<_>>(),
        ["a"]
    );

    let endpoint = std::slice::from_ref(&server.endpoint);
    let refused = async |tls: Option<EtcdTls>| {
        let connected = EtcdBackend::connect_with(endpoint, Duration::from_secs(1), tls.as_ref());
        match connected.await {
            Err(_) => true,
            Ok(backend) => backend.range("/").await.is_err(),
        }
    };
    let ca = pki.path("cluster.pem");
    let anonymous = EtcdTls {
        ca: ca.clone(),
        identity: None,
    };
    assert!(
        refused(Some(anonymous)).await,
        "a client without a certificate"
    );
    let stranger = EtcdTls {
        ca,
        identity: Some(pki.certificate("stranger", "rogue", "IP:127.0.0.1")),
    };
    assert!(
        refused(Some(stranger)).await,
        "another authority's certificate"
    );
    let plain = server.endpoint.replace("https://", "http://");
    let connected = EtcdBackend::connect(&[plain], Duration::from_secs(1)).await;
    assert!(
        connected.is_err() || connected.unwrap().range("/").await.is_err(),
        "plain HTTP to the TLS port"
    );
}

/// etcd frozen (SIGSTOP) under a controller: the controller gives its office up within a TTL
/// of its last renewal, not when its client's request timeout runs out. etcd ends the lease
/// no earlier than that, so the next controller is never elected while this one acts.
#[cfg(feature = "etcd")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_store_is_given_up_within_the_ttl() {
    let server = support::etcd::Etcd::start().await;
    let meta = ClusterMeta::new(server.backend().await, "test").unwrap();
    let office = meta
        .campaign(&NodeId::new("ctl").unwrap(), TTL)
        .await
        .unwrap();
    // Let a renewal or two go through first.
    tokio::time::sleep(TTL).await;
    assert!(office.is_held());
    server.signal("STOP");
    let frozen = tokio::time::Instant::now();
    let given_up = tokio::time::timeout(TTL + Duration::from_secs(2), office.lost()).await;
    server.signal("CONT");
    assert!(
        given_up.is_ok(),
        "still held {:?} after etcd froze",
        frozen.elapsed()
    );
    assert!(!office.is_held());
}
