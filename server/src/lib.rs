//! # sluice-server
//!
//! `sluice serve`: a Kinesis Data Streams endpoint over a Sluice engine, spoken to by the AWS
//! CLI, boto3 and the AWS SDKs unchanged (JSON 1.1 and CBOR 1.1, HTTP/1.1 and h2c,
//! SubscribeToShard event streams). The design is in docs/design/server.md.

// Proving the connection task Send walks DataFusion's SQL syntax tree (the analytics calls'
// futures hold plans), which is deeper than the compiler's default limit.
#![cfg_attr(feature = "analytics", recursion_limit = "256")]

#[cfg(feature = "analytics")]
pub mod analytics;
pub mod arn;
pub mod auth;
mod authorize;
mod budget;
mod clock;
pub mod cloudwatch;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod config;
mod consumer;
mod encryption;
#[cfg(feature = "firehose")]
pub mod firehose;
pub mod http;
pub mod iam;
pub mod kms;
mod leases;
mod ops;
mod private_file;
mod reads;
pub mod regions;
pub mod reset;
mod reshard_limits;
pub mod service;
mod shapes;
mod state;
mod subscribe;
pub mod tenant;
pub mod tls;
pub mod usage;
#[cfg(feature = "video")]
pub mod video;
pub mod wire;

pub use config::{EngineClock, ServeConfig};
pub use service::Service;

/// Entry points for the fuzz targets (the `fuzzing` feature): not an API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    use crate::tenant::Tenant;
    use crate::wire::{ApiError, Protocol};

    /// Runs Kinesis operation `name` on `body` for `tenant`, exactly as the server does
    /// after authentication: decoding, validation, the operation.
    pub async fn call(
        tenant: &Tenant,
        name: &str,
        protocol: Protocol,
        body: &[u8],
    ) -> Result<Vec<u8>, ApiError> {
        crate::ops::call(tenant, name, protocol, body).await
    }
}
