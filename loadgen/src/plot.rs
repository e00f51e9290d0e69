//! `--plot FILE.svg`: throughput over time (puts acknowledged and records read, per second),
//! and the latency distributions by percentile, in one SVG.

use super::results::{BenchResult, Latency};
use plotters::prelude::*;
use std::path::Path;

pub(crate) fn draw(result: &BenchResult, path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (1000, 800)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let (top, bottom) = root.split_vertically(400);
    throughput(result, &top)?;
    latency(result, &bottom)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

/// "1.5M" for 1,500,000.
fn si(value: f64) -> String {
    match value {
        v if v >= 1e6 => format!("{:.1}M", v / 1e6),
        v if v >= 1e3 => format!("{:.1}k", v / 1e3),
        v => format!("{v:.0}"),
    }
}

/// "p99.9" for 3 nines.
fn percentile_label(nines: f64) -> String {
    let percent = format!("{:.4}", 100.0 - 100.0 * 10f64.powf(-nines));
    format!("p{}", percent.trim_end_matches('0').trim_end_matches('.'))
}

fn plot_error<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> anyhow::Error {
    anyhow::anyhow!("drawing the plot: {e}")
}

/// Records per second between consecutive samples of a counter.
fn per_second(
    result: &BenchResult,
    counter: impl Fn(&super::results::Sample) -> u64,
) -> Vec<(f64, f64)> {
    // The sampler sleeps `TIMELINE_STEP` between samples, and oversleeps on a loaded machine:
    // rates divide by the real gap.
    result
        .timeline
        .windows(2)
        .map(|w| {
            let gap = (w[1].ms.saturating_sub(w[0].ms)).max(1) as f64 / 1e3;
            let rate = counter(&w[1]).saturating_sub(counter(&w[0])) as f64 / gap;
            (w[1].ms as f64 / 1e3, rate)
        })
        .collect()
}

fn throughput(
    result: &BenchResult,
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
) -> anyhow::Result<()> {
    let put = per_second(result, |s| s.acked);
    let read = per_second(result, |s| s.read);
    let seconds = put.last().map_or(1.0, |p| p.0).max(0.1);
    let top = put.iter().chain(&read).map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption("Throughput", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..seconds, 0.0..top)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("records/s")
        .y_label_formatter(&|rate| si(*rate))
        .draw()
        .map_err(plot_error)?;
    chart
        .draw_series(LineSeries::new(put, &BLUE))
        .map_err(plot_error)?
        .label("puts acknowledged")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE));
    if result.tail_read.is_some() || result.catch_up_read.is_some() {
        chart
            .draw_series(LineSeries::new(read, &RED))
            .map_err(plot_error)?
            .label("records read")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

/// x: nines of the percentile (0 = p0, 1 = p90, 2 = p99, 3 = p99.9); y: µs, logarithmic.
fn latency(
    result: &BenchResult,
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
) -> anyhow::Result<()> {
    let curves: Vec<(&str, &Latency, RGBColor)> = [
        Some(("put call", &result.put_latency, BLUE)),
        result
            .put_to_read_latency
            .as_ref()
            .map(|l| ("put to tail reader", l, RED)),
    ]
    .into_iter()
    .flatten()
    .collect();
    let top = curves.iter().map(|c| c.1.max_us).max().unwrap_or(1).max(10) as f64 * 2.0;
    let mut chart = ChartBuilder::on(area)
        .caption("Latency by percentile", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..4.0, (1.0..top).log_scale())
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .x_labels(5)
        .x_label_formatter(&|nines| percentile_label(*nines))
        .y_desc("µs")
        .y_label_formatter(&|us| si(*us))
        .draw()
        .map_err(plot_error)?;
    for (label, latency, color) in curves {
        // The last point is the maximum (quantile 1, infinitely many nines): left out here.
        let points = latency
            .curve
            .iter()
            .filter(|(q, _)| *q < 1.0)
            .map(|(q, us)| (-(1.0 - q).log10(), (*us).max(1) as f64));
        chart
            .draw_series(LineSeries::new(points, &color))
            .map_err(plot_error)?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)?;
    Ok(())
}
