//! One sync per filesystem for the durable waits of every log (docs/design/filesystem-sync.md).
//!
//! A [`FilesystemSync`] is a group commit over a whole data directory: one thread runs
//! `syncfs(2)` on it whenever a log asks, and a log's request is answered only by a sync that
//! *started after* the request was made, so every write completed before the request is
//! covered. Requests made while a sync runs wait for the next one, which then covers all of
//! them: sixteen shards' durable appends on a core cost one device flush instead of sixteen.
//!
//! A failed sync may be any file's (another program's, on a shared disk), and Linux reports a
//! writeback error to each descriptor once: after the first failure every request is refused
//! at once, for good, and the logs go back to an fdatasync of their own files, which says
//! whether *their* data failed (a log whose own sync fails latches, as always).

use crate::sync::{Arc, Condvar, Mutex, MutexGuard, thread};
use event_listener::Event;
use std::io;
use std::path::Path;

/// The oldest kernel whose syncfs(2) reports writeback errors (Linux 5.8; before it a failed
/// writeback went unreported and an acknowledged put could be lost).
const KERNEL_MIN: (u32, u32) = (5, 8);

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
    /// syncfs(2) on it. Refused on kernels before 5.8, whose syncfs does not report writeback
    /// errors.
    pub fn open(dir: &Path) -> io::Result<FilesystemSync> {
        check_kernel()?;
        let dir_file = std::fs::File::open(dir)?;
        FilesystemSync::with_sync(move || syncfs(&dir_file))
    }

    /// A syncer whose every sync is `sync` (the fault injector's, in tests).
    pub(crate) fn with_sync(
        mut sync: impl FnMut() -> io::Result<()> + Send + 'static,
    ) -> io::Result<FilesystemSync> {
        let syncer = Arc::new(Syncer::default());
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
    /// one or an earlier one): the caller must sync its own files instead.
    pub async fn sync(&self) -> io::Result<()> {
        let syncer = &self.handle.syncer;
        let ticket = syncer.request()?;
        syncer.wait(ticket).await
    }

    /// Filesystem syncs completed so far (failed ones included).
    pub fn syncs_completed(&self) -> u64 {
        self.handle.syncer.state().finished
    }

    /// True once a sync has failed: every log syncs its own files from then on.
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
                    // safe side (the caller syncs its own files).
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
        loop {
            let number = {
                let mut state = self.state();
                while !state.closed && state.wanted <= state.started {
                    state = self.wanted.wait(state).unwrap_or_else(|e| e.into_inner());
                }
                if state.closed {
                    return;
                }
                state.started += 1;
                state.started
            };
            let result = sync();
            {
                let mut state = self.state();
                if let Err(e) = result {
                    state.failed.get_or_insert_with(|| e.to_string());
                }
                state.finished = number;
            }
            self.finished.notify(usize::MAX);
        }
    }

    pub(crate) fn close(&self) {
        self.state().closed = true;
        self.wanted.notify_one();
    }
}

fn failure(cause: &str) -> io::Error {
    io::Error::other(format!("an earlier filesystem sync failed: {cause}"))
}

/// syncfs(2) on the filesystem holding `dir`.
#[allow(unsafe_code)]
pub(crate) fn syncfs(dir: &std::fs::File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: syncfs only reads the descriptor, which `dir` keeps open for the call.
    if unsafe { libc::syncfs(dir.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Refuses kernels older than [`KERNEL_MIN`].
pub(crate) fn check_kernel() -> io::Result<()> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")?;
    let version = kernel_version(&release).ok_or_else(|| {
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
        assert!((4, 19) < KERNEL_MIN && (5, 8) >= KERNEL_MIN && (6, 1) > KERNEL_MIN);
    }

    /// A request made while a sync runs is answered only by the next one, which starts after
    /// the running one ends.
    #[test]
    fn a_request_made_during_a_sync_waits_for_the_next() {
        let (started_tx, started_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let syncs = std::sync::Arc::new(AtomicU64::new(0));
        let counted = syncs.clone();
        let fs = FilesystemSync::with_sync(move || {
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
        let fs = FilesystemSync::with_sync(move || {
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

    /// After a failure every request is refused, even when later syncs would succeed.
    #[test]
    fn a_failed_sync_refuses_every_later_request() {
        let calls = std::sync::Arc::new(AtomicU64::new(0));
        let counted = calls.clone();
        let fs = FilesystemSync::with_sync(move || {
            if counted.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(io::Error::from_raw_os_error(libc::EIO))
            } else {
                Ok(())
            }
        })
        .unwrap();
        let error = futures_lite::future::block_on(fs.sync()).unwrap_err();
        assert!(
            error.to_string().contains("filesystem sync failed"),
            "{error}"
        );
        assert!(fs.failed());
        for _ in 0..3 {
            assert!(futures_lite::future::block_on(fs.sync()).is_err());
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "no sync runs after a failure"
        );
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
