//! `Stream`: a handle on one stream, looked up once and used for every call on it.

use crate::catalog::StreamState;
use crate::engine::Engine;
use crate::error::{AdminError, ReadError};
use std::sync::Arc;

/// A handle on one stream: puts, iterators, readers, subscriptions and its administration,
/// with no name lookup per call. Cheap to clone; it keeps the engine open while it exists.
///
/// A handle names one incarnation of the stream: once the stream is deleted, every call on
/// it answers `StreamNotFound`, also if a new stream of the same name was created since.
#[derive(Clone)]
pub struct Stream {
    pub(crate) engine: Engine,
    pub(crate) state: Arc<StreamState>,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("name", &self.state.name)
            .field("uid", &self.state.uid)
            .finish()
    }
}

impl Engine {
    /// A handle on the stream called `name`.
    pub fn stream(&self, name: &str) -> Result<Stream, AdminError> {
        let state = self
            .shared()
            .catalog
            .get(name)
            .ok_or_else(|| AdminError::stream_not_found(name))?;
        Ok(Stream {
            engine: self.clone(),
            state,
        })
    }
}

impl Stream {
    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// The engine the stream belongs to.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether the stream was deleted (every call on the handle then fails).
    pub fn is_deleted(&self) -> bool {
        self.state.is_deleted()
    }

    /// The stream's state, or `StreamNotFound` once it is deleted.
    pub(crate) fn live_state(&self) -> Result<&Arc<StreamState>, ReadError> {
        if self.state.is_deleted() {
            return Err(ReadError::stream_not_found(&self.state.name));
        }
        Ok(&self.state)
    }
}
