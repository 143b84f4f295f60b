//! The one integration-test binary: every module starts real processes on OS-chosen loopback
//! ports through `harness`, and kills them by PID when the test ends.

mod harness;

mod abuse;
mod acl;
mod aof;

mod blocking;
mod clients;
mod cluster;
mod config;
mod differential;
mod eviction;
mod expiry;
mod persistence;
mod protocol;
mod pubsub;
mod real_clients;
mod replication;
mod robustness;
mod scripting_limits;
mod security;
mod sentinel;
mod sentinel_conf;
mod streams;
mod tls;
mod tracking;
mod transactions;
