//! A full disk on a real, small filesystem (a 48 MiB ext4 image the test loop-mounts; needs
//! root, as CI runs, and mkfs.ext4; without them it fails saying so, unless
//! SLUICE_ALLOW_SKIP=1): puts fail with a clear error and nothing acknowledged is lost; reads
//! go on; once space is freed, puts succeed again; a reopen finds every acknowledged record.

use sluice_core::{
    CreateStream, Durability, Engine, EngineConfig, ErrorCode, IteratorStart, PutRecord,
};
use sluice_storage::testing::payload;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A loop-mounted ext4 image, unmounted on drop.
struct SmallDisk {
    mountpoint: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size_mib: u64) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("fs.img");
        let mountpoint = dir.path().join("mnt");
        std::fs::create_dir(&mountpoint).unwrap();
        std::fs::File::create(&image)
            .unwrap()
            .set_len(size_mib << 20)
            .unwrap();
        run("mkfs.ext4", &["-q", "-F", image.to_str().unwrap()]);
        run(
            "mount",
            &[
                "-o",
                "loop",
                image.to_str().unwrap(),
                mountpoint.to_str().unwrap(),
            ],
        );
        SmallDisk {
            mountpoint,
            _dir: dir,
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mountpoint).status();
    }
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(status.success(), "{program} {args:?} failed");
}

/// Root, to mount the image.
fn needs_root() -> bool {
    sluice_tests::needs(
        sluice_tests::is_root(),
        "root, to loop-mount a filesystem image",
        "run the tests as root, as CI does",
    )
}

/// mkfs.ext4, to format the image.
fn needs_mkfs() -> bool {
    sluice_tests::needs(
        sluice_tests::runs("mkfs.ext4", &["-V"]),
        "mkfs.ext4 (e2fsprogs)",
        "run scripts/setup as root (it installs e2fsprogs with apt-get), or install it",
    )
}

fn open(dir: &Path) -> Engine {
    let mut config = EngineConfig::new(dir);
    config.cores = 1;
    config.segment_size_bytes = 4 << 20;
    Engine::open(config).unwrap()
}

/// Every record of shard 0, as the data it holds.
fn read_all(engine: &Engine) -> Vec<Vec<u8>> {
    let mut iterator = engine
        .stream("full")
        .unwrap()
        .shard_iterator("shardId-000000000000", IteratorStart::TrimHorizon)
        .unwrap();
    let mut all = Vec::new();
    loop {
        let batch = engine.get_records(&mut iterator, None).unwrap();
        if batch.is_empty() {
            return all;
        }
        all.extend(batch.records().map(|r| r.data.to_vec()));
    }
}

/// Record `n`: 16 KiB, different for every `n`.
fn record(n: u32) -> Vec<u8> {
    payload(u64::from(n), 16 * 1024)
}

#[test]
fn a_full_disk_fails_puts_cleanly_loses_nothing_and_recovers_when_space_returns() {
    if !(needs_root() && needs_mkfs()) {
        return;
    }
    let disk = SmallDisk::mount(48);
    let data_dir = disk.mountpoint.join("sluice");
    // Ballast the test removes later to make room again.
    let ballast = disk.mountpoint.join("ballast");
    std::fs::write(&ballast, vec![1u8; 12 << 20]).unwrap();
    let engine = open(&data_dir);
    engine
        .create_stream(CreateStream::provisioned("full", 1))
        .wait()
        .unwrap();
    let mut acknowledged = Vec::new();
    let mut refusal = None;
    for n in 0..10_000u32 {
        let data = record(n);
        match engine
            .stream("full")
            .unwrap()
            .put(PutRecord::new("k", &data))
            .durability(Durability::Durable)
            .wait()
        {
            Ok(_) => acknowledged.push(data),
            Err(e) => {
                refusal = Some(e);
                break;
            }
        }
    }
    let refusal = refusal.expect("a 48 MiB filesystem fills up");
    assert_eq!(refusal.code(), ErrorCode::InternalFailure, "{refusal}");
    assert!(
        refusal.to_string().contains("no space"),
        "a clear error: {refusal}"
    );
    // Reads go on, and hold exactly what was acknowledged.
    assert_eq!(read_all(&engine), acknowledged);
    // Room again: puts succeed without a reopen (nothing was latched).
    std::fs::remove_file(&ballast).unwrap();
    for n in 0..50u32 {
        let data = record(1_000_000 + n);
        engine
            .stream("full")
            .unwrap()
            .put(PutRecord::new("k", &data))
            .durability(Durability::Durable)
            .wait()
            .expect("room again");
        acknowledged.push(data);
    }
    drop(engine);
    let engine = open(&data_dir);
    assert_eq!(
        read_all(&engine),
        acknowledged,
        "every acknowledged record after a reopen"
    );
}
