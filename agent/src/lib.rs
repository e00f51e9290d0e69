//! `sluice-agent`: what the Kinesis Agent does, for Sluice (docs/design/agent.md). Log files
//! are tailed through rotation ([`tail`]), their records converted by the agent's
//! processing options ([`process`]), and their positions kept durably once acknowledged
//! ([`checkpoint`]). `agent.json` is read as the Java agent reads it ([`config`]).

pub mod checkpoint;
pub mod config;
pub mod process;
pub mod run;
pub mod send;
pub mod tail;
mod tls;

use std::path::{Path, PathBuf};

/// What the agent could not do, naming the file or the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A file could not be read or written.
    #[error("could not {what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// To which file.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The checkpoint file is damaged.
    #[error(
        "the checkpoint file {path} cannot be used ({why}): stop the other agent, or move a damaged file away to read every flow afresh"
    )]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// A configuration value is wrong.
    #[error("{key}: {why}")]
    Config {
        /// The key at fault, as the configuration names it.
        key: String,
        /// What is wrong with its value.
        why: String,
    },
}

impl AgentError {
    pub(crate) fn io(
        what: &'static str,
        path: &Path,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> AgentError {
        AgentError::Io {
            what,
            path: path.to_owned(),
            source: std::io::Error::other(source),
        }
    }

    pub(crate) fn config(key: impl Into<String>, why: impl Into<String>) -> AgentError {
        AgentError::Config {
            key: key.into(),
            why: why.into(),
        }
    }
}
