//! Reading the optional `opts` table of `dump` and `load`.

use super::api::{bad_argument, number_at, type_name, Num};
use mlua::ffi::{self, lua_State};
use std::ffi::CStr;
use std::os::raw::c_int;

/// Positive integer `field` of the options table that is argument `arg`, if present.
///
/// # Safety
/// Argument `arg` is a table; one free stack slot.
pub unsafe fn limit_field(
    l: *mut lua_State,
    arg: c_int,
    fname: &str,
    field: &CStr,
) -> Result<Option<usize>, String> {
    // A static key: a Lua error from a metamethod here must find nothing of ours to free.
    ffi::lua_getfield(l, arg, field.as_ptr());
    let value = match ffi::lua_type(l, -1) {
        ffi::LUA_TNIL => Ok(None),
        // `as usize` saturates, so a huge float (math.huge too) means "no practical limit".
        ffi::LUA_TNUMBER => match number_at(l, -1) {
            Num::Int(n) if n > 0 => Ok(Some(n as usize)),
            Num::Float(f) if f >= 1.0 && (f.fract() == 0.0 || f.is_infinite()) => {
                Ok(Some(f as usize))
            }
            Num::Int(n) => Err(n.to_string()),
            Num::Float(f) => Err(f.to_string()),
        },
        _ => Err(type_name(l, -1).to_string()),
    };
    ffi::lua_pop(l, 1);
    value.map_err(|got| {
        let name = field.to_string_lossy();
        bad_argument(
            arg,
            fname,
            format!("opts.{name} must be a positive integer, got {got}"),
        )
    })
}

/// Every option `dump` and `load` know. Both accept all of them (each ignores the other's),
/// so that one table can serve both; any other key is a mistake worth an error. `safe` is
/// serpent.load's, so that a call written for serpent works unchanged.
const KNOWN_OPTIONS: [&str; 5] = ["maxdepth", "maxbytes", "maxnodes", "name", "safe"];

/// Fails on the first key of the options table that is argument `arg` that no function
/// knows: a misspelt limit would otherwise be ignored without a word.
///
/// # Safety
/// Argument `arg` is a table; two free stack slots.
pub unsafe fn check_option_names(l: *mut lua_State, arg: c_int, fname: &str) -> Result<(), String> {
    ffi::lua_pushnil(l);
    while ffi::lua_next(l, arg) != 0 {
        let known = ffi::lua_type(l, -2) == ffi::LUA_TSTRING && {
            let key = super::api::bytes_at(l, -2);
            KNOWN_OPTIONS.iter().any(|k| k.as_bytes() == key)
        };
        if !known {
            let key = match ffi::lua_type(l, -2) {
                ffi::LUA_TSTRING => {
                    format!("'{}'", String::from_utf8_lossy(super::api::bytes_at(l, -2)))
                }
                _ => format!("of type {}", type_name(l, -2)),
            };
            ffi::lua_pop(l, 2);
            return Err(bad_argument(
                arg,
                fname,
                format!(
                    "unknown option {key}; options are {}",
                    KNOWN_OPTIONS.join(", ")
                ),
            ));
        }
        ffi::lua_pop(l, 1);
    }
    Ok(())
}

/// String `field` of the options table that is argument `arg`, if present.
///
/// # Safety
/// Argument `arg` is a table; one free stack slot.
pub unsafe fn string_field(
    l: *mut lua_State,
    arg: c_int,
    fname: &str,
    field: &CStr,
) -> Result<Option<String>, String> {
    typed_field(l, arg, fname, field, ffi::LUA_TSTRING, |l| {
        String::from_utf8_lossy(super::api::bytes_at(l, -1)).into_owned()
    })
}

/// `field` of the options table that is argument `arg`, read by `read` when it has Lua type
/// `kind`; nil is `None`, any other type an error.
///
/// # Safety
/// Argument `arg` is a table; one free stack slot.
pub unsafe fn typed_field<T>(
    l: *mut lua_State,
    arg: c_int,
    fname: &str,
    field: &CStr,
    kind: c_int,
    read: impl FnOnce(*mut lua_State) -> T,
) -> Result<Option<T>, String> {
    ffi::lua_getfield(l, arg, field.as_ptr());
    let value = match ffi::lua_type(l, -1) {
        ffi::LUA_TNIL => Ok(None),
        t if t == kind => Ok(Some(read(l))),
        _ => Err(bad_argument(
            arg,
            fname,
            format!(
                "opts.{} must be a {}, got {}",
                field.to_string_lossy(),
                CStr::from_ptr(ffi::lua_typename(l, kind)).to_string_lossy(),
                type_name(l, -1)
            ),
        )),
    };
    ffi::lua_pop(l, 1);
    value
}

/// Checks that argument `arg` is nil/absent or a table; true when it is a table.
///
/// # Safety
/// A valid state.
#[inline]
pub unsafe fn opts_table(l: *mut lua_State, arg: c_int, fname: &str) -> Result<bool, String> {
    match ffi::lua_type(l, arg) {
        ffi::LUA_TNONE | ffi::LUA_TNIL => Ok(false),
        ffi::LUA_TTABLE => Ok(true),
        _ => Err(not_a_table(l, arg, fname)),
    }
}

#[cold]
#[inline(never)]
unsafe fn not_a_table(l: *mut lua_State, arg: c_int, fname: &str) -> String {
    bad_argument(
        arg,
        fname,
        format!("table expected, got {}", type_name(l, arg)),
    )
}
