//! Values as stored in the keyspace. Pure data structures: no commands, no network.
//!
//! Architecture invariant: `types` imports nothing of ours but `util`.

pub mod bytes;
pub mod string;

pub use self::bytes::SmallBytes;
pub use string::StrValue;

/// A stored value. Only strings exist so far; the other Redis types join as variants.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(StrValue),
}

impl Value {
    /// The name `TYPE` reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
        }
    }
    /// The name `OBJECT ENCODING` reports.
    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Str(s) => s.encoding(),
        }
    }
    /// Approximate heap bytes used by the value (for `MEMORY USAGE`).
    pub fn heap_size(&self) -> usize {
        match self {
            Value::Str(s) => s.heap_size(),
        }
    }
}
