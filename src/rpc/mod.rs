//! The RunLua wire messages and error kinds: Lua-free.

pub mod kind;

/// Messages generated from `proto/run_lua.proto`.
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/svr.rs"));
}

pub use proto::{RunLuaMfaRequest, RunLuaMfaResponse};
