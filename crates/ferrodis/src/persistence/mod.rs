//! Persistence: the append-only file (`aof`, Redis 7's multi-part layout fed by the journal), RDB snapshots (`rdb`), taken without fork from a point-in-time snapshot of the
//! keyspace (`Keyspace::begin_snapshot`, core design section 4), and values to and from the
//! `rdb` crate's model (also used by DUMP/RESTORE).
//!
//! Layering: uses `keyspace` and `types`; knows nothing of commands, connections or `State`
//! (callers pass what it needs).

pub mod aof;
pub mod rdb;
