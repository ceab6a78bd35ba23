//! remote_runner: cross-server Lua calls for C++ game servers that embed Lua.
//! This file only builds the two export tables; the work lives in `text` (the Lua-free value
//! codec), `rpc` (the Lua-free wire messages) and `bind` (the Lua binding and embedded Lua).

pub mod bind;
pub mod rpc;
pub mod text;

use mlua::prelude::*;

/// `require("remote_runner")`
#[mlua::lua_module(skip_memory_check)]
fn remote_runner(lua: &Lua) -> LuaResult<LuaTable> {
    bind::module::caller_side(lua)
}

/// `require("svc_run_lua")`
#[mlua::lua_module(skip_memory_check)]
fn svc_run_lua(lua: &Lua) -> LuaResult<LuaTable> {
    bind::module::service_side(lua)
}
