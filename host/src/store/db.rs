//! The two engines behind the store: connecting by URL, migrating, and the
//! `with_pool!` dispatch that lets one SQL text (with `$1` placeholders,
//! which both drivers accept) serve SQLite and PostgreSQL.
//!
//! A SQLite file removed while the daemon has it open is restored from the
//! copy the open connection still holds (see [`Db::ensure_file`]): without
//! that, every write would go on into an unlinked file and be lost at the
//! next start.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
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
    /// Swapped only when a removed SQLite file is restored; a reader asking
    /// meanwhile waits for the restored file rather than failing.
    pools: tokio::sync::RwLock<Sides>,
    /// The URL without its password, for messages.
    pub url: String,
    file: Option<Arc<SqliteFile>>,
}

struct Sides {
    read: Pools,
    write: Pools,
}

/// The SQLite file as it was opened: a different file (or none) at its
/// path means it was replaced (or removed) under the daemon.
struct SqliteFile {
    /// As configured, with any `?mode=…` options.
    url: String,
    path: PathBuf,
    /// Set once the file exists.
    identity: std::sync::Mutex<Option<FileIdentity>>,
    /// A restore that closed the old pools but could not finish.
    pending: std::sync::Mutex<Option<Pending>>,
}

/// What is left of a restore after the old connections closed.
#[derive(Debug, Clone)]
enum Pending {
    /// The copy is made but not at the path yet.
    Link(PathBuf),
    /// The copy is at the path; the pools are not open on it yet.
    Open,
}

impl SqliteFile {
    fn opened(&self) -> Option<FileIdentity> {
        *self.identity.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pending(&self) -> Option<Pending> {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_pending(&self, pending: Option<Pending>) {
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) = pending;
    }

    fn replaced(&self) -> sqlx::Error {
        FileTrouble::Replaced(self.path.display().to_string()).into_error()
    }
}

/// Device and inode.
type FileIdentity = (u64, u64);

fn identity(path: &Path) -> std::io::Result<FileIdentity> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)?;
    Ok((meta.dev(), meta.ino()))
}

/// Why the SQLite file cannot take writes, carried as an I/O error so the
/// writer holds its batch as for any other outage.
#[derive(Debug, thiserror::Error)]
pub enum FileTrouble {
    #[error(
        "the database file {0} was replaced while checkhost had it open: move the new file \
         away to have checkhost restore its own copy there, or restart checkhost to use it"
    )]
    Replaced(String),
    #[error(
        "the database file {path} was removed while checkhost had it open, and it cannot be \
         restored yet: {cause}"
    )]
    Removed { path: String, cause: String },
}

impl FileTrouble {
    fn reason(&self) -> &'static str {
        match self {
            FileTrouble::Replaced(_) => "file-replaced",
            FileTrouble::Removed { .. } => "file-removed",
        }
    }

    fn into_error(self) -> sqlx::Error {
        sqlx::Error::Io(std::io::Error::other(self))
    }
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
            let file = Arc::new(SqliteFile {
                url: format!("sqlite://{path}"),
                path: PathBuf::from(path.split('?').next().unwrap_or(path)),
                identity: std::sync::Mutex::new(None),
                pending: std::sync::Mutex::new(None),
            });
            let sides = open_sqlite(&file, &shown).await?;
            return Ok(Db {
                pools: tokio::sync::RwLock::new(sides),
                url: shown,
                file: Some(file),
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
                pools: tokio::sync::RwLock::new(Sides {
                    read: Pools::Postgres(pool.clone()),
                    write: Pools::Postgres(pool),
                }),
                url: shown,
                file: None,
            });
        }
        Err(StoreError::Url(shown))
    }

    pub fn engine(&self) -> &'static str {
        match self.file {
            Some(_) => "sqlite",
            None => "postgres",
        }
    }

    /// The pools for reading.
    pub async fn read(&self) -> Pools {
        self.pools.read().await.read.clone()
    }

    /// The pool for writing, once the SQLite file is known to be the one
    /// opened (see [`Db::ensure_file`]): no write, whoever makes it, goes
    /// into a removed or replaced file.
    pub async fn write(&self) -> Result<Pools, sqlx::Error> {
        self.ensure_file().await?;
        Ok(self.pools.read().await.write.clone())
    }

    pub async fn close(&self) {
        let sides = self.pools.read().await;
        with_pool!(&sides.write, pool => pool.close().await);
        with_pool!(&sides.read, pool => pool.close().await);
    }

    /// Before a write: makes sure the SQLite file being written is the one
    /// at its path. A removed file is restored there with everything the
    /// open connection holds (`VACUUM INTO`), and the pools reopen on it.
    /// A replaced file is left alone, and writes are held until it is moved
    /// away or checkhost restarts: guessing which of two databases the
    /// operator wants would lose one.
    pub async fn ensure_file(&self) -> Result<(), sqlx::Error> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let removed = |cause: StoreError| {
            FileTrouble::Removed {
                path: file.path.display().to_string(),
                cause: cause.to_string(),
            }
            .into_error()
        };
        if let Some(pending) = file.pending() {
            return self.finish_restore(file, pending).await.map_err(removed);
        }
        match identity(&file.path) {
            Ok(found) if Some(found) == file.opened() => Ok(()),
            Ok(_) => Err(file.replaced()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.restore(file).await.map_err(removed)
            }
            Err(e) => Err(sqlx::Error::Io(e)),
        }
    }

    async fn restore(&self, file: &Arc<SqliteFile>) -> Result<(), StoreError> {
        let Pools::Sqlite(write) = self.pools.read().await.write.clone() else {
            return Ok(());
        };
        // The copy is made on the writer's own connection, without the
        // pools' lock: readers go on reading meanwhile, and nothing can
        // write without this connection.
        let mut conn = write.acquire().await?;
        static COPIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let copy = PathBuf::from(format!(
            "{}.restoring-{}-{}",
            file.path.display(),
            std::process::id(),
            COPIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        sqlx::query("VACUUM INTO $1")
            .bind(copy.display().to_string())
            .execute(&mut *conn)
            .await?;
        if file.path.exists() {
            // A file appeared while the copy was made: the next write finds
            // it and holds (file-replaced); the open connections keep ours.
            let _ = std::fs::remove_file(&copy);
            return Ok(());
        }
        drop(conn);
        let mut sides = self.pools.write().await;
        // The old connections must be gone before new ones open the path:
        // SQLite opens `-wal` by name, and a last connection deletes it by
        // name on close.
        with_pool!(&sides.write, pool => pool.close().await);
        with_pool!(&sides.read, pool => pool.close().await);
        // A `-wal` left beside a missing file is the removed database's:
        // SQLite would replay it into the copy.
        if !file.path.exists() {
            for suffix in ["-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", file.path.display()));
            }
        }
        file.set_pending(Some(Pending::Link(copy)));
        self.finish_with(file, &mut sides).await
    }

    /// Goes on with a restore that could not finish: the old pools are
    /// closed, so nothing but the copy holds the data now.
    async fn finish_restore(&self, file: &Arc<SqliteFile>, _: Pending) -> Result<(), StoreError> {
        let mut sides = self.pools.write().await;
        self.finish_with(file, &mut sides).await
    }

    async fn finish_with(
        &self,
        file: &Arc<SqliteFile>,
        sides: &mut Sides,
    ) -> Result<(), StoreError> {
        let io = |e: std::io::Error| StoreError::Query(sqlx::Error::Io(e));
        let path = file.path.display().to_string();
        if let Some(Pending::Link(copy)) = file.pending() {
            // A link never replaces a file that appeared at the path.
            if let Err(e) = std::fs::hard_link(&copy, &file.path) {
                return Err(io(std::io::Error::new(
                    e.kind(),
                    format!(
                        "cannot put checkhost's copy in place ({e}); it is kept at {}: move it \
                         to {path}, or move away what is there",
                        copy.display()
                    ),
                )));
            }
            let _ = std::fs::remove_file(&copy);
            if let Some(dir) = file.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(io)?;
            }
            file.set_pending(Some(Pending::Open));
        }
        *sides = open_sqlite(file, &self.url).await?;
        file.set_pending(None);
        tracing::warn!(
            database = %self.url,
            "the database file was removed while in use; restored it at {path} with everything written so far"
        );
        Ok(())
    }
}

/// SQLite reader connections, all opened at start.
const READERS: u32 = 4;

/// A pool's connect hook: every connection after the first checks that
/// the path still holds the file the store opened.
fn same_file(
    file: Arc<SqliteFile>,
) -> impl for<'c> Fn(
    &'c mut sqlx::SqliteConnection,
    sqlx::pool::PoolConnectionMetadata,
) -> futures::future::BoxFuture<'c, Result<(), sqlx::Error>>
+ Clone
+ Send
+ Sync
+ 'static {
    move |_, _| {
        let file = file.clone();
        Box::pin(async move {
            match identity(&file.path) {
                Ok(found) if Some(found) == file.opened() => Ok(()),
                _ => Err(file.replaced()),
            }
        })
    }
}

/// Opens the writer's one connection (creating and migrating the file)
/// and the readers'.
async fn open_sqlite(file: &Arc<SqliteFile>, shown: &str) -> Result<Sides, StoreError> {
    use sqlx::Connection;
    let open = |source| StoreError::Open {
        url: shown.to_string(),
        source,
    };
    let options = SqliteConnectOptions::from_str(&file.url)
        .map_err(open)?
        .synchronous(SqliteSynchronous::Normal)
        // Only other processes can hold the lock: wait for them.
        .busy_timeout(Duration::from_secs(60))
        .pragma("cache_size", "-16000");
    // Only this first connection may create the file or set its (lasting)
    // journal mode: a pool's later connection that found some other file
    // at the path would otherwise write a database header into it.
    sqlx::SqliteConnection::connect_with(
        &options
            .clone()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal),
    )
    .await
    .map_err(open)?
    .close()
    .await
    .map_err(open)?;
    let found = identity(&file.path).map_err(|e| open(sqlx::Error::Io(e)))?;
    *file.identity.lock().unwrap_or_else(|e| e.into_inner()) = Some(found);
    let guard = same_file(file.clone());
    // Whatever the URL says (`?mode=rwc`), later connections never create.
    let options = options.create_if_missing(false);
    // The writer's connection is never recycled: while it is open, a
    // removed file can still be restored from it.
    let write = SqlitePoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .after_connect(guard.clone())
        .connect_with(options.clone())
        .await
        .map_err(open)?;
    migrate(&SQLITE_MIGRATIONS, &write, shown).await?;
    // Readers are kept open for the same reason, and because a connection
    // opened on some other file at the path shares this database's `-wal`
    // by name, and closing it would checkpoint our pages into that file.
    let read = SqlitePoolOptions::new()
        .max_connections(READERS)
        .min_connections(READERS)
        .max_lifetime(None)
        .idle_timeout(None)
        .after_connect(guard)
        .connect_with(options)
        .await
        .map_err(open)?;
    Ok(Sides {
        read: Pools::Sqlite(read),
        write: Pools::Sqlite(write),
    })
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
        sqlx::Error::Io(e) => Some(
            e.get_ref()
                .and_then(|inner| inner.downcast_ref::<FileTrouble>())
                .map_or("unreachable", FileTrouble::reason),
        ),
        sqlx::Error::PoolTimedOut
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
