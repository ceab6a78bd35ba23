//! The mlua binding: thin layers that expose the Lua-free core to Lua.

pub mod api;
pub mod args;
pub mod calls;
pub mod dump;
pub mod flat_values;
pub mod graph_depth;
pub mod load;
pub mod module;
pub mod rpc;
pub mod scratch_slot;
