//! The RunLua wire messages and error kinds: Lua-free.

pub mod kind;
pub mod wire;

/// Messages generated from `proto/run_lua.proto`.
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/svr.rs"));
}

pub use proto::{RunLuaMfaRequest, RunLuaMfaResponse};

/// Most arguments, and most results, one call carries. Each value is passed along the Lua
/// stack several times on the way (decoder, service, coroutine, callback); Lua 5.1 and
/// LuaJIT give a C function 8,000 stack slots, and 5.2+ overflow a thread's stack when a
/// million values are passed through a few frames. A count within this works on every
/// version; a larger one is refused where it is counted, never met as a stack overflow.
pub const MAX_CALL_VALUES: usize = 7_000;
