//! The sink the parser drives. The parser never builds a tree of its own: each implementation
//! makes its values directly (Lua values on the Lua stack in the binding, an owned tree in tests).
//!
//! The interface is a stack machine, so it maps one-to-one onto the Lua C API.

use std::fmt;

/// Why a builder refused an operation; the parser adds the byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    /// Indexing or assigning into something that is not a table.
    NotATable,
    /// A table key that Lua refuses.
    NilKey,
    NanKey,
    /// The host ran out of stack space or memory.
    Exhausted(&'static str),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::NotATable => f.write_str("attempt to index a value that is not a table"),
            BuildError::NilKey => f.write_str("table key is nil"),
            BuildError::NanKey => f.write_str("table key is NaN"),
            BuildError::Exhausted(what) => write!(f, "out of {what}"),
        }
    }
}

pub type BuildResult = Result<(), BuildError>;

/// Operations named after the stack effect they have (`..` is the rest of the stack).
pub trait Builder {
    /// False where every number is a double (Lua 5.1, 5.2, LuaJIT): the parser then reads
    /// integer literals the way those interpreters do.
    fn has_integers(&self) -> bool;
    /// `..` → `.. nil`
    fn nil(&mut self) -> BuildResult;
    fn boolean(&mut self, v: bool) -> BuildResult;
    fn integer(&mut self, v: i64) -> BuildResult;
    fn float(&mut self, v: f64) -> BuildResult;
    fn string(&mut self, v: &[u8]) -> BuildResult;
    /// `..` → `.. {}`
    fn table(&mut self) -> BuildResult;
    /// `.. t v` → `.. t` with `t[index] = v` (a positional constructor item).
    fn append(&mut self, index: i64) -> BuildResult;
    /// `.. t k v` → `.. t` with `t[k] = v`.
    fn set(&mut self) -> BuildResult;
    /// `.. v` → `..`, storing v in local `slot`.
    fn set_local(&mut self, slot: usize) -> BuildResult;
    /// `..` → `.. v` where v is local `slot`.
    fn get_local(&mut self, slot: usize) -> BuildResult;
    /// `.. t k` → `.. t[k]`
    fn index(&mut self) -> BuildResult;
    /// `.. t k v` → `..` with `t[k] = v`.
    fn assign(&mut self) -> BuildResult;
}
