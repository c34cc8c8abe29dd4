//! The `mqtt` strategy against the local server.
