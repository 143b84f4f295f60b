//! Values as stored in the keyspace. Pure data structures: no commands, no network.
//!
//! Architecture invariant: `types` imports nothing of ours but `util`.

pub mod bytes;
pub mod hash;
pub mod indexed;
pub mod list;
pub mod set;
pub mod string;

pub use self::bytes::SmallBytes;
pub use hash::Hash;
pub use list::List;
pub use set::Set;
pub use string::StrValue;

/// A stored value; the other Redis types join as variants.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(StrValue),
    List(Box<List>),
    Hash(Hash),
    Set(Box<Set>),
}

impl Value {
    /// The name `TYPE` reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
        }
    }
    /// The name `OBJECT ENCODING` reports.
    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Str(s) => s.encoding(),
            Value::List(_) => "quicklist",
            Value::Hash(h) => h.encoding(),
            Value::Set(s) => s.encoding(),
        }
    }
    /// True for a collection with no elements left (Redis deletes such keys).
    pub fn is_empty_collection(&self) -> bool {
        match self {
            Value::Str(_) => false,
            Value::List(l) => l.is_empty(),
            Value::Hash(h) => h.is_empty(),
            Value::Set(s) => s.is_empty(),
        }
    }
    /// Approximate heap bytes used by the value (for `MEMORY USAGE`).
    pub fn heap_size(&self) -> usize {
        match self {
            Value::Str(s) => s.heap_size(),
            Value::List(l) => std::mem::size_of::<List>() + l.heap_size(),
            Value::Hash(h) => std::mem::size_of::<Hash>() + h.heap_size(),
            Value::Set(s) => s.heap_size(),
        }
    }
}
