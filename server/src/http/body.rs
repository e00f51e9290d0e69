//! Reading request bodies within the server's memory budget.
//!
//! Body bytes are reserved as they arrive, never in advance: a Content-Length is only a
//! claim, and connections that declare 16 MiB and send nothing hold nothing. Each
//! reservation comes from two budgets: the server's (all requests together) and the
//! connection's share of it (all of one connection's streams together), so one client
//! cannot take the server's whole budget. A request that cannot get its next bytes'
//! budget within `BUDGET_WAIT`, or whose body takes longer than `READ_TIMEOUT`, is refused
//! and releases all it held; so requests each holding part of the budget cannot block one
//! another for longer than that.

use super::connection::Connection;
use crate::budget::{Budget, Held, Refused, UNIT};
use crate::wire::ApiError;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use std::time::Duration;

/// How long a request waits for budget for its next bytes.
const BUDGET_WAIT: Duration = Duration::from_secs(10);
/// How long a whole body may take to arrive.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes of an oversized body read and dropped so that an HTTP/1.1 client, still sending,
/// gets to read the 413 rather than a reset; beyond this the connection is just closed.
const OVERSIZED_DRAIN_BYTES_MAX: usize = 64 << 20;
/// Buffer allocated before any byte arrived, whatever the Content-Length claims.
const INITIAL_CAPACITY_MAX: usize = 64 << 10;

/// What a request's body holds of the budgets; released when dropped (the request
/// answered).
#[derive(Default)]
pub(crate) struct Reservation {
    server: Option<Held>,
    connection: Option<Held>,
    units: usize,
}

impl Reservation {
    /// Grows the reservation to cover `bytes`, from the connection's share first, then
    /// from the server's budget.
    async fn cover(
        &mut self,
        bytes: usize,
        server: &Budget,
        connection: &Budget,
    ) -> Result<(), ApiError> {
        let needed = bytes.div_ceil(UNIT).saturating_sub(self.units);
        if needed == 0 {
            return Ok(());
        }
        let connection_part = take(connection, needed, "this connection's other requests").await?;
        let server_part = take(server, needed, "other requests").await?;
        merge(&mut self.connection, connection_part);
        merge(&mut self.server, server_part);
        self.units += needed;
        Ok(())
    }
}

async fn take(budget: &Budget, units: usize, holders: &str) -> Result<Held, ApiError> {
    match budget.reserve(units * UNIT, BUDGET_WAIT).await {
        Ok(held) => Ok(held),
        Err(Refused::Closed) => Err(ApiError::internal("The server is shutting down.")),
        Err(Refused::Busy) => Err(ApiError::internal(format!(
            "The server is busy receiving {holders}; retry."
        ))),
    }
}

fn merge(held: &mut Option<Held>, more: Held) {
    match held {
        Some(held) => held.merge(more),
        None => *held = Some(more),
    }
}

/// The whole body, up to `limit` bytes; a larger one (declared or found) is drained
/// (bounded), not kept, and refused. The reservation returned holds the body's bytes
/// against `server` and `connection` until the request is answered.
pub(crate) async fn read(
    body: Incoming,
    declared_len: Option<usize>,
    limit: usize,
    server: &Budget,
    connection: &Connection,
) -> Result<(Bytes, Reservation), ApiError> {
    let mut reservation = Reservation::default();
    let collect = Collect {
        limit,
        oversized: declared_len.is_some_and(|len| len > limit),
        capacity: declared_len
            .unwrap_or(0)
            .min(limit)
            .min(INITIAL_CAPACITY_MAX),
        server,
        connection,
    }
    .run(body, &mut reservation);
    match tokio::time::timeout(READ_TIMEOUT, collect).await {
        Ok(collected) => Ok((collected?, reservation)),
        Err(_) => Err(ApiError::serialization(format!(
            "The request body did not arrive within {} s.",
            READ_TIMEOUT.as_secs()
        ))),
    }
}

/// One body being read.
struct Collect<'b> {
    limit: usize,
    /// Declared or found larger than `limit`: read on only to drain it.
    oversized: bool,
    capacity: usize,
    server: &'b Budget,
    connection: &'b Connection,
}

impl Collect<'_> {
    async fn run(
        mut self,
        mut body: Incoming,
        reservation: &mut Reservation,
    ) -> Result<Bytes, ApiError> {
        let mut collected = BytesMut::with_capacity(self.capacity);
        let mut seen = 0usize;
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|_| ApiError::serialization("The request body was cut off."))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            seen += data.len();
            self.connection.progress();
            self.oversized |= seen > self.limit;
            if !self.oversized {
                reservation
                    .cover(seen, self.server, &self.connection.budget)
                    .await?;
                collected.extend_from_slice(&data);
            } else if seen > OVERSIZED_DRAIN_BYTES_MAX {
                break;
            }
        }
        if self.oversized {
            return Err(ApiError::too_large(self.limit));
        }
        Ok(collected.freeze())
    }
}
