//! The `redis` strategy against the local server.
