//! The service strategies against the real servers on this machine, each
//! through the `service` collector: connect, authenticate, the server's
//! version, one query, and the transport errors a wrong password, a closed
//! port or a server speaking another protocol give.

#[path = "../support/mod.rs"]
mod support;

mod grpc_health;
mod mqtt;
mod mysql;
mod postgres;
mod redis;
mod smtp;
