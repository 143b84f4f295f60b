//! RESP2/RESP3 for ferrodis: a zero-copy request parser (multibulk and inline) that reports
//! Redis's exact protocol errors, and a reply encoder that writes into a caller-owned buffer.
//!
//! Architecture invariant: this crate knows nothing of commands, the keyspace or sockets.
// PERF-CRITICAL: every request and reply goes through this crate.

mod client;
mod parse;
mod reply;

pub use client::{parse_reply, Reply};
pub use parse::{parse_request, split_args, Limits, ParseError, Request};
pub use reply::{Proto, ReplyBuf};

/// A command as a RESP multibulk, appended to `out` (a `Vec<u8>` or a `VecDeque<u8>`): what
/// clients send, and what the journal, the AOF and MIGRATE write.
pub fn encode_command<E: for<'a> Extend<&'a u8>>(out: &mut E, args: &[&[u8]]) {
    let mut b = itoa::Buffer::new();
    out.extend(b"*");
    out.extend(b.format(args.len()).as_bytes());
    out.extend(b"\r\n");
    for a in args {
        out.extend(b"$");
        out.extend(b.format(a.len()).as_bytes());
        out.extend(b"\r\n");
        out.extend(a.iter());
        out.extend(b"\r\n");
    }
}
