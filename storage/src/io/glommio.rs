//! Production I/O: glommio (io_uring) buffered files, so mapped readers see every write.

use super::{SegmentFile, SegmentIo};
use glommio::io::{BufferedFile, Directory, OpenOptions};
use glommio::{LocalExecutorBuilder, Placement};
use std::future::Future;
use std::io;
use std::path::Path;

/// glommio registers this much memory with io_uring per executor. Sluice writes through the
/// page cache and never uses glommio's DMA buffers, so it keeps the minimum: that also keeps
/// the executor within a default `ulimit -l`.
const IO_MEMORY_BYTES: usize = 64 * 1024;

/// Segment I/O through glommio's io_uring reactor on the current executor.
#[derive(Debug, Default, Clone, Copy)]
pub struct GlommioIo;

/// A glommio buffered file.
#[derive(Debug)]
pub struct GlommioFile(BufferedFile);

fn open_options(create: bool) -> OpenOptions {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create_new(create);
    options
}

impl SegmentIo for GlommioIo {
    type File = GlommioFile;

    async fn create(&self, path: &Path, len: u64) -> io::Result<GlommioFile> {
        let file = open_options(true).buffered_open(path).await?;
        if let Err(e) = file.pre_allocate(len, false).await {
            // Do not leave a short file behind: it would look like a damaged segment.
            let _ = file.remove().await;
            return Err(e.into());
        }
        file.fdatasync().await?;
        Ok(GlommioFile(file))
    }

    async fn open(&self, path: &Path) -> io::Result<GlommioFile> {
        Ok(GlommioFile(open_options(false).buffered_open(path).await?))
    }

    async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let dir = Directory::open(dir).await?;
        dir.sync().await?;
        Ok(dir.close().await?)
    }
}

impl SegmentFile for GlommioFile {
    async fn write_at(&self, pos: u64, buf: Vec<u8>) -> io::Result<()> {
        let len = buf.len();
        let written = self.0.write_at(buf, pos).await?;
        if written != len {
            // A short write into a pre-allocated file means the device is failing; report it
            // rather than retry, so the log latches.
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short write: {written} of {len} bytes at {pos}"),
            ));
        }
        Ok(())
    }

    async fn sync_data(&self) -> io::Result<()> {
        Ok(self.0.fdatasync().await?)
    }
}

/// Runs `future` to completion on a new single-threaded glommio executor on this thread.
///
/// For tests, benchmarks and tools; the engine's cores build their executors in sluice-core.
pub fn block_on<T>(future: impl Future<Output = T>) -> T {
    let executor = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(IO_MEMORY_BYTES)
        .make()
        .expect("cannot start a glommio executor (is io_uring available?)");
    executor.run(future)
}

/// Spawns a task on the current glommio executor; await the result to join it.
pub fn spawn<T: 'static>(future: impl Future<Output = T> + 'static) -> impl Future<Output = T> {
    glommio::spawn_local(future)
}
