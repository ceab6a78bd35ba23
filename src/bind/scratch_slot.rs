//! Per-thread scratch space that a Lua error cannot leak.
//!
//! A C function borrows its thread's scratch for the whole call, so that the steady state
//! allocates nothing. Two things can find it taken: a finalizer that calls us again from a
//! collection step inside the call, and, on PUC Lua, an earlier call that a Lua error (out
//! of memory, a finalizer's error that Lua 5.1-5.3 pass on) left with `longjmp`, past the
//! borrow, which then stays taken for good. Either way the call uses a spare scratch owned
//! by a Lua userdata and kept in the registry: while a call uses it, it also sits on that
//! call's stack, so when an error jumps past the call Lua's collector frees it (a value on
//! the Rust stack would leak), and a spare found in use is simply replaced.

use super::api::c_function;
use mlua::ffi::{self, lua_State};
use std::cell::RefCell;
use std::ffi::c_void;
use std::os::raw::c_int;
use std::thread::LocalKey;

/// Runs `f` with this thread's scratch from `slot`, or with a fresh one (see the module
/// comment). `f` may push values; they end up where they would have without the fallback.
///
/// # Safety
/// A valid state, from a C function.
#[inline(always)]
pub unsafe fn with_scratch<T: Default + 'static, R>(
    l: *mut lua_State,
    slot: &'static LocalKey<RefCell<T>>,
    f: impl FnOnce(&mut T) -> R,
) -> R {
    slot.with(|cell| {
        let mut borrowed = cell.try_borrow_mut();
        let mut boxed = None;
        // One call of `f` for both cases, so that it is inlined into the caller.
        let (scratch, spare) = match borrowed {
            Ok(ref mut scratch) => (&mut **scratch as *mut T, None),
            Err(_) => spare_scratch(l, slot, &mut boxed),
        };
        let result = f(&mut *scratch);
        if let Some((in_use, at)) = spare {
            *in_use = false;
            ffi::lua_remove(l, at);
        }
        result
    })
}

/// A spare scratch that is not in use, on the stack, with its in-use flag (now set) and its
/// stack index; or, with no room on the stack, a fresh scratch in `boxed`.
#[cold]
#[inline(never)]
unsafe fn spare_scratch<T: Default + 'static>(
    l: *mut lua_State,
    slot: &'static LocalKey<RefCell<T>>,
    boxed: &mut Option<Box<T>>,
) -> (*mut T, Option<(*mut bool, c_int)>) {
    const {
        assert!(
            std::mem::align_of::<Spare<T>>() <= 8,
            "Lua aligns userdata to 8 bytes"
        )
    };
    if ffi::lua_checkstack(l, 4) == 0 {
        return (&mut **boxed.insert(Box::default()) as *mut T, None);
    }
    // The slot's address is a registry key no other code uses.
    let key = slot as *const LocalKey<RefCell<T>> as *mut c_void;
    ffi::lua_pushlightuserdata(l, key);
    ffi::lua_rawget(l, ffi::LUA_REGISTRYINDEX);
    let found = ffi::lua_touserdata(l, -1) as *mut Spare<T>;
    if !found.is_null() && !(*found).in_use {
        return claim(found, ffi::lua_gettop(l));
    }
    ffi::lua_pop(l, 1);
    // Made before the value is written, so that an error here finds nothing to free.
    let place = ffi::lua_newuserdata(l, std::mem::size_of::<Spare<T>>()) as *mut Spare<T>;
    ffi::lua_createtable(l, 0, 1);
    ffi::lua_pushcfunction(l, c_function(drop_userdata::<Spare<T>>));
    ffi::lua_setfield(l, -2, c"__gc".as_ptr());
    place.write(Spare {
        in_use: false,
        value: T::default(),
    });
    ffi::lua_setmetatable(l, -2);
    // The registry keeps it for the next call; a spare it held before (stale, or in use by a
    // call further down) now lives only as long as some stack holds it.
    ffi::lua_pushlightuserdata(l, key);
    ffi::lua_pushvalue(l, -2);
    ffi::lua_rawset(l, ffi::LUA_REGISTRYINDEX);
    claim(place, ffi::lua_gettop(l))
}

unsafe fn claim<T>(spare: *mut Spare<T>, at: c_int) -> (*mut T, Option<(*mut bool, c_int)>) {
    (*spare).in_use = true;
    (
        std::ptr::addr_of_mut!((*spare).value),
        Some((std::ptr::addr_of_mut!((*spare).in_use), at)),
    )
}

/// A spare scratch and whether a call is using it.
struct Spare<T> {
    value: T,
    in_use: bool,
}

/// `__gc` of a spare scratch.
unsafe extern "C-unwind" fn drop_userdata<T>(l: *mut lua_State) -> isize {
    let place = ffi::lua_touserdata(l, 1) as *mut T;
    if !place.is_null() {
        place.drop_in_place();
    }
    0
}
