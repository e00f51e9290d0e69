//! A real filesystem to cut the power under: an ext4 image file attached to a loop device and
//! mounted. [`LoopDisk::cut_power`] copies the image file, the loop device's backing store, at
//! an instant when the device writes nothing, and mounts the copy in its place: what a power
//! cut leaves is what the device had received, and nothing of the page cache above it.
//!
//! Needs root, `losetup`, `mount` and `mkfs.ext4` ([`needs_loop_disk`] checks).

use std::path::{Path, PathBuf};
use std::process::Command;

/// How many times [`LoopDisk::cut_power`] copies the image before giving up on the device
/// ever staying quiet for a whole copy.
const QUIET_COPY_ATTEMPTS_MAX: u32 = 1000;

/// Whether this machine can run a loop disk; without it the test fails saying what is missing,
/// unless `SLUICE_ALLOW_SKIP=1` (see [`crate::needs`]).
pub fn needs_loop_disk() -> bool {
    crate::needs(
        crate::is_root(),
        "root, to attach and mount a filesystem image",
        "run the tests as root, as CI does",
    ) && crate::needs(
        crate::runs("mkfs.ext4", &["-V"])
            && crate::runs("losetup", &["--version"])
            && crate::runs("mount", &["--version"]),
        "mkfs.ext4 (e2fsprogs), losetup and mount (util-linux)",
        "run scripts/setup as root (it installs e2fsprogs with apt-get), or install them",
    )
}

/// An ext4 image file on a loop device, mounted. Dropping it unmounts and detaches it (also
/// while a failed test unwinds); the image file stays for its owner to delete.
#[derive(Debug)]
pub struct LoopDisk {
    image: PathBuf,
    mountpoint: PathBuf,
    /// `/dev/loopN`, while attached.
    device: Option<PathBuf>,
    mounted: bool,
}

impl LoopDisk {
    /// Formats a new `size_mib` image at `image` and mounts it on `mountpoint` (a directory
    /// that exists). The inode tables and the journal are written by mkfs, not lazily by the
    /// kernel after the mount, so nothing but the test's own work writes to the device.
    pub fn format(image: &Path, mountpoint: &Path, size_mib: u64) -> LoopDisk {
        std::fs::File::create(image)
            .and_then(|f| f.set_len(size_mib << 20))
            .unwrap_or_else(|e| panic!("create {}: {e}", image.display()));
        run(
            "mkfs.ext4",
            &[
                "-q",
                "-F",
                "-E",
                "lazy_itable_init=0,lazy_journal_init=0",
                utf8(image),
            ],
        );
        LoopDisk::mount(image, mountpoint)
    }

    /// Attaches `image` to a free loop device (buffered: no direct I/O, so the device's
    /// writes land in the image file as they complete) and mounts it on `mountpoint`. Mounting
    /// an image cut at a power loss replays its journal, as a boot would.
    pub fn mount(image: &Path, mountpoint: &Path) -> LoopDisk {
        let mut disk = LoopDisk {
            image: image.to_path_buf(),
            mountpoint: mountpoint.to_path_buf(),
            device: None,
            mounted: false,
        };
        let attached = run(
            "losetup",
            &["--find", "--show", "--direct-io=off", utf8(image)],
        );
        let device = PathBuf::from(attached.trim());
        disk.device = Some(device.clone());
        let counters = DeviceCounters::sys_dir(&device).join("queue/iostats");
        // The quiet check of `cut_power` reads the device's I/O statistics.
        std::fs::write(&counters, "1")
            .unwrap_or_else(|e| panic!("turn on {}: {e}", counters.display()));
        run("mount", &[utf8(&device), utf8(mountpoint)]);
        disk.mounted = true;
        disk
    }

    /// Where the filesystem is mounted.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// Cuts the power: copies the image file while the device is quiet (nothing in flight,
    /// and no write, discard or flush completed from before the copy to after it), so the
    /// copy is the device's content at one instant. Then unmounts and detaches this disk,
    /// puts the copy in place of its image, and mounts that. Returns the disk after the cut
    /// and how many copies it took. Whoever wrote to the disk must have ended first.
    pub fn cut_power(mut self) -> (LoopDisk, u32) {
        let copy = self.image.with_extension("cut");
        let attempts = self.copy_while_quiet(&copy);
        self.unmount().unwrap_or_else(|e| panic!("{e}"));
        std::fs::rename(&copy, &self.image)
            .unwrap_or_else(|e| panic!("rename {}: {e}", copy.display()));
        (LoopDisk::mount(&self.image, &self.mountpoint), attempts)
    }

    /// Copies the image file to `to` until a copy started and ended with the device quiet
    /// and its counters unchanged; returns how many copies that took.
    fn copy_while_quiet(&self, to: &Path) -> u32 {
        let device = self.device.as_deref().expect("a mounted disk is attached");
        for attempt in 1..=QUIET_COPY_ATTEMPTS_MAX {
            let before = DeviceCounters::read(device);
            if before.in_flight == 0 {
                // Read through the image file, never through the loop device: the device's
                // own page cache holds blocks the filesystem has not written yet.
                run("cp", &["--sparse=always", utf8(&self.image), utf8(to)]);
                if DeviceCounters::read(device) == before {
                    return attempt;
                }
            }
            // The kernel is still writing (writeback the writer started, a journal commit):
            // give it a moment to finish before the next try.
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        panic!(
            "{} never stayed quiet for a whole copy in {QUIET_COPY_ATTEMPTS_MAX} tries",
            device.display()
        );
    }

    /// Unmounts and detaches; an error says what is left behind.
    fn unmount(&mut self) -> Result<(), String> {
        if self.mounted {
            command("umount", &[utf8(&self.mountpoint)])?;
            self.mounted = false;
        }
        if let Some(device) = self.device.take() {
            command("losetup", &["-d", utf8(&device)])?;
        }
        Ok(())
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        if let Err(e) = self.unmount() {
            // A process still holds a file on it: detach it from the tree now, and the loop
            // device (auto-cleared) once the last file closes, rather than leave a mount.
            eprintln!("{e}; unmounting {} lazily", self.mountpoint.display());
            let _ = command("umount", &["-l", utf8(&self.mountpoint)]);
            if let Some(device) = self.device.take() {
                let _ = command("losetup", &["-d", utf8(&device)]);
            }
        }
    }
}

/// The counters of a block device that change when it writes (`/sys/block/<dev>/stat`,
/// Documentation/block/stat.rst in the kernel): a loop device counts a request in flight from
/// the moment it starts until its write into the backing file has completed, and counts it
/// as completed after that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DeviceCounters {
    writes: u64,
    write_sectors: u64,
    in_flight: u64,
    discards: u64,
    flushes: u64,
}

impl DeviceCounters {
    fn sys_dir(device: &Path) -> PathBuf {
        let name = device.file_name().expect("a device name");
        Path::new("/sys/block").join(name)
    }

    fn read(device: &Path) -> DeviceCounters {
        let path = DeviceCounters::sys_dir(device).join("stat");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let fields: Vec<u64> = text
            .split_whitespace()
            .map(|f| f.parse().expect("a counter"))
            .collect();
        assert!(
            fields.len() >= 17,
            "{} has {} fields, not the 17 of a kernel with discard and flush counters",
            path.display(),
            fields.len()
        );
        DeviceCounters {
            writes: fields[4],
            write_sectors: fields[6],
            in_flight: fields[8],
            discards: fields[11],
            flushes: fields[15],
        }
    }
}

/// Runs `program`; its standard output, or an error that says what failed.
fn command(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!("{program} {args:?} failed: {}", stderr.trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `program` and returns its standard output; panics if it fails.
fn run(program: &str, args: &[&str]) -> String {
    command(program, args).unwrap_or_else(|e| panic!("{e}"))
}

fn utf8(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}
