//! Delivery of outbox notices: claimed under a lease, POSTed with an HMAC
//! signature and an idempotency key, retried with exponential backoff and
//! jitter. A notice whose deliverer died is claimed again when its lease
//! ends, so each is delivered at least once, always under one key.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{Notifier, Target};
use crate::clock::now_ms;
use crate::store::Store;
use crate::store::outbox::{Attempt, AttemptOutcome, Claimed};

/// Notices claimed per round.
const CLAIM: i64 = 32;
/// How often the outbox is looked at when nothing wakes the deliverer.
const POLL: Duration = Duration::from_millis(500);
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LONGEST_RETRY: Duration = Duration::from_secs(600);

pub struct Deliverer {
    pub store: Arc<Store>,
    /// Who holds the claims: unique per process.
    pub owner: String,
    pub notifier: Arc<dyn Fn() -> Arc<Notifier> + Send + Sync>,
    pub client: reqwest::Client,
}

/// The HTTP client for webhooks: no redirects (a webhook URL that moves is
/// a configuration error, and a redirect could carry the body elsewhere).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("checkhost/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// How long a claim holds: the longest attempt plus a margin. A deliverer
/// that dies mid-attempt delays the retry by no more than this.
fn lease_for(notifier: &Notifier) -> Duration {
    let longest = notifier
        .targets
        .values()
        .map(|t| t.timeout)
        .max()
        .unwrap_or_default();
    longest + Duration::from_secs(5)
}

/// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`: the timestamp
/// lets receivers refuse replays.
pub fn signature(key: &str, unix_seconds: i64, body: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(format!("{unix_seconds}.{body}").as_bytes());
    format!(
        "t={unix_seconds},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Exponential backoff with full jitter over its upper half: retries of
/// many notices do not hit a recovering receiver in lockstep.
pub fn backoff(attempts_made: i64) -> Duration {
    let exp = FIRST_RETRY.saturating_mul(1 << attempts_made.clamp(0, 20) as u32);
    let ceiling = exp.min(LONGEST_RETRY);
    ceiling.mul_f64(0.5 + fastrand::f64() * 0.5)
}

impl Deliverer {
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let this = Arc::new(self);
        let mut events = this.store.subscribe();
        loop {
            let claimed = {
                let lease = lease_for(&(this.notifier)());
                match this
                    .store
                    .claim_notices(&this.owner, now_ms(), lease, CLAIM)
                    .await
                {
                    Ok(claimed) => claimed,
                    Err(e) => {
                        tracing::warn!("cannot claim notifications, retrying: {e}");
                        Vec::new()
                    }
                }
            };
            let busy = claimed.len() as i64 == CLAIM;
            let mut sending = JoinSet::new();
            for notice in claimed {
                let this = this.clone();
                sending.spawn(async move { this.deliver(notice).await });
            }
            // On shutdown, attempts in flight are dropped: their leases run
            // out and they are sent again, under the same key.
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    done = sending.join_next() => if done.is_none() { break },
                }
            }
            if busy && !*stop.borrow() {
                continue;
            }
            // Wake on a new transition (its notices may be due now) or poll.
            tokio::select! {
                _ = stop.changed() => return,
                _ = events.recv() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    async fn deliver(&self, notice: Claimed) {
        let notifier = (self.notifier)();
        let started = Instant::now();
        let at_ms = now_ms();
        let (status_code, error, retry) = match notifier.targets.get(&notice.target) {
            None => (
                None,
                Some(format!(
                    "target `{}` is no longer configured",
                    notice.target
                )),
                false,
            ),
            Some(target) => self.send(target, &notice, at_ms).await,
        };
        let error = error.map(|e| notifier.mask(&e));
        let attempts_left = notifier
            .targets
            .get(&notice.target)
            .is_some_and(|t| notice.attempts + 1 < i64::from(t.config.max_attempts));
        let outcome = if error.is_none() {
            AttemptOutcome::Delivered
        } else if retry && attempts_left {
            AttemptOutcome::RetryAt(at_ms + backoff(notice.attempts).as_millis() as i64)
        } else {
            AttemptOutcome::GiveUp
        };
        match outcome {
            AttemptOutcome::Delivered => tracing::info!(
                target_id = %notice.target, key = %notice.idempotency_key, "notification delivered"
            ),
            AttemptOutcome::RetryAt(_) => tracing::warn!(
                target_id = %notice.target, key = %notice.idempotency_key,
                error = error.as_deref().unwrap_or(""), "notification failed, will retry"
            ),
            AttemptOutcome::GiveUp => tracing::error!(
                target_id = %notice.target, key = %notice.idempotency_key,
                error = error.as_deref().unwrap_or(""), "notification given up"
            ),
        }
        let attempt = Attempt {
            at_ms,
            status_code,
            error,
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            outcome,
        };
        if let Err(e) = self
            .store
            .finish_attempt(&self.owner, &notice, &attempt)
            .await
        {
            // The lease runs out and the notice is sent again, same key.
            tracing::warn!("cannot record a notification attempt: {e}");
        }
    }

    /// One POST: `(status, error, worth retrying)`.
    async fn send(
        &self,
        target: &Target,
        notice: &Claimed,
        at_ms: i64,
    ) -> (Option<u16>, Option<String>, bool) {
        let url = match &target.url {
            Ok(url) => url,
            Err(e) => return (None, Some(e.clone()), true),
        };
        let mut request = self
            .client
            .post(url)
            .timeout(target.timeout)
            .header("content-type", &notice.content_type)
            .header("idempotency-key", &notice.idempotency_key)
            .header("x-checkhost-idempotency-key", &notice.idempotency_key);
        match &target.headers {
            Ok(headers) => {
                for (name, value) in headers {
                    request = request.header(name, value);
                }
            }
            Err(e) => return (None, Some(e.clone()), true),
        }
        match &target.signing_key {
            None => {}
            Some(Ok(key)) => {
                request = request.header(
                    "x-checkhost-signature",
                    signature(key, at_ms / 1000, &notice.body),
                );
            }
            Some(Err(e)) => return (None, Some(e.clone()), true),
        }
        match request.body(notice.body.clone()).send().await {
            Ok(response) => {
                let status = response.status();
                if status.is_success() {
                    (Some(status.as_u16()), None, false)
                } else {
                    // Timeouts, rate limits and server errors pass; other
                    // refusals will not change by asking again.
                    let retry = status.is_server_error()
                        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                        || status == reqwest::StatusCode::REQUEST_TIMEOUT;
                    (
                        Some(status.as_u16()),
                        Some(format!("the receiver answered {status}")),
                        retry,
                    )
                }
            }
            Err(e) if e.is_timeout() => (
                None,
                Some(format!("no answer within {}", humantime(target.timeout))),
                true,
            ),
            // Without the URL: it may be a secret.
            Err(e) => (
                None,
                Some(format!("cannot reach the receiver: {}", e.without_url())),
                true,
            ),
        }
    }
}

fn humantime(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_stable_hmacs_over_time_and_body() {
        let a = signature("k", 1_700_000_000, "{}");
        assert_eq!(a, signature("k", 1_700_000_000, "{}"));
        assert_ne!(a, signature("k", 1_700_000_001, "{}"));
        assert_ne!(a, signature("other", 1_700_000_000, "{}"));
        assert!(a.starts_with("t=1700000000,v1=") && a.len() == "t=1700000000,v1=".len() + 64);
    }

    #[test]
    fn backoff_grows_jitters_and_stops_growing() {
        for n in 0..30 {
            let ceiling = FIRST_RETRY
                .saturating_mul(1 << n.min(20))
                .min(LONGEST_RETRY);
            let d = backoff(n as i64);
            assert!(d >= ceiling / 2 && d <= ceiling, "attempt {n}: {d:?}");
        }
    }
}
