//! Node-to-node calls over real sockets: many groups between a node pair share one
//! connection, heartbeats of many groups go in one request, a slow call does not hold up the
//! others, and a peer that goes away is reported unreachable, then reached again once back.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sluice_cluster::transport::{
    GroupId, PeerHandler, PeerServer, PeerTls, Peers, RpcError, TransportConfig,
};
use tokio::net::TcpListener;

#[path = "support/pki.rs"]
mod pki;
use pki::Pki;

/// Answers `<node> <group> <method> <body>`; refuses groups of shard 7; `slow` takes 5 s;
/// `panic` panics.
struct Echo(&'static str);

impl PeerHandler for Echo {
    async fn call(&self, group: GroupId, method: &str, body: Bytes) -> Result<Bytes, String> {
        if group.shard == 7 {
            return Err(format!("no group {group} here"));
        }
        assert_ne!(method, "panic", "the handler panics");
        if method == "slow" {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        Ok(Bytes::from(format!(
            "{} {group} {method} {}",
            self.0,
            String::from_utf8_lossy(&body)
        )))
    }
}

async fn start(name: &'static str) -> PeerServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    PeerServer::start(listener, Arc::new(Echo(name))).unwrap()
}

fn config(call_timeout: Duration) -> TransportConfig {
    let mut config = TransportConfig::default();
    config.call_timeout = call_timeout;
    config
}

fn group(shard: u32) -> GroupId {
    GroupId {
        stream_uid: 42,
        shard,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_group_between_two_nodes_shares_one_connection() {
    let servers = [start("a").await, start("b").await, start("c").await];
    let names = ["a", "b", "c"];
    let peers: Vec<Peers> = (0..3)
        .map(|_| Peers::new(TransportConfig::default()))
        .collect();
    let mut calls = Vec::new();
    for (from, caller) in peers.iter().enumerate() {
        for (to, server) in servers.iter().enumerate().filter(|(to, _)| *to != from) {
            for shard in (0..200).filter(|s| *s != 7) {
                let (caller, address) = (caller.clone(), server.local_addr().to_string());
                let expected = format!("{} 42.{shard} append from-{from}", names[to]);
                calls.push(tokio::spawn(async move {
                    let body = Bytes::from(format!("from-{from}"));
                    let answer = caller
                        .call(&address, group(shard), "append", body)
                        .await
                        .unwrap();
                    assert_eq!(answer, expected);
                }));
            }
        }
    }
    for call in calls {
        call.await.unwrap();
    }
    for server in &servers {
        let stats = server.stats();
        assert_eq!(
            stats.connections, 2,
            "one connection from each other node: {stats:?}"
        );
        assert_eq!(stats.calls, 2 * 199);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_of_many_groups_go_in_one_request() {
    let server = start("b").await;
    let address = server.local_addr().to_string();
    // A window wide enough that a busy machine spawning the 300 callers still fills one batch.
    let mut config = TransportConfig::default();
    config.heartbeat_window = Duration::from_millis(50);
    let peers = Peers::new(config);
    let beats: Vec<_> = (0..300)
        .map(|shard| {
            let (peers, address) = (peers.clone(), address.clone());
            tokio::spawn(async move {
                (
                    shard,
                    peers
                        .heartbeat(&address, group(shard), Bytes::from("hb"))
                        .await,
                )
            })
        })
        .collect();
    for beat in beats {
        let (shard, answer) = beat.await.unwrap();
        match answer {
            Ok(body) => assert_eq!(body, format!("b 42.{shard} heartbeat hb")),
            Err(RpcError::Remote {
                status: 500,
                message,
                ..
            }) => {
                assert_eq!(shard, 7, "only shard 7 is refused");
                assert_eq!(message, "no group 42.7 here");
            }
            Err(e) => panic!("shard {shard}: {e}"),
        }
    }
    let stats = server.stats();
    assert_eq!(stats.calls, 300);
    assert!(
        stats.heartbeat_batches <= 3,
        "300 heartbeats in {} requests",
        stats.heartbeat_batches
    );
    assert_eq!(stats.connections, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_call_does_not_hold_up_the_others_and_times_out() {
    let server = start("b").await;
    let address = server.local_addr().to_string();
    // The fast call has until the slow one's timeout (1.5 s) to come back: room on a busy
    // machine.
    let peers = Peers::new(config(Duration::from_millis(1500)));
    let slow = tokio::spawn({
        let (peers, address) = (peers.clone(), address.clone());
        async move { peers.call(&address, group(1), "slow", Bytes::new()).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    // On the same connection, while the slow call is in flight.
    let fast = peers
        .call(&address, group(2), "fast", Bytes::new())
        .await
        .unwrap();
    assert_eq!(fast, "b 42.2 fast ");
    assert!(!slow.is_finished(), "the slow call is still waiting");
    assert!(matches!(
        slow.await.unwrap(),
        Err(RpcError::Timeout {
            timeout_ms: 1500,
            ..
        })
    ));
    assert_eq!(server.stats().connections, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_goes_away_is_unreachable_then_reached_again() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = PeerServer::start(listener, Arc::new(Echo("b"))).unwrap();
    let peers = Peers::new(config(Duration::from_secs(2)));
    let peer = address.to_string();
    let call = || peers.call(&peer, group(1), "append", Bytes::from("x"));
    assert_eq!(call().await.unwrap(), "b 42.1 append x");
    drop(server);
    // Its acceptor and connections end on the runtime, not in `drop`: once nothing listens
    // (and a moment for the connection's task), its connection is closed too. (Without this
    // wait a loaded machine let the next call through the old connection.)
    while std::net::TcpStream::connect(address).is_ok() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Unreachable at once rather than at the timeout.
    let started = tokio::time::Instant::now();
    assert!(matches!(call().await, Err(RpcError::Unreachable { .. })));
    assert!(matches!(call().await, Err(RpcError::Unreachable { .. })));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // Back on the same port: once the last failed attempt no longer answers for the peer
    // (200 ms), the next call connects again.
    let again = PeerServer::start(
        TcpListener::bind(address).await.unwrap(),
        Arc::new(Echo("b2")),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(call().await.unwrap(), "b2 42.1 append x");
    assert_eq!(again.stats().connections, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_fails_its_call_and_not_the_connection() {
    let server = start("b").await;
    let address = server.local_addr().to_string();
    let peers = Peers::new(TransportConfig::default());
    let failed = peers.call(&address, group(1), "panic", Bytes::new()).await;
    assert!(
        matches!(&failed, Err(RpcError::Remote { status: 500, message, .. }) if message.contains("the handler failed")),
        "{failed:?}"
    );
    assert_eq!(
        peers
            .call(&address, group(1), "after", Bytes::new())
            .await
            .unwrap(),
        "b 42.1 after "
    );
    assert_eq!(
        server.stats().connections,
        1,
        "the connection outlived the panic"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_answers_is_left_for_the_one_that_replaces_it() {
    // A port that takes connections (the kernel's backlog) and never answers on them.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = silent.local_addr().unwrap();
    let peers = Peers::new(config(Duration::from_millis(500)));
    let peer = address.to_string();
    assert!(matches!(
        peers.call(&peer, group(1), "append", Bytes::new()).await,
        Err(RpcError::Timeout { .. })
    ));
    // The silent node goes; another takes its address. Its connection is dropped (reset, or
    // found dead by the pings) and the calls reach the new one.
    drop(silent);
    let server = PeerServer::start(
        TcpListener::bind(address).await.unwrap(),
        Arc::new(Echo("new")),
    )
    .unwrap();
    let started = tokio::time::Instant::now();
    loop {
        match peers
            .call(&peer, group(1), "append", Bytes::from("y"))
            .await
        {
            Ok(answer) => {
                assert_eq!(answer, "new 42.1 append y");
                break;
            }
            Err(_) => assert!(
                started.elapsed() < Duration::from_secs(10),
                "the new node was never reached"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(server.stats().connections, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_waiting_on_a_peer_that_cannot_be_reached_share_one_attempt() {
    // Nothing listens on a port we bound and closed; TEST-NET-1 is not routed at all.
    for peer in ["127.0.0.1:1", "192.0.2.1:4600"] {
        let mut config = config(Duration::from_secs(5));
        config.connect_timeout = Duration::from_millis(800);
        let peers = Peers::new(config);
        let started = tokio::time::Instant::now();
        let calls: Vec<_> = (0..5)
            .map(|shard| {
                let (peers, peer) = (peers.clone(), peer.to_owned());
                tokio::spawn(async move {
                    peers
                        .call(&peer, group(shard), "append", Bytes::new())
                        .await
                })
            })
            .collect();
        for call in calls {
            assert!(call.await.unwrap().is_err());
        }
        // One attempt (at most the connect timeout) answered them all, not five in a row.
        assert!(
            started.elapsed() < Duration::from_millis(2500),
            "{peer}: {:?}",
            started.elapsed()
        );
    }
}

/// Node `name`'s TLS: its certificate signed by `authority` naming `san`, trusting
/// `trusted`.
fn node_tls(pki: &Pki, name: &str, (authority, san): (&str, &str), trusted: &str) -> PeerTls {
    let (cert, key) = pki.certificate(name, authority, san);
    PeerTls::from_pem(&cert, &key, &pki.path(&format!("{trusted}.pem"))).unwrap()
}

async fn start_tls(name: &'static str, tls: PeerTls) -> PeerServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    PeerServer::start_with(listener, Arc::new(Echo(name)), Some(tls)).unwrap()
}

fn tls_config(tls: PeerTls) -> TransportConfig {
    let mut config = config(Duration::from_secs(3));
    config.tls = Some(tls);
    config
}

/// `caller` will not call `peer` (`what`), naming its certificate.
async fn refused_by_caller(caller: &Peers, peer: &PeerServer, what: &str) {
    let address = peer.local_addr().to_string();
    let refused = caller
        .call(&address, group(1), "append", Bytes::new())
        .await;
    let Err(RpcError::Unreachable { reason, .. }) = refused else {
        panic!("{what} was called: {refused:?}");
    };
    assert!(reason.contains("certificate"), "{what}: {reason}");
}

/// Mutual TLS on the peer port: two nodes whose certificates the cluster's authority signed
/// talk; a caller without a certificate, or with one of another authority, gets no answer;
/// a caller refuses a peer whose certificate another authority signed or that names another
/// address; a node whose files do not go together does not start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_clusters_nodes_talk_over_mutual_tls() {
    let pki = Pki::new();
    pki.authority("cluster");
    pki.authority("rogue");
    let here = "IP:127.0.0.1";
    let server = start_tls("a", node_tls(&pki, "a", ("cluster", here), "cluster")).await;
    let address = server.local_addr().to_string();
    let member = Peers::new(tls_config(node_tls(
        &pki,
        "b",
        ("cluster", here),
        "cluster",
    )));
    let answer = member
        .call(&address, group(1), "append", Bytes::from("x"))
        .await;
    assert_eq!(answer.unwrap(), "a 42.1 append x");
    let heartbeat = member.heartbeat(&address, group(2), Bytes::from("h")).await;
    assert_eq!(heartbeat.unwrap(), "a 42.2 heartbeat h");

    let plain = Peers::new(config(Duration::from_secs(3)));
    let refused = plain
        .call(&address, group(1), "append", Bytes::from("x"))
        .await;
    assert!(refused.is_err(), "h2c to a TLS port: {refused:?}");
    let outsider = node_tls(&pki, "x", ("rogue", here), "cluster");
    let stranger = Peers::new(tls_config(outsider));
    let refused = stranger
        .call(&address, group(1), "append", Bytes::from("x"))
        .await;
    assert!(
        refused.is_err(),
        "a certificate of another authority: {refused:?}"
    );

    let rogue = start_tls("r", node_tls(&pki, "r", ("rogue", here), "rogue")).await;
    refused_by_caller(&member, &rogue, "a peer of another authority").await;
    let misnamed = node_tls(&pki, "m", ("cluster", "DNS:elsewhere.example"), "cluster");
    let misnamed = start_tls("m", misnamed).await;
    refused_by_caller(&member, &misnamed, "a peer naming another address").await;
    // The member still talks to its peer after those refusals.
    let answer = member
        .call(&address, group(3), "append", Bytes::from("y"))
        .await;
    assert_eq!(answer.unwrap(), "a 42.3 append y");

    let path = |file: &str| pki.path(file);
    let mismatched = PeerTls::from_pem(&path("a.pem"), &path("b.key"), &path("cluster.pem"));
    assert!(mismatched.is_err(), "a's certificate with b's key");
}

/// A node's TLS read from files it can be given again: `{node}-live.pem`, `.key` and
/// `-ca.pem` in the pki's directory, copied from certificate `issued` and authority `trusted`.
fn live_files(pki: &Pki, node: &str, issued: &str, trusted: &str) -> [std::path::PathBuf; 3] {
    let live = [
        pki.path(&format!("{node}-live.pem")),
        pki.path(&format!("{node}-live.key")),
        pki.path(&format!("{node}-live-ca.pem")),
    ];
    let sources = [
        pki.path(&format!("{issued}.pem")),
        pki.path(&format!("{issued}.key")),
        pki.path(&format!("{trusted}.pem")),
    ];
    for (source, live) in sources.iter().zip(&live) {
        std::fs::copy(source, live).unwrap();
    }
    live
}

/// `caller` reaches `peer` within a few seconds (a refused connection is tried again).
async fn reached(caller: &Peers, peer: &PeerServer, what: &str) {
    let address = peer.local_addr().to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = caller
            .call(&address, group(1), "append", Bytes::new())
            .await;
        match answer {
            Ok(_) => return,
            Err(error) if tokio::time::Instant::now() > deadline => panic!("{what}: {error:?}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The cluster's authority replaced without a restart: each node's files rewritten and
/// reloaded (as SIGHUP does), new connections both ways use them; files that do not go
/// together are refused by the reload and the node keeps what it had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloaded_peer_certificates_serve_new_connections_both_ways() {
    let pki = Pki::new();
    pki.authority("old");
    pki.authority("new");
    let here = "IP:127.0.0.1";
    for (name, authority) in [("a-old", "old"), ("a-new", "new"), ("b-old", "old")] {
        pki.certificate(name, authority, here);
    }
    pki.certificate("b-new", "new", here);
    // a serves with the old authority's certificate; b calls with the old one too.
    let [cert, key, ca] = live_files(&pki, "a", "a-old", "old");
    let a_tls = PeerTls::from_pem(&cert, &key, &ca).unwrap();
    let a = start_tls("a", a_tls.clone()).await;
    let [b_cert, b_key, b_ca] = live_files(&pki, "b", "b-old", "old");
    let b_tls = PeerTls::from_pem(&b_cert, &b_key, &b_ca).unwrap();
    let b = Peers::new(tls_config(b_tls.clone()));
    reached(&b, &a, "b calls a, both under the old authority").await;

    // a moves to the new authority: a caller of the new one reaches it, b (still old) not.
    live_files(&pki, "a", "a-new", "new");
    let fresh = Peers::new(tls_config(node_tls(&pki, "c", ("new", here), "new")));
    refused_by_caller(&fresh, &a, "a before its reload").await;
    a_tls.reload().unwrap();
    reached(&fresh, &a, "a caller of the new authority after a's reload").await;
    let stale = Peers::new(tls_config(b_tls.clone()));
    refused_by_caller(&stale, &a, "a caller of the old authority after a's reload").await;

    // b's calling side moves too: a caller made before the reload (as a node's is, at
    // start) and holding no connection to a uses the reloaded files.
    let b = Peers::new(tls_config(b_tls.clone()));
    live_files(&pki, "b", "b-new", "new");
    b_tls.reload().unwrap();
    reached(&b, &a, "b after its own reload").await;

    // a's certificate with b's key: refused, and a serves as before.
    std::fs::copy(pki.path("b-new.key"), &key).unwrap();
    let refused = a_tls.reload();
    assert!(
        refused.is_err(),
        "a's certificate with b's key: {refused:?}"
    );
    let another = Peers::new(tls_config(node_tls(&pki, "d", ("new", here), "new")));
    reached(&another, &a, "a after a refused reload").await;
}
