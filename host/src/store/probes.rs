//! Probe tokens and what each probe's last heartbeat said. Only a token's
//! SHA-256 is stored; the token itself is printed once, at creation.

use serde::Serialize;

use super::db::with_pool;
use super::{Store, StoreError};

/// A probe as the server knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProbeRecord {
    pub id: String,
    pub location_id: String,
    #[serde(skip)]
    pub token_hash: String,
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
    /// The checkhost version it last reported.
    pub version: Option<String>,
    /// Its last heartbeat, by the server's clock.
    pub last_seen_ms: Option<i64>,
    /// Its clock minus the server's at that heartbeat.
    pub clock_skew_ms: Option<i64>,
    /// Runs waiting in its spool, and runs it dropped for room.
    pub spool_depth: Option<i64>,
    pub spool_dropped: Option<i64>,
}

impl ProbeRecord {
    /// Whether it reported within `window` ms of `now`, with a live token.
    pub fn online(&self, now_ms: i64, window_ms: i64) -> bool {
        self.revoked_at_ms.is_none()
            && self
                .last_seen_ms
                .is_some_and(|seen| now_ms - seen <= window_ms)
    }
}

/// What a heartbeat reports.
#[derive(Debug, Clone, Copy)]
pub struct HeartbeatRow<'a> {
    pub version: &'a str,
    pub clock_skew_ms: i64,
    pub spool_depth: i64,
    pub spool_dropped: i64,
}

type ProbeRow = (
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

macro_rules! probe_columns {
    () => {
        "SELECT id, location_id, token_hash, created_at, revoked_at, version, seen_at, \
         clock_skew_ms, spool_depth, spool_dropped FROM probes"
    };
}

fn record(row: ProbeRow) -> ProbeRecord {
    let (id, location_id, token_hash, created, revoked, version, seen, skew, depth, dropped) = row;
    ProbeRecord {
        id,
        location_id,
        token_hash,
        created_at_ms: created,
        revoked_at_ms: revoked,
        version,
        last_seen_ms: seen,
        clock_skew_ms: skew,
        spool_depth: depth,
        spool_dropped: dropped,
    }
}

impl Store {
    /// Registers a probe of `location` by its token's id and secret hash.
    pub async fn create_probe(
        &self,
        id: &str,
        location: &str,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        with_pool!(&self.db.write().await?, pool => {
            sqlx::query("INSERT INTO probes (id, location_id, token_hash, created_at) VALUES ($1, $2, $3, $4)")
                .bind(id)
                .bind(location)
                .bind(token_hash)
                .bind(now_ms)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Revokes a probe's token; `false` when there is no such live probe.
    pub async fn revoke_probe(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let done = with_pool!(&self.db.write().await?, pool => {
            sqlx::query("UPDATE probes SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now_ms)
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done > 0)
    }

    pub async fn probe(&self, id: &str) -> Result<Option<ProbeRecord>, StoreError> {
        let row: Option<ProbeRow> = with_pool!(&self.db.read().await, pool => {
            sqlx::query_as(concat!(probe_columns!(), " WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(record))
    }

    /// Every probe, revoked ones included, by location.
    pub async fn probes(&self) -> Result<Vec<ProbeRecord>, StoreError> {
        let rows: Vec<ProbeRow> = with_pool!(&self.db.read().await, pool => {
            sqlx::query_as(concat!(probe_columns!(), " ORDER BY location_id, id"))
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(record).collect())
    }

    pub async fn probe_heartbeat(
        &self,
        id: &str,
        beat: HeartbeatRow<'_>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        with_pool!(&self.db.write().await?, pool => {
            sqlx::query(
                "UPDATE probes SET version = $1, seen_at = $2, clock_skew_ms = $3, spool_depth = $4,
                        spool_dropped = $5 WHERE id = $6",
            )
            .bind(beat.version)
            .bind(now_ms)
            .bind(beat.clock_skew_ms)
            .bind(beat.spool_depth)
            .bind(beat.spool_dropped)
            .bind(id)
            .execute(pool)
            .await?;
        });
        Ok(())
    }
}
