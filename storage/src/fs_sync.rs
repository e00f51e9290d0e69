//! One sync per filesystem for the durable waits of every log (docs/design/filesystem-sync.md).
//!
//! A [`FilesystemSync`] is a group commit over a whole data directory: one thread runs
//! `syncfs(2)` on it whenever a log asks, and a log's request is answered only by a sync that
//! *started after* the request was made, so every write completed before the request is
//! covered. Requests made while a sync runs wait for the next one, which then covers all of
//! them: sixteen shards' durable appends on a core cost one device flush instead of sixteen.
//!
//! A failed sync may have lost any page it wrote back, and an error of the filesystem's own
//! commit (journal, device cache) is reported to no file's descriptor, so no log can learn
//! from its own files whether its data survived: after the first failure the syncer leaves a
//! marker in the data directory (FILESYSTEM-SYNC-FAILED), every request is refused, for good,
//! and each log asking latches. The next open ([`prepare_after_failed_filesystem_sync`]) has
//! every log and the metadata log write their data again before syncing it, whether or not
//! they asked.

use crate::sync::{Arc, Condvar, Mutex, MutexGuard, thread};
use event_listener::Event;
use std::io;
use std::path::{Path, PathBuf};

/// The marker a failed filesystem sync leaves in the data directory: the next open has every
/// log write its data again ([`prepare_after_failed_filesystem_sync`]).
pub const FILESYSTEM_SYNC_FAILED: &str = "FILESYSTEM-SYNC-FAILED";

/// The oldest kernel whose syncfs(2) reports every error: writeback errors since Linux 5.8,
/// and the filesystem's own `sync_fs` errors (a failed journal commit or cache flush) only
/// since 5.17; before, those returned success and an acknowledged put could be lost.
const KERNEL_MIN: (u32, u32) = (5, 17);

/// A handle on an engine's filesystem syncer; clones share it. The syncer's thread ends once
/// the last handle is dropped.
#[derive(Clone)]
pub struct FilesystemSync {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for FilesystemSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.handle.syncer.state();
        f.debug_struct("FilesystemSync")
            .field("finished", &state.finished)
            .field("failed", &state.failed)
            .finish()
    }
}

/// Closes the syncer when the last handle goes.
struct Handle {
    syncer: Arc<Syncer>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.syncer.close();
    }
}

impl FilesystemSync {
    /// A syncer for the filesystem holding `dir`: a thread named `sluice-syncfs` that runs
    /// syncfs(2) on it. Refused on kernels before 5.17, whose syncfs does not report every
    /// error.
    pub fn open(dir: &Path) -> io::Result<FilesystemSync> {
        FilesystemSync::open_through(dir, |syncfs| syncfs())
    }

    /// [`FilesystemSync::open`], each sync going through `through`, which is handed the real
    /// syncfs to run (or not: the fault injector fails syncs as its plan says).
    pub(crate) fn open_through(
        dir: &Path,
        mut through: impl FnMut(&mut dyn FnMut() -> io::Result<()>) -> io::Result<()> + Send + 'static,
    ) -> io::Result<FilesystemSync> {
        check_kernel()?;
        let dir_file = std::fs::File::open(dir)?;
        reserve_marker(dir)?;
        FilesystemSync::with_sync(Some(dir.to_path_buf()), move || {
            through(&mut || syncfs(&dir_file))
        })
    }

    /// A syncer whose every sync is `sync` (the fault injector's, in tests), leaving its
    /// failure marker in `marker_dir`.
    pub(crate) fn with_sync(
        marker_dir: Option<PathBuf>,
        mut sync: impl FnMut() -> io::Result<()> + Send + 'static,
    ) -> io::Result<FilesystemSync> {
        let syncer = Arc::new(Syncer {
            marker_dir,
            ..Syncer::default()
        });
        let runner = syncer.clone();
        thread::Builder::new()
            .name("sluice-syncfs".into())
            .spawn(move || runner.run(&mut sync))?;
        Ok(FilesystemSync {
            handle: Arc::new(Handle { syncer }),
        })
    }

    /// Returns once a filesystem sync that started after this call has succeeded: every write
    /// completed before the call is then on the device. `Err` once any sync has failed (this
    /// one or an earlier one): nothing written before the failure can be trusted durable.
    pub async fn sync(&self) -> io::Result<()> {
        let ticket = self.request()?;
        self.wait(ticket).await
    }

    /// [`FilesystemSync::sync`]'s first half, which never waits: asks for a sync that starts
    /// after now and returns its number. A caller that must not be interleaved while it asks
    /// (a log reading what its writes have reached) asks under its own lock and waits after.
    pub(crate) fn request(&self) -> io::Result<u64> {
        self.handle.syncer.request()
    }

    /// [`FilesystemSync::sync`]'s second half: returns once sync number `ticket` (or a later
    /// one) has succeeded.
    pub(crate) async fn wait(&self, ticket: u64) -> io::Result<()> {
        self.handle.syncer.wait(ticket).await
    }

    /// Filesystem syncs completed so far (failed ones included).
    pub fn syncs_completed(&self) -> u64 {
        self.handle.syncer.state().finished
    }

    /// True once a sync has failed: every later request is refused.
    pub fn failed(&self) -> bool {
        self.handle.syncer.state().failed.is_some()
    }
}

/// The syncer's generations. Sync number `n` is the `n`th to start (from 1).
#[derive(Debug, Default)]
struct State {
    /// Syncs started; the one running, if any, is number `started`.
    started: u64,
    /// Syncs finished; each one finishes before the next starts.
    finished: u64,
    /// The highest sync number a request needs.
    wanted: u64,
    /// The first failure, kept: Linux reports a writeback error to a descriptor only once.
    failed: Option<String>,
    /// No handle is left: the thread ends.
    closed: bool,
}

/// What the syncer's thread and the waiting logs share.
#[derive(Default)]
pub(crate) struct Syncer {
    state: Mutex<State>,
    /// Wakes the thread when a sync is wanted or the syncer closes.
    wanted: Condvar,
    /// Notified after each sync finishes (logs wait on it from their cores).
    finished: Event,
    /// Where the first failure leaves its marker (the data directory).
    marker_dir: Option<PathBuf>,
}

impl Syncer {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks for a sync that starts after now and returns its number, or the failure that
    /// ended filesystem syncs.
    pub(crate) fn request(&self) -> io::Result<u64> {
        let mut state = self.state();
        if let Some(failed) = &state.failed {
            return Err(failure(failed));
        }
        // The running sync (number `started`) may have started before the caller's writes
        // completed: only the next one is sure to cover them.
        let ticket = state.started + 1;
        if state.wanted < ticket {
            state.wanted = ticket;
            drop(state);
            self.wanted.notify_one();
        }
        Ok(ticket)
    }

    /// Waits until sync number `ticket` (or a later one) has finished; its result.
    pub(crate) async fn wait(&self, ticket: u64) -> io::Result<()> {
        loop {
            let listener = self.finished.listen();
            {
                let state = self.state();
                if let Some(failed) = &state.failed {
                    // Maybe a later sync failed while this one had succeeded: refusing is the
                    // safe side (the caller latches; the next open rewrites its data).
                    return Err(failure(failed));
                }
                if state.finished >= ticket {
                    return Ok(());
                }
            }
            listener.await;
        }
    }

    /// The thread's loop: one sync at a time, each started only when a request wants one,
    /// until the syncer closes.
    pub(crate) fn run(&self, sync: &mut dyn FnMut() -> io::Result<()>) {
        // Should `sync` panic, waiters are answered with a failure instead of waiting for ever.
        let _guard = FailOnUnwind(self);
        loop {
            let number = {
                let mut state = self.state();
                // After a failure no sync runs again: every request is refused.
                while !state.closed && (state.failed.is_some() || state.wanted <= state.started) {
                    state = self.wanted.wait(state).unwrap_or_else(|e| e.into_inner());
                }
                if state.closed {
                    return;
                }
                state.started += 1;
                state.started
            };
            // The marker is durable before any waiter hears of the failure.
            let failure = sync().err().map(|e| self.leave_marker(&e));
            {
                let mut state = self.state();
                if let Some(failure) = failure {
                    state.failed.get_or_insert(failure);
                }
                state.finished = number;
            }
            self.finished.notify(usize::MAX);
        }
    }

    /// Leaves the failure marker (once); the failure's description.
    fn leave_marker(&self, error: &io::Error) -> String {
        let Some(dir) = &self.marker_dir else {
            return error.to_string();
        };
        // Only one thread runs syncs, and none after the first failure: this runs once.
        match place_marker(dir) {
            Ok(()) => error.to_string(),
            Err(marker) => {
                let failure = format!(
                    "{error}; and its marker for the next open could not be left: {marker}"
                );
                // Said where an operator looks: the next open would not rewrite the logs
                // that never asked again.
                eprintln!("sluice: a filesystem sync failed: {failure}");
                failure
            }
        }
    }

    pub(crate) fn close(&self) {
        self.state().closed = true;
        self.wanted.notify_one();
    }
}

/// Marks the syncer failed and wakes every waiter if its thread unwinds.
struct FailOnUnwind<'a>(&'a Syncer);

impl Drop for FailOnUnwind<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0
                .state()
                .failed
                .get_or_insert_with(|| "the filesystem sync thread panicked".into());
            self.0.finished.notify(usize::MAX);
        }
    }
}

/// Before an engine opens its logs: if a filesystem sync of the last run failed (the marker is
/// in `data_dir`), every log in the tree gets its own SYNC-FAILED marker, so it writes its
/// data again when it opens; then the marker goes. A failed sync may have lost pages of any
/// file of the filesystem, also of logs that never asked afterwards, and nothing else would
/// tell them. The tree may hold other engines (a server's tenants, its Firehose and video
/// engines): every directory holding a LOCK file is a shard log, except an engine's own,
/// which holds its metadata log (`metadata_log_name`), marked instead. Returns how many
/// logs were marked.
pub fn prepare_after_failed_filesystem_sync(
    data_dir: &Path,
    metadata_log_name: &str,
) -> io::Result<usize> {
    let marker = data_dir.join(FILESYSTEM_SYNC_FAILED);
    if !marker.exists() {
        return Ok(0);
    }
    let mut marked = 0;
    let mut pending = vec![data_dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let (mut lock, mut metadata_log) = (false, false);
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                pending.push(entry.path());
            } else if entry.file_name() == "LOCK" {
                lock = true;
            } else if entry.file_name() == metadata_log_name {
                metadata_log = true;
            }
        }
        if metadata_log {
            crate::metalog::write_sync_failed_marker(&dir.join(metadata_log_name))?;
            marked += 1;
        } else if lock {
            crate::log::write_sync_failed_marker(&dir)?;
            marked += 1;
        }
    }
    // Every log's own marker is durable: the engine's can go.
    std::fs::remove_file(&marker)?;
    std::fs::File::open(data_dir)?.sync_all()?;
    Ok(marked)
}

/// The marker's spare file, made when a syncer opens: on a failure it is renamed to the
/// marker, which needs no new space (a full disk is a likely reason for the failure).
const MARKER_RESERVE: &str = ".FILESYSTEM-SYNC-FAILED.reserve";

/// Makes the marker's spare file in `dir`, durably, unless it is there.
fn reserve_marker(dir: &Path) -> io::Result<()> {
    let reserve = dir.join(MARKER_RESERVE);
    if reserve.exists() {
        return Ok(());
    }
    let text = "a filesystem sync failed: the next open writes every log's data again\n";
    std::fs::write(&reserve, text)?;
    std::fs::File::open(&reserve)?.sync_all()?;
    std::fs::File::open(dir)?.sync_all()
}

/// Leaves the marker in `dir` durably: the spare file renamed (made first if missing).
fn place_marker(dir: &Path) -> io::Result<()> {
    reserve_marker(dir)?;
    std::fs::rename(dir.join(MARKER_RESERVE), dir.join(FILESYSTEM_SYNC_FAILED))?;
    std::fs::File::open(dir)?.sync_all()
}

fn failure(cause: &str) -> io::Error {
    io::Error::other(format!("an earlier filesystem sync failed: {cause}"))
}

/// syncfs(2) on the filesystem holding `dir`.
#[allow(unsafe_code)]
fn syncfs(dir: &std::fs::File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: syncfs only reads the descriptor, which `dir` keeps open for the call.
    if unsafe { libc::syncfs(dir.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Refuses kernels older than [`KERNEL_MIN`].
fn check_kernel() -> io::Result<()> {
    check_release(&std::fs::read_to_string("/proc/sys/kernel/osrelease")?)
}

/// Refuses a kernel release older than [`KERNEL_MIN`].
fn check_release(release: &str) -> io::Result<()> {
    let version = kernel_version(release).ok_or_else(|| {
        io::Error::other(format!("cannot read the kernel version from {release:?}"))
    })?;
    if version < KERNEL_MIN {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "filesystem syncs need Linux {}.{} or later (its syncfs reports writeback \
                 errors); this is {}",
                KERNEL_MIN.0,
                KERNEL_MIN.1,
                release.trim()
            ),
        ));
    }
    Ok(())
}

/// (major, minor) from a release such as `6.18.0-1-amd64`.
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn kernel_versions_are_read_and_compared() {
        assert_eq!(kernel_version("6.18.0-1-amd64\n"), Some((6, 18)));
        assert_eq!(kernel_version("5.8"), Some((5, 8)));
        assert_eq!(kernel_version("4.19.0"), Some((4, 19)));
        assert_eq!(kernel_version("linux"), None);
        for old in ["5.8.0", "5.15.0-91-generic", "5.16.20"] {
            let refused = check_release(old).unwrap_err();
            assert_eq!(refused.kind(), io::ErrorKind::Unsupported, "{old}");
            assert!(refused.to_string().contains("5.17 or later"), "{refused}");
        }
        for new in ["5.17", "6.1.0-18-amd64", "6.18.0-1-amd64\n"] {
            check_release(new).unwrap();
        }
        assert!(check_release("linux").is_err());
    }

    /// A request made while a sync runs is answered only by the next one, which starts after
    /// the running one ends.
    #[test]
    fn a_request_made_during_a_sync_waits_for_the_next() {
        let (started_tx, started_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let syncs = std::sync::Arc::new(AtomicU64::new(0));
        let counted = syncs.clone();
        let fs = FilesystemSync::with_sync(None, move || {
            let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
            started_tx.send(n).unwrap();
            release_rx.recv().unwrap();
            Ok(())
        })
        .unwrap();
        let first = std::thread::spawn({
            let fs = fs.clone();
            move || futures_lite::future::block_on(fs.sync())
        });
        assert_eq!(started_rx.recv().unwrap(), 1);
        // Sync 1 is running: a request now must not be answered by it.
        let second = std::thread::spawn({
            let fs = fs.clone();
            move || futures_lite::future::block_on(fs.sync())
        });
        std::thread::sleep(Duration::from_millis(50));
        release_tx.send(()).unwrap();
        first.join().unwrap().unwrap();
        assert_eq!(
            started_rx.recv().unwrap(),
            2,
            "the second request started sync 2"
        );
        assert!(
            !second.is_finished(),
            "answered before its own sync finished"
        );
        release_tx.send(()).unwrap();
        second.join().unwrap().unwrap();
        assert_eq!(fs.syncs_completed(), 2);
    }

    /// Requests waiting together share one sync.
    #[test]
    fn requests_waiting_together_share_one_sync() {
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let (started_tx, started_rx) = mpsc::channel();
        let fs = FilesystemSync::with_sync(None, move || {
            started_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            Ok(())
        })
        .unwrap();
        let holder = std::thread::spawn({
            let fs = fs.clone();
            move || futures_lite::future::block_on(fs.sync())
        });
        started_rx.recv().unwrap();
        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let fs = fs.clone();
                std::thread::spawn(move || futures_lite::future::block_on(fs.sync()))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        release_tx.send(()).unwrap();
        started_rx.recv().unwrap();
        release_tx.send(()).unwrap();
        holder.join().unwrap().unwrap();
        for waiter in waiters {
            waiter.join().unwrap().unwrap();
        }
        assert_eq!(fs.syncs_completed(), 2, "eight waiters, one sync");
    }

    /// After a failure every request is refused, even when later syncs would succeed, and no
    /// sync runs again (not even one a request made during the failing sync wanted).
    #[test]
    fn a_failed_sync_refuses_every_later_request() {
        let calls = std::sync::Arc::new(AtomicU64::new(0));
        let counted = calls.clone();
        let (started_tx, started_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let fs = FilesystemSync::with_sync(None, move || {
            if counted.fetch_add(1, Ordering::SeqCst) == 0 {
                started_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                Err(io::Error::from_raw_os_error(libc::EIO))
            } else {
                Ok(())
            }
        })
        .unwrap();
        let first = std::thread::spawn({
            let fs = fs.clone();
            move || futures_lite::future::block_on(fs.sync())
        });
        started_rx.recv().unwrap();
        // Wants the next sync, which must never run once this one fails.
        let during = std::thread::spawn({
            let fs = fs.clone();
            move || futures_lite::future::block_on(fs.sync())
        });
        std::thread::sleep(Duration::from_millis(50));
        release_tx.send(()).unwrap();
        let error = first.join().unwrap().unwrap_err();
        assert!(
            error.to_string().contains("filesystem sync failed"),
            "{error}"
        );
        assert!(during.join().unwrap().is_err());
        assert!(fs.failed());
        std::thread::sleep(Duration::from_millis(50));
        for _ in 0..3 {
            assert!(futures_lite::future::block_on(fs.sync()).is_err());
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "no sync runs after a failure"
        );
    }

    /// The preparation after a failure marks every shard log in the tree, and every engine's
    /// metadata log (a server's tenants and its Firehose and video engines live below the
    /// default one), but no engine's own directory as a log; then it takes the marker.
    #[test]
    fn the_preparation_marks_every_log_of_every_engine_below() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        let touch = |path: &str| {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"").unwrap();
        };
        for file in [
            "LOCK",
            "meta.log",
            "streams/1/shard-0/LOCK",
            "streams/1/shard-1/LOCK",
            "tenants/a/LOCK",
            "tenants/a/meta.log",
            "tenants/a/streams/2/shard-0/LOCK",
            "orphaned-streams/3-0/notes",
        ] {
            touch(file);
        }
        assert_eq!(
            prepare_after_failed_filesystem_sync(root, "meta.log").unwrap(),
            0
        );
        place_marker(root).unwrap();
        assert!(root.join(FILESYSTEM_SYNC_FAILED).exists());
        assert_eq!(
            prepare_after_failed_filesystem_sync(root, "meta.log").unwrap(),
            5
        );
        for marked in [
            "meta.log.SYNC-FAILED",
            "streams/1/shard-0/SYNC-FAILED",
            "streams/1/shard-1/SYNC-FAILED",
            "tenants/a/meta.log.SYNC-FAILED",
            "tenants/a/streams/2/shard-0/SYNC-FAILED",
        ] {
            assert!(root.join(marked).exists(), "{marked}");
        }
        for unmarked in [
            "SYNC-FAILED",
            "tenants/a/SYNC-FAILED",
            "orphaned-streams/3-0/SYNC-FAILED",
        ] {
            assert!(!root.join(unmarked).exists(), "{unmarked}");
        }
        assert!(!root.join(FILESYSTEM_SYNC_FAILED).exists());
    }

    /// The marker is a spare file made when the syncer opens, renamed on a failure: leaving it
    /// needs no new space.
    #[test]
    fn the_marker_is_reserved_when_the_syncer_opens() {
        let dir = tempfile::tempdir().unwrap();
        let _fs = FilesystemSync::open(dir.path()).unwrap();
        assert!(dir.path().join(MARKER_RESERVE).exists());
        place_marker(dir.path()).unwrap();
        assert!(dir.path().join(FILESYSTEM_SYNC_FAILED).exists());
        assert!(!dir.path().join(MARKER_RESERVE).exists());
    }

    /// A sync that panics answers its waiters with a failure instead of leaving them waiting.
    #[test]
    fn a_panicking_sync_fails_its_waiters() {
        let fs = FilesystemSync::with_sync(None, || panic!("a sync that panics")).unwrap();
        let error = futures_lite::future::block_on(fs.sync()).unwrap_err();
        assert!(error.to_string().contains("panicked"), "{error}");
        assert!(futures_lite::future::block_on(fs.sync()).is_err());
    }

    #[test]
    fn the_real_syncfs_runs_and_the_thread_ends_with_the_last_handle() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FilesystemSync::open(dir.path()).unwrap();
        futures_lite::future::block_on(fs.sync()).unwrap();
        assert_eq!(fs.syncs_completed(), 1);
        let syncer = fs.handle.syncer.clone();
        drop(fs);
        assert!(syncer.state().closed);
    }
}
