//! Test databases on both engines: a SQLite file in a scratch folder, or a
//! fresh PostgreSQL database per test on the server named by
//! `CHECKHOST_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/test`).
//! Without a server the PostgreSQL variants skip loudly — except under
//! `CI=true`, where they fail.

use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::Connection;

pub enum TestDb {
    Sqlite(tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

/// Generates one test per engine from `async fn name(db: TestDb)` cases.
#[macro_export]
macro_rules! on_both_engines {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($crate::support::db::TestDb::sqlite()).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    if let Some(db) = $crate::support::db::TestDb::postgres().await {
                        super::$case(db).await
                    }
                }
            )*
        }
    };
}

/// Runs `$body` with `$c` a fresh connection to the test database.
macro_rules! on_conn {
    ($db:expr, $c:ident => $body:expr) => {
        match $db {
            TestDb::Sqlite(_) => {
                let mut $c = sqlx::SqliteConnection::connect(&$db.url()).await.unwrap();
                $body
            }
            TestDb::Postgres { .. } => {
                let mut $c = sqlx::PgConnection::connect(&$db.url()).await.unwrap();
                $body
            }
        }
    };
}

fn admin_url() -> String {
    std::env::var("CHECKHOST_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        TestDb::Sqlite(tempfile::tempdir().unwrap())
    }

    /// A new, empty database, or `None` (after a loud message) when no
    /// server answers outside CI.
    pub async fn postgres() -> Option<TestDb> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let admin_url = admin_url();
        let mut admin = match sqlx::PgConnection::connect(&admin_url).await {
            Ok(c) => c,
            Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
                eprintln!(
                    "\n!!! SKIPPED: no PostgreSQL at {admin_url} ({e}); set CHECKHOST_TEST_POSTGRES !!!\n"
                );
                return None;
            }
            Err(e) => panic!("CI=true and no PostgreSQL at {admin_url}: {e}"),
        };
        let name = format!(
            "checkhost_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await
        .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        Some(TestDb::Postgres { admin_url, name })
    }

    pub fn url(&self) -> String {
        match self {
            TestDb::Sqlite(dir) => {
                format!("sqlite://{}", dir.path().join("checkhost.db").display())
            }
            TestDb::Postgres { admin_url, name } => {
                let base = admin_url
                    .rsplit_once('/')
                    .map_or(admin_url.as_str(), |(b, _)| b);
                format!("{base}/{name}")
            }
        }
    }

    /// The folder holding the SQLite files.
    pub fn dir(&self) -> Option<&std::path::Path> {
        match self {
            TestDb::Sqlite(dir) => Some(dir.path()),
            TestDb::Postgres { .. } => None,
        }
    }

    pub fn engine(&self) -> &'static str {
        match self {
            TestDb::Sqlite(_) => "sqlite",
            TestDb::Postgres { .. } => "postgres",
        }
    }

    /// A single `i64` from SQL that both engines understand.
    pub async fn count(&self, sql: &str) -> i64 {
        on_conn!(self, c => sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&mut c).await)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Every value of the first (text) column.
    pub async fn texts(&self, sql: &str) -> Vec<String> {
        on_conn!(self, c => sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_all(&mut c).await)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Rows of three floats, for aggregate checks.
    pub async fn floats(&self, sql: &str) -> Vec<(f64, f64, f64)> {
        on_conn!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(&mut c).await)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Runs statements (test setup only).
    pub async fn execute(&self, sql: &str) {
        on_conn!(self, c => sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut c).await.map(drop))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let TestDb::Postgres { admin_url, name } = self else {
            return;
        };
        let (admin_url, name) = (admin_url.clone(), name.clone());
        // Drop runs inside the test's runtime: clean up on a thread of our own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut admin)
                    .await;
                }
            });
        })
        .join();
    }
}
