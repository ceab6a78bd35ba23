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

/// Lua's constructor stores keyed entries as it meets them but positional items in batches of
/// 50: when the field after the 50th pending item starts, and at `}`. With repeated keys
/// (`{"a", [1]="b"}` is `{"a"}`) the result depends on that order, so builders replay it.
pub struct ItemBatch {
    /// Where the pending items are (builder-specific positions).
    pending: [i32; ItemBatch::SIZE],
    len: usize,
    /// Positional index of the last item stored.
    stored: i64,
}

impl Default for ItemBatch {
    fn default() -> Self {
        ItemBatch {
            pending: [0; ItemBatch::SIZE],
            len: 0,
            stored: 0,
        }
    }
}

impl ItemBatch {
    /// Lua's LFIELDS_PER_FLUSH.
    pub const SIZE: usize = 50;

    pub fn push(&mut self, position: i32) {
        self.pending[self.len] = position;
        self.len += 1;
    }

    /// Call before each field: stores a full batch, as Lua does when the next field starts.
    pub fn before_field(&mut self, store: impl FnMut(i64, i32)) {
        if self.len == Self::SIZE {
            self.flush(store);
        }
    }

    /// Stores the pending items as `store(index, position)`, in order.
    pub fn flush(&mut self, mut store: impl FnMut(i64, i32)) {
        for &position in &self.pending[..self.len] {
            self.stored += 1;
            store(self.stored, position);
        }
        self.len = 0;
    }
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
    /// layout is `entries`, `items` of them positional) and replaces them with it. `array_hint`
    /// (at least `items`) is how many positional items the table is expected to end up with.
    fn build_table(
        &mut self,
        base: usize,
        entries: &[Entry],
        items: usize,
        array_hint: usize,
    ) -> BuildResult;
    /// Room for `n` more values on the stack.
    fn reserve(&mut self, n: usize) -> BuildResult;
    /// At the `}` of the root table, when the caller wants an argument or result array as
    /// values rather than a table: `.. <entries above base>` → `.. v1 .. vk` and `Some(k)`,
    /// when the entries are positional items, optionally followed by a last `n = count`
    /// (a non-negative integer; k is that count, as `unpack(t, 1, t.n)` would give), and,
    /// without `n`, no item is nil (so that k is `#t`). `None`, the stack untouched, for any
    /// other table: the parser then builds it.
    fn spread(
        &mut self,
        _base: usize,
        _entries: &[Entry],
        _items: usize,
    ) -> Result<Option<usize>, BuildError> {
        Ok(None)
    }
    /// `.. k` unchanged: an error unless k can be a table key (Lua refuses nil and NaN). The
    /// parser calls it as soon as a `[key]` is read, so that the error points at the key; the
    /// operations that store keep their own checks.
    fn check_key(&self) -> BuildResult;
    /// `.. t k` unchanged: an error unless t is a table and k can be its key; called at the
    /// `=` of an assignment statement, for the same reason.
    fn check_store(&self) -> BuildResult;
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
    /// The chunk links tables: a local is placed inside a table, or an assignment stores
    /// into one. The value may then nest deeper than any constructor in the text.
    fn linked(&mut self) {}
}
