//! The status page: server-rendered HTML (minijinja) that reads without
//! JavaScript, plus a few lines that follow the event stream live; and the
//! badges.

mod badge;
mod chart;
mod incidents;

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use minijinja::Environment;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::api::ApiState;
use crate::api::error::ApiError;
use crate::clock::now_ms;
use crate::store::entity::EntityId;
use crate::store::entity::SliceId;
use crate::store::read::{Bucket, RunQuery, SliceFilter, TransitionQuery};
use crate::store::state::Status;
use crate::store::{DAY_MS, EntityStatus, HOUR_MS};

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
            ("error.html", include_str!("templates/error.html")),
            ("incidents.html", include_str!("templates/incidents.html")),
            (
                "incident-list.html",
                include_str!("templates/incident-list.html"),
            ),
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
        .route("/incidents", get(incidents::history))
        .route("/feed.atom", get(incidents::feed))
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

impl From<crate::store::TransitionEvent> for TransitionLine {
    fn from(t: crate::store::TransitionEvent) -> TransitionLine {
        TransitionLine {
            at: iso(t.at_ms),
            entity: t.entity_id,
            from: t.from,
            to: t.to,
            check: t.check_id,
        }
    }
}

/// `30 days`, `12 hours`.
fn days_label(ms: i64) -> String {
    if ms % DAY_MS == 0 {
        format!("{} days", ms / DAY_MS)
    } else {
        format!("{} hours", ms / HOUR_MS)
    }
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

/// Rows on one page of the index: enough to scan, few enough to stay fast
/// with any number of systems.
const PER_PAGE: usize = 100;
const PER_PAGE_MAX: usize = 500;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IndexParams {
    /// Part of a system's name or id, any case.
    q: Option<String>,
    status: Option<String>,
    page: Option<usize>,
    per: Option<usize>,
}

async fn index(
    State(state): State<ApiState>,
    query: Result<Query<IndexParams>, QueryRejection>,
) -> Response {
    let Ok(Query(p)) = query else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "The page takes `q`, `status`, `page` and `per` only.",
        );
    };
    let status = match p.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => match Status::parse_known(text) {
            Some(status) => Some(status),
            None => {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "`{text}` is not a status: use healthy, degraded, unhealthy or unknown."
                    ),
                );
            }
        },
    };
    let per = p.per.unwrap_or(PER_PAGE).clamp(1, PER_PAGE_MAX);
    let page = p.page.unwrap_or(1).max(1);
    let search = p.q.unwrap_or_default();
    match index_page(&state, &search, status, page, per).await {
        Ok(ctx) => render("index.html", ctx),
        Err(e) => e.into_response(),
    }
}

async fn index_page(
    state: &ApiState,
    search: &str,
    status: Option<Status>,
    page: usize,
    per: usize,
) -> Result<Value, ApiError> {
    let generation = state.live.generation();
    let config = &generation.setup.config.file;
    let now = now_ms();
    let store = &state.store;
    let latest = TransitionQuery {
        limit: 20,
        ..Default::default()
    };
    let (entities, transitions, open) = tokio::try_join!(
        store.current_statuses(),
        store.transitions(&latest),
        store.incidents(true, None, 20),
    )?;
    let open: Vec<Value> = open.iter().map(|i| incidents::view(i, config)).collect();
    let states: &HashMap<String, EntityStatus> = &entities.states;
    let needle = search.trim().to_lowercase();
    let status_of = |id: &str| states.get(id).map_or(Status::Unknown, |s| s.status);
    let found: Vec<&crate::config::System> = config
        .systems
        .iter()
        .filter(|s| {
            needle.is_empty()
                || s.id.to_lowercase().contains(&needle)
                || s.name
                    .as_deref()
                    .is_some_and(|n| n.to_lowercase().contains(&needle))
        })
        .collect();
    // Counts per status among what the search found, for the filter.
    let counts: Vec<(Status, usize)> = [
        Status::Unhealthy,
        Status::Degraded,
        Status::Healthy,
        Status::Unknown,
    ]
    .into_iter()
    .map(|st| (st, found.iter().filter(|s| status_of(&s.id) == st).count()))
    .collect();
    let matching: Vec<&crate::config::System> = found
        .into_iter()
        .filter(|s| status.is_none_or(|st| status_of(&s.id) == st))
        .collect();
    let pages = matching.len().div_ceil(per).max(1);
    let page = page.min(pages);
    let shown: Vec<&crate::config::System> = matching
        .iter()
        .skip((page - 1) * per)
        .take(per)
        .copied()
        .collect();
    let ids: Vec<String> = shown.iter().map(|s| s.id.clone()).collect();
    let (uptime, series) = tokio::try_join!(
        store.uptime(now, &ids),
        store.latency_series(now, SPARK_HOURS, &ids),
    )?;
    let rows: Vec<Row> = shown
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
    let transitions: Vec<TransitionLine> =
        transitions.into_iter().map(TransitionLine::from).collect();
    let link = |page: usize, status: Option<Status>| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if !search.is_empty() {
            query.append_pair("q", search);
        }
        if let Some(st) = status {
            query.append_pair("status", st.as_str());
        }
        if page > 1 {
            query.append_pair("page", &page.to_string());
        }
        if per != PER_PAGE {
            query.append_pair("per", &per.to_string());
        }
        let query = query.finish();
        if query.is_empty() {
            "/".to_string()
        } else {
            format!("/?{query}")
        }
    };
    let counts_total: usize = counts.iter().map(|(_, n)| n).sum();
    let locations = if config.locations.is_empty() {
        Vec::new()
    } else {
        location_rows(config, &store.probes().await?, now)
    };
    let counts: Vec<Value> = counts
        .into_iter()
        .map(|(st, n)| json!({"status": st, "count": n, "current": Some(st) == status, "href": link(1, Some(st))}))
        .collect();
    Ok(json!({
        "environments": environments,
        "rows": rows,
        "transitions": transitions,
        "incidents": open,
        "locations": locations,
        "search": search,
        "status": status,
        "counts": counts,
        "all_href": link(1, None),
        "page": page,
        "pages": pages,
        "total": matching.len(),
        "systems": config.systems.len(),
        "found": counts_total,
        "prev": (page > 1).then(|| link(page - 1, status)),
        "next": (page < pages).then(|| link(page + 1, status)),
    }))
}

/// Each location with its probes: how many are online (degraded when
/// none is: its slices then record `no-probe` runs), the newest heartbeat
/// and the runs waiting in their spools.
fn location_rows(
    config: &crate::config::ConfigFile,
    probes: &[crate::store::probes::ProbeRecord],
    now: i64,
) -> Vec<Value> {
    let window = config.probes.offline_window_ms();
    config
        .locations
        .iter()
        .map(|location| {
            let mine: Vec<_> = probes
                .iter()
                .filter(|p| p.location_id == location.id && p.revoked_at_ms.is_none())
                .collect();
            let online = mine.iter().filter(|p| p.online(now, window)).count();
            let seen = mine.iter().filter_map(|p| p.last_seen_ms).max();
            json!({
                "id": location.id,
                "name": location.name.clone().unwrap_or_else(|| location.id.clone()),
                "status": if online > 0 { Status::Healthy } else { Status::Degraded },
                "online": match (online, mine.len()) {
                    (_, 0) => "no probe has a token".to_string(),
                    (0, _) => "no probe online".to_string(),
                    (n, of) => format!("{n} of {of} online"),
                },
                "seen": seen.map_or("never".to_string(), |t| age(t, now)),
                "seen_iso": seen.map(iso),
                "spool": mine.iter().filter_map(|p| p.spool_depth).sum::<i64>(),
            })
        })
        .collect()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SystemParams {
    window: Option<String>,
}

/// The chart windows a system page offers, with their query value.
const WINDOWS: [(&str, &str, i64); 3] = [
    ("24h", "24 h", DAY_MS),
    ("7d", "7 d", 7 * DAY_MS),
    ("30d", "30 d", 30 * DAY_MS),
];

/// A page that says what is missing, with the status it should have.
fn error_page(status: StatusCode, message: &str) -> Response {
    let mut response = render("error.html", json!({"message": message}));
    *response.status_mut() = status;
    response
}

async fn system(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    query: Result<Query<SystemParams>, QueryRejection>,
) -> Response {
    let Ok(Query(p)) = query else {
        return error_page(StatusCode::BAD_REQUEST, "The page takes `window` only.");
    };
    let window = p.window.as_deref().unwrap_or("24h");
    let Some(&(_, window_label, window_ms)) = WINDOWS.iter().find(|w| w.0 == window) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            &format!("`{window}` is not a chart window: use 24h, 7d or 30d."),
        );
    };
    let detail = match crate::api::systems_detail(&state, &id).await {
        Ok(detail) => detail,
        Err(e) if e.status == StatusCode::NOT_FOUND => {
            return error_page(
                StatusCode::NOT_FOUND,
                &format!("There is no system `{id}`."),
            );
        }
        Err(e) => return e.into_response(),
    };
    match system_page(&state, &detail, window, window_label, window_ms).await {
        Ok(ctx) => render("system.html", ctx),
        Err(e) => e.into_response(),
    }
}

/// What a field's chart shows, in words.
fn field_caption(f: &crate::api::HistoryField, window_label: &str) -> String {
    use crate::runtime::result_fields::{Aggregate, Chart, FieldKind};
    let field = &f.field;
    let shows = match (field.chart, field.aggregate) {
        (Chart::Text, _) => "newest value".to_string(),
        (Chart::Gauge, _) => format!("newest value on the scale of {window_label}"),
        (_, Aggregate::Rate) => {
            format!("share of runs where it held, per hour over {window_label}")
        }
        (_, Aggregate::Last) if field.kind == FieldKind::Boolean => {
            format!("whether it held at each hour's end, over {window_label}")
        }
        (_, Aggregate::Last) => format!("newest value of each hour over {window_label}"),
        (_, Aggregate::Counter) => format!("total per hour over {window_label}"),
        (_, Aggregate::MinMax) => {
            format!("average per hour, with the lowest–highest band, over {window_label}")
        }
        (_, Aggregate::Average) => format!("average per hour over {window_label}"),
    };
    match field.unit.as_deref() {
        Some(unit) if field.kind == FieldKind::Number && field.aggregate != Aggregate::Rate => {
            format!("{} in {unit}: {shows}", f.key)
        }
        _ => format!("{}: {shows}", f.key),
    }
}

async fn system_page(
    state: &ApiState,
    detail: &crate::api::SystemDetail,
    window: &str,
    window_label: &str,
    window_ms: i64,
) -> Result<Value, ApiError> {
    let generation = state.live.generation();
    let masker = &generation.masker;
    let now = now_ms();
    let system = &detail.summary;
    let mut checks = Vec::new();
    for c in &detail.checks {
        let mut slices = Vec::new();
        for s in &c.slices {
            let filter = SliceFilter {
                system: Some(system.id.clone()),
                check: Some(c.id.clone()),
                environment: Some(s.environment_id.clone().unwrap_or_default()),
                location: Some(s.location_id.clone().unwrap_or_default()),
            };
            let runs_query = RunQuery {
                slices: filter.clone(),
                limit: chart::BAR_RUNS as i64,
                ..Default::default()
            };
            let (runs, history) = tokio::try_join!(
                state.store.runs(&runs_query),
                state
                    .store
                    .history(&filter, now - 30 * DAY_MS, now + 1, Bucket::Hour),
            )?;
            let mut runs: Vec<_> = runs
                .into_iter()
                .rev()
                .map(|r| {
                    let mut run = r.run;
                    run.error = run.error.map(|e| masker.text(&e));
                    run
                })
                .collect();
            runs.truncate(chart::BAR_RUNS);
            let place = match (s.environment_id.as_deref(), s.location_id.as_deref()) {
                (Some(env), Some(location)) => format!("{env}, from {location}"),
                (None, Some(location)) => format!("from {location}"),
                (env, None) => env.unwrap_or("no environment").to_string(),
            };
            let label = format!("{} in {place}", c.name);
            let uptime: Vec<String> = WINDOWS
                .iter()
                .map(|(_, _, ms)| {
                    let since = (now - ms).div_euclid(HOUR_MS) * HOUR_MS;
                    let (total, healthy) = history
                        .iter()
                        .filter(|p| p.start_ms >= since)
                        .fold((0, 0), |(t, h), p| (t + p.total, h + p.healthy));
                    percent((total > 0).then(|| healthy as f64 / total as f64))
                })
                .collect();
            let from = now - window_ms;
            let marked = crate::api::history_fields(&generation.setup.plugins, &history);
            let in_window: Vec<_> = history
                .into_iter()
                .filter(|p| p.start_ms >= from.div_euclid(HOUR_MS) * HOUR_MS)
                .collect();
            let fields: Vec<Value> = marked
                .iter()
                .map(|f| {
                    let title = format!("{} of {label} over {window_label}", f.key);
                    json!({
                        "chart": chart::field_chart(&in_window, f, from, now, &title),
                        "caption": field_caption(f, window_label),
                    })
                })
                .collect();
            let maintenance = generation
                .notifier
                .maintenance(&system.id, s.environment_id.as_deref(), now)
                .map(|(window, start, end)| {
                    if start <= now {
                        format!("Maintenance `{window}` is open until {}.", iso(end))
                    } else {
                        format!(
                            "Next maintenance: `{window}`, {} to {}.",
                            iso(start),
                            iso(end)
                        )
                    }
                });
            let run = s.last_run.as_ref().map(|r| {
                json!({
                    "status": r.run.status,
                    "latency": format!("{:.0}", r.run.latency_ms),
                    "age": age(r.run.at_ms, now),
                    "at": iso(r.run.at_ms),
                    "error": r.run.error,
                    "result": serde_json::to_string_pretty(&r.result).unwrap_or_default(),
                })
            });
            slices.push(json!({
                "environment": s.environment_id,
                "place": place,
                "status": s.status,
                "flapping": s.flapping,
                "key": SliceId::located(
                    &system.id,
                    &c.id,
                    s.environment_id.as_deref(),
                    s.location_id.as_deref(),
                )
                .to_string(),
                "uptime": uptime,
                "bar": chart::history_bar(&runs, &label),
                "chart": chart::latency_chart(&in_window, from, now, &format!("Response time of {label} over {window_label}")),
                "fields": fields,
                "maintenance": maintenance,
                "run": run,
            }));
        }
        checks.push(json!({
            "name": c.name, "strategy": c.strategy, "interval": c.interval,
            "paused": c.paused, "slices": slices,
        }));
    }
    // The environments' transitions, or the system's where it has none,
    // and those of each place a probe checks it from.
    let mut entities: BTreeSet<String> = if system.environments.is_empty() {
        BTreeSet::from([system.id.clone()])
    } else {
        system
            .environments
            .iter()
            .map(|e| EntityId::of(&system.id, Some(&e.id)).to_string())
            .collect()
    };
    entities.extend(
        detail
            .checks
            .iter()
            .flat_map(|c| &c.slices)
            .filter_map(|s| {
                s.location_id.as_deref().map(|location| {
                    EntityId::located(&system.id, s.environment_id.as_deref(), Some(location))
                        .to_string()
                })
            }),
    );
    let mut transitions = Vec::new();
    for entity in entities {
        let query = TransitionQuery {
            entity: Some(entity),
            limit: 20,
            ..Default::default()
        };
        transitions.extend(state.store.transitions(&query).await?);
    }
    transitions.sort_by_key(|t| std::cmp::Reverse(t.at_ms));
    transitions.truncate(20);
    let transitions: Vec<TransitionLine> =
        transitions.into_iter().map(TransitionLine::from).collect();
    let open: Vec<Value> = state
        .store
        .incidents(true, None, 20)
        .await?
        .iter()
        .filter(|i| incidents::affects(i, &system.id))
        .map(|i| incidents::view(i, &generation.setup.config.file))
        .collect();
    let windows: Vec<Value> = WINDOWS
        .iter()
        .map(|(value, label, _)| json!({"value": value, "label": label, "current": *value == window}))
        .collect();
    let dependencies = dependencies_of(state, &generation, &system.id).await?;
    // As last evaluated (every `metrics.sloEvery`): a page view does not
    // read a month of aggregates.
    let mut slos = Vec::new();
    for r in state
        .metrics
        .slo_reports()
        .iter()
        .filter(|r| r.system == system.id)
    {
        let share = |v: Option<f64>, digits: usize| {
            v.map_or_else(|| "—".to_string(), |v| format!("{v:.digits$} %"))
        };
        let burn = r
            .burn_rates
            .iter()
            .find(|b| b.window == "1h")
            .and_then(|b| b.rate);
        slos.push(json!({
            "scope": r.check.as_deref().map_or_else(|| "all checks".to_string(), |c| format!("check {c}")),
            "objective": r.objective_label(),
            "window": days_label(r.window_ms),
            "attainment": share(r.attainment, 3),
            "budget": match r.budget_remaining {
                // Overspent: how many budgets went, not a large negative share.
                Some(left) if left < 0.0 => format!("none (spent {:.1}× the budget)", 1.0 - left),
                left => share(left.map(|b| b * 100.0), 0),
            },
            "burn": burn.map_or_else(|| "—".to_string(), |b| format!("{b:.1}×")),
            "exhausts": r.exhausts_at_ms.map(|at| if at <= now { "already".to_string() } else { iso(at) }),
            "page": r.alert.is_some(),
        }));
    }
    Ok(json!({
        "system": {"id": system.id, "name": system.name, "status": system.status},
        "dependencies": dependencies,
        "slos": slos,
        "held": dependencies.iter().any(|d| d["status"] == "unhealthy"),
        "checks": checks,
        "windows": windows,
        "window_label": window_label,
        "transitions": transitions,
        "incidents": open,
    }))
}

/// What a system depends on (its own `dependsOn` and its assignments'),
/// each with its status: while one is unhealthy, the system's alerts are
/// held.
async fn dependencies_of(
    state: &ApiState,
    generation: &crate::serve::generation::Generation,
    system: &str,
) -> Result<Vec<Value>, ApiError> {
    let file = &generation.setup.config.file;
    let mut ids: Vec<String> = Vec::new();
    for a in file.assignments.iter().filter(|a| a.system == system) {
        for id in generation.notifier.dependencies.of(system, &a.check) {
            if !ids.contains(id) {
                ids.push(id.clone());
            }
        }
    }
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let statuses: HashMap<String, Status> = state
        .store
        .statuses_of(&ids)
        .await?
        .into_iter()
        .map(|s| (s.entity_id, s.status))
        .collect();
    Ok(ids
        .iter()
        .map(|id| {
            let entity = EntityId::parse(id);
            let name = file
                .system(entity.system())
                .and_then(|s| s.name.clone())
                .unwrap_or_else(|| entity.system().to_string());
            let name = match entity.environment() {
                Some(env) => format!("{name} ({env})"),
                None => name,
            };
            json!({
                "id": id,
                "name": name,
                "href": format!("/systems/{}", entity.system()),
                "status": statuses.get(id).copied().unwrap_or(Status::Unknown),
            })
        })
        .collect())
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
                "search": "<b>", "status": null, "counts": [], "all_href": "/",
                "found": 1, "systems": 1, "page": 1, "pages": 1, "total": 1,
                "prev": null, "next": null,
            })))
            .unwrap();
        assert!(
            html.contains(r#"value="&lt;b&gt;""#),
            "the search is escaped"
        );
        assert!(
            html.contains("&lt;script&gt;x") && !html.contains("<script>x"),
            "names are escaped"
        );
        assert!(html.contains(r#"data-entity="shop" data-status="healthy""#));
        let page = templates()
            .get_template("system.html")
            .unwrap()
            .render(minijinja::value::Serde(&json!({
                "system": {"id": "shop", "name": "<b>Shop</b>", "status": "healthy"},
                "windows": [{"value": "24h", "label": "24 h", "current": true}],
                "window_label": "24 h",
                "checks": [{"name": "web", "strategy": "http", "interval": "30s", "paused": false, "slices": [{
                    "environment": "prod", "place": "prod", "status": "healthy", "key": "shop/web/prod",
                    "uptime": ["100.00 %", "—", "—"],
                    "bar": chart::history_bar(&[], "web in prod"),
                    "chart": chart::latency_chart(&[], 0, 1, "web"),
                    "maintenance": "Next maintenance: `nightly`.", "run": null,
                }]}],
                "transitions": [],
            })))
            .unwrap();
        assert!(page.contains("&lt;b&gt;Shop") && !page.contains("<b>Shop"));
        assert!(
            page.contains(r#"<svg class="runs""#),
            "the bar is markup, not text"
        );
        assert!(page.contains(r#"data-live-fragment="shop&#x2f;web&#x2f;prod""#));
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
