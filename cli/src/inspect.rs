//! `sluice inspect`: what a data directory holds and the disk it takes, per stream and shard,
//! including the space held by segments that hold no record (reused before any new file is
//! allocated). It opens the directory as a server would (recovering what a crash left), so
//! it needs the server on that directory stopped.

use anyhow::Context;
use clap::Args;
use sluice_core::{Engine, EngineConfig, LogSpace};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The data directory (a server on it must be stopped first).
    #[arg(long, default_value = "sluice-data")]
    dir: PathBuf,
    /// The segment size the directory's server uses, MiB (`sluice serve --segment-mib`).
    #[arg(long, default_value_t = 64)]
    segment_mib: u64,
}

const MIB: f64 = (1 << 20) as f64;

pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    let mut config = EngineConfig::new(&args.dir);
    config.cores = 1;
    config.segment_size_bytes = args.segment_mib << 20;
    let engine = Engine::open(config).with_context(|| {
        format!(
            "opening {} (is a server running on it? stop it first; does it use --segment-mib \
             {}?)",
            args.dir.display(),
            args.segment_mib
        )
    })?;
    let mut total = LogSpace::default();
    let mut after: Option<String> = None;
    println!(
        "{:<32} {:>6} {:>6} {:>10} {:>12} {:>12}",
        "stream/shard", "files", "live", "reusable", "allocated", "reusable"
    );
    loop {
        let page = engine.list_streams(Some(100), after.as_deref())?;
        for name in &page.names {
            let stream = engine.stream(name)?;
            for shard in stream.disk_space()? {
                let label = format!(
                    "{name}/{}{}",
                    shard.shard,
                    if shard.closed { " (closed)" } else { "" }
                );
                print_row(&label, &shard.space);
                total.add(&shard.space);
            }
        }
        match (page.has_more, page.names.last()) {
            (true, Some(last)) => after = Some(last.clone()),
            _ => break,
        }
    }
    print_row("total", &total);
    println!(
        "{:.1} MiB allocated; {:.1} MiB in segments that hold no record, reused before any new \
         file is allocated and returned to the file system when their stream is deleted",
        total.allocated_bytes as f64 / MIB,
        total.reusable_bytes as f64 / MIB
    );
    engine.close().context("closing the data directory")?;
    Ok(())
}

fn print_row(label: &str, space: &LogSpace) {
    println!(
        "{label:<32} {:>6} {:>6} {:>10} {:>9.1} MiB {:>8.1} MiB",
        space.files,
        space.live_segments,
        space.reusable_segments,
        space.allocated_bytes as f64 / MIB,
        space.reusable_bytes as f64 / MIB
    );
}
