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

/// One pending entry of a table constructor, in source order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// A positional item: one value.
    Item,
    /// `name = value`: a string key (never nil or NaN), then the value.
    Named,
    /// `[key] = value`: any key, then the value.
    Keyed,
}

/// Operations named after the stack effect they have (`..` is the rest of the stack).
/// A table constructor's entries stay on the stack until `}`, so that `build_table` can
/// create the table with its final size in one allocation.
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
    /// Current stack height, to mark where a table's pending entries start.
    fn height(&self) -> usize;
    /// `.. <entries above base>` → `.. t`: makes the table from the pending entries (their
    /// layout is `entries`, `items` of them positional) and replaces them with it.
    fn build_table(&mut self, base: usize, entries: &[Entry], items: usize) -> BuildResult;
    /// Room for `n` more values on the stack.
    fn reserve(&mut self, n: usize) -> BuildResult;
    /// `.. t v` → `.. t` with `t[index] = v`: positional items after a table was built early.
    fn append(&mut self, index: i64) -> BuildResult;
    /// `.. t k v` → `.. t` with `t[k] = v`: keyed entries after a table was built early.
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
