//! Calls in flight: `pending` (id → call record), `per_server` (server id → calls in flight)
//! and the timeout wheel (slot → { [id] = record }), kept in Lua tables that
//! lua/remote_runner.lua's poll, cancel and configure use too.
//!
//! A call record is the array `{ id, svr_id, module, func, on_result|false, on_error|false,
//! deadline, slot, timeout }`.

use super::books::{books, get_int_key, push_helper, set_int_key, slot, Books};
use crate::bind::api::{guarded, integer_at};
use mlua::ffi::{self, lua_State};
use std::os::raw::c_int;

pub const ID: ffi::lua_Integer = 1;
pub const SVR: ffi::lua_Integer = 2;
pub const ON_RESULT: ffi::lua_Integer = 5;
pub const DEADLINE: ffi::lua_Integer = 7;
pub const SLOT: ffi::lua_Integer = 8;
pub const TIMEOUT: ffi::lua_Integer = 9;

/// Timeouts are kept in slots of this many seconds; a call times out on the first poll after
/// the end of its slot.
const SLOT_SECONDS: f64 = 0.01;
/// Calls with a timeout above this many seconds share wider slots (see `schedule`).
pub const LONG_TIMEOUT: f64 = 10.0;

/// Lua's `a % b` on floats (the sign of the result follows `b`).
fn lua_mod(a: f64, b: f64) -> f64 {
    let m = a % b;
    if (m > 0.0 && b < 0.0) || (m < 0.0 && b != m && b > 0.0) {
        m + b
    } else {
        m
    }
}

/// floor(time / SLOT_SECONDS) + 1; math.huge stays math.huge.
pub fn slot_of(time: f64) -> f64 {
    let q = time / SLOT_SECONDS;
    let frac = lua_mod(q, 1.0);
    if frac.is_nan() {
        return q;
    }
    q - frac + 1.0
}

/// The number at `idx` (0 when it is none).
unsafe fn number(l: *mut lua_State, idx: c_int) -> f64 {
    ffi::lua_tonumberx(l, idx, std::ptr::null_mut())
}

/// `t[slot]`, pushed.
unsafe fn get_slot(l: *mut lua_State, t: c_int, slot: f64) -> c_int {
    ffi::lua_pushnumber(l, slot);
    ffi::lua_rawget(l, t)
}

/// `t[slot] = top` (popped).
unsafe fn set_slot(l: *mut lua_State, t: c_int, slot: f64) {
    ffi::lua_pushnumber(l, slot);
    ffi::lua_insert(l, -2);
    ffi::lua_rawset(l, t);
}

/// Puts the call record at `call` (absolute) in its timeout slot, and the slot in it.
///
/// # Safety
/// From a closure made by `new_books`, with 6 free stack slots. Allocates: a Lua error may
/// leave the call in a slot without being on the books, which its slot's expiry drops.
pub unsafe fn schedule(l: *mut lua_State, b: *mut Books, call: c_int) {
    let top = ffi::lua_gettop(l);
    ffi::lua_rawgeti(l, call, TIMEOUT);
    ffi::lua_rawgeti(l, call, DEADLINE);
    let timeout = number(l, -2);
    let mut slot = slot_of(number(l, -1));
    ffi::lua_rawgeti(l, call, ID);
    let id = integer_at(l, -1).unwrap_or(0);
    ffi::lua_settop(l, top);
    if timeout > LONG_TIMEOUT && timeout < f64::INFINITY {
        // Long timeouts share wider slots, a power of two of them about a thousandth of the
        // timeout: such a call fires up to 0.2% late, and the wheel holds 500 to 1,000 slots
        // per timeout length instead of one per 10 ms.
        let mut width = 2.0;
        while width * 10.0 < timeout {
            width *= 2.0;
        }
        slot += lua_mod(width - lua_mod(slot, width), width);
    }
    // Never a slot poll has already passed, which it would never visit again: a deadline that
    // was already over when configure{clock} moved it, or a clock that went back.
    let next_slot = (*b).next_slot;
    if slot < next_slot {
        slot = next_slot;
    }
    push_helper(l, slot::WHEEL);
    let wheel = top + 1;
    if get_slot(l, wheel, slot) == ffi::LUA_TNIL {
        ffi::lua_pop(l, 1);
        ffi::lua_createtable(l, 0, 0);
        // A finalizer run by that allocation may have started a call and made the bucket.
        if get_slot(l, wheel, slot) == ffi::LUA_TNIL {
            ffi::lua_pop(l, 1);
            ffi::lua_pushvalue(l, -1);
            set_slot(l, wheel, slot);
        } else {
            ffi::lua_remove(l, -2);
        }
    }
    let bucket = top + 2;
    // A long-lived slot (wide, or the one of calls without a timeout) counts its calls, so that
    // its table goes with its last call instead of keeping its peak size until it expires. The
    // count's key and the bucket's entry are made before anything is counted.
    let long = timeout > LONG_TIMEOUT;
    push_helper(l, slot::LONG_SLOT_CALLS);
    let long_calls = top + 3;
    if long && get_slot(l, long_calls, slot) == ffi::LUA_TNIL {
        ffi::lua_pop(l, 1);
        ffi::lua_pushinteger(l, 0);
        set_slot(l, long_calls, slot);
    } else if long {
        ffi::lua_pop(l, 1);
    }
    ffi::lua_pushvalue(l, call);
    set_int_key(l, bucket, id);
    if long {
        get_slot(l, long_calls, slot);
        let calls = number(l, -1);
        ffi::lua_pop(l, 1);
        ffi::lua_pushnumber(l, calls + 1.0);
        set_slot(l, long_calls, slot);
    }
    ffi::lua_pushnumber(l, slot);
    ffi::lua_rawseti(l, call, SLOT);
    ffi::lua_settop(l, top);
}

/// Takes call `id` off the books; false if it was not in flight (timed out, answered,
/// cancelled). A 10 ms slot's bucket stays (empty or not) until its slot expires: the next
/// call likely uses it too. A long-lived slot's bucket goes with its last call. Allocates
/// nothing.
///
/// # Safety
/// From a closure made by `new_books`, with 6 free stack slots.
pub unsafe fn untrack(l: *mut lua_State, b: *mut Books, id: i64) -> bool {
    let top = ffi::lua_gettop(l);
    push_helper(l, slot::PENDING);
    let pending = top + 1;
    if get_int_key(l, pending, id) == ffi::LUA_TNIL {
        ffi::lua_settop(l, top);
        return false;
    }
    let call = top + 2;
    ffi::lua_pushnil(l);
    set_int_key(l, pending, id);
    (*b).in_flight -= 1;
    push_helper(l, slot::PER_SERVER);
    let per_server = top + 3;
    ffi::lua_rawgeti(l, call, SVR);
    ffi::lua_pushvalue(l, -1);
    ffi::lua_rawget(l, per_server);
    let left = number(l, -1) - 1.0;
    ffi::lua_pop(l, 1);
    if left > 0.0 {
        ffi::lua_pushinteger(l, left as ffi::lua_Integer);
    } else {
        ffi::lua_pushnil(l);
    }
    ffi::lua_rawset(l, per_server);
    ffi::lua_rawgeti(l, call, SLOT);
    if ffi::lua_type(l, -1) != ffi::LUA_TNUMBER {
        // configure{clock} is rebuilding the wheel, without this call yet.
        ffi::lua_settop(l, top);
        return true;
    }
    let slot = number(l, -1);
    push_helper(l, slot::WHEEL);
    let wheel = top + 5;
    let has_bucket = get_slot(l, wheel, slot) == ffi::LUA_TTABLE;
    let bucket = top + 6;
    if has_bucket {
        ffi::lua_pushnil(l);
        set_int_key(l, bucket, id);
    }
    ffi::lua_rawgeti(l, call, TIMEOUT);
    if number(l, -1) > LONG_TIMEOUT {
        push_helper(l, slot::LONG_SLOT_CALLS);
        let long_calls = top + 8;
        get_slot(l, long_calls, slot);
        let calls = ffi::lua_type(l, -1) == ffi::LUA_TNUMBER;
        let count = number(l, -1);
        ffi::lua_pop(l, 1);
        if calls && count == 1.0 {
            ffi::lua_pushnil(l);
            set_slot(l, long_calls, slot);
            // Short calls due in the same 10 ms share the bucket: it goes only when empty.
            if has_bucket {
                ffi::lua_pushnil(l);
                if ffi::lua_next(l, bucket) == 0 {
                    ffi::lua_pushnil(l);
                    set_slot(l, wheel, slot);
                } else {
                    ffi::lua_pop(l, 2);
                }
            }
        } else if calls {
            ffi::lua_pushnumber(l, count - 1.0);
            set_slot(l, long_calls, slot);
        }
    }
    ffi::lua_settop(l, top);
    true
}

/// `untrack(id)` → the call record, or nil when it was not in flight.
pub(crate) unsafe extern "C-unwind" fn lua_untrack(l: *mut lua_State) -> isize {
    guarded(l, "untrack", || {
        let id = integer_at(l, 1).unwrap_or(0);
        ffi::lua_settop(l, 1);
        ffi::lua_checkstack(l, 12);
        push_helper(l, slot::PENDING);
        get_int_key(l, 2, id);
        if !untrack(l, books(l), id) {
            return Ok(0);
        }
        Ok(1)
    })
}

/// `schedule(call)`: puts the record in its timeout slot (configure{clock} moves them all).
pub(crate) unsafe extern "C-unwind" fn lua_schedule(l: *mut lua_State) -> isize {
    guarded(l, "schedule", || {
        ffi::luaL_checktype(l, 1, ffi::LUA_TTABLE);
        ffi::lua_settop(l, 1);
        ffi::lua_checkstack(l, 12);
        schedule(l, books(l), 1);
        Ok(0)
    })
}

/// `slot_of(time)` → the timeout slot of that time.
pub(crate) unsafe extern "C-unwind" fn lua_slot_of(l: *mut lua_State) -> isize {
    let t = number(l, 1);
    ffi::lua_pushnumber(l, slot_of(t));
    1
}
