//! `sluice repair-metadata`: reports what a data directory's metadata log holds and, with
//! `--apply`, repairs one damaged before its end (which the engine refuses to open).

use anyhow::Context as _;
use clap::Args;
use sluice_core::metadata::{self, MetadataReport};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct RepairMetadataArgs {
    /// Data directory whose metadata log (meta.log) to check. No engine or server may have
    /// it open.
    #[arg(long)]
    dir: PathBuf,
    /// Repair a damaged log: copy it aside as meta.log.damaged-<unix ms>, then rewrite it
    /// with every valid entry. Without it, only report.
    #[arg(long)]
    apply: bool,
}

pub fn run(args: RepairMetadataArgs) -> anyhow::Result<()> {
    let dir = args.dir.display();
    let report = match args.apply {
        true => metadata::repair(&args.dir).with_context(|| format!("repair {dir}"))?,
        false => metadata::inspect(&args.dir).with_context(|| format!("inspect {dir}"))?,
    };
    print_scan(&report);
    if !report.scan.is_damaged() {
        println!("no damage before the end: the engine opens this log as it is");
        return Ok(());
    }
    match &report.damaged_copy {
        Some(copy) => print_repair(&report, copy),
        None => {
            println!(
                "the engine refuses to open this log. `sluice repair-metadata --dir {dir} \
                 --apply` copies it aside and rewrites it with the {} valid entries; changes \
                 recorded only in the damaged bytes are lost (a stream created there is set \
                 aside in orphaned-streams/ on open, a stream deleted there comes back)",
                report.scan.frames_valid
            );
        }
    }
    Ok(())
}

fn print_scan(report: &MetadataReport) {
    let scan = &report.scan;
    println!(
        "metadata log {} ({} bytes): {} valid entries",
        report.path.display(),
        scan.file_bytes,
        scan.frames_valid
    );
    for range in &scan.damaged {
        println!(
            "damaged: bytes {}..{} ({} bytes)",
            range.start,
            range.end,
            range.end - range.start
        );
    }
    if let Some(from) = scan.torn_tail_from {
        println!("torn tail: from byte {from} (a write cut short; the engine cuts it off)");
    }
}

fn print_repair(report: &MetadataReport, copy: &std::path::Path) {
    println!("copied the damaged log to {}", copy.display());
    println!(
        "rewrote {} with {} valid entries ({} damaged bytes dropped)",
        report.path.display(),
        report.scan.frames_valid,
        report.scan.damaged_bytes()
    );
    if let Some(floor) = report.uid_floor {
        println!(
            "recorded a uid floor of {floor}: stream directories name uids below it, which are \
             never issued again"
        );
    }
}
