//! The two engines behind the store: connecting by URL, migrating, and the
//! `with_pool!` dispatch that lets one SQL text (with `$1` placeholders,
//! which both drivers accept) serve SQLite and PostgreSQL.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Postgres, Sqlite, Transaction};

use super::StoreError;

/// Runs `$body` once per engine with `$pool` bound to the concrete pool, so
/// the body type-checks against each driver.
macro_rules! with_pool {
    ($pools:expr, $pool:ident => $body:expr) => {
        match $pools {
            $crate::store::db::Pools::Sqlite($pool) => $body,
            $crate::store::db::Pools::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

#[derive(Clone)]
pub enum Pools {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Readers and the one writer. On SQLite the writer has a pool of one
/// connection, so the process never contends with itself for the database
/// lock; on PostgreSQL both share one pool.
pub struct Db {
    pub read: Pools,
    pub write: Pools,
    /// The URL without its password, for messages.
    pub url: String,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

impl Db {
    /// Connects to `sqlite://path` (created on first start) or
    /// `postgres://…` and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Db, StoreError> {
        let shown = redact(url);
        let open = |source| StoreError::Open {
            url: shown.clone(),
            source,
        };
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
                .map_err(open)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                // Only other processes can hold the lock: wait for them.
                .busy_timeout(Duration::from_secs(60))
                .pragma("cache_size", "-16000");
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options.clone())
                .await
                .map_err(open)?;
            migrate(&SQLITE_MIGRATIONS, &write, &shown).await?;
            let read = SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(options)
                .await
                .map_err(open)?;
            return Ok(Db {
                read: Pools::Sqlite(read),
                write: Pools::Sqlite(write),
                url: shown,
            });
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url).map_err(open)?;
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options)
                .await
                .map_err(open)?;
            migrate(&POSTGRES_MIGRATIONS, &pool, &shown).await?;
            return Ok(Db {
                read: Pools::Postgres(pool.clone()),
                write: Pools::Postgres(pool),
                url: shown,
            });
        }
        Err(StoreError::Url(shown))
    }

    pub fn engine(&self) -> &'static str {
        match self.read {
            Pools::Sqlite(_) => "sqlite",
            Pools::Postgres(_) => "postgres",
        }
    }

    pub async fn close(&self) {
        with_pool!(&self.write, pool => pool.close().await);
        with_pool!(&self.read, pool => pool.close().await);
    }
}

async fn migrate<DB>(
    migrator: &sqlx::migrate::Migrator,
    pool: &sqlx::Pool<DB>,
    url: &str,
) -> Result<(), StoreError>
where
    DB: sqlx::Database,
    DB::Connection: sqlx::migrate::Migrate,
{
    let known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
    let mut result = migrator.run(pool).await;
    // sqlx cannot lock a SQLite database for migrating: when processes start
    // together on a new file, the losers fail on what the winner created.
    // Each migration is one transaction, so a second pass sees it applied.
    for _ in 0..3 {
        use sqlx::migrate::MigrateError::{Execute, ExecuteMigration};
        if !matches!(result, Err(Execute(_) | ExecuteMigration(..))) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        result = migrator.run(pool).await;
    }
    result.map_err(|e| match e {
        sqlx::migrate::MigrateError::VersionMissing(version) if version > known => {
            StoreError::NewerSchema {
                url: url.to_string(),
                version,
                known,
            }
        }
        other => StoreError::Migrate {
            url: url.to_string(),
            source: other,
        },
    })
}

/// `postgres://user:secret@host/db` → `postgres://user:****@host/db`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:****@{host}"),
        None => url.to_string(),
    }
}

/// How each engine opens a write transaction and serialises writes to one
/// entity against other processes.
pub(crate) trait WritePool {
    type Db: sqlx::Database;

    async fn begin_write(&self) -> Result<Transaction<'static, Self::Db>, sqlx::Error>;

    /// Takes the per-entity locks for the transaction, in the given (sorted)
    /// order, so two writers never wait on each other in a cycle.
    async fn lock_entities(
        &self,
        tx: &mut Transaction<'static, Self::Db>,
        keys: &[i64],
    ) -> Result<(), sqlx::Error>;
}

impl WritePool for SqlitePool {
    type Db = Sqlite;

    /// `BEGIN IMMEDIATE` takes SQLite's one write lock up front, which
    /// serialises every entity across processes.
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        match self.begin_with("BEGIN IMMEDIATE").await {
            Err(sqlx::Error::InvalidSavePointStatement) => {
                // After a COMMIT that failed (disk full, I/O error) SQLite
                // may have rolled the transaction back itself; the driver's
                // own ROLLBACK then fails and it goes on believing one is
                // open. The write pool's one connection is closed, and the
                // write begins on a fresh one.
                self.acquire().await?.close().await?;
                self.begin_with("BEGIN IMMEDIATE").await
            }
            other => other,
        }
    }

    async fn lock_entities(
        &self,
        _: &mut Transaction<'static, Sqlite>,
        _: &[i64],
    ) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

impl WritePool for PgPool {
    type Db = Postgres;

    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.begin().await
    }

    async fn lock_entities(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        keys: &[i64],
    ) -> Result<(), sqlx::Error> {
        if keys.is_empty() {
            return Ok(());
        }
        // unnest yields the array in order, and the locks are taken as rows
        // are produced: sorted order, one round-trip.
        sqlx::query("SELECT pg_advisory_xact_lock(k) FROM unnest($1::int8[]) AS k")
            .bind(keys)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

/// The advisory-lock key of an entity: a stable 64-bit hash of
/// `health:<entity>` (FNV-1a), the same in every process and version.
pub fn entity_lock_key(entity: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in b"health:".iter().chain(entity.as_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash as i64
}

/// Why the database cannot take a write now, when the write may succeed
/// once the database recovers: the server went away, a lock could not be
/// had in time, the disk is full, the file system failed or is read-only.
/// `None` for an error that retrying cannot fix.
pub fn unavailable(error: &sqlx::Error) -> Option<&'static str> {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => Some("unreachable"),
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            // SQLite reports (extended) result codes as numbers: the
            // primary code is the low byte. (PostgreSQL's SQLSTATEs can be
            // all digits too, so the engine decides.)
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                let number = code.parse::<i64>().unwrap_or_default();
                return match number & 0xff {
                    5 | 6 => Some("busy"),
                    8 => Some("read-only"),
                    10 => Some("io-error"),
                    13 => Some("disk-full"),
                    14 => Some("cannot-open"),
                    _ => None,
                };
            }
            // PostgreSQL SQLSTATEs.
            match code.as_ref() {
                "53100" => Some("disk-full"),
                "58030" => Some("io-error"),
                "25006" => Some("read-only"),
                "40001" | "40P01" | "55P03" => Some("busy"),
                "53200" | "53300" | "55000" => Some("unreachable"),
                c if c.starts_with("08") || c.starts_with("57P") => Some("unreachable"),
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("postgres://app:hunter2@db:5432/checks"),
            "postgres://app:****@db:5432/checks"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
        assert_eq!(redact("sqlite://checkhost.db"), "sqlite://checkhost.db");
    }

    #[test]
    fn lock_keys_are_stable_and_distinct() {
        assert_eq!(entity_lock_key("shop"), entity_lock_key("shop"));
        assert_ne!(entity_lock_key("shop"), entity_lock_key("shop::prod"));
    }
}
