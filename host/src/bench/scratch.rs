//! Scratch databases for benchmarks: a SQLite file in a temporary folder, or
//! a fresh database on the PostgreSQL server of a given URL, dropped after.

use anyhow::Context;
use sqlx::Connection;

pub enum Scratch {
    Sqlite {
        dir: tempfile::TempDir,
        name: String,
    },
    Postgres {
        server_url: String,
        name: String,
    },
}

impl Scratch {
    /// `engine_url` picks the engine: `sqlite` (or any `sqlite:` URL) makes
    /// a temporary file; `postgres://…/db` makes a database beside `db`.
    pub async fn new(engine_url: &str, name: &str) -> anyhow::Result<Scratch> {
        if engine_url.starts_with("sqlite") {
            return Ok(Scratch::Sqlite {
                dir: tempfile::tempdir()?,
                name: name.to_string(),
            });
        }
        let name = format!("checkhost_bench_{name}_{}", std::process::id());
        let mut admin = sqlx::PgConnection::connect(engine_url)
            .await
            .with_context(|| format!("connecting to {}", crate::store::db::redact(engine_url)))?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await?;
        Ok(Scratch::Postgres {
            server_url: engine_url.to_string(),
            name,
        })
    }

    pub fn url(&self) -> String {
        match self {
            Scratch::Sqlite { dir, name } => {
                format!(
                    "sqlite://{}",
                    dir.path().join(format!("{name}.db")).display()
                )
            }
            Scratch::Postgres { server_url, name } => {
                let base = server_url
                    .rsplit_once('/')
                    .map_or(server_url.as_str(), |(b, _)| b);
                format!("{base}/{name}")
            }
        }
    }

    /// Bytes the database takes now (SQLite: the file and its WAL).
    pub async fn size(&self) -> anyhow::Result<u64> {
        match self {
            Scratch::Sqlite { dir, name } => {
                let mut total = 0;
                for suffix in ["", "-wal"] {
                    let path = dir.path().join(format!("{name}.db{suffix}"));
                    total += std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                }
                Ok(total)
            }
            Scratch::Postgres { .. } => {
                let mut conn = sqlx::PgConnection::connect(&self.url()).await?;
                let size: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
                    .fetch_one(&mut conn)
                    .await?;
                Ok(size as u64)
            }
        }
    }

    pub async fn drop_database(self) {
        if let Scratch::Postgres { server_url, name } = &self
            && let Ok(mut admin) = sqlx::PgConnection::connect(server_url).await
        {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut admin)
            .await;
        }
    }
}
