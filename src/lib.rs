//! remote_runner: cross-server Lua calls for C++ game servers that embed Lua.
//! This file only builds the two export tables; the work lives in `text` (the Lua-free value
//! codec), `rpc` (the Lua-free wire messages) and `bind` (the Lua binding and embedded Lua).

pub mod bind;
pub mod rpc;
pub mod text;

use mlua::ffi::lua_State;

/// `require("remote_runner")`
///
/// # Safety
/// Called by Lua's `require` as a C function.
#[no_mangle]
pub unsafe extern "C-unwind" fn luaopen_remote_runner(l: *mut lua_State) -> isize {
    bind::module::open_caller_side(l)
}

/// `require("svc_run_lua")`
///
/// # Safety
/// Called by Lua's `require` as a C function.
#[no_mangle]
pub unsafe extern "C-unwind" fn luaopen_svc_run_lua(l: *mut lua_State) -> isize {
    bind::module::open_service_side(l)
}
