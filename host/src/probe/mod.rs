//! Probes: a process on another machine that runs its location's slices in
//! the same sandbox and reports them to the server, spooling while it cannot.

pub mod agent;
pub mod spool;
pub mod wire;
