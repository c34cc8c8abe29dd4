//! The system page's pictures, drawn on the server as inline SVG: the bar
//! of recent runs, the response-time chart and one chart per marked result
//! field. A few dozen lines of geometry; a charting crate would bring a
//! renderer the page does not need.

use std::fmt::Write;

use minijinja::HtmlEscape;

use super::iso;
use crate::api::HistoryField;
use crate::runtime::result_fields::{Aggregate, Chart, FieldKind};
use crate::store::fields::FieldPoint;
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
    let count = |status: Status| runs.iter().filter(|r| r.status == status).count();
    let (unhealthy, unmeasured) = (count(Status::Unhealthy), count(Status::Degraded));
    let summary = match runs.last() {
        None => format!("{label}: no runs yet"),
        Some(newest) => format!(
            "{label}: last {} runs, {} healthy, {unhealthy} unhealthy{}; newest {}",
            runs.len(),
            count(Status::Healthy),
            if unmeasured > 0 {
                format!(", {unmeasured} with no probe online")
            } else {
                String::new()
            },
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
        // A run nobody measured (no probe online) is a half bar: it reads
        // apart from a failure without colour too.
        let (class, y, height) = match run.status {
            Status::Healthy => ("ok", 0.0, BAR_H),
            Status::Degraded => ("unmeasured", BAR_H / 2.0, BAR_H / 2.0),
            _ => ("bad", 0.0, BAR_H),
        };
        let described = describe_run(run);
        let text = HtmlEscape(&described);
        // One tab stop per bar: arrow keys move between runs.
        let tabindex = if i == newest { 0 } else { -1 };
        let _ = write!(
            svg,
            r#"<rect class="{class}" x="{x}" y="{y}" width="{BAR_W}" height="{height}" rx="1" role="img" tabindex="{tabindex}" aria-label="{text}"><title>{text}</title></rect>"#
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

/// One chart for a marked result field, drawn as its plugin marks it
/// (`x-chart`) from the value its `x-aggregate` names: a line (with the
/// min–max band for `min-max`), bars, a gauge of the newest value against
/// the window's range, the share of runs where a boolean was true, or the
/// newest value as text.
pub fn field_chart(
    points: &[HistoryPoint],
    field: &HistoryField,
    from_ms: i64,
    to_ms: i64,
    label: &str,
) -> String {
    let f = &field.field;
    // A bucket that is not all finite numbers is left out, not drawn as NaN.
    let measured: Vec<(&HistoryPoint, &FieldPoint)> = points
        .iter()
        .filter_map(|p| Some((p, p.fields.get(&field.key)?)))
        .filter(|(_, v)| {
            [v.avg, v.min, v.max, v.sum, v.last]
                .iter()
                .all(|x| x.is_finite())
        })
        .collect();
    let Some(&(_, newest)) = measured.last() else {
        return format!(
            r#"<p class="muted chart-empty">{}: not measured in this window.</p>"#,
            HtmlEscape(label)
        );
    };
    let percent = f.kind == FieldKind::Boolean || f.aggregate == Aggregate::Rate;
    let value = |v: &FieldPoint| match f.aggregate {
        Aggregate::Average | Aggregate::MinMax => v.avg,
        Aggregate::Counter => v.sum,
        Aggregate::Rate => v.avg * 100.0,
        Aggregate::Last if percent => v.last * 100.0,
        Aggregate::Last => v.last,
    };
    let unit = if percent {
        "%".to_string()
    } else {
        f.unit
            .as_deref()
            .map(|u| format!(" {u}"))
            .unwrap_or_default()
    };
    let shown = |v: f64| format!("{}{unit}", figure(v));
    // The axis column fits a figure and a short unit; a longer unit is in
    // the caption.
    let tick = |v: f64| {
        if unit.trim().chars().count() <= 2 {
            shown(v)
        } else {
            figure(v)
        }
    };
    let values: Vec<f64> = measured.iter().map(|(_, v)| value(v)).collect();
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let what = match f.aggregate {
        Aggregate::Average | Aggregate::MinMax => "the average",
        Aggregate::Counter => "the total",
        Aggregate::Rate => "the share true",
        Aggregate::Last => "the newest value",
    };
    let summary = format!(
        "{label}: now {}; {what} per bucket ranged from {} to {}",
        shown(value(newest)),
        shown(low),
        shown(high)
    );
    if f.chart == Chart::Text {
        return format!(
            r#"<p class="field-text" role="img" aria-label="{s}" title="{s}"><strong>{}</strong></p>"#,
            HtmlEscape(&shown(value(newest))),
            s = HtmlEscape(&summary),
        );
    }
    // Scales start at zero, or below it for negative values (a
    // certificate already expired); percentages end at 100.
    let (bottom, top) = if percent {
        (0.0, 100.0)
    } else {
        let ranged = |v: f64| if v > 0.0 { nice_ceiling(v) } else { 0.0 };
        let high = if f.aggregate == Aggregate::MinMax {
            measured.iter().map(|(_, v)| v.max).fold(high, f64::max)
        } else {
            high
        };
        let low = if f.aggregate == Aggregate::MinMax {
            measured.iter().map(|(_, v)| v.min).fold(low, f64::min)
        } else {
            low
        };
        let top = ranged(high);
        let bottom = -ranged(-low);
        (bottom, if top == bottom { bottom + 1.0 } else { top })
    };
    let span = (to_ms - from_ms).max(1) as f64;
    let x = |ms: i64| LEFT + (ms - from_ms) as f64 / span * (W - LEFT - 4.0);
    let y = |v: f64| (H - BOTTOM) - (v - bottom) / (top - bottom) * (H - BOTTOM - 6.0);
    let width = |p: &HistoryPoint| {
        if p.span == "day" {
            24 * HOUR_MS
        } else {
            HOUR_MS
        }
    };
    let middle = |p: &HistoryPoint| (p.start_ms + width(p) / 2).clamp(from_ms, to_ms);
    let mut body = String::new();
    match f.chart {
        Chart::Bar | Chart::Boolean => {
            let zero = y(0.0_f64.clamp(bottom, top));
            for (p, v) in &measured {
                let left = x(p.start_ms.max(from_ms));
                let right = x((p.start_ms + width(p)).min(to_ms));
                let bar = (right - left - 0.6).max(1.2);
                let level = y(value(v));
                let _ = write!(
                    body,
                    r#"<rect class="bar" x="{left:.1}" y="{:.1}" width="{bar:.1}" height="{:.1}"/>"#,
                    level.min(zero),
                    (level - zero).abs().max(0.8)
                );
            }
        }
        Chart::Gauge => {
            // The newest value as a meter across the scale, the window's
            // values as a faint line beneath it.
            let meter = LEFT
                + ((value(newest) - bottom) / (top - bottom)).clamp(0.0, 1.0) * (W - LEFT - 4.0);
            let _ = write!(
                body,
                r#"<text class="reading" x="{LEFT}" y="2" dominant-baseline="hanging">{}</text><rect class="track" x="{LEFT}" y="26" width="{:.1}" height="18" rx="3"/><rect class="meter" x="{LEFT}" y="26" width="{:.1}" height="18" rx="3"/>"#,
                HtmlEscape(&shown(value(newest))),
                W - LEFT - 4.0,
                meter - LEFT,
            );
        }
        Chart::Line | Chart::Text => {
            let refs: Vec<&HistoryPoint> = measured.iter().map(|(p, _)| *p).collect();
            for run in contiguous(&refs) {
                fn field_of<'p>(p: &'p HistoryPoint, key: &str) -> &'p FieldPoint {
                    &p.fields[key]
                }
                let of = |p: &HistoryPoint| *field_of(p, &field.key);
                if f.aggregate == Aggregate::MinMax {
                    let upper = run
                        .iter()
                        .map(|p| format!("{:.1},{:.1}", x(middle(p)), y(of(p).max)));
                    let lower = run
                        .iter()
                        .rev()
                        .map(|p| format!("{:.1},{:.1}", x(middle(p)), y(of(p).min)));
                    let _ = write!(
                        body,
                        r#"<polygon class="band" points="{}"/>"#,
                        upper.chain(lower).collect::<Vec<_>>().join(" ")
                    );
                }
                let line: Vec<String> = run
                    .iter()
                    .map(|p| format!("{:.1},{:.1}", x(middle(p)), y(value(&of(p)))))
                    .collect();
                let _ = write!(
                    body,
                    r#"<polyline class="avg" points="{}"/>"#,
                    line.join(" ")
                );
                if let [p] = run.as_slice() {
                    let _ = write!(
                        body,
                        r#"<circle class="avg-dot" cx="{:.1}" cy="{:.1}" r="2.5"/>"#,
                        x(middle(p)),
                        y(value(&of(p)))
                    );
                }
            }
        }
    }
    const GAUGE_H: f64 = 80.0;
    let (height, ticks) = if f.chart == Chart::Gauge {
        let ticks = format!(
            r#"<text class="tick" x="{LEFT}" y="{GAUGE_H}" text-anchor="start" dominant-baseline="text-after-edge">{}</text><text class="tick" x="{W}" y="{GAUGE_H}" text-anchor="end" dominant-baseline="text-after-edge">{}</text>"#,
            HtmlEscape(&shown(bottom)),
            HtmlEscape(&shown(top))
        );
        (GAUGE_H, ticks)
    } else {
        let base = H - BOTTOM;
        let ticks = format!(
            r#"<line class="axis" x1="{LEFT}" y1="{base}" x2="{W}" y2="{base}"/><line class="grid" x1="{LEFT}" y1="6" x2="{W}" y2="6"/><text class="tick" x="{tx}" y="2" text-anchor="end" dominant-baseline="hanging">{}</text><text class="tick" x="{tx}" y="{base}" text-anchor="end">{}</text><text class="tick" x="{LEFT}" y="{H}" text-anchor="start" dominant-baseline="text-after-edge">{start}</text><text class="tick" x="{W}" y="{H}" text-anchor="end" dominant-baseline="text-after-edge">{end}</text>"#,
            HtmlEscape(&tick(top)),
            HtmlEscape(&tick(bottom)),
            tx = LEFT - 4.0,
            start = short_time(from_ms),
            end = short_time(to_ms),
        );
        (H, ticks)
    };
    format!(
        r#"<svg class="chart" viewBox="0 0 {W} {height}" role="img" aria-label="{s}"><title>{s}</title>{ticks}{body}</svg>"#,
        s = HtmlEscape(&summary),
    )
}

/// A value as people read it: whole numbers whole, others to a few digits.
fn figure(v: f64) -> String {
    // No "-0".
    let v = if v == 0.0 { 0.0 } else { v };
    if (v - v.round()).abs() < 1e-9 || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
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
            location_id: None,
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
            fields: Default::default(),
        }
    }

    fn marked(name: &str, kind: FieldKind, aggregate: Aggregate, chart: Chart) -> HistoryField {
        HistoryField {
            key: format!("request.{name}"),
            collector: "request".into(),
            field: crate::runtime::result_fields::ResultField {
                name: name.into(),
                kind,
                aggregate,
                chart,
                unit: Some("ms".into()),
            },
        }
    }

    fn with_field(start_ms: i64, key: &str, values: &[f64]) -> HistoryPoint {
        let mut p = point(start_ms, 10.0);
        let mut b = crate::store::fields::FieldBucket::new(values[0], start_ms);
        for (i, v) in values.iter().enumerate().skip(1) {
            b.merge(&crate::store::fields::FieldBucket::new(
                *v,
                start_ms + i as i64,
            ));
        }
        p.fields.insert(key.into(), (&b).into());
        p
    }

    #[test]
    fn a_field_is_drawn_as_its_plugin_marks_it() {
        let line = marked(
            "responseTimeMs",
            FieldKind::Number,
            Aggregate::MinMax,
            Chart::Line,
        );
        let points = vec![
            with_field(0, &line.key, &[10.0, 30.0]),
            with_field(HOUR_MS, &line.key, &[50.0, 70.0]),
        ];
        let svg = field_chart(&points, &line, 0, 2 * HOUR_MS, "time");
        assert!(
            svg.contains(r#"<polygon class="band""#),
            "min-max has its band"
        );
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert!(
            svg.contains(">100 ms</text>"),
            "the top covers the max, 70: {svg}"
        );
        assert!(svg.contains("now 60 ms"), "{svg}");

        let bars = marked("statusCode", FieldKind::Number, Aggregate::Last, Chart::Bar);
        let points = vec![with_field(0, &bars.key, &[200.0, 503.0])];
        let svg = field_chart(&points, &bars, 0, HOUR_MS, "code");
        assert_eq!(svg.matches(r#"<rect class="bar""#).count(), 1);
        assert!(
            svg.contains("now 503 ms"),
            "last is the newest value: {svg}"
        );

        let ok = marked("ok", FieldKind::Boolean, Aggregate::Rate, Chart::Boolean);
        let points = vec![with_field(0, &ok.key, &[1.0, 1.0, 0.0, 1.0])];
        let svg = field_chart(&points, &ok, 0, HOUR_MS, "ok");
        assert!(
            svg.contains("now 75%") && svg.contains(">100%</text>"),
            "{svg}"
        );

        // A certificate past its expiry: the scale goes below zero.
        let days = marked(
            "daysRemaining",
            FieldKind::Number,
            Aggregate::Last,
            Chart::Gauge,
        );
        let points = vec![with_field(0, &days.key, &[-3.0])];
        let svg = field_chart(&points, &days, 0, HOUR_MS, "days");
        assert!(
            svg.contains(r#"class="meter""#) && svg.contains(">-5 ms</text>"),
            "{svg}"
        );

        let text = marked("ok", FieldKind::Number, Aggregate::Last, Chart::Text);
        let points = vec![with_field(0, &text.key, &[0.25])];
        assert!(field_chart(&points, &text, 0, HOUR_MS, "t").contains("<strong>0.25 ms</strong>"));
        assert!(field_chart(&[], &text, 0, 1, "t").contains("not measured"));
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
    fn a_run_with_no_probe_online_is_a_half_bar_of_its_own() {
        let mut runs = vec![
            run(0, true, None),
            run(1000, false, Some("no probe online in eu")),
        ];
        runs[1].status = Status::Degraded;
        runs[1].latency_ms = 0.0;
        let svg = history_bar(&runs, "web from eu");
        assert_eq!(svg.matches("<rect class=\"unmeasured\"").count(), 1);
        assert_eq!(svg.matches("<rect class=\"bad\"").count(), 0);
        assert!(svg.contains(&format!(
            r#"y="{}" width="{BAR_W}" height="{}""#,
            BAR_H / 2.0,
            BAR_H / 2.0
        )));
        assert!(
            svg.contains("1 healthy, 0 unhealthy, 1 with no probe online"),
            "{svg}"
        );
        assert!(
            svg.contains("degraded · no probe online in eu") && !svg.contains("0 ms · no probe")
        );
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
