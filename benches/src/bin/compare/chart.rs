//! The report's SVG charts (plotters, SVG backend): gort over the best peer for every job, and
//! scaling curves (spawn, parked memory and skynet against N, one panel per P) with each
//! point's min-max range as an error bar.

use std::error::Error;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::report::{fmt_n, label, unit, Job, Results, Stats};

type Res = Result<(), Box<dyn Error>>;

const FONT: &str = "sans-serif";

/// One colour per system, the same in every chart.
fn color(peer: &str) -> RGBColor {
    match peer {
        "gort" => RGBColor(214, 39, 40),
        "go" => RGBColor(0, 150, 200),
        "tokio" => RGBColor(255, 127, 14),
        "tokio_ct" => RGBColor(148, 103, 189),
        _ => RGBColor(44, 160, 44),
    }
}

/// The charts' files, and their titles in the report.
pub const NAMES: [&str; 4] = ["ratio.svg", "spawn.svg", "parked_mem.svg", "skynet.svg"];
pub const TITLES: [&str; 4] = [
    "gort / best peer per workload",
    "spawn against N",
    "parked memory against N",
    "skynet against N",
];

/// Writes every chart the results have data for into `dir`; returns the names written.
pub fn all(r: &Results, dir: &Path) -> Result<Vec<&'static str>, Box<dyn Error>> {
    let mut written = Vec::new();
    if ratio(r, &dir.join(NAMES[0]))? {
        written.push(NAMES[0]);
    }
    for (i, (w, log_y)) in [("spawn", false), ("parked_mem", false), ("skynet", true)]
        .into_iter()
        .enumerate()
    {
        if scaling(r, w, &dir.join(NAMES[i + 1]), log_y)? {
            written.push(NAMES[i + 1]);
        }
    }
    Ok(written)
}

/// gort's median over the best peer's, one bar per job on a log axis, with the 1.0 line:
/// bars left of it are where gort is faster (or smaller).
fn ratio(r: &Results, path: &Path) -> Result<bool, Box<dyn Error>> {
    let rows: Vec<(String, f64, &str, (f64, f64))> = r
        .jobs
        .iter()
        .filter_map(|j| {
            let (x, who) = r.ratio(j)?;
            Some((label(j), x, who, r.ratio_range(j).unwrap_or((x, x))))
        })
        .collect();
    if rows.is_empty() {
        return Ok(false);
    }
    let n = rows.len();
    let root = SVGBackend::new(path, (900, 90 + 24 * n as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    // The axis is log2 of the ratio, linear: its ticks land on powers of two (0.25×, 0.5×,
    // 1×, 2×, ...), which plotters' log axis does not label below 1.
    let lo = rows.iter().map(|r| r.3 .0.log2()).fold(-2.0, f64::min) - 0.3;
    let hi = rows.iter().map(|r| r.3 .1.log2()).fold(2.0, f64::max) + 1.0;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "gort / best peer (median, bar from 1×; whiskers: the min-max range of the runs; left of 1: gort is faster or smaller)",
            (FONT, 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(190)
        .build_cartesian_2d(lo..hi, (0..n).into_segmented())?;
    // Row i is drawn at n - 1 - i: the first job at the top.
    let at = |i: usize| n - 1 - i;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(k) if *k < n => rows[n - 1 - *k].0.clone(),
            _ => String::new(),
        })
        .x_desc("gort / best peer (log scale)")
        .x_labels((hi - lo).ceil() as usize + 1)
        .x_label_formatter(&|v| {
            let x = 2f64.powf(*v);
            if x >= 1.0 {
                format!("{x:.0}×")
            } else {
                format!("{}×", format!("{x:.3}").trim_end_matches('0'))
            }
        })
        .label_style((FONT, 13))
        .draw()?;
    // Bars start at 1× (log2 = 0): a bar's length is how far gort is from its best peer, either
    // way, not how far from the chart's left edge.
    chart.draw_series(rows.iter().enumerate().map(|(i, (_, x, _, _))| {
        let c = if *x <= 1.0 {
            RGBColor(44, 160, 44)
        } else {
            RGBColor(214, 39, 40)
        };
        let mut bar = Rectangle::new(
            [
                (0.0, SegmentValue::Exact(at(i))),
                (x.log2(), SegmentValue::Exact(at(i) + 1)),
            ],
            c.mix(0.8).filled(),
        );
        bar.set_margin(4, 4, 0, 0);
        bar
    }))?;
    chart.draw_series(rows.iter().enumerate().map(|(i, (_, _, _, (a, b)))| {
        PathElement::new(
            vec![
                (a.log2(), SegmentValue::CenterOf(at(i))),
                (b.log2(), SegmentValue::CenterOf(at(i))),
            ],
            BLACK.stroke_width(1),
        )
    }))?;
    chart.draw_series(rows.iter().enumerate().map(|(i, (_, x, who, (_, b)))| {
        Text::new(
            format!("{x:.2}× {who}"),
            (
                x.log2().max(b.log2()).max(0.0) + 0.08,
                SegmentValue::CenterOf(at(i)),
            ),
            (FONT, 12).into_font().color(&BLACK),
        )
    }))?;
    chart.draw_series(LineSeries::new(
        [(0.0, SegmentValue::Exact(0)), (0.0, SegmentValue::Exact(n))],
        BLACK.stroke_width(2),
    ))?;
    root.present()?;
    Ok(true)
}

/// A system's points on one panel: its legend label, and (N, stats) per size it ran.
type Points<'a> = Vec<(&'a str, String, Vec<(f64, Stats)>)>;

/// Every peer that ran the panel's jobs, with whatever points it has; one that failed at a
/// size says so in its label ("may (failed at 100k)") instead of leaving the chart silently.
fn points<'a>(r: &'a Results, jobs: &[&Job]) -> Points<'a> {
    r.peers
        .iter()
        .filter_map(|p| {
            let pts: Vec<(f64, Stats)> = jobs
                .iter()
                .filter_map(|j| Some((j.n as f64, r.stats(j, p)?)))
                .collect();
            let failed_at = jobs
                .iter()
                .filter(|j| {
                    r.cells
                        .get(&(***j, *p))
                        .is_some_and(|c| c.failed > 0 && c.samples.is_empty())
                })
                .map(|j| j.n)
                .min();
            if pts.is_empty() && failed_at.is_none() {
                return None; // the peer does not run this workload
            }
            let label = match failed_at {
                Some(n) => format!("{p} (failed at {})", fmt_n(n)),
                None => p.to_string(),
            };
            Some((*p, label, pts))
        })
        .collect()
}

/// Draws one panel's series (lines, points, min-max error bars) and legend on `$chart`.
macro_rules! draw_series {
    ($chart:expr, $series:expr) => {{
        for (peer, label, pts) in $series.iter() {
            let c = color(peer);
            $chart
                .draw_series(LineSeries::new(
                    pts.iter().map(|(x, s)| (*x, s.median)),
                    c.stroke_width(2),
                ))?
                .label(label.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                });
            $chart.draw_series(
                pts.iter()
                    .map(|(x, s)| Circle::new((*x, s.median), 3, c.filled())),
            )?;
            $chart.draw_series(pts.iter().map(|(x, s)| {
                ErrorBar::new_vertical(*x, s.min, s.median, s.max, c.stroke_width(1), 8)
            }))?;
        }
        $chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT, 13))
            .draw()?;
    }};
}

/// `workload` against N, one panel per P; `log_y` for figures that grow with N (skynet's
/// total time), a linear axis from 0 for per-goroutine figures.
fn scaling(r: &Results, workload: &str, path: &Path, log_y: bool) -> Result<bool, Box<dyn Error>> {
    let mut procs: Vec<usize> = r
        .jobs
        .iter()
        .filter(|j| j.workload == workload)
        .map(|j| j.procs)
        .collect();
    procs.dedup();
    // A curve needs at least two sizes.
    procs.retain(|p| {
        r.jobs
            .iter()
            .filter(|j| j.workload == workload && j.procs == *p)
            .count()
            >= 2
    });
    if procs.is_empty() {
        return Ok(false);
    }
    let root = SVGBackend::new(path, (460 * procs.len() as u32, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, procs.len()));
    for (area, p) in panels.iter().zip(&procs) {
        let jobs: Vec<&Job> = r
            .jobs
            .iter()
            .filter(|j| j.workload == workload && j.procs == *p)
            .collect();
        let series = points(r, &jobs);
        panel(area, workload, *p, &jobs, &series, log_y)?;
    }
    root.present()?;
    Ok(true)
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    workload: &str,
    procs: usize,
    jobs: &[&Job],
    series: &Points,
    log_y: bool,
) -> Res
where
    DB::ErrorType: 'static,
{
    let xmin = jobs
        .iter()
        .map(|j| j.n as f64)
        .fold(f64::INFINITY, f64::min)
        / 1.6;
    let xmax = jobs.iter().map(|j| j.n as f64).fold(0.0, f64::max) * 1.6;
    let all = || {
        series
            .iter()
            .flat_map(|(_, _, pts)| pts.iter().map(|(_, s)| *s))
    };
    // The scale takes in every run: no error bar is cut.
    let ymax = all().map(|s| s.max).fold(0.0, f64::max) * 1.15;
    let ymin = all().map(|s| s.min).fold(f64::INFINITY, f64::min);
    if !ymax.is_finite() || ymax <= 0.0 {
        return Ok(());
    }
    let caption = format!("{workload}, P={procs}");
    let ydesc = unit(workload);
    // The log axis ticks at whole multiples of powers of ten: the table's "10k" / "2M".
    let fmt_n = |v: &f64| fmt_n(v.round() as u64);
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(caption, (FONT, 17))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60);
    if log_y {
        let mut chart = builder.build_cartesian_2d(
            (xmin..xmax).log_scale(),
            ((ymin / 1.5).max(1e-3)..ymax * 1.5).log_scale(),
        )?;
        chart
            .configure_mesh()
            .x_desc("N (log)")
            .y_desc(format!("{ydesc} (log)"))
            .x_label_formatter(&fmt_n)
            .label_style((FONT, 12))
            .draw()?;
        draw_series!(chart, series);
    } else {
        let mut chart = builder.build_cartesian_2d((xmin..xmax).log_scale(), 0.0..ymax)?;
        chart
            .configure_mesh()
            .x_desc("N (log)")
            .y_desc(ydesc)
            .x_label_formatter(&fmt_n)
            .label_style((FONT, 12))
            .draw()?;
        draw_series!(chart, series);
    }
    Ok(())
}
