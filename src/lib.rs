//! remote_runner: cross-server Lua calls for C++ game servers that embed Lua.
//! This file only builds the two export tables; the work lives in `text` (Lua-free core)
//! and `bind` (the Lua binding).

pub mod bind;
pub mod text;

use mlua::prelude::*;

/// `require("remote_runner")`
#[mlua::lua_module(skip_memory_check)]
fn remote_runner(lua: &Lua) -> LuaResult<LuaTable> {
    let exports = lua.create_table()?;
    // SAFETY: both are C functions following the Lua calling convention.
    unsafe {
        exports.set("dump", lua.create_c_function(bind::dump::lua_dump)?)?;
        exports.set("load", lua.create_c_function(bind::load::lua_load)?)?;
    }
    Ok(exports)
}

/// `require("svc_run_lua")`: the service side arrives with the RPC issue.
#[mlua::lua_module(skip_memory_check)]
fn svc_run_lua(lua: &Lua) -> LuaResult<LuaTable> {
    lua.create_table()
}
