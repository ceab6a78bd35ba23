//! Named defaults for the codec limits; each can be overridden per call.

/// Deepest table nesting `dump` writes. Plain Lua `load` fails near 199 nested constructors
/// on every version, so this leaves room for the dump chunk around the value.
pub const DEFAULT_DUMP_MAX_DEPTH: usize = 128;
/// Deepest nesting `load` accepts: everything Lua's own parser (and so serpent) can produce.
pub const DEFAULT_LOAD_MAX_DEPTH: usize = 200;
/// Largest text `dump` writes or `load` reads.
pub const DEFAULT_MAX_BYTES: usize = 16 * 1024 * 1024;
/// Most values (tables and scalars, keys included) one `load` may create.
pub const DEFAULT_MAX_NODES: usize = 2_000_000;
/// Most `local` names a dump chunk may declare (Lua's own limit is 200).
pub const MAX_LOCALS: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadLimits {
    pub max_depth: usize,
    pub max_bytes: usize,
    pub max_nodes: usize,
}

impl Default for LoadLimits {
    fn default() -> Self {
        LoadLimits {
            max_depth: DEFAULT_LOAD_MAX_DEPTH,
            max_bytes: DEFAULT_MAX_BYTES,
            max_nodes: DEFAULT_MAX_NODES,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpLimits {
    pub max_depth: usize,
    pub max_bytes: usize,
}

impl Default for DumpLimits {
    fn default() -> Self {
        DumpLimits {
            max_depth: DEFAULT_DUMP_MAX_DEPTH,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}
