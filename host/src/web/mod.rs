//! The status page: server-rendered HTML (minijinja) that reads without
//! JavaScript, plus a few lines that follow the event stream live; and the
//! badges.

mod badge;

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use minijinja::Environment;
use serde::Serialize;
use serde_json::{Value, json};

use crate::api::ApiState;
use crate::api::error::ApiError;
use crate::clock::now_ms;
use crate::store::entity::EntityId;
use crate::store::read::TransitionQuery;
use crate::store::state::Status;
use crate::store::{EntityStatus, HOUR_MS};

/// Hours in a sparkline.
const SPARK_HOURS: i64 = 24;

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in [
            ("layout.html", include_str!("templates/layout.html")),
            ("index.html", include_str!("templates/index.html")),
            ("system.html", include_str!("templates/system.html")),
        ] {
            env.add_template(name, source)
                .expect("the status page templates compile (a unit test renders them)");
        }
        env
    })
}

pub fn router(state: ApiState) -> Router {
    let badges = Router::new()
        .route("/badge/{system}/status.svg", get(badge::status))
        .route("/badge/{system}/uptime.svg", get(badge::uptime))
        .route("/badge/{system}/latency.svg", get(badge::latency))
        .layer(middleware::from_fn_with_state(state.clone(), badge::gate))
        .with_state(state.clone());
    Router::new()
        .route("/", get(index))
        .route("/systems/{id}", get(system))
        // The page follows the API's read rule: private reads, private page.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::api::authorize,
        ))
        .with_state(state)
        .merge(badges)
}

fn render(name: &str, ctx: Value) -> Response {
    match templates()
        .get_template(name)
        .and_then(|t| t.render(minijinja::value::Serde(&ctx)))
    {
        Ok(html) => ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response(),
        Err(e) => {
            tracing::error!("status page {name} failed to render: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the status page failed to render",
            )
                .into_response()
        }
    }
}

#[derive(Serialize)]
struct Cell {
    entity: String,
    status: Status,
    since: String,
    since_iso: String,
}

#[derive(Serialize)]
struct Row {
    id: String,
    href: String,
    name: String,
    status: Status,
    since: String,
    since_iso: String,
    cells: Vec<Option<Cell>>,
    uptime: Vec<String>,
    spark: String,
    spark_range: String,
}

#[derive(Serialize)]
struct TransitionLine {
    at: String,
    entity: String,
    from: Status,
    to: Status,
    check: String,
}

fn iso(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

/// "3 min ago", for a page read by people.
fn age(ms: i64, now: i64) -> String {
    let secs = (now - ms).max(0) / 1000;
    match secs {
        0..60 => "just now".into(),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86_400 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86_400),
    }
}

fn since(state: Option<&EntityStatus>, now: i64) -> (Status, String, String) {
    match state {
        None => (Status::Unknown, "never measured".into(), String::new()),
        Some(s) => (
            s.status,
            format!("since {}", age(s.updated_at_ms, now)),
            iso(s.updated_at_ms),
        ),
    }
}

/// Polyline points for average latency per hour, scaled to 120 × 24.
fn sparkline(series: &[(i64, f64)], now: i64) -> (String, String) {
    if series.is_empty() {
        return (String::new(), String::new());
    }
    let first_hour = now.div_euclid(HOUR_MS) * HOUR_MS - (SPARK_HOURS - 1) * HOUR_MS;
    let max = series.iter().map(|(_, v)| *v).fold(f64::EPSILON, f64::max);
    let min = series.iter().map(|(_, v)| *v).fold(f64::INFINITY, f64::min);
    let y = |v: f64| 23.0 - (v / max) * 22.0;
    if let [(_, only)] = series {
        // One hour of data: a level line, so it shows at all.
        let y = y(*only);
        return (format!("1.0,{y:.1} 119.0,{y:.1}"), format!("{only:.0} ms"));
    }
    let points = series
        .iter()
        .map(|(bucket, v)| {
            let x = (bucket - first_hour) as f64 / HOUR_MS as f64 / (SPARK_HOURS - 1) as f64
                * 118.0
                + 1.0;
            format!("{x:.1},{:.1}", y(*v))
        })
        .collect::<Vec<_>>()
        .join(" ");
    (points, format!("{min:.0}–{max:.0} ms"))
}

fn percent(value: Option<f64>) -> String {
    value.map_or("—".into(), |v| format!("{:.2} %", v * 100.0))
}

async fn index(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let generation = state.scheduler.generation();
    let config = &generation.setup.config.file;
    let now = now_ms();
    let store = &state.store;
    let latest = TransitionQuery {
        limit: 20,
        ..Default::default()
    };
    let (entities, uptime, series, transitions) = tokio::try_join!(
        store.current_statuses(),
        store.uptime(now),
        store.latency_series(now, SPARK_HOURS),
        store.transitions(&latest),
    )?;
    let states: &HashMap<String, EntityStatus> = &entities.states;
    let rows: Vec<Row> = config
        .systems
        .iter()
        .map(|system| {
            let (status, since_text, since_iso) = since(states.get(system.id.as_str()), now);
            let cells = config
                .environments
                .iter()
                .map(|env| {
                    system.environments.contains(&env.id).then(|| {
                        let entity = EntityId::of(&system.id, Some(&env.id)).to_string();
                        let (status, since, since_iso) = since(states.get(entity.as_str()), now);
                        Cell {
                            entity,
                            status,
                            since,
                            since_iso,
                        }
                    })
                })
                .collect();
            let (spark, spark_range) =
                sparkline(series.get(&system.id).map_or(&[][..], Vec::as_slice), now);
            Row {
                href: format!(
                    "/systems/{}",
                    form_urlencoded::byte_serialize(system.id.as_bytes()).collect::<String>()
                ),
                id: system.id.clone(),
                name: system.name.clone().unwrap_or_else(|| system.id.clone()),
                status,
                since: since_text,
                since_iso,
                cells,
                uptime: uptime
                    .get(&system.id)
                    .map_or([None; 3], |u| *u)
                    .iter()
                    .map(|u| percent(*u))
                    .collect(),
                spark,
                spark_range,
            }
        })
        .collect();
    let environments: Vec<_> = config
        .environments
        .iter()
        .map(|e| json!({"id": e.id, "name": e.name.clone().unwrap_or_else(|| e.id.clone())}))
        .collect();
    let transitions: Vec<TransitionLine> = transitions
        .into_iter()
        .map(|t| TransitionLine {
            at: iso(t.at_ms),
            entity: t.entity_id,
            from: t.from,
            to: t.to,
            check: t.check_id,
        })
        .collect();
    Ok(render(
        "index.html",
        json!({"environments": environments, "rows": rows, "transitions": transitions}),
    ))
}

async fn system(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let detail = crate::api::systems_detail(&state, &id).await?;
    let now = now_ms();
    let checks: Vec<_> = detail
        .checks
        .iter()
        .map(|c| {
            let slices: Vec<_> = c
                .slices
                .iter()
                .map(|s| {
                    let run = s.last_run.as_ref().map(|r| {
                        json!({
                            "status": r.run.status,
                            "latency": format!("{:.0}", r.run.latency_ms),
                            "age": age(r.run.at_ms, now),
                            "error": r.run.error,
                            "result": serde_json::to_string_pretty(&r.result).unwrap_or_default(),
                        })
                    });
                    let key = format!(
                        "{id}/{}/{}",
                        c.id,
                        s.environment_id.as_deref().unwrap_or("-")
                    );
                    json!({
                        "environment": s.environment_id,
                        "status": s.status,
                        "key": key,
                        "run": run,
                    })
                })
                .collect();
            json!({
                "name": c.name, "strategy": c.strategy, "interval": c.interval,
                "paused": c.paused, "slices": slices,
            })
        })
        .collect();
    let system = &detail.summary;
    Ok(render(
        "system.html",
        json!({
            "system": {"id": system.id, "name": system.name, "status": system.status},
            "checks": checks,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_compile_and_escape_names() {
        let html = templates()
            .get_template("index.html")
            .unwrap()
            .render(minijinja::value::Serde(&json!({
                "environments": [{"id": "prod", "name": "Prod"}],
                "rows": [{
                    "id": "shop", "href": "/systems/shop", "name": "<script>x</script>", "status": "healthy",
                    "since": "since 1 min ago", "since_iso": "", "cells": [null],
                    "uptime": ["100.00 %", "100.00 %", "100.00 %"],
                    "spark": "1,2 3,4", "spark_range": "1–2 ms",
                }],
                "transitions": [],
            })))
            .unwrap();
        assert!(
            html.contains("&lt;script&gt;x") && !html.contains("<script>x"),
            "names are escaped"
        );
        assert!(html.contains(r#"data-entity="shop" data-status="healthy""#));
        assert!(templates().get_template("system.html").is_ok());
    }

    #[test]
    fn sparklines_scale_into_the_box() {
        let now = 100 * HOUR_MS + 5;
        let (points, range) = sparkline(&[(77 * HOUR_MS, 10.0), (100 * HOUR_MS, 20.0)], now);
        assert_eq!(points, "1.0,12.0 119.0,1.0");
        assert_eq!(range, "10–20 ms");
        let (level, range) = sparkline(&[(100 * HOUR_MS, 7.0)], now);
        assert_eq!(
            (level.as_str(), range.as_str()),
            ("1.0,1.0 119.0,1.0", "7 ms")
        );
        assert_eq!(age(0, 90_000), "1 min ago");
    }
}
