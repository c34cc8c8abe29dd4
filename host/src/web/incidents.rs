//! Incidents as people read them: open ones above the status table, the
//! history page `/incidents`, and the Atom feed `/feed.atom`.

use atom_syndication::{Content, Entry, Feed, FixedDateTime, Generator, Link, Person, Text};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{iso, render};
use crate::api::ApiState;
use crate::api::error::ApiError;
use crate::config::ConfigFile;
use crate::store::incidents::Incident;

/// Incidents on the history page and in the feed.
const HISTORY: i64 = 50;

/// An incident for a template: names instead of ids, times as text.
pub fn view(incident: &Incident, config: &ConfigFile) -> Value {
    let systems: Vec<String> = incident
        .systems
        .iter()
        .map(|id| {
            config
                .system(id)
                .and_then(|s| s.name.clone())
                .unwrap_or_else(|| id.clone())
        })
        .collect();
    let updates: Vec<Value> = incident
        .updates
        .iter()
        .rev()
        .map(|u| json!({"state": u.state.as_str(), "body": u.body, "at": iso(u.at_ms)}))
        .collect();
    json!({
        "id": incident.id,
        "title": incident.title,
        "severity": incident.severity.as_str(),
        "systems": if systems.is_empty() { "all systems".to_string() } else { systems.join(", ") },
        "started": iso(incident.created_at_ms),
        "resolved": incident.resolved_at_ms.map(iso),
        "latest": updates.first(),
        "updates": updates,
    })
}

/// Whether an incident concerns `system` (one naming no systems concerns
/// all of them).
pub fn affects(incident: &Incident, system: &str) -> bool {
    incident.systems.is_empty() || incident.systems.iter().any(|s| s == system)
}

pub async fn history(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let generation = state.live.generation();
    let config = &generation.setup.config.file;
    let incidents = state.store.incidents(false, None, HISTORY).await?;
    let items: Vec<Value> = incidents.iter().map(|i| view(i, config)).collect();
    Ok(render("incidents.html", json!({"incidents": items})))
}

fn at(ms: i64) -> FixedDateTime {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .fixed_offset()
}

pub async fn feed(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let incidents = state.store.incidents(false, None, HISTORY).await?;
    let updated = incidents.iter().map(|i| i.updated_at_ms).max().unwrap_or(0);
    let entries = incidents
        .iter()
        .map(|i| {
            let timeline: Vec<String> = i
                .updates
                .iter()
                .rev()
                .map(|u| format!("{} — {}: {}", iso(u.at_ms), u.state.as_str(), u.body))
                .collect();
            Entry {
                id: format!("urn:checkhost:incident:{}", i.id),
                title: Text::plain(format!("[{}] {}", i.severity.as_str(), i.title)),
                updated: at(i.updated_at_ms),
                published: Some(at(i.created_at_ms)),
                links: vec![Link {
                    href: format!("/incidents#incident-{}", i.id),
                    rel: "alternate".into(),
                    ..Default::default()
                }],
                content: Some(Content {
                    value: Some(timeline.join("\n\n")),
                    content_type: Some("text".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }
        })
        .collect();
    let feed = Feed {
        id: "urn:checkhost:incidents".into(),
        title: Text::plain("Incidents"),
        updated: at(updated),
        authors: vec![Person {
            name: "checkhost".into(),
            ..Default::default()
        }],
        generator: Some(Generator {
            value: "checkhost".into(),
            ..Default::default()
        }),
        links: vec![Link {
            href: "/feed.atom".into(),
            rel: "self".into(),
            ..Default::default()
        }],
        entries,
        ..Default::default()
    };
    Ok((
        [(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
        feed.to_string(),
    )
        .into_response())
}
