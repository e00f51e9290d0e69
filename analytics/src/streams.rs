//! Where an application's input and outputs are: Sluice streams of its engine, or
//! Firehose delivery streams, found through the embedder's [`DeliveryStreams`] as the
//! Sluice streams that hold their records.

use crate::app::{Input, Output, RunConfig};
use crate::error::AnalyticsError;
use serde::{Deserialize, Serialize};
use sluice_core::{Engine, Stream};
use std::future::Future;
use std::pin::Pin;

/// What an input or output names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum StreamKind {
    /// A Sluice (Kinesis) stream of the application's engine.
    #[default]
    Stream,
    /// A Firehose delivery stream.
    DeliveryStream,
}

impl StreamKind {
    /// Left out when written, so an input or output written before kinds were kept
    /// digests as it did (its checkpoint stays its own).
    pub(crate) fn is_stream(&self) -> bool {
        *self == StreamKind::Stream
    }
}

/// A delivery stream's Sluice stream, or why there is none.
pub type StreamFound<'a> = Pin<Box<dyn Future<Output = Result<Stream, String>> + Send + 'a>>;

/// Firehose delivery streams, as the Sluice streams that hold their records (`sluice
/// serve`: the tenant's Firehose).
pub trait DeliveryStreams: Send + Sync + std::fmt::Debug {
    /// The stream holding `name`'s records, read as an input.
    fn records<'a>(&'a self, name: &'a str) -> StreamFound<'a>;
    /// The stream `name` takes records from, which an output's rows are put into as
    /// PutRecordBatch puts them (and found in after a crash).
    fn intake<'a>(&'a self, name: &'a str) -> StreamFound<'a>;
}

/// The stream an input reads.
pub(crate) async fn input_stream(
    engine: &Engine,
    config: &RunConfig,
    input: &Input,
) -> Result<Stream, AnalyticsError> {
    match input.kind {
        StreamKind::Stream => engine_stream(engine, &input.stream),
        StreamKind::DeliveryStream => {
            let found = delivery_streams(config, &input.stream)?
                .records(&input.stream)
                .await;
            found.map_err(|e| delivery_error(&input.stream, &e))
        }
    }
}

/// The stream an output's rows are put into.
pub(crate) async fn output_stream(
    engine: &Engine,
    config: &RunConfig,
    output: &Output,
) -> Result<Stream, AnalyticsError> {
    match output.kind {
        StreamKind::Stream => engine_stream(engine, &output.stream),
        StreamKind::DeliveryStream => {
            let found = delivery_streams(config, &output.stream)?
                .intake(&output.stream)
                .await;
            found.map_err(|e| delivery_error(&output.stream, &e))
        }
    }
}

fn engine_stream(engine: &Engine, name: &str) -> Result<Stream, AnalyticsError> {
    engine
        .stream(name)
        .map_err(|_| AnalyticsError::invalid(format!("Stream {name} does not exist.")))
}

fn delivery_streams<'c>(
    config: &'c RunConfig,
    name: &str,
) -> Result<&'c dyn DeliveryStreams, AnalyticsError> {
    config.delivery_streams.as_deref().ok_or_else(|| {
        AnalyticsError::invalid(format!(
            "Delivery stream {name}: this application has no Firehose to find it in."
        ))
    })
}

fn delivery_error(name: &str, error: &str) -> AnalyticsError {
    AnalyticsError::invalid(format!("Delivery stream {name}: {error}"))
}
