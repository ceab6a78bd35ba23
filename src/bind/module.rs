//! What `luaopen_remote_runner` and `luaopen_svc_run_lua` return: the embedded Lua layers
//! (`lua/*.lua`) run over `core`, the table of Rust functions they build on.
//!
//! Written on the raw C API rather than through an `mlua::Lua` handle: in module mode that
//! handle's per-state data is never freed by `lua_close` (about 850 bytes per state), which a
//! host that creates and closes states over and over would see grow without end.

use super::api::{c_function, guarded, RawFunction};
use super::calls::books::CLOCK_START;
use mlua::ffi::{self, lua_State};
use std::ffi::CStr;

const CALLER_SIDE: &str = include_str!("../../lua/remote_runner.lua");
const SERVICE_SIDE: &str = include_str!("../../lua/svc_run_lua.lua");

/// `core.now()` → seconds on a monotonic clock.
unsafe extern "C-unwind" fn lua_now(l: *mut lua_State) -> isize {
    guarded(l, "now", || {
        ffi::lua_pushnumber(l, CLOCK_START.elapsed().as_secs_f64());
        Ok(1)
    })
}

/// Pushes the `core` table.
///
/// # Safety
/// A valid state with three free stack slots. Lua errors (out of memory) unwind past this
/// frame, which holds nothing to drop.
unsafe fn push_core(l: *mut lua_State) {
    let functions: [(&CStr, RawFunction); 9] = [
        (c"dump", super::dump::lua_dump),
        (c"load", super::load::lua_load),
        (c"encode_request", super::rpc::lua_encode_request),
        (c"decode_request", super::rpc::lua_decode_request),
        (c"encode_response", super::rpc::lua_encode_response),
        (c"encode_error", super::rpc::lua_encode_error),
        (c"decode_response", super::rpc::lua_decode_response),
        (c"now", lua_now),
        (c"new_books", super::calls::books::lua_new_books),
    ];
    ffi::lua_createtable(l, 0, functions.len() as i32);
    for (name, function) in functions {
        ffi::lua_pushcfunction(l, c_function(function));
        ffi::lua_setfield(l, -2, name.as_ptr());
    }
}

/// Pushes the embedded layer `source` as a function, or raises its syntax error.
///
/// # Safety
/// As `push_core`.
unsafe fn push_layer(l: *mut lua_State, source: &str, chunk_name: &CStr) {
    let status = ffi::luaL_loadbufferx(
        l,
        source.as_ptr().cast(),
        source.len(),
        chunk_name.as_ptr(),
        c"t".as_ptr(),
    );
    if status != ffi::LUA_OK {
        ffi::lua_error(l);
    }
}

/// `luaopen_remote_runner`: the caller-side layer run over `core`; returns its module table.
///
/// # Safety
/// Called by Lua as a C function.
pub unsafe extern "C-unwind" fn open_caller_side(l: *mut lua_State) -> isize {
    push_layer(l, CALLER_SIDE, c"=remote_runner.lua");
    push_core(l);
    ffi::lua_call(l, 1, 1);
    1
}

/// `luaopen_svc_run_lua`: the service-side layer run over the caller side's module and
/// `core`; returns its module table.
///
/// # Safety
/// Called by Lua as a C function.
pub unsafe extern "C-unwind" fn open_service_side(l: *mut lua_State) -> isize {
    push_layer(l, SERVICE_SIDE, c"=svc_run_lua.lua");
    // The same module instance as `require("remote_runner")`, whatever loaded first.
    if ffi::lua_getglobal(l, c"require".as_ptr()) != ffi::LUA_TFUNCTION {
        ffi::lua_pushstring(
            l,
            c"svc_run_lua: the global 'require' is needed to load remote_runner".as_ptr(),
        );
        ffi::lua_error(l);
    }
    ffi::lua_pushstring(l, c"remote_runner".as_ptr());
    ffi::lua_call(l, 1, 1);
    push_core(l);
    ffi::lua_call(l, 2, 1);
    1
}
