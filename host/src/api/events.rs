//! `GET /api/v1/events`: runs and transitions as server-sent events. A run
//! and the transitions it caused are a group; its messages carry the ids
//! `<run id>:0`, `<run id>:1`, …, so a client reconnecting with
//! `Last-Event-ID` gets what it missed from the database — the rest of a
//! group it saw in part, then the runs after — and then the live stream,
//! with nothing lost and nothing twice.

use std::collections::BTreeSet;
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
    /// Start after this run id (its whole group), as `Last-Event-ID` does;
    /// the header wins.
    /// Without either, the stream starts with the next run.
    #[param(minimum = 0)]
    after: Option<i64>,
}

#[utoipa::path(
    get, path = "/api/v1/events", operation_id = "streamEvents", tag = "events",
    params(EventParams, ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id")),
    responses(
        (status = 200, description = "`event: run` and `event: transition` messages, JSON data, \
            with ids `<run id>:<n>` (n = 0 for the run, then its transitions)", content_type = "text/event-stream", body = String),
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
        .map(|v| {
            v.to_str().ok().and_then(Position::parse).ok_or_else(|| {
                ApiError::bad_request("Last-Event-ID", "not an event id of this stream")
            })
        })
        .transpose()?;
    if p.after.is_some_and(|a| a < 0) {
        return Err(ApiError::bad_request("after", "must not be negative"));
    }
    // Subscribed before reading the database: nothing falls in between.
    let live = state.store.subscribe();
    let after = match header.or(p.after.map(Position::after_run)) {
        Some(position) => position,
        None => Position::after_run(state.store.newest_run_id().await?),
    };
    let (tx, rx) = mpsc::channel::<Event>(256);
    let masker = state.live.generation().masker.clone();
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

/// Where a client is: run `run` seen up to its message `seen` (`None`: the
/// whole group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    run: i64,
    seen: Option<usize>,
}

impl Position {
    fn after_run(run: i64) -> Position {
        Position { run, seen: None }
    }

    /// `<run>` or `<run>:<message>`.
    fn parse(text: &str) -> Option<Position> {
        let text = text.trim();
        let (run, seen) = match text.split_once(':') {
            Some((run, seen)) => (run, Some(seen.parse().ok()?)),
            None => (text, None),
        };
        let run = run.parse().ok().filter(|r: &i64| *r >= 0)?;
        Some(Position { run, seen })
    }
}

/// Replays from the database after `from`, then forwards live events,
/// going back to the database whenever the live channel dropped some. In a
/// cluster, other nodes' runs reach the database only, so it is also read
/// every second, a few seconds back (their ids come from their clocks and
/// commit a little out of order); what was sent already is not sent again.
async fn forward(
    store: Arc<Store>,
    mut live: broadcast::Receiver<StoreEvent>,
    from: Position,
    tx: mpsc::Sender<Event>,
    masker: Masker,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let cluster = store.engine() == "postgres";
    // A group seen in part is read again, and its seen messages skipped.
    let (after, mut skip) = match from.seen {
        Some(seen) => (from.run - 1, Some((from.run, seen + 1))),
        None => (from.run, None),
    };
    let mut out = Outlet {
        tx,
        masker,
        stop,
        sent: BTreeSet::new(),
        after,
        floor: after,
    };
    let mut poll = tokio::time::interval(CLUSTER_POLL);
    let mut replay_from = Some(after);
    loop {
        if *out.stop.borrow() {
            return;
        }
        if let Some(start) = replay_from.take() {
            let events = match store.events_after(start, REPLAY_PAGE).await {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!("event stream cannot read the database, closing it: {e}");
                    return;
                }
            };
            if events.len() as i64 == REPLAY_PAGE {
                replay_from = events.last().and_then(StoreEvent::run_id);
            }
            for event in events {
                let first = match skip.take() {
                    Some((run, n)) if Some(run) == event.run_id() => n,
                    _ => 0,
                };
                if !out.offer(&event, first).await {
                    return;
                }
            }
            continue;
        }
        tokio::select! {
            () = out.tx.closed() => return,
            _ = out.stop.changed() => return,
            _ = poll.tick(), if cluster => {
                replay_from = Some(out.after.saturating_sub(CLUSTER_LOOK_BACK).max(out.floor));
            }
            received = live.recv() => match received {
                Ok(event) => {
                    if !out.offer(&event, 0).await {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => replay_from = Some(out.after),
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

/// How often, and how far back in run-id time, a cluster's stream reads
/// the database for other nodes' runs.
const CLUSTER_POLL: std::time::Duration = std::time::Duration::from_secs(1);
const CLUSTER_LOOK_BACK: i64 = 5_000 << 20;

/// One client's side of the stream: what it was sent, and where it resumed.
struct Outlet {
    tx: mpsc::Sender<Event>,
    masker: Masker,
    stop: tokio::sync::watch::Receiver<bool>,
    /// Run ids sent within the look-back window.
    sent: BTreeSet<i64>,
    /// The highest run id sent.
    after: i64,
    /// Runs at or before where the client resumed were its to see already.
    floor: i64,
}

impl Outlet {
    /// Sends a run's group unless it went out already or lies before where
    /// the client resumed; false when the client is gone or the daemon stops.
    async fn offer(&mut self, event: &StoreEvent, first: usize) -> bool {
        // Transitions of a pause or a configuration change go out live only:
        // they have no run to resume from.
        let Some(id) = event.run_id() else {
            return send(&self.tx, event, 0, &self.masker, &mut self.stop).await;
        };
        if (id <= self.floor && first == 0) || self.sent.contains(&id) {
            return true;
        }
        if !send(&self.tx, event, first, &self.masker, &mut self.stop).await {
            return false;
        }
        self.sent.insert(id);
        self.after = self.after.max(id);
        self.sent = self
            .sent
            .split_off(&self.after.saturating_sub(CLUSTER_LOOK_BACK));
        true
    }
}

/// Sends a run's group from message `first` on; false when the client is
/// gone or the daemon stops.
async fn send(
    tx: &mpsc::Sender<Event>,
    event: &StoreEvent,
    first: usize,
    masker: &Masker,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    let mut messages = Vec::new();
    if let Some(run) = &event.run {
        let mut run = run.clone();
        run.error = run.error.map(|e| masker.text(&e));
        messages.push(("run", serde_json::to_string(&run)));
    }
    messages.extend(
        event
            .transitions
            .iter()
            .map(|t| ("transition", serde_json::to_string(t))),
    );
    for (i, (name, data)) in messages.into_iter().enumerate().skip(first) {
        let mut message = Event::default().event(name);
        if let Some(run) = event.run_id() {
            message = message.id(format!("{run}:{i}"));
        }
        let message = message.data(data.unwrap_or_default());
        tokio::select! {
            sent = tx.send(message) => if sent.is_err() { return false },
            _ = stop.changed() => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_name_a_run_and_a_message_of_its_group() {
        assert_eq!(
            Position::parse("42"),
            Some(Position {
                run: 42,
                seen: None
            })
        );
        assert_eq!(
            Position::parse(" 42:1 "),
            Some(Position {
                run: 42,
                seen: Some(1)
            })
        );
        for bad in ["", "x", "42:", "42:x", "-1", ":1"] {
            assert_eq!(Position::parse(bad), None, "{bad}");
        }
    }
}
