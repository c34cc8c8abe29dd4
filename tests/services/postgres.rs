//! The `postgres` strategy against the local PostgreSQL.
