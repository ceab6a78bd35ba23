//! The caller side of a call: starting it (`start_call`, behind rr.run_mfa and rr.call) and
//! taking its reply (`on_response`, and the transport callback of each call). The usual path
//! runs here; failures are handed to the Lua layer's helpers, which make the error objects
//! and queue them.

use super::books::{books, get_int_key, now, push_helper, set_int_key, slot, Books};
use super::wheel::{schedule, slot_of, untrack, ON_RESULT};
use crate::bind::api::{bytes_at, guarded, integer_at, push_int, push_owned};
use mlua::ffi::{self, lua_State};
use std::os::raw::c_int;

/// The budget field is 32 bits of milliseconds; a longer timeout (math.huge: none) sends this.
const MAX_BUDGET_MS: f64 = 4294967295.0;

/// Pushes the transport's function `name`: the table given to set_transport, else the
/// global c_rpc's, looked up at each use so that a host may install c_rpc after loading.
///
/// # Safety
/// From a closure made by `new_books`, with 3 free stack slots. A transport table's
/// __index may run Lua code.
pub unsafe fn push_transport_function(l: *mut lua_State, name: &std::ffi::CStr) -> c_int {
    if push_helper(l, slot::TRANSPORT) != ffi::LUA_TTABLE {
        ffi::lua_pop(l, 1);
        ffi::lua_pushglobaltable(l);
        ffi::lua_pushstring(l, c"c_rpc".as_ptr());
        ffi::lua_rawget(l, -2);
        ffi::lua_remove(l, -2);
        if ffi::lua_type(l, -1) != ffi::LUA_TTABLE {
            ffi::lua_pop(l, 1);
            ffi::lua_pushnil(l);
            return ffi::LUA_TNIL;
        }
    }
    ffi::lua_getfield(l, -1, name.as_ptr());
    ffi::lua_remove(l, -2);
    ffi::lua_type(l, -1)
}

/// Whether the server id at `idx` is this server's own (configure{self_id}).
unsafe fn is_self(l: *mut lua_State, b: *mut Books, idx: c_int) -> bool {
    let Some(self_id) = (*b).self_id else {
        return false;
    };
    if ffi::lua_type(l, idx) != ffi::LUA_TNUMBER {
        return false;
    }
    push_int(l, self_id);
    let same = ffi::lua_rawequal(l, idx, -1) != 0;
    ffi::lua_pop(l, 1);
    same
}

/// Calls helper `at` with the `nargs` values on top; no results.
unsafe fn call_helper(l: *mut lua_State, at: ffi::lua_Integer, nargs: c_int) {
    push_helper(l, at);
    ffi::lua_insert(l, -(nargs + 1));
    ffi::lua_call(l, nargs, 0);
}

/// `start_call(svr_id, module, func, args, on_result?, on_error?, timeout?)` → the call id,
/// or nothing when an argument has the wrong type, or `nil, n, why` when argument `n` cannot
/// be sent. The call is sent, or ends with a failure delivered at the next poll.
pub(crate) unsafe extern "C-unwind" fn lua_start_call(l: *mut lua_State) -> isize {
    guarded(l, "start_call", || {
        ffi::lua_settop(l, 7);
        ffi::lua_checkstack(l, 24);
        let b = books(l);
        let timeout = if ffi::lua_type(l, 7) == ffi::LUA_TNUMBER {
            ffi::lua_tonumberx(l, 7, std::ptr::null_mut())
        } else if (*b).serving > 0 {
            // A nested call's default timeout: no longer than what is left of the served
            // call's budget.
            ffi::lua_pushnumber(l, (*b).timeout);
            push_helper(l, slot::NESTED_TIMEOUT);
            ffi::lua_insert(l, -2);
            ffi::lua_call(l, 1, 1);
            let t = ffi::lua_tonumberx(l, -1, std::ptr::null_mut());
            ffi::lua_pop(l, 1);
            t
        } else {
            (*b).timeout
        };
        // The id is taken before anything that can run other Lua code: a __gc finalizer may
        // start a call of its own while this one allocates (a failed call leaves a gap).
        let id = (*b).next_id;
        (*b).next_id = id + 1;
        let budget_ms = if timeout < MAX_BUDGET_MS / 1000.0 {
            (timeout * 1000.0).floor()
        } else {
            MAX_BUDGET_MS
        };
        // Arguments that cannot be sent raise at the call site, before anything is counted.
        push_helper(l, slot::ENCODE_REQUEST);
        for i in 1..=5 {
            ffi::lua_pushvalue(l, i);
        }
        match (*b).self_id {
            Some(v) => push_int(l, v),
            None => ffi::lua_pushnil(l),
        }
        push_int(l, id);
        push_int(l, budget_ms as i64);
        push_int(l, (*b).max_depth);
        push_int(l, (*b).max_bytes);
        ffi::lua_call(l, 10, 3);
        const REQUEST: c_int = 8;
        if ffi::lua_type(l, REQUEST) != ffi::LUA_TSTRING {
            return Ok(3);
        }
        let request_len = ffi::lua_rawlen(l, REQUEST) as i64;
        ffi::lua_settop(l, REQUEST);
        let now = now(l, b);
        // The record; its slot is set by schedule once the call is in flight.
        const CALL: c_int = 9;
        ffi::lua_createtable(l, 9, 0);
        push_int(l, id);
        ffi::lua_rawseti(l, CALL, 1);
        // svr_id, module, func at 2..4; on_result, on_error (or false) at 5 and 6.
        for i in 1..=3 {
            ffi::lua_pushvalue(l, i);
            ffi::lua_rawseti(l, CALL, i as ffi::lua_Integer + 1);
        }
        for i in 5..=6 {
            if ffi::lua_type(l, i) == ffi::LUA_TNIL {
                ffi::lua_pushboolean(l, 0);
            } else {
                ffi::lua_pushvalue(l, i);
            }
            ffi::lua_rawseti(l, CALL, i as ffi::lua_Integer);
        }
        ffi::lua_pushnumber(l, now + timeout);
        ffi::lua_rawseti(l, CALL, 7);
        ffi::lua_pushinteger(l, 0);
        ffi::lua_rawseti(l, CALL, 8);
        ffi::lua_pushvalue(l, 7);
        if ffi::lua_type(l, -1) != ffi::LUA_TNUMBER {
            ffi::lua_pop(l, 1);
            ffi::lua_pushnumber(l, timeout);
        }
        ffi::lua_rawseti(l, CALL, 9);
        let in_flight = (*b).in_flight;
        if in_flight as f64 >= (*b).max_pending {
            let why = format!("{in_flight} calls in flight (max_pending)");
            return overloaded(l, id, CALL, why);
        }
        const PER_SERVER: c_int = 10;
        push_helper(l, slot::PER_SERVER);
        ffi::lua_pushvalue(l, 1);
        let known_server = ffi::lua_rawget(l, PER_SERVER) == ffi::LUA_TNUMBER;
        let to_server = ffi::lua_tonumberx(l, -1, std::ptr::null_mut());
        ffi::lua_pop(l, 1);
        if to_server >= (*b).max_pending_per_server {
            ffi::lua_pushvalue(l, 1);
            let server = String::from_utf8_lossy(bytes_at(l, -1)).into_owned();
            ffi::lua_pop(l, 1);
            return overloaded(
                l,
                id,
                CALL,
                format!("{to_server} calls in flight to server {server} (max_pending_per_server)"),
            );
        }
        let to_self = is_self(l, b, 1);
        const ON_REPLY: c_int = 11;
        if to_self {
            ffi::lua_pushnil(l);
        } else {
            ffi::lua_pushvalue(l, super::books::UP_BOOKS);
            ffi::lua_pushvalue(l, super::books::UP_HELPERS);
            push_int(l, id);
            ffi::lua_pushcclosure(l, crate::bind::api::c_function(lua_on_reply), 3);
        }
        // In flight from here: in its timeout slot, on the books, counted. What allocates
        // comes first (a failure there leaves at most a call in a slot that is not on the
        // books, which its slot's expiry drops).
        if !known_server {
            ffi::lua_pushvalue(l, 1);
            ffi::lua_pushinteger(l, 0);
            ffi::lua_rawset(l, PER_SERVER);
        }
        schedule(l, b, CALL);
        push_helper(l, slot::PENDING);
        ffi::lua_pushvalue(l, CALL);
        set_int_key(l, ON_REPLY + 1, id);
        ffi::lua_pop(l, 1);
        (*b).in_flight += 1;
        ffi::lua_pushvalue(l, 1);
        ffi::lua_pushvalue(l, 1);
        ffi::lua_rawget(l, PER_SERVER);
        let count = ffi::lua_tonumberx(l, -1, std::ptr::null_mut());
        ffi::lua_pop(l, 1);
        ffi::lua_pushinteger(l, count as ffi::lua_Integer + 1);
        ffi::lua_rawset(l, PER_SERVER);
        if (*b).next_slot.is_nan() {
            (*b).next_slot = slot_of(now);
        }
        if to_self {
            // Counted before it is served: the reply may come back inside.
            (*b).sent += 1;
            (*b).bytes_out += request_len;
            push_helper(l, slot::LOCAL_CALL);
            push_int(l, id);
            ffi::lua_pushvalue(l, CALL);
            ffi::lua_pushvalue(l, REQUEST);
            (*b).inside_run_mfa += 1;
            let status = ffi::lua_pcall(l, 3, 0, 0);
            (*b).inside_run_mfa -= 1;
            if status != ffi::LUA_OK {
                ffi::lua_error(l);
            }
            push_int(l, id);
            return Ok(1);
        }
        let sent = if push_transport_function(l, c"request_svr") == ffi::LUA_TNIL {
            ffi::lua_pushstring(l, c"none".as_ptr());
            ffi::lua_pushnil(l);
            false
        } else {
            ffi::lua_pushvalue(l, 1);
            ffi::lua_pushstring(l, c"svr.RunLua".as_ptr());
            ffi::lua_pushstring(l, c"RunMfa".as_ptr());
            ffi::lua_pushvalue(l, REQUEST);
            ffi::lua_pushvalue(l, ON_REPLY);
            (*b).inside_run_mfa += 1;
            let status = ffi::lua_pcall(l, 5, 1, 0);
            (*b).inside_run_mfa -= 1;
            if status != ffi::LUA_OK {
                ffi::lua_pushstring(l, c"raised".as_ptr());
                ffi::lua_insert(l, -2);
                false
            } else if ffi::lua_type(l, -1) == ffi::LUA_TBOOLEAN && ffi::lua_toboolean(l, -1) == 0 {
                ffi::lua_pushstring(l, c"refused".as_ptr());
                ffi::lua_insert(l, -2);
                false
            } else {
                true
            }
        };
        if sent {
            // Only a request the transport took counts (an overloaded or refused one fails).
            (*b).sent += 1;
            (*b).bytes_out += request_len;
        } else {
            // transport_failed(id, call, how, value)
            push_int(l, id);
            ffi::lua_pushvalue(l, CALL);
            ffi::lua_rotate(l, -4, 2);
            call_helper(l, slot::TRANSPORT_FAILED, 4);
        }
        push_int(l, id);
        Ok(1)
    })
}

/// A call refused before it was sent (its record at `call`): its failure is queued.
unsafe fn overloaded(
    l: *mut lua_State,
    id: i64,
    call: c_int,
    message: String,
) -> Result<c_int, String> {
    ffi::lua_pushvalue(l, call);
    ffi::lua_pushstring(l, c"overloaded".as_ptr());
    push_owned(l, message);
    call_helper(l, slot::FAIL_LATER, 3);
    push_int(l, id);
    Ok(1)
}

/// The reply (or transport failure) of call `id`: content at `content`, the transport's
/// error at `content + 1`.
pub(crate) unsafe fn respond(l: *mut lua_State, id: i64, content: c_int) -> c_int {
    let b = books(l);
    ffi::lua_checkstack(l, 16);
    // Received bytes count whether or not the call still waits for them.
    let is_bytes = ffi::lua_type(l, content) == ffi::LUA_TSTRING;
    if is_bytes {
        (*b).bytes_in += ffi::lua_rawlen(l, content) as i64;
    }
    push_helper(l, slot::PENDING);
    if get_int_key(l, ffi::lua_gettop(l), id) == ffi::LUA_TNIL {
        (*b).late_replies += 1;
        return 0;
    }
    let call = ffi::lua_gettop(l);
    if !is_bytes {
        push_int(l, id);
        ffi::lua_pushvalue(l, call);
        push_int(l, (*b).inside_run_mfa);
        ffi::lua_pushvalue(l, content + 1);
        call_helper(l, slot::NO_RESPONSE, 4);
        return 0;
    }
    let base = ffi::lua_gettop(l);
    push_helper(l, slot::DECODE_RESPONSE);
    ffi::lua_pushvalue(l, content);
    push_int(l, (*b).max_depth);
    push_int(l, (*b).max_bytes);
    push_int(l, id);
    ffi::lua_call(l, 4, ffi::LUA_MULTRET);
    // base + 1: ok; then the results, or kind, message, traceback.
    let count = ffi::lua_gettop(l) - base;
    let ok = ffi::lua_toboolean(l, base + 1) != 0;
    let inside = (*b).inside_run_mfa;
    if ok && inside == 0 {
        if !untrack(l, b, id) {
            return 0;
        }
        (*b).completed += 1;
        if ffi::lua_rawgeti(l, call, ON_RESULT) != ffi::LUA_TFUNCTION {
            return 0;
        }
        // handler, on_result, results...
        ffi::lua_replace(l, base + 1);
        push_helper(l, slot::TRACEBACK);
        ffi::lua_insert(l, base + 1);
        ffi::lua_checkstack(l, 4);
        if ffi::lua_pcall(l, count - 1, 0, base + 1) != ffi::LUA_OK {
            call_helper(l, slot::CALLBACK_FAILED, 1);
        }
        return 0;
    }
    // settle_slow(id, call, inside, ok, ...): failures, and replies that arrive while a
    // request is inside the transport (delivered at the next poll).
    push_helper(l, slot::SETTLE_SLOW);
    push_int(l, id);
    ffi::lua_pushvalue(l, call);
    push_int(l, inside);
    ffi::lua_rotate(l, base + 1, 4);
    ffi::lua_call(l, count + 3, 0);
    0
}

/// The transport callback of one call: `on_reply(content, transport_error)`, over the books,
/// the helpers and the call id.
unsafe extern "C-unwind" fn lua_on_reply(l: *mut lua_State) -> isize {
    guarded(l, "on_reply", || {
        ffi::lua_settop(l, 2);
        let id = integer_at(l, ffi::lua_upvalueindex(3)).unwrap_or(0);
        Ok(respond(l, id, 1))
    })
}

/// `on_response(id, content, transport_error)`: a reply routed by id (a call to this
/// server itself).
pub(crate) unsafe extern "C-unwind" fn lua_on_response(l: *mut lua_State) -> isize {
    guarded(l, "on_response", || {
        ffi::lua_settop(l, 3);
        let id = integer_at(l, 1).unwrap_or(0);
        Ok(respond(l, id, 2))
    })
}
