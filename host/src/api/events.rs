//! `GET /api/v1/events`: runs and transitions as server-sent events. Each
//! run's group of events ends with `id: <run id>`; a client reconnecting
//! with `Last-Event-ID` gets what it missed from the database, then the live
//! stream, with nothing lost and nothing twice.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};

use super::ApiState;
use super::error::{ApiError, ErrorBody, Params};
use crate::runtime::mask::Masker;
use crate::store::{Store, StoreEvent};

/// Runs read from the database per replay query.
const REPLAY_PAGE: i64 = 500;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// Start after this run id, as `Last-Event-ID` does (the header wins).
    /// Without either, the stream starts with the next run.
    #[param(minimum = 0)]
    after: Option<i64>,
}

#[utoipa::path(
    get, path = "/api/v1/events", tag = "events",
    params(EventParams, ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id")),
    responses(
        (status = 200, description = "`event: run` and `event: transition` messages, JSON data; \
            the last event of each run carries `id: <run id>`", content_type = "text/event-stream", body = String),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    )
)]
pub async fn stream(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Params(p): Params<EventParams>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let header = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.trim().parse::<i64>().map_err(|_| {
                ApiError::bad_request("Last-Event-ID", "not an event id of this stream")
            })
        })
        .transpose()?;
    if p.after.is_some_and(|a| a < 0) {
        return Err(ApiError::bad_request("after", "must not be negative"));
    }
    // Subscribed before reading the database: nothing falls in between.
    let live = state.store.subscribe();
    let after = match header.or(p.after) {
        Some(id) => id,
        None => state.store.newest_run_id().await?,
    };
    let (tx, rx) = mpsc::channel::<Event>(256);
    let masker = state.scheduler.generation().masker.clone();
    tokio::spawn(forward(
        state.store.clone(),
        live,
        after,
        tx,
        masker,
        state.stop.clone(),
    ));
    let events = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (Ok(event), rx))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// Replays from the database after `after`, then forwards live events,
/// going back to the database whenever the live channel dropped some.
async fn forward(
    store: Arc<Store>,
    mut live: broadcast::Receiver<StoreEvent>,
    mut after: i64,
    tx: mpsc::Sender<Event>,
    masker: Masker,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut replay = true;
    loop {
        if replay {
            match store.events_after(after, REPLAY_PAGE).await {
                Ok(events) => {
                    let full = events.len() as i64 == REPLAY_PAGE;
                    for event in events {
                        if !send(&tx, &event, &masker).await {
                            return;
                        }
                        after = event.run.id;
                    }
                    replay = full;
                }
                Err(e) => {
                    tracing::warn!("event stream cannot read the database, closing it: {e}");
                    return;
                }
            }
            continue;
        }
        tokio::select! {
            () = tx.closed() => return,
            _ = stop.changed() => return,
            received = live.recv() => match received {
                Ok(event) if event.run.id > after => {
                    if !send(&tx, &event, &masker).await {
                        return;
                    }
                    after = event.run.id;
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => replay = true,
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

/// Sends a run and its transitions; the last of them carries the run id.
async fn send(tx: &mpsc::Sender<Event>, event: &StoreEvent, masker: &Masker) -> bool {
    let mut run = event.run.clone();
    run.error = run.error.map(|e| masker.text(&e));
    let mut messages = vec![("run", serde_json::to_string(&run))];
    messages.extend(
        event
            .transitions
            .iter()
            .map(|t| ("transition", serde_json::to_string(t))),
    );
    let last = messages.len() - 1;
    for (i, (name, data)) in messages.into_iter().enumerate() {
        let mut message = Event::default().event(name).data(data.unwrap_or_default());
        if i == last {
            message = message.id(event.run.id.to_string());
        }
        if tx.send(message).await.is_err() {
            return false;
        }
    }
    true
}
