//! Production I/O: glommio (io_uring) buffered files, so mapped readers see every write.

use super::{SegmentFile, SegmentIo};
use glommio::io::{BufferedFile, Directory, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, OnceLock};

/// Writes up to this size are done with a plain `pwrite` on the core's thread instead of an
/// io_uring op. ext4 cannot do buffered writes without blocking, so io_uring hands each one
/// to an io-wq worker thread, and the completion wakes the core again: two cross-CPU wake-ups
/// (tens of µs each on a VM) per write. Since callers encode batches (`EncodedBatch`), the
/// core has nothing to overlap with the copy, and copying inline (~100 µs per MiB at the ~10 GB/s
/// the buffered-write baseline reaches here) beat the
/// hand-off for every batch of a put (≤ 500 records, 1 KiB records: ~520 KB): 100 B puts
/// 9.4-10.1 -> 10.4-13.0 M records/s, 1 KiB puts into 16 shards 1.00 -> 1.15-1.75 M
/// (docs/benchmarks.md). Larger writes (records of 64 KiB and up) keep the ring, so one does
/// not hold the core's other shards for milliseconds. The cost: while the kernel throttles
/// dirty pages, an inline write sleeps on the core's thread.
const INLINE_WRITE_BYTES_MAX: usize = 1024 * 1024;

/// Segment I/O through glommio's io_uring reactor on the current executor.
#[derive(Debug, Default, Clone, Copy)]
pub struct GlommioIo;

/// A glommio buffered file, plus a second descriptor for fdatasync on glommio's blocking
/// pool (see `sync_data`).
#[derive(Debug)]
pub struct GlommioFile {
    file: BufferedFile,
    /// A second descriptor for fdatasync, writeback hints and small inline writes, off the
    /// ring.
    plain_fd: Arc<std::fs::File>,
    /// Set by the writeback thread when a hint failed: the next sync reports it.
    writeback_failed: Arc<AtomicBool>,
}

impl GlommioFile {
    fn new(file: BufferedFile, path: &Path) -> io::Result<GlommioFile> {
        let plain_fd = Arc::new(std::fs::File::options().read(true).write(true).open(path)?);
        Ok(GlommioFile {
            file,
            plain_fd,
            writeback_failed: Arc::default(),
        })
    }
}

fn open_options(create: bool) -> OpenOptions {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create_new(create);
    options
}

impl SegmentIo for GlommioIo {
    type File = GlommioFile;

    async fn create(&self, path: &Path, len: u64) -> io::Result<GlommioFile> {
        // Allocate under a temporary name and rename when complete, so a crash never leaves a
        // short file under a segment's name.
        let tmp = temporary_path(path);
        let _ = std::fs::remove_file(&tmp);
        let mut file = open_options(true).buffered_open(&tmp).await?;
        let allocated = match file.pre_allocate(len, false).await {
            Ok(()) => file.fdatasync().await,
            Err(e) => Err(e),
        };
        if let Err(e) = allocated {
            let _ = file.remove().await;
            return Err(e.into());
        }
        file.rename(path).await?;
        GlommioFile::new(file, path)
    }

    async fn open(&self, path: &Path) -> io::Result<GlommioFile> {
        let file = open_options(false).buffered_open(path).await?;
        GlommioFile::new(file, path)
    }

    async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        // glommio opens directories through io_uring, where a relative path fails (EBADF).
        let dir = Directory::open(std::path::absolute(dir)?).await?;
        dir.sync().await?;
        Ok(dir.close().await?)
    }
}

impl SegmentFile for GlommioFile {
    async fn write_at(&self, pos: u64, buf: Vec<u8>) -> io::Result<()> {
        let len = buf.len();
        if len <= INLINE_WRITE_BYTES_MAX {
            use std::os::unix::fs::FileExt;
            return self.plain_fd.write_all_at(&buf, pos);
        }
        let written = self.file.write_at(buf, pos).await?;
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

    /// fdatasync on glommio's blocking pool, not as an io_uring op: io_uring queues buffered
    /// writes to one inode behind its fsync, so appends stalled for the whole sync (measured:
    /// a 40 µs write took 170-250 µs while a sync ran). Off the ring, appends keep flowing and
    /// the next sync covers all of them (group commit).
    async fn sync_data(&self) -> io::Result<()> {
        let file = self.plain_fd.clone();
        let synced = glommio::executor()
            .spawn_blocking(move || file.sync_data())
            .await;
        // Writeback of this file failed earlier: its data may not be on the device, whatever
        // this fdatasync says.
        self.writeback_error().map_or(synced, Err)
    }

    fn writeback_error(&self) -> Option<io::Error> {
        self.writeback_failed
            .load(Ordering::Acquire)
            .then(|| io::Error::other("background writeback of this segment failed"))
    }

    fn start_writeback(&self, pos: u64, len: u64) {
        let (Ok(offset), Ok(nbytes)) = (i64::try_from(pos), i64::try_from(len)) else {
            return;
        };
        let request = WritebackRequest {
            file: self.plain_fd.clone(),
            offset,
            nbytes,
            failed: self.writeback_failed.clone(),
        };
        // A hint: when the queue is full, the next fdatasync simply has more to write.
        let _ = writeback_queue().try_send(request);
    }
}

/// A range of a file whose writeback should start.
struct WritebackRequest {
    file: Arc<std::fs::File>,
    offset: i64,
    nbytes: i64,
    failed: Arc<AtomicBool>,
}

/// Most writeback hints waiting; beyond this they are dropped.
const WRITEBACK_QUEUE_MAX: usize = 1024;

/// One process-wide thread issues `sync_file_range(SYNC_FILE_RANGE_WRITE)` for every log: the
/// call can block while the device queue is full, so it stays off the shard cores, and a plain
/// thread (not an executor's pool) never outlives the runtime it answers to.
fn writeback_queue() -> &'static SyncSender<WritebackRequest> {
    static QUEUE: OnceLock<SyncSender<WritebackRequest>> = OnceLock::new();
    QUEUE.get_or_init(|| {
        let (sender, requests) = sync_channel::<WritebackRequest>(WRITEBACK_QUEUE_MAX);
        std::thread::Builder::new()
            .name("sluice-writeback".into())
            .spawn(move || {
                for request in requests {
                    if start_writeback_now(&request).is_err() {
                        request.failed.store(true, Ordering::Release);
                    }
                }
            })
            .expect("cannot start the writeback thread");
        sender
    })
}

fn start_writeback_now(request: &WritebackRequest) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = request.file.as_raw_fd();
    // SAFETY: a plain syscall on a descriptor that `request.file` keeps open for the whole
    // call; no memory is handed to the kernel.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::sync_file_range(
            fd,
            request.offset,
            request.nbytes,
            libc::SYNC_FILE_RANGE_WRITE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The name a file has while [`SegmentIo::create`] allocates it.
pub(crate) fn temporary_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    name.into()
}
