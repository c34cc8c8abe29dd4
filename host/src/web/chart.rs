//! The system page's pictures, drawn on the server as inline SVG: the bar
//! of recent runs and the response-time chart. A few dozen lines of
//! geometry; a charting crate would bring a renderer the page does not need.

use std::fmt::Write;

use minijinja::HtmlEscape;

use super::iso;
use crate::store::read::HistoryPoint;
use crate::store::state::Status;
use crate::store::{HOUR_MS, RunEvent};

/// Runs in a history bar.
pub const BAR_RUNS: usize = 90;
const SLOT: f64 = 6.0;
const BAR_W: f64 = 4.0;
const BAR_H: f64 = 24.0;

/// What one run says, for its tooltip and its accessible name.
pub fn describe_run(run: &RunEvent) -> String {
    let mut text = format!("{} · {}", iso(run.at_ms), run.status.as_str());
    if run.status == Status::Healthy || run.latency_ms > 0.0 {
        let _ = write!(text, " · {:.0} ms", run.latency_ms);
    }
    if let Some(error) = run.error.as_deref().filter(|e| !e.is_empty()) {
        let _ = write!(text, " · {error}");
    }
    text
}

/// The last runs (oldest first, at most [`BAR_RUNS`]) as bars, the newest
/// on the right: healthy ones solid, unhealthy ones hatched as well as red,
/// so the outcome reads without colour. Each bar names its run (time,
/// outcome, latency, error) on hover and, through the page's script, on
/// keyboard focus.
pub fn history_bar(runs: &[RunEvent], label: &str) -> String {
    let runs = &runs[runs.len().saturating_sub(BAR_RUNS)..];
    let unhealthy = runs.iter().filter(|r| r.status != Status::Healthy).count();
    let summary = match runs.last() {
        None => format!("{label}: no runs yet"),
        Some(newest) => format!(
            "{label}: last {} runs, {} healthy, {unhealthy} unhealthy; newest {}",
            runs.len(),
            runs.len() - unhealthy,
            describe_run(newest)
        ),
    };
    let width = BAR_RUNS as f64 * SLOT;
    let mut svg = format!(
        r#"<svg class="runs" viewBox="0 0 {width} {BAR_H}" preserveAspectRatio="none" role="group" aria-label="{}">"#,
        HtmlEscape(&summary)
    );
    // Empty slots first: a short history fills from the right.
    for slot in 0..BAR_RUNS - runs.len() {
        let x = slot as f64 * SLOT;
        let _ = write!(
            svg,
            r#"<rect class="none" x="{x}" y="{}" width="{BAR_W}" height="2" aria-hidden="true"/>"#,
            BAR_H - 2.0
        );
    }
    let newest = runs.len().saturating_sub(1);
    for (i, run) in runs.iter().enumerate() {
        let x = (BAR_RUNS - runs.len() + i) as f64 * SLOT;
        let class = if run.status == Status::Healthy {
            "ok"
        } else {
            "bad"
        };
        let described = describe_run(run);
        let text = HtmlEscape(&described);
        // One tab stop per bar: arrow keys move between runs.
        let tabindex = if i == newest { 0 } else { -1 };
        let _ = write!(
            svg,
            r#"<rect class="{class}" x="{x}" y="0" width="{BAR_W}" height="{BAR_H}" rx="1" role="img" tabindex="{tabindex}" aria-label="{text}"><title>{text}</title></rect>"#
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Chart size in SVG units; it scales to the page's width.
const W: f64 = 600.0;
const H: f64 = 160.0;
const LEFT: f64 = 80.0;
const BOTTOM: f64 = 30.0;

/// Average and p95 lines over a min–max band, from history buckets
/// (oldest first) between `from_ms` and `to_ms`. Buckets without latency
/// break the lines rather than dipping to zero.
pub fn latency_chart(points: &[HistoryPoint], from_ms: i64, to_ms: i64, label: &str) -> String {
    let measured: Vec<&HistoryPoint> = points
        .iter()
        .filter(|p| p.latency_avg_ms > 0.0 || p.latency_max_ms > 0.0)
        .collect();
    if measured.is_empty() {
        return format!(
            r#"<p class="muted chart-empty">{}: no response times in this window.</p>"#,
            HtmlEscape(label)
        );
    }
    let top = nice_ceiling(
        measured
            .iter()
            .map(|p| p.latency_max_ms.max(p.latency_p95_ms))
            .fold(1.0, f64::max),
    );
    let span = (to_ms - from_ms).max(1) as f64;
    let x = |ms: i64| LEFT + (ms - from_ms) as f64 / span * (W - LEFT - 4.0);
    let y = |v: f64| (H - BOTTOM) - v / top * (H - BOTTOM - 6.0);
    // Each bucket is drawn at its middle.
    let middle = |p: &HistoryPoint| {
        let width = if p.span == "day" {
            24 * HOUR_MS
        } else {
            HOUR_MS
        };
        (p.start_ms + width / 2).clamp(from_ms, to_ms)
    };
    let runs = contiguous(&measured);
    let mut band = String::new();
    let mut avg = String::new();
    let mut p95 = String::new();
    for run in &runs {
        let upper: Vec<String> = run
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(middle(p)), y(p.latency_max_ms)))
            .collect();
        let lower: Vec<String> = run
            .iter()
            .rev()
            .map(|p| format!("{:.1},{:.1}", x(middle(p)), y(p.latency_min_ms)))
            .collect();
        let _ = write!(
            band,
            r#"<polygon class="band" points="{} {}"/>"#,
            upper.join(" "),
            lower.join(" ")
        );
        let line = |value: fn(&HistoryPoint) -> f64| {
            run.iter()
                .map(|p| format!("{:.1},{:.1}", x(middle(p)), y(value(p))))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let _ = write!(
            avg,
            r#"<polyline class="avg" points="{}"/>"#,
            line(|p| p.latency_avg_ms)
        );
        let _ = write!(
            p95,
            r#"<polyline class="p95" points="{}"/>"#,
            line(|p| p.latency_p95_ms)
        );
        // A lone bucket is a dot, or it would not show at all.
        if run.len() == 1 {
            let p = run[0];
            let _ = write!(
                avg,
                r#"<circle class="avg-dot" cx="{:.1}" cy="{:.1}" r="2.5"/>"#,
                x(middle(p)),
                y(p.latency_avg_ms)
            );
        }
    }
    let (runs_total, weighted) = measured.iter().fold((0, 0.0), |(n, sum), p| {
        (n + p.total, sum + p.latency_avg_ms * p.total as f64)
    });
    let overall = weighted / runs_total.max(1) as f64;
    let worst_p95 = measured
        .iter()
        .map(|p| p.latency_p95_ms)
        .fold(0.0, f64::max);
    let min = measured
        .iter()
        .map(|p| p.latency_min_ms)
        .fold(f64::INFINITY, f64::min);
    let max = measured
        .iter()
        .map(|p| p.latency_max_ms)
        .fold(0.0, f64::max);
    let summary = format!(
        "{label}: average {overall:.0} ms, highest p95 {worst_p95:.0} ms, fastest {min:.0} ms, slowest {max:.0} ms"
    );
    let base = H - BOTTOM;
    format!(
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{summary}"><title>{summary}</title><line class="axis" x1="{LEFT}" y1="{base}" x2="{W}" y2="{base}"/><line class="grid" x1="{LEFT}" y1="6" x2="{W}" y2="6"/><text class="tick" x="{tx}" y="2" text-anchor="end" dominant-baseline="hanging">{top:.0} ms</text><text class="tick" x="{tx}" y="{base}" text-anchor="end">0</text><text class="tick" x="{LEFT}" y="{H}" text-anchor="start" dominant-baseline="text-after-edge">{start}</text><text class="tick" x="{W}" y="{H}" text-anchor="end" dominant-baseline="text-after-edge">{end}</text>{band}{p95}{avg}</svg>"#,
        summary = HtmlEscape(&summary),
        tx = LEFT - 4.0,
        start = short_time(from_ms),
        end = short_time(to_ms),
    )
}

fn short_time(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|t| t.format("%b %d %H:%M").to_string())
        .unwrap_or_default()
}

/// Runs of buckets with no missing bucket between them.
fn contiguous<'a>(points: &[&'a HistoryPoint]) -> Vec<Vec<&'a HistoryPoint>> {
    let mut runs: Vec<Vec<&HistoryPoint>> = Vec::new();
    for p in points {
        let width = if p.span == "day" {
            24 * HOUR_MS
        } else {
            HOUR_MS
        };
        match runs.last_mut() {
            Some(run) if run.last().is_some_and(|q| p.start_ms - q.start_ms <= width) => {
                run.push(p)
            }
            _ => runs.push(vec![p]),
        }
    }
    runs
}

/// 1, 2 or 5 × a power of ten, at or above `v`: a scale people read.
fn nice_ceiling(v: f64) -> f64 {
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|n| *n >= v)
        .unwrap_or(10.0 * magnitude)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(at_ms: i64, healthy: bool, error: Option<&str>) -> RunEvent {
        RunEvent {
            id: at_ms,
            system_id: "shop".into(),
            check_id: "web".into(),
            environment_id: None,
            status: if healthy {
                Status::Healthy
            } else {
                Status::Unhealthy
            },
            latency_ms: 12.4,
            error: error.map(str::to_string),
            at_ms,
        }
    }

    fn point(start_ms: i64, avg: f64) -> HistoryPoint {
        HistoryPoint {
            start_ms,
            span: "hour".into(),
            total: 2,
            healthy: 2,
            unhealthy: 0,
            uptime: 1.0,
            latency_avg_ms: avg,
            latency_min_ms: avg / 2.0,
            latency_max_ms: avg * 2.0,
            latency_p95_ms: avg * 1.5,
        }
    }

    #[test]
    fn the_bar_keeps_the_newest_runs_on_the_right_and_names_each() {
        let runs: Vec<RunEvent> = (0..100)
            .map(|i| run(i * 1000, i % 10 != 0, (i % 10 == 0).then_some("HTTP <500>")))
            .collect();
        let svg = history_bar(&runs, "web in prod");
        assert_eq!(svg.matches("<rect class=\"ok\"").count(), 81);
        assert_eq!(svg.matches("<rect class=\"bad\"").count(), 9);
        assert!(svg.contains("HTTP &lt;500&gt;") && !svg.contains("<500>"));
        assert_eq!(svg.matches(r#"tabindex="0""#).count(), 1, "one tab stop");
        assert!(
            svg.contains(r#"x="534" y="0""#),
            "the newest is the last slot"
        );
        let short = history_bar(&runs[..3], "web");
        assert_eq!(short.matches("class=\"none\"").count(), 87);
        assert!(history_bar(&[], "web").contains("web: no runs yet"));
    }

    #[test]
    fn the_chart_breaks_at_gaps_and_scales_to_a_round_top() {
        let points = vec![
            point(0, 10.0),
            point(HOUR_MS, 20.0),
            point(5 * HOUR_MS, 30.0),
        ];
        let svg = latency_chart(&points, 0, 6 * HOUR_MS, "web");
        assert_eq!(svg.matches("<polyline class=\"avg\"").count(), 2);
        assert_eq!(
            svg.matches("<circle").count(),
            1,
            "the lone bucket is a dot"
        );
        assert!(
            svg.contains(">100 ms</text>"),
            "max 60 rounds up to 100: {svg}"
        );
        assert!(svg.contains("slowest 60 ms"));
        assert!(latency_chart(&[], 0, 1, "web").contains("no response times"));
        assert_eq!(nice_ceiling(0.7), 1.0);
        assert_eq!(nice_ceiling(130.0), 200.0);
        assert_eq!(nice_ceiling(500.0), 500.0);
    }
}
