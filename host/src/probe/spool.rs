//! A probe's spool: finished runs wait here, in a local SQLite file, until
//! the server has stored them. Bounded by a number of runs; when full, the
//! oldest run is dropped and counted, and the count goes out with every
//! heartbeat. Run sequence numbers are made here, so they rise across
//! restarts.

use std::path::Path;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

use super::wire::ProbeRun;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Open { path: String, source: sqlx::Error },
    #[error("spool: {0}")]
    Query(#[from] sqlx::Error),
    #[error("spool: a stored run does not read back: {0}")]
    Corrupt(#[from] serde_json::Error),
}

pub struct Spool {
    pool: SqlitePool,
    max_runs: i64,
}

impl Spool {
    pub async fn open(path: &Path, max_runs: usize) -> Result<Spool, SpoolError> {
        let open = |source| SpoolError::Open {
            path: path.display().to_string(),
            source,
        };
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(open)?;
        for statement in [
            "CREATE TABLE IF NOT EXISTS runs (seq INTEGER PRIMARY KEY, body TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
        ] {
            sqlx::query(statement).execute(&pool).await.map_err(open)?;
        }
        Ok(Spool {
            pool,
            max_runs: i64::try_from(max_runs.max(1)).unwrap_or(i64::MAX),
        })
    }

    async fn meta(&self, key: &str) -> Result<i64, SpoolError> {
        let value: Option<i64> = sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(value.unwrap_or(0))
    }

    /// Adds a run, giving it the next sequence number: above every earlier
    /// one, and above this moment's clock in microseconds, so a probe whose
    /// spool file was lost still numbers above what the server has.
    pub async fn push(&self, mut run: ProbeRun, now_ms: i64) -> Result<i64, SpoolError> {
        let mut tx = self.pool.begin().await?;
        let last: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(value), 0) FROM meta WHERE key = 'seq'")
                .fetch_one(&mut *tx)
                .await?;
        let seq = (last + 1).max(now_ms.saturating_mul(1000));
        run.seq = seq;
        sqlx::query("INSERT INTO runs (seq, body) VALUES ($1, $2)")
            .bind(seq)
            .bind(serde_json::to_string(&run)?)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO meta (key, value) VALUES ('seq', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        let over: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM runs")
            .fetch_one(&mut *tx)
            .await?;
        let over = over - self.max_runs;
        if over > 0 {
            sqlx::query(
                "DELETE FROM runs WHERE seq IN (SELECT seq FROM runs ORDER BY seq LIMIT $1)",
            )
            .bind(over)
            .execute(&mut *tx)
            .await?;
            add_dropped(&mut tx, over).await?;
        }
        tx.commit().await?;
        Ok(seq)
    }

    /// The oldest runs, at most `limit`, in order.
    pub async fn oldest(&self, limit: usize) -> Result<Vec<ProbeRun>, SpoolError> {
        let rows: Vec<String> = sqlx::query_scalar("SELECT body FROM runs ORDER BY seq LIMIT $1")
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|body| serde_json::from_str(body).map_err(SpoolError::from))
            .collect()
    }

    /// Forgets the runs up to `seq`: the server has them, but for
    /// `refused` of them, which count as dropped.
    pub async fn delivered(&self, seq: i64, refused: usize) -> Result<(), SpoolError> {
        self.forget(seq, Some(refused)).await
    }

    /// Forgets runs the server refused for good, counting them as dropped.
    pub async fn refused(&self, seq: i64) -> Result<(), SpoolError> {
        self.forget(seq, None).await
    }

    /// Deletes the runs up to `seq` and counts `dropped` of them (`None`:
    /// all) as dropped.
    async fn forget(&self, seq: i64, dropped: Option<usize>) -> Result<(), SpoolError> {
        let mut tx = self.pool.begin().await?;
        let gone = sqlx::query("DELETE FROM runs WHERE seq <= $1")
            .bind(seq)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let dropped = dropped.map_or(gone, |n| n as u64);
        add_dropped(&mut tx, i64::try_from(dropped).unwrap_or(i64::MAX)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Runs waiting, and runs dropped since the spool was made.
    pub async fn depth(&self) -> Result<(i64, i64), SpoolError> {
        let depth: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM runs")
            .fetch_one(&self.pool)
            .await?;
        Ok((depth, self.meta("dropped").await?))
    }
}

/// Adds to the count of runs dropped since the spool was made.
async fn add_dropped(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    count: i64,
) -> Result<(), sqlx::Error> {
    if count > 0 {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ('dropped', $1)
             ON CONFLICT (key) DO UPDATE SET value = meta.value + excluded.value",
        )
        .bind(count)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::wire::SliceRef;

    fn run(at_ms: i64) -> ProbeRun {
        ProbeRun {
            seq: 0,
            slice: SliceRef {
                system: "shop".into(),
                check: "web".into(),
                environment: None,
            },
            at_ms,
            latency_ms: 1.0,
            error: None,
            collectors: Vec::new(),
        }
    }

    #[tokio::test]
    async fn runs_keep_their_order_across_reopening_and_the_oldest_drop_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.db");
        let spool = Spool::open(&path, 3).await.unwrap();
        let mut seqs = Vec::new();
        for at in 1..=4 {
            seqs.push(spool.push(run(at), 10).await.unwrap());
        }
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        assert_eq!(
            spool.depth().await.unwrap(),
            (3, 1),
            "the oldest was dropped"
        );
        drop(spool);
        let spool = Spool::open(&path, 3).await.unwrap();
        let kept: Vec<i64> = spool
            .oldest(10)
            .await
            .unwrap()
            .iter()
            .map(|r| r.at_ms)
            .collect();
        assert_eq!(kept, [2, 3, 4]);
        // A clock behind the last number still numbers above it.
        let next = spool.push(run(5), 0).await.unwrap();
        assert!(next > seqs[3]);
        spool.delivered(seqs[2], 0).await.unwrap();
        let kept: Vec<i64> = spool
            .oldest(10)
            .await
            .unwrap()
            .iter()
            .map(|r| r.at_ms)
            .collect();
        assert_eq!(kept, [4, 5]);
        // Dropped: run 1, then run 2 to make room for run 5, then the two
        // refused.
        spool.refused(next).await.unwrap();
        assert_eq!(spool.depth().await.unwrap(), (0, 4));
    }
}
