//! The `smtp` strategy against the local server.
