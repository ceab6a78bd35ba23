//! What `luaopen_remote_runner` and `luaopen_svc_run_lua` return: the embedded Lua layers
//! (`lua/*.lua`) run over `core`, the table of Rust functions they build on.

use super::api::{c_function, guarded, RawFunction};
use mlua::ffi::{self, lua_State};
use mlua::prelude::*;
use once_cell::sync::Lazy;
use std::time::Instant;

const CALLER_SIDE: &str = include_str!("../../lua/remote_runner.lua");
const SERVICE_SIDE: &str = include_str!("../../lua/svc_run_lua.lua");

/// Start of the process-wide monotonic clock that timeouts use.
static CLOCK_START: Lazy<Instant> = Lazy::new(Instant::now);

/// `core.now()` → seconds on a monotonic clock.
unsafe extern "C-unwind" fn lua_now(l: *mut lua_State) -> isize {
    guarded(l, "now", || {
        ffi::lua_pushnumber(l, CLOCK_START.elapsed().as_secs_f64());
        Ok(1)
    })
}

fn core_table(lua: &Lua) -> LuaResult<LuaTable> {
    let core = lua.create_table()?;
    let functions: [(&str, RawFunction); 8] = [
        ("dump", super::dump::lua_dump),
        ("load", super::load::lua_load),
        ("encode_request", super::rpc::lua_encode_request),
        ("decode_request", super::rpc::lua_decode_request),
        ("encode_response", super::rpc::lua_encode_response),
        ("encode_error", super::rpc::lua_encode_error),
        ("decode_response", super::rpc::lua_decode_response),
        ("now", lua_now),
    ];
    for (name, function) in functions {
        // SAFETY: each is a C function following the Lua calling convention.
        core.set(name, unsafe {
            lua.create_c_function(c_function(function))?
        })?;
    }
    Ok(core)
}

pub fn caller_side(lua: &Lua) -> LuaResult<LuaTable> {
    lua.load(CALLER_SIDE)
        .set_name("=remote_runner.lua")
        .call(core_table(lua)?)
}

pub fn service_side(lua: &Lua) -> LuaResult<LuaTable> {
    // The same module instance as `require("remote_runner")`, whatever loaded first.
    let require: LuaFunction = lua.globals().get("require")?;
    let caller: LuaTable = require.call("remote_runner")?;
    lua.load(SERVICE_SIDE)
        .set_name("=svc_run_lua.lua")
        .call((caller, core_table(lua)?))
}
