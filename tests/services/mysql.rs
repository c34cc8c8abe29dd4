//! The `mysql` strategy against the local server.
