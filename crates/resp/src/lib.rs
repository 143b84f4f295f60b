//! RESP2/RESP3 for ferrodis: a zero-copy request parser (multibulk and inline) that reports
//! Redis's exact protocol errors, and a reply encoder that writes into a caller-owned buffer.
//!
//! Architecture invariant: this crate knows nothing of commands, the keyspace or sockets.
// PERF-CRITICAL: every request and reply goes through this crate.

mod parse;
mod reply;

pub use parse::{parse_request, split_args, Limits, ParseError, Request};
pub use reply::{Proto, ReplyBuf};
