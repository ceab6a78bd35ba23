//! The RunLua wire messages and error kinds: Lua-free.

pub mod kind;
pub mod wire;

/// Messages generated from `proto/run_lua.proto`.
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/svr.rs"));
}

pub use proto::{RunLuaMfaRequest, RunLuaMfaResponse};
