//! The storage I/O seam. The shard log writes only through these traits: glommio's io_uring
//! buffered files in production ([`GlommioIo`]), a fault-injecting wrapper in tests
//! ([`FaultyIo`]). The metadata log writes through [`BlockingIo`]: std files, or the same
//! fault injector's plan and journal. Reads never come through here: they use read-only
//! mappings (the metadata log reads its file once, at open).

mod blocking;
mod fault;
mod glommio;

use std::future::Future;
use std::io;
use std::path::Path;

pub use self::blocking::{BlockingFile, BlockingIo};
pub use self::fault::{
    Fault, FaultPlan, FaultyFile, FaultyIo, PAGE_BYTES, PageFate, PageLoss, PowerLoss,
    SECTOR_BYTES, SyncHold,
};
pub use self::glommio::{GlommioFile, GlommioIo};

/// Creates and opens segment files. Lives on the owning core; its futures need not be `Send`.
pub trait SegmentIo: 'static {
    /// A file open for writing.
    type File: SegmentFile;

    /// Creates a new file of `len` bytes, allocated on the device, its size durable. The file
    /// appears under `path` only once complete; an interrupted creation can leave a file named
    /// `path` + `.tmp`, which recovery removes.
    fn create(&self, path: &Path, len: u64) -> impl Future<Output = io::Result<Self::File>>;

    /// Opens an existing file for writing.
    fn open(&self, path: &Path) -> impl Future<Output = io::Result<Self::File>>;

    /// Makes the directory's entries (newly created files) durable.
    fn sync_dir(&self, dir: &Path) -> impl Future<Output = io::Result<()>>;
}

/// A segment file open for buffered (page-cache) writes.
pub trait SegmentFile: 'static {
    /// Writes all of `buf` at `pos`, or fails.
    fn write_at(&self, pos: u64, buf: Vec<u8>) -> impl Future<Output = io::Result<()>>;

    /// fdatasync: everything written so far reaches the device.
    fn sync_data(&self) -> impl Future<Output = io::Result<()>>;

    /// Starts writing `len` bytes from `pos` back to the device in the background, without
    /// waiting and without any durability promise: it spreads writeback out, so a later
    /// `sync_data` has little left to do and does not stall other writes.
    fn start_writeback(&self, pos: u64, len: u64);

    /// A writeback error this file's own bookkeeping knows of (a failed `start_writeback`),
    /// which a filesystem-wide sync may not have reported to this log.
    fn writeback_error(&self) -> Option<io::Error>;
}
