//! Thin helpers over the Lua C API that differ between Lua versions, and the one way a raw
//! C function in this crate raises a Lua error.

use super::scratch_slot::with_scratch;
use mlua::ffi::{self, lua_State};
use std::cell::RefCell;
use std::os::raw::c_int;

pub use crate::text::number::Num;

/// Lua 5.3+ has an integer subtype; 5.1, 5.2 and LuaJIT only have doubles.
pub const HAS_INTEGERS: bool = cfg!(any(feature = "lua53", feature = "lua54"));

/// The number at `idx` with its subtype (always `Float` without integers).
///
/// # Safety
/// `idx` must hold a number.
#[inline]
pub unsafe fn number_at(l: *mut lua_State, idx: c_int) -> Num {
    if HAS_INTEGERS && ffi::lua_isinteger(l, idx) != 0 {
        Num::Int(ffi::lua_tointegerx(l, idx, std::ptr::null_mut()) as i64)
    } else {
        Num::Float(ffi::lua_tonumber(l, idx))
    }
}

/// The number at `idx` when it is an integer (or a float holding one exactly).
///
/// # Safety
/// `idx` must hold a number.
pub unsafe fn integer_at(l: *mut lua_State, idx: c_int) -> Option<i64> {
    number_at(l, idx).as_integer()
}

/// `number_at` for a table key, in one call on Lua 5.3+: a float key with an integral value
/// in range is stored as an integer key, so a key that converts to an integer is one.
///
/// # Safety
/// `idx` must hold a number that is a table key.
#[inline]
pub unsafe fn key_number_at(l: *mut lua_State, idx: c_int) -> Num {
    if HAS_INTEGERS {
        let mut is_integer = 0;
        let i = ffi::lua_tointegerx(l, idx, &mut is_integer);
        if is_integer != 0 {
            return Num::Int(i as i64);
        }
    }
    Num::Float(ffi::lua_tonumber(l, idx))
}

/// # Safety
/// A valid state with a free stack slot.
#[inline]
pub unsafe fn push_int(l: *mut lua_State, v: i64) {
    if HAS_INTEGERS {
        ffi::lua_pushinteger(l, v as ffi::lua_Integer);
    } else {
        ffi::lua_pushnumber(l, v as f64);
    }
}

/// The bytes of the string at `idx`; the slice lives as long as the string stays on the stack.
///
/// # Safety
/// `idx` must hold a string (not a number: `lua_tolstring` would convert it in place).
#[inline]
pub unsafe fn bytes_at<'a>(l: *mut lua_State, idx: c_int) -> &'a [u8] {
    let mut len = 0usize;
    let ptr = ffi::lua_tolstring(l, idx, &mut len);
    if ptr.is_null() {
        &[]
    } else {
        std::slice::from_raw_parts(ptr as *const u8, len)
    }
}

/// # Safety
/// A valid state.
pub unsafe fn type_name(l: *mut lua_State, idx: c_int) -> &'static str {
    match ffi::lua_type(l, idx) {
        ffi::LUA_TNONE => "no value",
        ffi::LUA_TNIL => "nil",
        ffi::LUA_TBOOLEAN => "boolean",
        ffi::LUA_TLIGHTUSERDATA | ffi::LUA_TUSERDATA => "userdata",
        ffi::LUA_TNUMBER => "number",
        ffi::LUA_TSTRING => "string",
        ffi::LUA_TTABLE => "table",
        ffi::LUA_TFUNCTION => "function",
        ffi::LUA_TTHREAD => "thread",
        _ => "cdata",
    }
}

/// Pushes `msg` and raises it as a Lua error. Callers hold no value with a destructor at
/// this point: the error unwinds past this frame with `longjmp` on PUC Lua.
///
/// # Safety
/// A valid state, called from a C function.
pub unsafe fn raise(l: *mut lua_State, msg: String) -> ! {
    push_owned(l, msg);
    ffi::lua_error(l)
}

thread_local! {
    /// Bytes written to be pushed as a Lua string, kept between calls.
    static STAGING: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `stage` with the thread's staging buffer, emptied, from which it pushes what it
/// writes. Pushing from there rather than from a buffer of its own on the Rust stack matters:
/// running out of memory in the push raises a Lua error, which on PUC Lua jumps over this
/// frame and would leak that buffer.
///
/// # Safety
/// A valid state, from a C function.
pub unsafe fn with_staging<R>(l: *mut lua_State, stage: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    with_scratch(l, &STAGING, |staging: &mut Vec<u8>| {
        staging.clear();
        let result = stage(staging);
        if staging.capacity() > KEEP_BUFFER_BYTES {
            *staging = Vec::new();
        }
        result
    })
}

/// Pushes `text` as a Lua string, freed before the push (see `with_staging`).
///
/// # Safety
/// A valid state with a free stack slot.
pub unsafe fn push_owned(l: *mut lua_State, text: String) {
    with_staging(l, move |staging| {
        staging.extend_from_slice(text.as_bytes());
        drop(text);
        push_bytes(l, staging);
    })
}

/// Largest buffer a C function keeps between calls; a bigger one is released after use.
pub const KEEP_BUFFER_BYTES: usize = 1 << 20;

/// Pushes `bytes` as a Lua string.
///
/// # Safety
/// A valid state with a free stack slot.
#[inline]
pub unsafe fn push_bytes(l: *mut lua_State, bytes: &[u8]) {
    ffi::lua_pushlstring(l, bytes.as_ptr() as *const _, bytes.len());
}

/// The type of this crate's C functions. They return the result count as a full register:
/// LuaJIT 2.1's VM reads all 64 bits of `rax` after a C call, and Rust (like the C ABI) leaves
/// the upper half of an `int` return undefined, so an `int` count could arrive as garbage.
pub type RawFunction = unsafe extern "C-unwind" fn(*mut lua_State) -> isize;

/// A `RawFunction` as the `lua_CFunction` Lua expects.
pub fn c_function(f: RawFunction) -> ffi::lua_CFunction {
    // SAFETY: same arguments and calling convention; the wider return value is read from the
    // same register by every caller (C callers use its low half, which holds the same count).
    unsafe { std::mem::transmute::<RawFunction, ffi::lua_CFunction>(f) }
}

/// Runs the body of a C function, turning a returned error into a Lua error and, on PUC Lua,
/// a panic into a Lua error too, so that no panic crosses into the host.
///
/// A Lua error raised inside a body (out of memory, a finalizer's error that Lua 5.1-5.3 and
/// LuaJIT pass on from a collection step, an options table's metamethod) must reach the
/// caller as a Lua error. PUC Lua raises with `longjmp`, which `catch_unwind` does not see.
/// LuaJIT throws an exception instead, and `catch_unwind` turns a foreign exception into a
/// process abort; so on LuaJIT the body runs without it: Lua errors unwind through our
/// frames (dropping what they hold), and a panic, which would be a bug of ours, aborts with
/// Rust's message rather than taking every Lua error down with it.
///
/// # Safety
/// A valid state, called as a C function.
pub unsafe fn guarded(
    l: *mut lua_State,
    name: &str,
    body: impl FnOnce() -> Result<c_int, String>,
) -> isize {
    let msg = if LUA_ERRORS_ARE_EXCEPTIONS {
        match body() {
            Ok(n) => return n as isize,
            Err(msg) => msg,
        }
    } else {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
            Ok(Ok(n)) => return n as isize,
            Ok(Err(msg)) => msg,
            Err(_) => format!("remote_runner: internal error in '{name}' (please report it)"),
        }
    };
    raise(l, msg)
}

/// LuaJIT on x86-64 raises Lua errors as exceptions that unwind the native stack.
const LUA_ERRORS_ARE_EXCEPTIONS: bool = cfg!(feature = "luajit");

/// `bad argument #n to 'fname' (what)`, Lua's own wording.
pub fn bad_argument(n: c_int, fname: &str, what: impl std::fmt::Display) -> String {
    format!("bad argument #{n} to '{fname}' ({what})")
}
