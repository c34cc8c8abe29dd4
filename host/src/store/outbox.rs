//! The notification outbox: one row per (transition, webhook target) written
//! in the transition's own transaction, claimed by a deliverer under a lease,
//! and the log of every delivery attempt.

use std::sync::{Arc, RwLock};

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, QueryBuilder, Transaction};

use super::db::{WritePool, with_pool};
use super::{Store, StoreError, TransitionEvent};

/// A webhook a transition goes to, with its body rendered once so that every
/// retry sends the same bytes. `suppressed` keeps the row for the delivery
/// log (a maintenance window, say) without sending it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub target: String,
    pub idempotency_key: String,
    pub body: String,
    pub content_type: String,
    pub suppressed: Option<String>,
    /// The dependency whose being unhealthy holds it (suppressed until the
    /// dependency leaves that state).
    pub held_by: Option<String>,
}

/// Decides, for a committed transition, which webhooks it goes to.
pub trait Route: Send + Sync {
    /// Whether any assignment has dependencies: without, nothing is ever
    /// held, and nothing needs releasing.
    fn has_dependencies(&self) -> bool;
    /// The entities whose being unhealthy holds this transition's notices
    /// (its assignment's `dependsOn`).
    fn dependencies(&self, transition: &TransitionEvent) -> Vec<String>;
    /// Its notices; `held_by` is an unhealthy dependency, if any.
    fn route(&self, transition: &TransitionEvent, held_by: Option<&str>) -> Vec<Notice>;
}

/// The route of the current configuration; replaced on reload.
#[derive(Clone, Default)]
pub struct SharedRouter(Arc<RwLock<Option<Arc<dyn Route>>>>);

impl SharedRouter {
    pub fn set(&self, router: Arc<dyn Route>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(router);
    }

    pub fn current(&self) -> Option<Arc<dyn Route>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The notices of committed transitions as outbox rows, inside their
/// transaction: each held when a dependency of its assignment is unhealthy
/// as of this transaction.
pub(crate) async fn route<'t, DB>(
    tx: &mut Transaction<'static, DB>,
    router: Option<&dyn Route>,
    transitions: impl Iterator<Item = &'t TransitionEvent> + Clone,
) -> Result<Vec<OutboxRow<'t>>, sqlx::Error>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: Default + sqlx::IntoArguments<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (String,): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let Some(router) = router else {
        return Ok(Vec::new());
    };
    let wanted: Vec<(&TransitionEvent, Vec<String>)> = transitions
        .filter(|t| t.own_slice)
        .map(|t| (t, router.dependencies(t)))
        .collect();
    let unhealthy = unhealthy_among(tx, wanted.iter().flat_map(|(_, d)| d.iter())).await?;
    Ok(wanted
        .into_iter()
        .flat_map(|(t, deps)| {
            let held_by = deps.iter().find(|d| unhealthy.contains(*d)).cloned();
            router
                .route(t, held_by.as_deref())
                .into_iter()
                .map(move |n| {
                    (
                        t.id.unwrap_or_default(),
                        t.entity_id.as_str(),
                        t.kind.as_str(),
                        n,
                    )
                })
        })
        .collect())
}

/// `a, b, c)`: the values of an `IN (` list the query opened, bound.
fn push_list<'v, DB>(q: &mut QueryBuilder<DB>, values: impl IntoIterator<Item = &'v String>)
where
    DB: sqlx::Database,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let mut list = q.separated(", ");
    for v in values {
        list.push_bind(v.clone());
    }
    list.push_unseparated(")");
}

/// Which of `entities` are unhealthy, as the transaction sees them.
async fn unhealthy_among<'e, DB>(
    tx: &mut Transaction<'static, DB>,
    entities: impl Iterator<Item = &'e String>,
) -> Result<std::collections::HashSet<String>, sqlx::Error>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: Default + sqlx::IntoArguments<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (String,): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let entities: std::collections::BTreeSet<&String> = entities.collect();
    let mut found = std::collections::HashSet::new();
    let entities: Vec<&String> = entities.into_iter().collect();
    for chunk in entities.chunks(500) {
        let mut q = QueryBuilder::<DB>::new(
            "SELECT entity_id FROM entity_state WHERE status = 'unhealthy' AND entity_id IN (",
        );
        push_list(&mut q, chunk.iter().copied());
        let rows: Vec<(String,)> = q.build_query_as().fetch_all(&mut **tx).await?;
        found.extend(rows.into_iter().map(|(e,)| e));
    }
    Ok(found)
}

/// Notices held by entities that have just stopped being unhealthy go out
/// now when their transition still stands (see [`release_for`]).
pub(crate) async fn release_held<DB>(
    tx: &mut Transaction<'static, DB>,
    router: Option<&dyn Route>,
    transitions: &[&TransitionEvent],
    now_ms: i64,
) -> Result<(), sqlx::Error>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: Default + sqlx::IntoArguments<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (String,): for<'r> sqlx::FromRow<'r, DB::Row>,
    HeldRow: for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let Some(router) = router.filter(|r| r.has_dependencies()) else {
        return Ok(());
    };
    let left: Vec<String> = transitions
        .iter()
        .filter(|t| t.from == super::state::Status::Unhealthy && t.to != t.from)
        .map(|t| t.entity_id.clone())
        .collect();
    release_for(tx, router, &left, now_ms).await
}

/// The notices held by `left` (entities no longer unhealthy) go out now
/// when their escalation still stands (the dependent is still down: the
/// operator needs to hear it) and nothing else holds them; a held
/// de-escalation or recovery, or a transition since superseded, stays in
/// the log unsent: nobody was told of the outage it would end. A released
/// notice counts as sent now, for reminders.
async fn release_for<DB>(
    tx: &mut Transaction<'static, DB>,
    router: &dyn Route,
    left: &[String],
    now_ms: i64,
) -> Result<(), sqlx::Error>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: Default + sqlx::IntoArguments<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (String,): for<'r> sqlx::FromRow<'r, DB::Row>,
    HeldRow: for<'r> sqlx::FromRow<'r, DB::Row>,
{
    if left.is_empty() {
        return Ok(());
    }
    let mut q = QueryBuilder::<DB>::new(
        "SELECT o.id, t.id, t.entity_id, t.from_status, t.to_status, t.check_id, t.environment_id,
                t.created_at, t.run_id
         FROM outbox o JOIN transitions t ON t.id = o.transition_id
         WHERE o.state = 'suppressed' AND o.kind = 'escalation'
           AND t.id = (SELECT MAX(l.id) FROM transitions l WHERE l.entity_id = t.entity_id)
           AND o.held_by IN (",
    );
    push_list(&mut q, left);
    let held: Vec<HeldRow> = q.build_query_as().fetch_all(&mut **tx).await?;
    let held: Vec<(i64, TransitionEvent, Vec<String>)> = held
        .into_iter()
        .map(|(outbox_id, id, entity, from, to, check, env, at, run)| {
            let t = super::read::transition_event((id, entity, from, to, check, env, at, run));
            let deps = router.dependencies(&t);
            (outbox_id, t, deps)
        })
        .collect();
    let unhealthy = unhealthy_among(tx, held.iter().flat_map(|(_, _, d)| d.iter())).await?;
    for (outbox_id, _, deps) in held {
        match deps.into_iter().find(|d| unhealthy.contains(d)) {
            Some(still) => {
                sqlx::query::<DB>("UPDATE outbox SET held_by = $1 WHERE id = $2")
                    .bind(Some(still))
                    .bind(outbox_id)
                    .execute(&mut **tx)
                    .await?;
            }
            None => {
                sqlx::query::<DB>(
                    "UPDATE outbox SET state = 'pending', reason = NULL, held_by = NULL,
                        next_attempt_at = $1, created_at = $1 WHERE id = $2",
                )
                .bind(now_ms)
                .bind(outbox_id)
                .execute(&mut **tx)
                .await?;
            }
        }
    }
    // What stays unsent (superseded, or not an escalation) is no longer
    // held by anything: it stays in the log as it is.
    let mut q = QueryBuilder::<DB>::new(
        "UPDATE outbox SET held_by = NULL WHERE state = 'suppressed' AND held_by IN (",
    );
    push_list(&mut q, left);
    q.build().execute(&mut **tx).await?;
    Ok(())
}

impl Store {
    /// Releases what is held by entities no longer unhealthy that no
    /// transition announced: a dependency paused or removed, or (in a
    /// cluster) one that recovered while another node was holding a
    /// notice for it. Run with the reminders.
    pub async fn sweep_holds(&self, router: &dyn Route, now_ms: i64) -> Result<(), StoreError> {
        // Most sweeps find nothing held: a read, without the write lock.
        let any: Option<i64> = with_pool!(&self.db.read().await, pool => {
            sqlx::query_scalar(
                "SELECT id FROM outbox WHERE state = 'suppressed' AND held_by IS NOT NULL LIMIT 1",
            )
            .fetch_optional(pool)
            .await?
        });
        if any.is_none() {
            return Ok(());
        }
        with_pool!(&self.db.write().await?, pool => {
            let mut tx = pool.begin_write().await?;
            let holders: Vec<(String,)> = sqlx::query_as(
                "SELECT DISTINCT held_by FROM outbox WHERE state = 'suppressed' AND held_by IS NOT NULL",
            )
            .fetch_all(&mut *tx)
            .await?;
            let holders: Vec<String> = holders.into_iter().map(|(h,)| h).collect();
            if !holders.is_empty() {
                let unhealthy = unhealthy_among(&mut tx, holders.iter()).await?;
                let left: Vec<String> =
                    holders.into_iter().filter(|h| !unhealthy.contains(h)).collect();
                release_for(&mut tx, router, &left, now_ms).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }
}

/// An outbox row held by a dependency, with its transition.
pub(crate) type HeldRow = (
    i64,
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    Option<i64>,
);

/// The key a receiver deduplicates on: the same for every retry of one
/// notice, different for each target and each reminder. The run id (time
/// based) keeps keys apart even across a database that was reset.
pub fn idempotency_key(t: &TransitionEvent, target: &str, reminder: u32) -> String {
    let text = format!(
        "{}/{}/{}/{target}/{reminder}",
        t.id.unwrap_or_default(),
        // A re-evaluation has no run: its time keeps keys apart instead.
        t.run_id.unwrap_or(t.at_ms),
        t.entity_id
    );
    hex::encode(&Sha256::digest(text.as_bytes())[..16])
}

/// `transition_id, entity, kind, notice` rows for the outbox insert.
pub(crate) type OutboxRow<'a> = (i64, &'a str, &'a str, Notice);

/// Writes the notices of committed transitions, inside their transaction.
pub(crate) async fn insert<DB>(
    tx: &mut Transaction<'static, DB>,
    rows: &[OutboxRow<'_>],
    now_ms: i64,
) -> Result<(), sqlx::Error>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: Default + sqlx::IntoArguments<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for chunk in rows.chunks(200) {
        let mut q = QueryBuilder::<DB>::new(
            "INSERT INTO outbox (transition_id, entity_id, target, kind, idempotency_key, body,
                content_type, state, reason, held_by, next_attempt_at, created_at) ",
        );
        q.push_values(chunk, |mut row, (transition, entity, kind, n)| {
            row.push_bind(*transition)
                .push_bind(*entity)
                .push_bind(n.target.as_str())
                .push_bind(*kind)
                .push_bind(n.idempotency_key.as_str())
                .push_bind(n.body.as_str())
                .push_bind(n.content_type.as_str())
                .push_bind(if n.suppressed.is_some() {
                    "suppressed"
                } else {
                    "pending"
                })
                .push_bind(n.suppressed.as_deref())
                .push_bind(n.held_by.as_deref())
                .push_bind(now_ms)
                .push_bind(now_ms);
        });
        q.push(" ON CONFLICT (idempotency_key) DO NOTHING");
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// A notice claimed for delivery.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub target: String,
    pub idempotency_key: String,
    pub body: String,
    pub content_type: String,
    /// Attempts made before this one.
    pub attempts: i64,
}

/// How one delivery attempt ended.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub at_ms: i64,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: f64,
    /// `None`: delivered. `Some(at)`: try again at `at`. A failed attempt
    /// with no retry left gives up (`failed`).
    pub outcome: AttemptOutcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    RetryAt(i64),
    GiveUp,
}

/// One row of the delivery log.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: i64,
    pub transition_id: i64,
    pub entity_id: String,
    pub target: String,
    /// `escalation`, `de-escalation`, `recovery` or `reminder`.
    pub kind: String,
    pub idempotency_key: String,
    /// `pending`, `delivered`, `failed` or `suppressed`.
    pub state: String,
    /// Why it is suppressed, or the last attempt's error.
    pub reason: Option<String>,
    pub attempts: i64,
    pub next_attempt_at_ms: Option<i64>,
    pub created_at_ms: i64,
    pub delivered_at_ms: Option<i64>,
    pub last_status_code: Option<i64>,
}

type DeliveryRow = (
    i64,
    i64,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
);

/// Filters of the delivery log.
#[derive(Debug, Default, Clone)]
pub struct DeliveryFilter {
    pub target: Option<String>,
    pub state: Option<String>,
    pub entity: Option<String>,
    /// Rows with a smaller id (keyset pagination, newest first).
    pub before: Option<i64>,
    pub limit: i64,
}

/// An unhealthy entity whose newest notice to a target is older than the
/// target's reminder interval.
#[derive(Debug, Clone)]
pub struct Overdue {
    pub transition: TransitionEvent,
    /// Notices this transition already had at the target (the first one and
    /// its reminders): numbers the next reminder.
    pub sent: u32,
}

impl Store {
    /// Claims up to `limit` notices due at `now_ms` for `owner` for
    /// `lease`. A claim whose owner died expires with its lease and is
    /// claimed again. Leases run on the database's clock, so a node whose
    /// clock is off neither steals a live claim nor holds a dead one; due
    /// times are the nodes' own (written and compared on node clocks, so a
    /// skewed node shifts only when it sends).
    pub async fn claim_notices(
        &self,
        owner: &str,
        now_ms: i64,
        lease: std::time::Duration,
        limit: i64,
    ) -> Result<Vec<Claimed>, StoreError> {
        // PostgreSQL lets concurrent claimers skip each other's rows; SQLite
        // serialises writers anyway.
        let skip_locked = if self.engine() == "postgres" {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let now = self.db_now();
        let sql = format!(
            "UPDATE outbox SET claimed_by = $1, claimed_until = {now} + $2
             WHERE id IN (SELECT id FROM outbox WHERE state = 'pending' AND next_attempt_at <= $3
                 AND (claimed_until IS NULL OR claimed_until < {now})
                 ORDER BY next_attempt_at, id LIMIT $4{skip_locked})
             RETURNING id, target, idempotency_key, body, content_type, attempts"
        );
        let rows: Vec<(i64, String, String, String, String, i64)> = with_pool!(&self.db.write().await?, pool => {
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(owner)
                .bind(lease.as_millis() as i64)
                .bind(now_ms)
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(
                |(id, target, idempotency_key, body, content_type, attempts)| Claimed {
                    id,
                    target,
                    idempotency_key,
                    body,
                    content_type,
                    attempts,
                },
            )
            .collect())
    }

    /// Records an attempt and what follows from it, if `owner` still holds
    /// the claim (an expired lease may have passed it on).
    pub async fn finish_attempt(
        &self,
        owner: &str,
        notice: &Claimed,
        attempt: &Attempt,
    ) -> Result<(), StoreError> {
        let (state, next, delivered_at) = match attempt.outcome {
            AttemptOutcome::Delivered => ("delivered", attempt.at_ms, Some(attempt.at_ms)),
            AttemptOutcome::RetryAt(at) => ("pending", at, None),
            AttemptOutcome::GiveUp => ("failed", attempt.at_ms, None),
        };
        let number = notice.attempts + 1;
        let status_code = attempt.status_code.map(i64::from);
        with_pool!(&self.db.write().await?, pool => {
            let mut tx = pool.begin_write().await?;
            let updated = sqlx::query(
                "UPDATE outbox SET state = $1, attempts = $2, next_attempt_at = $3, delivered_at = $4,
                     reason = $5, claimed_by = NULL, claimed_until = NULL
                 WHERE id = $6 AND claimed_by = $7",
            )
            .bind(state)
            .bind(number)
            .bind(next)
            .bind(delivered_at)
            .bind(attempt.error.as_deref())
            .bind(notice.id)
            .bind(owner)
            .execute(&mut *tx)
            .await?;
            if updated.rows_affected() == 1 {
                sqlx::query(
                    "INSERT INTO delivery_attempts (outbox_id, attempt, at, status_code, error, duration_ms)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (outbox_id, attempt) DO NOTHING",
                )
                .bind(notice.id)
                .bind(number)
                .bind(attempt.at_ms)
                .bind(status_code)
                .bind(attempt.error.as_deref())
                .bind(attempt.duration_ms)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The delivery log, newest first.
    pub async fn deliveries(&self, f: &DeliveryFilter) -> Result<Vec<Delivery>, StoreError> {
        let rows: Vec<DeliveryRow> = with_pool!(&self.db.read().await, pool => {
            sqlx::query_as(
                "SELECT o.id, o.transition_id, o.entity_id, o.target, o.kind, o.idempotency_key, o.state,
                        o.reason, o.attempts, o.next_attempt_at, o.created_at, o.delivered_at,
                        (SELECT a.status_code FROM delivery_attempts a WHERE a.outbox_id = o.id
                         ORDER BY a.attempt DESC LIMIT 1)
                 FROM outbox o
                 WHERE ($1 IS NULL OR o.target = $1) AND ($2 IS NULL OR o.state = $2)
                   AND ($3 IS NULL OR o.entity_id = $3) AND o.id < $4
                 ORDER BY o.id DESC LIMIT $5",
            )
            .bind(f.target.as_deref())
            .bind(f.state.as_deref())
            .bind(f.entity.as_deref())
            .bind(f.before.unwrap_or(i64::MAX))
            .bind(f.limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(
                |(
                    id,
                    transition_id,
                    entity_id,
                    target,
                    kind,
                    idempotency_key,
                    state,
                    reason,
                    attempts,
                    next,
                    created_at_ms,
                    delivered_at_ms,
                    last_status_code,
                )| Delivery {
                    next_attempt_at_ms: (state == "pending").then_some(next),
                    id,
                    transition_id,
                    entity_id,
                    target,
                    kind,
                    idempotency_key,
                    state,
                    reason,
                    attempts,
                    created_at_ms,
                    delivered_at_ms,
                    last_status_code,
                },
            )
            .collect())
    }

    /// Unhealthy entities whose newest notice at `target` was written before
    /// `older_than`, with the transition that made them unhealthy.
    pub async fn overdue_reminders(
        &self,
        target: &str,
        older_than: i64,
    ) -> Result<Vec<Overdue>, StoreError> {
        type Row = (
            i64,
            String,
            String,
            String,
            String,
            Option<String>,
            i64,
            Option<i64>,
            i64,
        );
        let rows: Vec<Row> = with_pool!(&self.db.read().await, pool => {
            sqlx::query_as(
                "SELECT t.id, t.entity_id, t.from_status, t.to_status, t.check_id, t.environment_id,
                        t.created_at, t.run_id,
                        (SELECT COUNT(*) FROM outbox c WHERE c.transition_id = t.id AND c.target = $1)
                 FROM entity_state e
                 JOIN transitions t ON t.id = (SELECT MAX(l.id) FROM transitions l WHERE l.entity_id = e.entity_id)
                 WHERE e.status = 'unhealthy' AND t.to_status = 'unhealthy'
                   AND (SELECT MAX(o.created_at) FROM outbox o WHERE o.transition_id = t.id AND o.target = $1) < $2",
            )
            .bind(target)
            .bind(older_than)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(
                |(id, entity, from, to, check, env, at, run, sent)| Overdue {
                    transition: super::read::transition_event((
                        id, entity, from, to, check, env, at, run,
                    )),
                    sent: sent as u32,
                },
            )
            .collect())
    }

    /// Writes reminder notices; one per key even when several nodes race.
    /// Queues notices that no transition caused (a message an operator or
    /// an assistant sends): delivered, retried and logged like the others.
    pub async fn insert_messages(
        &self,
        entity: &str,
        notices: Vec<Notice>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let rows: Vec<OutboxRow> = notices
            .into_iter()
            .map(|n| (0, entity, "message", n))
            .collect();
        self.insert_rows(&rows, now_ms).await
    }

    /// Rows of notices in a transaction of their own.
    async fn insert_rows(&self, rows: &[OutboxRow<'_>], now_ms: i64) -> Result<(), StoreError> {
        with_pool!(&self.db.write().await?, pool => {
            let mut tx = pool.begin_write().await?;
            insert(&mut tx, rows, now_ms).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn insert_reminders(
        &self,
        reminders: &[(TransitionEvent, Notice)],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let rows: Vec<OutboxRow> = reminders
            .iter()
            .map(|(t, n)| {
                (
                    t.id.unwrap_or_default(),
                    t.entity_id.as_str(),
                    "reminder",
                    n.clone(),
                )
            })
            .collect();
        self.insert_rows(&rows, now_ms).await
    }
}
