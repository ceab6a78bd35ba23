//! `remote_runner.load(text [, opts]) -> true, value | false, err`: the parser drives a
//! builder that makes Lua values directly on the Lua stack.

use super::api::{bad_argument, bytes_at, guarded, push_int, type_name, HAS_INTEGERS};
use super::args::{limit_field, opts_table};
use crate::text::builder::{BuildError, BuildResult, Builder};
use crate::text::limits::LoadLimits;
use crate::text::parse::parse;
use mlua::ffi::{self, lua_State};
use std::os::raw::c_int;

/// Stack slots a nesting level may use (table, pending key, value) plus headroom.
const SLOTS_PER_LEVEL: c_int = 4;

struct LuaBuilder {
    l: *mut lua_State,
    /// Stack index of the dump chunk's locals (nil until the first `local`).
    locals: c_int,
}

impl LuaBuilder {
    #[inline]
    fn room(&self, n: c_int) -> BuildResult {
        // SAFETY: `l` is the live state of the running C function.
        if unsafe { ffi::lua_checkstack(self.l, n) } == 0 {
            return Err(BuildError::Exhausted("Lua stack"));
        }
        Ok(())
    }

    /// Lua refuses nil and NaN keys; the key is at `idx`.
    #[inline]
    unsafe fn check_key(&self, idx: c_int) -> BuildResult {
        match ffi::lua_type(self.l, idx) {
            ffi::LUA_TNIL => Err(BuildError::NilKey),
            ffi::LUA_TNUMBER if ffi::lua_tonumber(self.l, idx).is_nan() => Err(BuildError::NanKey),
            _ => Ok(()),
        }
    }

    #[inline]
    unsafe fn check_table(&self, idx: c_int) -> BuildResult {
        if ffi::lua_type(self.l, idx) != ffi::LUA_TTABLE {
            return Err(BuildError::NotATable);
        }
        Ok(())
    }
}

// SAFETY for every method: the parser keeps the stack balanced as the trait documents, and
// `room` is checked wherever the stack grows by more than the slots reserved per level.
impl Builder for LuaBuilder {
    fn has_integers(&self) -> bool {
        HAS_INTEGERS
    }
    #[inline]
    fn nil(&mut self) -> BuildResult {
        unsafe { ffi::lua_pushnil(self.l) };
        Ok(())
    }
    #[inline]
    fn boolean(&mut self, v: bool) -> BuildResult {
        unsafe { ffi::lua_pushboolean(self.l, v as c_int) };
        Ok(())
    }
    #[inline]
    fn integer(&mut self, v: i64) -> BuildResult {
        unsafe { push_int(self.l, v) };
        Ok(())
    }
    #[inline]
    fn float(&mut self, v: f64) -> BuildResult {
        unsafe { ffi::lua_pushnumber(self.l, v) };
        Ok(())
    }
    #[inline]
    fn string(&mut self, v: &[u8]) -> BuildResult {
        unsafe { ffi::lua_pushlstring(self.l, v.as_ptr() as *const _, v.len()) };
        Ok(())
    }
    #[inline]
    fn table(&mut self) -> BuildResult {
        self.room(SLOTS_PER_LEVEL)?;
        unsafe { ffi::lua_createtable(self.l, 0, 0) };
        Ok(())
    }
    #[inline]
    fn append(&mut self, index: i64) -> BuildResult {
        let index = index.try_into().map_err(|_| BuildError::Exhausted("array indices"))?;
        unsafe { ffi::lua_rawseti(self.l, -2, index) };
        Ok(())
    }
    #[inline]
    fn set(&mut self) -> BuildResult {
        unsafe {
            self.check_key(-2)?;
            ffi::lua_rawset(self.l, -3);
        }
        Ok(())
    }
    fn set_local(&mut self, slot: usize) -> BuildResult {
        unsafe {
            if ffi::lua_type(self.l, self.locals) != ffi::LUA_TTABLE {
                self.room(2)?;
                ffi::lua_createtable(self.l, 4, 0);
                ffi::lua_replace(self.l, self.locals);
            }
            ffi::lua_rawseti(self.l, self.locals, slot as _);
        }
        Ok(())
    }
    fn get_local(&mut self, slot: usize) -> BuildResult {
        self.room(SLOTS_PER_LEVEL)?;
        unsafe {
            self.check_table(self.locals)?;
            ffi::lua_rawgeti(self.l, self.locals, slot as _);
        }
        Ok(())
    }
    fn index(&mut self) -> BuildResult {
        unsafe {
            self.check_table(-2)?;
            ffi::lua_rawget(self.l, -2);
            ffi::lua_remove(self.l, -2);
        }
        Ok(())
    }
    fn assign(&mut self) -> BuildResult {
        unsafe {
            self.check_table(-3)?;
            self.check_key(-2)?;
            ffi::lua_rawset(self.l, -3);
            ffi::lua_pop(self.l, 1);
        }
        Ok(())
    }
}

unsafe fn load_limits(l: *mut lua_State) -> Result<LoadLimits, String> {
    let mut limits = LoadLimits::default();
    if opts_table(l, 2, "load")? {
        if let Some(v) = limit_field(l, 2, 2, "load", "maxdepth")? {
            limits.max_depth = v;
        }
        if let Some(v) = limit_field(l, 2, 2, "load", "maxbytes")? {
            limits.max_bytes = v;
        }
        if let Some(v) = limit_field(l, 2, 2, "load", "maxnodes")? {
            limits.max_nodes = v;
        }
    }
    Ok(limits)
}

/// Parses the string at `idx` onto the stack: returns Ok with the value on top, or the
/// error message with the stack as it was.
///
/// # Safety
/// A valid state; `idx` is an absolute index holding a string.
pub unsafe fn load_at(l: *mut lua_State, idx: c_int, limits: &LoadLimits) -> Result<(), String> {
    let base = ffi::lua_gettop(l);
    if ffi::lua_checkstack(l, 8) == 0 {
        return Err("out of Lua stack".into());
    }
    ffi::lua_pushnil(l); // the locals slot
    let text = bytes_at(l, idx);
    let mut builder = LuaBuilder { l, locals: base + 1 };
    match parse(text, limits, &mut builder) {
        Ok(()) => {
            ffi::lua_remove(l, base + 1);
            Ok(())
        }
        Err(e) => {
            ffi::lua_settop(l, base);
            Err(e.to_string())
        }
    }
}

pub unsafe extern "C-unwind" fn lua_load(l: *mut lua_State) -> c_int {
    guarded(l, "load", || {
        if ffi::lua_type(l, 1) != ffi::LUA_TSTRING {
            return Err(bad_argument(1, "load", format!("string expected, got {}", type_name(l, 1))));
        }
        let limits = load_limits(l)?;
        match load_at(l, 1, &limits) {
            Ok(()) => {
                ffi::lua_pushboolean(l, 1);
                ffi::lua_insert(l, -2);
            }
            Err(msg) => {
                ffi::lua_pushboolean(l, 0);
                ffi::lua_pushlstring(l, msg.as_ptr() as *const _, msg.len());
            }
        }
        Ok(2)
    })
}
