//! Badges for READMEs and wikis: `/badge/{system}/status.svg`,
//! `uptime.svg?window=24h|7d|30d` and `latency.svg`, each with an optional
//! `?environment=`. Shields-style SVG drawn here (a label and a message in
//! two boxes): the badge crates on crates.io pull in a font rasteriser for
//! what a small width table does as well. Served with an ETag, to anyone
//! when `badges: public`.

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use minijinja::HtmlEscape;
use serde::Deserialize;

use crate::api::ApiState;
use crate::clock::now_ms;
use crate::config::ConfigFile;
use crate::store::entity::EntityId;
use crate::store::read::{Bucket, SliceFilter};
use crate::store::state::Status;
use crate::store::{DAY_MS, StoreError};

/// Badge colours (shields' palette): the message box says the verdict.
const GREEN: &str = "#3d8b1f";
const YELLOW_GREEN: &str = "#7a9a01";
const YELLOW: &str = "#a88a00";
const RED: &str = "#c9302c";
const GREY: &str = "#6b6b6b";
const BLUE: &str = "#0f6cbd";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BadgeParams {
    environment: Option<String>,
    window: Option<String>,
}

/// Badges are public or off, whatever `api.reads` says.
pub async fn gate(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    if state.live.generation().access.badges {
        next.run(request).await
    } else {
        not_found("badges are off (set `badges: public` in the configuration)")
    }
}

pub async fn status(
    State(state): State<ApiState>,
    Path(system): Path<String>,
    Query(p): Query<BadgeParams>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let entity = entity_of(&state, &system, &p, false)?;
    let status = state
        .store
        .current_statuses()
        .await?
        .states
        .get(entity.id.to_string().as_str())
        .map_or(Status::Unknown, |s| s.status);
    let colour = match status {
        Status::Healthy => GREEN,
        Status::Degraded => YELLOW,
        Status::Unhealthy => RED,
        Status::Unknown => GREY,
    };
    let badge = Badge::new(&entity.label, status.as_str(), colour);
    Ok(serve(&badge, &headers))
}

pub async fn uptime(
    State(state): State<ApiState>,
    Path(system): Path<String>,
    Query(p): Query<BadgeParams>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let entity = entity_of(&state, &system, &p, true)?;
    let (slot, window) = match p.window.as_deref().unwrap_or("24h") {
        "24h" => (0, "24h"),
        "7d" => (1, "7d"),
        "30d" => (2, "30d"),
        other => {
            return Err(Refusal::BadRequest(format!(
                "window `{other}` is not one of 24h, 7d, 30d"
            )));
        }
    };
    let share = state
        .store
        .uptime(
            now_ms(),
            std::slice::from_ref(&entity.id.system().to_string()),
        )
        .await?
        .get(entity.id.to_string().as_str())
        .and_then(|u| u[slot]);
    let label = format!("{} uptime {window}", entity.label);
    let badge = match share {
        None => Badge::new(&label, "no data", GREY),
        Some(share) => {
            let percent = share * 100.0;
            let colour = match percent {
                p if p >= 99.9 => GREEN,
                p if p >= 99.0 => YELLOW_GREEN,
                p if p >= 95.0 => YELLOW,
                _ => RED,
            };
            Badge::new(&label, &format_percent(percent), colour)
        }
    };
    Ok(serve(&badge, &headers))
}

pub async fn latency(
    State(state): State<ApiState>,
    Path(system): Path<String>,
    Query(p): Query<BadgeParams>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let entity = entity_of(&state, &system, &p, false)?;
    let filter = SliceFilter {
        system: Some(entity.id.system().to_string()),
        check: None,
        environment: entity.id.environment().map(str::to_string),
        location: entity.id.location().map(str::to_string),
    };
    let now = now_ms();
    let history = state
        .store
        .history(&filter, now - DAY_MS, now + 1, Bucket::Hour)
        .await?;
    // Hours merge weighted by their runs.
    let (sum, runs) = history
        .iter()
        .filter(|p| p.latency_avg_ms > 0.0)
        .fold((0.0, 0), |(sum, runs), p| {
            (sum + p.latency_avg_ms * p.total as f64, runs + p.total)
        });
    let label = format!("{} latency 24h", entity.label);
    let badge = if runs == 0 {
        Badge::new(&label, "no data", GREY)
    } else {
        Badge::new(&label, &format!("{:.0} ms", sum / runs as f64), BLUE)
    };
    Ok(serve(&badge, &headers))
}

struct Found {
    id: EntityId,
    label: String,
}

/// Why no badge is drawn.
#[derive(Debug)]
pub enum Refusal {
    NotFound(String),
    BadRequest(String),
    Unavailable(StoreError),
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Refusal {
        Refusal::Unavailable(e)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::NotFound(why) => not_found(&why),
            Refusal::BadRequest(why) => (StatusCode::BAD_REQUEST, why).into_response(),
            Refusal::Unavailable(e) => {
                tracing::warn!("badge: the database did not answer: {e}");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the database did not answer",
                )
                    .into_response()
            }
        }
    }
}

/// The system (and environment) a badge is about, with its display name;
/// a 404 for one the configuration does not have.
fn entity_of(
    state: &ApiState,
    system: &str,
    p: &BadgeParams,
    window_allowed: bool,
) -> Result<Found, Refusal> {
    if p.window.is_some() && !window_allowed {
        return Err(Refusal::BadRequest(
            "`window` applies to uptime.svg only".into(),
        ));
    }
    let generation = state.live.generation();
    let config: &ConfigFile = &generation.setup.config.file;
    let Some(found) = config.systems.iter().find(|s| s.id == system) else {
        return Err(Refusal::NotFound(format!("no system `{system}`")));
    };
    let name = found.name.clone().unwrap_or_else(|| found.id.clone());
    match &p.environment {
        None => Ok(Found {
            id: EntityId::rollup(&found.id),
            label: name,
        }),
        Some(env) if found.environments.contains(env) => {
            let env_name = config
                .environments
                .iter()
                .find(|e| &e.id == env)
                .and_then(|e| e.name.clone())
                .unwrap_or_else(|| env.clone());
            Ok(Found {
                id: EntityId::of(&found.id, Some(env)),
                label: format!("{name} · {env_name}"),
            })
        }
        Some(env) => Err(Refusal::NotFound(format!(
            "system `{system}` is not in environment `{env}`"
        ))),
    }
}

fn format_percent(percent: f64) -> String {
    // Never round 99.996 % up to a perfect-looking "100%".
    if percent >= 100.0 {
        "100%".into()
    } else {
        format!("{:.2}%", (percent * 100.0).floor() / 100.0)
    }
}

fn not_found(why: &str) -> Response {
    let badge = Badge::new("badge", "not found", GREY);
    (
        StatusCode::NOT_FOUND,
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        badge.svg_with_title(why),
    )
        .into_response()
}

/// The SVG with an ETag, or 304 when the caller has it already.
fn serve(badge: &Badge, headers: &HeaderMap) -> Response {
    let body = badge.svg();
    let etag = format!("\"{:016x}\"", fnv1a(body.as_bytes()));
    let cached = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let common = [
        (header::ETAG, etag),
        // Revalidate every time: a badge is only as good as it is fresh.
        (header::CACHE_CONTROL, "no-cache".to_string()),
    ];
    if cached {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (common, [(header::CONTENT_TYPE, "image/svg+xml")], body).into_response()
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A label on grey and a message on its colour.
struct Badge {
    label: String,
    message: String,
    colour: &'static str,
}

impl Badge {
    fn new(label: &str, message: &str, colour: &'static str) -> Badge {
        Badge {
            label: label.to_string(),
            message: message.to_string(),
            colour,
        }
    }

    fn svg(&self) -> String {
        self.svg_with_title(&format!("{}: {}", self.label, self.message))
    }

    fn svg_with_title(&self, title: &str) -> String {
        let (label_w, message_w) = (text_width(&self.label), text_width(&self.message));
        let (left, right) = (label_w + 10.0, message_w + 10.0);
        let width = left + right;
        let (label, message, title) = (
            HtmlEscape(&self.label),
            HtmlEscape(&self.message),
            HtmlEscape(title),
        );
        let colour = self.colour;
        // Text is drawn at 10× and scaled, as shields does, for crisp
        // hinting; textLength pins each text to its estimated width.
        format!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="20" role="img" aria-label="{title}"><title>{title}</title><linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient><clipPath id="r"><rect width="{width:.0}" height="20" rx="3" fill="#fff"/></clipPath><g clip-path="url(#r)"><rect width="{left:.0}" height="20" fill="#555"/><rect x="{left:.0}" width="{right:.0}" height="20" fill="{colour}"/><rect width="{width:.0}" height="20" fill="url(#s)"/></g><g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="110"><text x="{lx:.0}" y="140" transform="scale(.1)" textLength="{lw:.0}">{label}</text><text x="{mx:.0}" y="140" transform="scale(.1)" textLength="{mw:.0}">{message}</text></g></svg>"##,
            lx = left * 5.0,
            lw = label_w * 10.0,
            mx = (left + right / 2.0) * 10.0,
            mw = message_w * 10.0,
        )
    }
}

/// The width of `text` in 11 px Verdana, from a coarse per-character
/// table: close enough that textLength's squeeze is not visible.
fn text_width(text: &str) -> f64 {
    text.chars()
        .map(|c| match c {
            'i' | 'j' | 'l' | '.' | ',' | ':' | ';' | '\'' | '|' | '!' => 3.5,
            ' ' | 'f' | 'r' | 't' | '(' | ')' | '[' | ']' | '-' | 'I' => 4.6,
            'm' | 'w' | 'M' | 'W' | '%' | '@' => 10.5,
            'A'..='Z' => 7.6,
            '0'..='9' => 7.0,
            _ => 6.6,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn badges_escape_names_and_size_to_their_text() {
        let short = Badge::new("a", "ok", GREEN).svg();
        let long = Badge::new("Web <shop> & co", "healthy", GREEN).svg();
        assert!(long.contains("Web &lt;shop&gt; &amp; co") && !long.contains("<shop>"));
        let width = |svg: &str| -> f64 {
            let start = svg.find("width=\"").unwrap() + 7;
            svg[start..].split('"').next().unwrap().parse().unwrap()
        };
        assert!(width(&long) > width(&short) + 50.0);
        assert!(long.contains(r#"role="img" aria-label="Web &lt;shop&gt; &amp; co: healthy""#));
    }

    #[test]
    fn uptime_never_rounds_up_to_perfect() {
        assert_eq!(format_percent(99.996), "99.99%");
        assert_eq!(format_percent(100.0), "100%");
        assert_eq!(format_percent(95.5), "95.50%");
    }
}
