//! ferrodis: a Redis-compatible in-memory data store.
//!
//! Code map (layers, bottom up; imports point down only — see ARCHITECTURE.md):
//! - `util`: number parsing/formatting, glob matching, hash slots, clock.
//! - `crash`: panics contained (a command's, answered with an error) or fatal (a bug report, abort).
//! - `types`: values and their encodings; pure data structures.
//! - `journal`: the one ordered write stream (replication offset, backlog).
//! - `keyspace`: 16384 slot tables per database, grouped into lock stripes.
//! - `persistence`: RDB save (fork-less snapshots) and load; values to and from the `rdb` crate.
//! - `config`: redis.conf / argv parsing and the option table.
//! - `net`: plain or TLS streams and the TLS contexts (`tls-*`), for replication, the cluster
//!   bus and Sentinel's links.
//! - `state`: process-wide shared state (keyspace, journal, config, stats, clients).
//! - `commands`: the command table, `dispatch` (the one gatekeeper), and one file per family.
//! - `server`: listeners, worker threads, connections, cron, logging.

/// The Redis version ferrodis answers as (INFO, the Lua `redis.REDIS_VERSION`, logs).
pub const REDIS_VERSION: &str = "7.0.15";

pub mod cluster;
pub mod commands;
pub mod config;
pub mod crash;
pub mod journal;
pub mod keyspace;
pub mod net;
pub mod persistence;
pub mod replication;
pub mod sentinel;
pub mod server;
pub mod state;
pub mod types;
pub mod util;
