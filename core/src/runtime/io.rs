//! The I/O the cores' shard logs write through: glommio's, or (for tests) glommio's behind a
//! shared fault injector (docs/design/engine-faults.md). One branch per call; production
//! never touches the injector's journal.

use sluice_storage::io::{FaultyFile, FaultyIo, GlommioFile, SegmentFile};
use sluice_storage::{GlommioIo, SegmentIo};
use std::io;
use std::path::Path;

/// A core's segment I/O.
#[derive(Debug, Clone)]
pub(crate) enum EngineIo {
    Plain(GlommioIo),
    Faulty(FaultyIo<GlommioIo>),
}

impl EngineIo {
    /// Plain I/O, or the configured injector's.
    pub(crate) fn new(faults: Option<&FaultyIo<GlommioIo>>) -> EngineIo {
        faults.map_or(EngineIo::Plain(GlommioIo), |f| EngineIo::Faulty(f.clone()))
    }
}

/// A segment file of an [`EngineIo`].
#[derive(Debug)]
pub(crate) enum EngineFile {
    Plain(GlommioFile),
    Faulty(FaultyFile<GlommioFile>),
}

impl SegmentIo for EngineIo {
    type File = EngineFile;

    async fn create(&self, path: &Path, len: u64) -> io::Result<EngineFile> {
        match self {
            EngineIo::Plain(io) => io.create(path, len).await.map(EngineFile::Plain),
            EngineIo::Faulty(io) => io.create(path, len).await.map(EngineFile::Faulty),
        }
    }

    async fn open(&self, path: &Path) -> io::Result<EngineFile> {
        match self {
            EngineIo::Plain(io) => io.open(path).await.map(EngineFile::Plain),
            EngineIo::Faulty(io) => io.open(path).await.map(EngineFile::Faulty),
        }
    }

    async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        match self {
            EngineIo::Plain(io) => io.sync_dir(dir).await,
            EngineIo::Faulty(io) => io.sync_dir(dir).await,
        }
    }
}

impl SegmentFile for EngineFile {
    async fn write_at(&self, pos: u64, buf: Vec<u8>) -> io::Result<()> {
        match self {
            EngineFile::Plain(file) => file.write_at(pos, buf).await,
            EngineFile::Faulty(file) => file.write_at(pos, buf).await,
        }
    }

    async fn sync_data(&self) -> io::Result<()> {
        match self {
            EngineFile::Plain(file) => file.sync_data().await,
            EngineFile::Faulty(file) => file.sync_data().await,
        }
    }

    fn start_writeback(&self, pos: u64, len: u64) {
        match self {
            EngineFile::Plain(file) => file.start_writeback(pos, len),
            EngineFile::Faulty(file) => file.start_writeback(pos, len),
        }
    }

    fn writeback_error(&self) -> Option<io::Error> {
        match self {
            EngineFile::Plain(file) => file.writeback_error(),
            EngineFile::Faulty(file) => file.writeback_error(),
        }
    }
}
