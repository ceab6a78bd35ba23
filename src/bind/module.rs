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
    if push_instance(l, CALLER_INSTANCE) {
        return 1;
    }
    push_layer(l, CALLER_SIDE, c"=remote_runner.lua");
    push_core(l);
    ffi::lua_call(l, 1, 1);
    keep_instance(l, CALLER_INSTANCE);
    1
}

/// Registry keys of the module instances of a Lua state. A state has one of each: its calls
/// in flight, workers and allowlist are the state's. A host that reloads modules by clearing
/// `package.loaded` gets the same instance back, not a second one with books of its own (which
/// would leave the first one's calls without a poll, and split the allowlist).
const CALLER_INSTANCE: &CStr = c"remote_runner: the caller side of this state";
const SERVICE_INSTANCE: &CStr = c"remote_runner: the service side of this state";

/// Pushes the instance kept under `key`, if there is one.
unsafe fn push_instance(l: *mut lua_State, key: &CStr) -> bool {
    if ffi::lua_getfield(l, ffi::LUA_REGISTRYINDEX, key.as_ptr()) == ffi::LUA_TTABLE {
        return true;
    }
    ffi::lua_pop(l, 1);
    false
}

/// Keeps the module table on top as the state's instance under `key`.
unsafe fn keep_instance(l: *mut lua_State, key: &CStr) {
    ffi::lua_pushvalue(l, -1);
    ffi::lua_setfield(l, ffi::LUA_REGISTRYINDEX, key.as_ptr());
}

/// `luaopen_svc_run_lua`: the service-side layer run over the caller side's module and
/// `core`; returns its module table.
///
/// # Safety
/// Called by Lua as a C function.
pub unsafe extern "C-unwind" fn open_service_side(l: *mut lua_State) -> isize {
    if push_instance(l, SERVICE_INSTANCE) {
        return 1;
    }
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
    keep_instance(l, SERVICE_INSTANCE);
    1
}
