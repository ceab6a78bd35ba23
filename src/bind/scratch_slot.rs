//! Per-thread scratch space that a Lua error cannot leak.
//!
//! A C function borrows its thread's scratch for the whole call, so that the steady state
//! allocates nothing. Two things can find it taken: a finalizer that calls us again from a
//! collection step inside the call, and, on PUC Lua, an earlier call that a Lua error (out
//! of memory, a finalizer's error that Lua 5.1-5.3 pass on) left with `longjmp`, past the
//! borrow. Either way the call gets a fresh scratch owned by a Lua userdata: if a Lua error
//! jumps past the call, the collector frees it, where a value on the Rust stack would leak.

use super::api::c_function;
use mlua::ffi::{self, lua_State};
use std::cell::RefCell;
use std::thread::LocalKey;

/// Runs `f` with this thread's scratch from `slot`, or with a fresh one (see the module
/// comment). `f` may push values; they end up where they would have without the fallback.
///
/// # Safety
/// A valid state, from a C function.
pub unsafe fn with_scratch<T: Default + 'static, R>(
    l: *mut lua_State,
    slot: &'static LocalKey<RefCell<T>>,
    f: impl FnOnce(&mut T) -> R,
) -> R {
    slot.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => f(&mut scratch),
        Err(_) => with_collectable(l, f),
    })
}

#[cold]
#[inline(never)]
unsafe fn with_collectable<T: Default + 'static, R>(
    l: *mut lua_State,
    f: impl FnOnce(&mut T) -> R,
) -> R {
    const {
        assert!(
            std::mem::align_of::<T>() <= 8,
            "Lua aligns userdata to 8 bytes"
        )
    };
    if ffi::lua_checkstack(l, 3) == 0 {
        return f(&mut T::default());
    }
    // Made before the value is written, so that an error here finds nothing to free.
    let place = ffi::lua_newuserdata(l, std::mem::size_of::<T>()) as *mut T;
    ffi::lua_createtable(l, 0, 1);
    ffi::lua_pushcfunction(l, c_function(drop_userdata::<T>));
    ffi::lua_setfield(l, -2, c"__gc".as_ptr());
    place.write(T::default());
    ffi::lua_setmetatable(l, -2);
    let at = ffi::lua_gettop(l);
    let result = f(&mut *place);
    ffi::lua_remove(l, at);
    result
}

/// `__gc` of a fallback scratch.
unsafe extern "C-unwind" fn drop_userdata<T>(l: *mut lua_State) -> isize {
    let place = ffi::lua_touserdata(l, 1) as *mut T;
    if !place.is_null() {
        place.drop_in_place();
    }
    0
}
