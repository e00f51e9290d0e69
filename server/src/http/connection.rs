//! What one connection may hold: a share of the body budget, a slot under its address's
//! cap, and a watchdog that closes it when it stays idle.
//!
//! A connection is idle while no request of it is in flight (a SubscribeToShard stream is
//! in flight until its last event is sent). Before its first request it gets
//! `first_request_timeout` (protocol detection, TLS and the first headers included: a
//! socket that sends nothing is closed); between requests it gets `idle_timeout`. HTTP/2
//! pings do not count as activity, so an idle HTTP/2 connection is closed like any other.
//!
//! A connection is stalled when requests are in flight but none makes progress (no body
//! bytes arrive, no reply bytes are taken) for `stalled`: a client that stops reading its
//! replies (a subscription's events pile up in the server) or stops sending. Stalled
//! connections are closed too, which frees what their replies held.

use crate::budget::Budget;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The per-connection state the request handler sees.
pub(crate) struct Connection {
    /// Its client's share of the server's body budget (all the client's connections).
    pub(crate) budget: Budget,
    /// Its client's address, and whether it speaks TLS (for policies' conditions).
    pub(crate) transport: crate::authorize::Transport,
    activity: Mutex<Activity>,
    in_flight: AtomicUsize,
    /// Asked by a request whose client stopped reading it: the watchdog drops the
    /// connection, which frees what its replies hold (HTTP/2 streams with a closed window
    /// are never polled again, so failing the one reply would not).
    abort: tokio::sync::Notify,
}

struct Activity {
    /// When a request last started, ended or made progress (or the connection was
    /// accepted).
    last: Instant,
    served_any: bool,
}

/// Why a connection is closed by its watchdog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Quiet {
    /// No request in flight for its limit.
    Idle,
    /// Requests in flight, none making progress for its limit.
    Stalled,
}

/// How long a connection may stay idle.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdleLimits {
    /// Before its first request.
    pub(crate) first_request: Duration,
    /// Between requests.
    pub(crate) between_requests: Duration,
    /// With requests in flight, none making progress.
    pub(crate) stalled: Duration,
}

impl Connection {
    /// A connection whose request bodies reserve from `budget` (its client's share).
    pub(crate) fn new(budget: Budget, transport: crate::authorize::Transport) -> Arc<Connection> {
        Arc::new(Connection {
            budget,
            transport,
            activity: Mutex::new(Activity {
                last: Instant::now(),
                served_any: false,
            }),
            in_flight: AtomicUsize::new(0),
            abort: tokio::sync::Notify::new(),
        })
    }

    /// Asks the watchdog to drop the connection now.
    pub(crate) fn abort(&self) {
        self.abort.notify_one();
    }

    /// Completes once `abort` was asked.
    pub(crate) async fn aborted(&self) {
        self.abort.notified().await;
    }

    /// Marks a request in flight until the guard is dropped (with its response body).
    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.touch(true);
        InFlight(self.clone())
    }

    /// A request in flight made progress: body bytes arrived, or its reply was polled.
    pub(crate) fn progress(&self) {
        self.touch(false);
    }

    fn touch(&self, started: bool) {
        let mut activity = self.activity.lock().expect("activity lock");
        activity.last = Instant::now();
        activity.served_any |= started;
    }

    /// Completes once the connection has been idle, or stalled, for its limit; says which.
    pub(crate) async fn idle(&self, limits: IdleLimits) -> Quiet {
        loop {
            let (last, served_any) = {
                let activity = self.activity.lock().expect("activity lock");
                (activity.last, activity.served_any)
            };
            let (limit, quiet) = match (self.in_flight.load(Ordering::SeqCst) > 0, served_any) {
                (true, _) => (limits.stalled, Quiet::Stalled),
                (false, false) => (limits.first_request, Quiet::Idle),
                (false, true) => (limits.between_requests, Quiet::Idle),
            };
            let deadline = last + limit;
            if Instant::now() >= deadline {
                return quiet;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A request in flight on a connection.
pub(crate) struct InFlight(Arc<Connection>);

impl InFlight {
    /// The request made progress.
    pub(crate) fn progress(&self) {
        self.0.progress();
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch(false);
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Connections open per client address, under a cap.
/// Connections open per client, under a cap, and the body budget the client's connections
/// share. A client is an IPv4 address, or an IPv6 /64 (one host's usual allotment: its
/// other addresses are the same client).
pub(crate) struct AddressSlots {
    max: usize,
    /// Bytes of request bodies one client may hold at once, over its connections.
    share_bytes: usize,
    open: Mutex<HashMap<IpAddr, (usize, Budget)>>,
}

/// The client an address belongs to.
fn client_of(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

impl AddressSlots {
    pub(crate) fn new(max: usize, share_bytes: usize) -> Arc<AddressSlots> {
        Arc::new(AddressSlots {
            max,
            share_bytes,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for one more connection from `address`, if its client has fewer than the cap
    /// open.
    pub(crate) fn take(self: &Arc<Self>, address: IpAddr) -> Option<AddressSlot> {
        let client = client_of(address);
        let mut open = self.open.lock().expect("address slots lock");
        let (count, budget) = open
            .entry(client)
            .or_insert_with(|| (0, Budget::new(self.share_bytes)));
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            slots: self.clone(),
            client,
            budget: budget.clone(),
        })
    }
}

/// One connection's place under its client's cap; given back when dropped.
pub(crate) struct AddressSlot {
    slots: Arc<AddressSlots>,
    client: IpAddr,
    /// The client's share of the body budget.
    pub(crate) budget: Budget,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().expect("address slots lock");
        if let Some((count, _)) = open.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_at_most_its_cap_and_slots_come_back() {
        let slots = AddressSlots::new(2, 1 << 20);
        let one: IpAddr = [10, 0, 0, 1].into();
        let two: IpAddr = [10, 0, 0, 2].into();
        let a = slots.take(one).unwrap();
        let _b = slots.take(one).unwrap();
        assert!(slots.take(one).is_none(), "the third from one address");
        assert!(slots.take(two).is_some(), "another address is not affected");
        drop(a);
        assert!(
            slots.take(one).is_some(),
            "a closed connection gives its slot back"
        );
        // One IPv6 /64 is one client.
        let x: IpAddr = "2001:db8::1".parse().unwrap();
        let y: IpAddr = "2001:db8::2".parse().unwrap();
        let _x = slots.take(x).unwrap();
        let _y = slots.take(y).unwrap();
        assert!(slots.take("2001:db8::ffff".parse().unwrap()).is_none());
        assert!(
            slots.take("2001:db8:0:1::1".parse().unwrap()).is_some(),
            "another /64"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_idle_only_with_nothing_in_flight_for_its_limit() {
        let limits = IdleLimits {
            first_request: Duration::from_secs(10),
            between_requests: Duration::from_secs(60),
            stalled: Duration::from_secs(30),
        };
        let transport = crate::authorize::Transport {
            peer: None,
            secure: false,
        };
        let connection = Connection::new(Budget::new(1 << 20), transport);
        let start = Instant::now();
        connection.idle(limits).await;
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(10),
            "before the first request"
        );

        let request = connection.begin();
        let watch = tokio::spawn({
            let connection = connection.clone();
            async move { connection.idle(limits).await }
        });
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_secs(15)).await;
            connection.progress();
        }
        assert!(
            !watch.is_finished(),
            "a request in flight making progress keeps it open"
        );
        let ended = Instant::now();
        drop(request);
        watch.await.unwrap();
        let waited = ended.elapsed();
        assert!(
            waited >= Duration::from_secs(60) && waited < Duration::from_secs(120),
            "between requests: {waited:?}"
        );

        let _stuck = connection.begin();
        let started = Instant::now();
        connection.idle(limits).await;
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(30),
            "in flight, no progress"
        );
    }
}
