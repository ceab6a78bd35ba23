//! The caller side of a call: starting it (`start_call`, behind rr.run_mfa and rr.call) and
//! taking its reply (`on_response`, and the transport callback of each call). The usual path
//! runs here; failures are handed to the Lua layer's helpers, which make the error objects
//! and queue them.

use super::books::{books, call_helper, now, push_helper, slot, Books};
use super::ledger::ServerKey;
use crate::bind::api::{bytes_at, guarded, integer_at, number_at, push_int, push_owned, Num};
use crate::bind::rpc::{decode_response, encode_request};
use mlua::ffi::{self, lua_State};
use std::os::raw::c_int;

/// Why the transport did not take a call, for the Lua layer's transport_failed. Numbers, not
/// strings: pushing them never allocates, and the call is already on the books.
const NO_TRANSPORT: ffi::lua_Integer = 1;
const TRANSPORT_RAISED: ffi::lua_Integer = 2;
const TRANSPORT_REFUSED: ffi::lua_Integer = 3;

/// The budget field is 32 bits of milliseconds; a longer timeout (math.huge: none) sends this.
const MAX_BUDGET_MS: f64 = 4294967295.0;

/// Pushes the transport's function `name`: the table given to set_transport, else the
/// global c_rpc's, looked up at each use so that a host may install c_rpc after loading.
///
/// # Safety
/// From a closure made by `new_books`, with 3 free stack slots. A transport table's
/// __index may run Lua code.
pub unsafe fn push_transport_function(l: *mut lua_State, name: ffi::lua_Integer) -> c_int {
    if push_helper(l, slot::TRANSPORT) != ffi::LUA_TTABLE {
        // The global c_rpc as Lua code reaches it (through _G's `__index` too): a table, or
        // a userdata with an `__index` (a C++ binding's).
        ffi::lua_pop(l, 1);
        ffi::lua_pushglobaltable(l);
        push_helper(l, slot::C_RPC_NAME);
        ffi::lua_gettable(l, -2);
        ffi::lua_remove(l, -2);
        let indexable = match ffi::lua_type(l, -1) {
            ffi::LUA_TTABLE => true,
            ffi::LUA_TUSERDATA => {
                let has_index = ffi::luaL_getmetafield(l, -1, c"__index".as_ptr()) != ffi::LUA_TNIL;
                if has_index {
                    ffi::lua_pop(l, 1);
                }
                has_index
            }
            _ => false,
        };
        if !indexable {
            ffi::lua_pop(l, 1);
            ffi::lua_pushnil(l);
            return ffi::LUA_TNIL;
        }
    }
    // transport[name], metamethods included; the name is a string made once.
    push_helper(l, name);
    ffi::lua_gettable(l, -2);
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

/// `start_call(svr_id, module, func, args, on_result?, on_error?, timeout?)` → the call id,
/// or nothing when an argument has the wrong type, or `nil, n, why` when argument `n` cannot
/// be sent. The call is sent, or ends with a failure delivered at the next poll.
pub(crate) unsafe extern "C-unwind" fn lua_start_call(l: *mut lua_State) -> isize {
    guarded(l, "start_call", || start_call(l))
}

/// `rr.run_mfa(svr_id, module, func, args, on_result?, opts?)` → the call id. A call with
/// opts, and one whose arguments are wrong (to be raised in Lua's words at the caller), goes
/// through the Lua layer's run_mfa_slow.
pub(crate) unsafe extern "C-unwind" fn lua_run_mfa(l: *mut lua_State) -> isize {
    guarded(l, "run_mfa", || {
        if ffi::lua_type(l, 6) <= ffi::LUA_TNIL {
            ffi::lua_settop(l, 5);
            ffi::lua_pushnil(l);
            ffi::lua_pushnil(l);
            if start_call(l)? == 1 {
                return Ok(1);
            }
            ffi::lua_settop(l, 5);
        } else {
            ffi::lua_settop(l, 6);
        }
        push_helper(l, slot::RUN_MFA_SLOW);
        ffi::lua_insert(l, 1);
        ffi::lua_call(l, ffi::lua_gettop(l) - 1, 1);
        Ok(1)
    })
}

/// The body of `start_call`, its arguments at 1..7.
unsafe fn start_call(l: *mut lua_State) -> Result<c_int, String> {
    {
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
        let pushed = encode_request(
            l,
            (*b).self_id,
            Some(id as u64),
            Some(budget_ms as u32),
            (*b).dump_limits(),
        )?;
        const REQUEST: c_int = 8;
        if pushed != 1 {
            return Ok(pushed);
        }
        let request_len = ffi::lua_rawlen(l, REQUEST) as i64;
        ffi::lua_settop(l, REQUEST);
        let now = now(l, b);
        let in_flight = (*b).ledger.in_flight();
        if in_flight as f64 >= (*b).max_pending {
            let why = format!("{in_flight} calls in flight (max_pending)");
            return overloaded(l, id, timeout, why);
        }
        // Rust values are made where no Lua error can jump past them (which would leak them).
        let key = server_key(l);
        let to_server = (*b).ledger.to_server(&key);
        // A string key is made again after the Lua allocations below: a Lua error there
        // would leak it.
        let key = (!matches!(key, ServerKey::Str(_))).then_some(key);
        if to_server as f64 >= (*b).max_pending_per_server {
            ffi::lua_pushvalue(l, 1);
            let why = {
                let shown = String::from_utf8_lossy(bytes_at(l, -1));
                format!("{to_server} calls in flight to server {shown} (max_pending_per_server)")
            };
            return overloaded(l, id, timeout, why);
        }
        let to_self = is_self(l, b, 1);
        const ON_REPLY: c_int = 9;
        if to_self {
            ffi::lua_pushnil(l);
        } else {
            ffi::lua_pushvalue(l, super::books::UP_BOOKS);
            ffi::lua_pushvalue(l, super::books::UP_HELPERS);
            push_int(l, id);
            ffi::lua_pushcclosure(l, crate::bind::api::c_function(lua_on_reply), 3);
        }
        // The transport's request_svr, looked up now: its lookup may run Lua code (an
        // `__index`), which must not raise once the call is on the books.
        const TRANSPORT_FN: c_int = 10;
        if to_self {
            ffi::lua_pushnil(l);
        } else {
            push_transport_function(l, slot::REQUEST_SVR_NAME);
        }
        // The call's Lua values go in its cell first: that may allocate, and a failure there
        // leaves nothing on the books.
        const CELLS: c_int = 11;
        push_helper(l, slot::CELLS);
        let base = (*b).ledger.next_cell() * CELL_SIZE;
        for (field, arg) in [(CELL_SVR, 1), (CELL_MODULE, 2), (CELL_FUNC, 3)] {
            ffi::lua_pushvalue(l, arg);
            ffi::lua_rawseti(l, CELLS, base + field);
        }
        for (field, arg) in [(CELL_ON_RESULT, 5), (CELL_ON_ERROR, 6)] {
            if ffi::lua_type(l, arg) == ffi::LUA_TNIL {
                ffi::lua_pushboolean(l, 0);
            } else {
                ffi::lua_pushvalue(l, arg);
            }
            ffi::lua_rawseti(l, CELLS, base + field);
        }
        // In flight from here.
        let key = key.unwrap_or_else(|| server_key(l));
        (*b).ledger.add(id, key, now + timeout, timeout);
        if to_self {
            // Counted before it is served: the reply may come back inside.
            (*b).sent += 1;
            (*b).bytes_out += request_len;
            push_helper(l, slot::LOCAL_CALL);
            push_int(l, id);
            ffi::lua_pushvalue(l, REQUEST);
            (*b).inside_run_mfa += 1;
            let status = ffi::lua_pcall(l, 2, 0, 0);
            (*b).inside_run_mfa -= 1;
            if status != ffi::LUA_OK {
                // Not even its failure could be queued (out of memory): run_mfa raises, and
                // the call ends without a callback.
                take_call(l, b, id);
                ffi::lua_error(l);
            }
            push_int(l, id);
            return Ok(1);
        }
        let sent = if ffi::lua_type(l, TRANSPORT_FN) == ffi::LUA_TNIL {
            ffi::lua_pushinteger(l, NO_TRANSPORT);
            ffi::lua_pushnil(l);
            false
        } else {
            ffi::lua_pushvalue(l, TRANSPORT_FN);
            ffi::lua_pushvalue(l, 1);
            push_helper(l, slot::SERVICE_NAME);
            push_helper(l, slot::METHOD_NAME);
            ffi::lua_pushvalue(l, REQUEST);
            ffi::lua_pushvalue(l, ON_REPLY);
            (*b).inside_run_mfa += 1;
            let status = ffi::lua_pcall(l, 5, 1, 0);
            (*b).inside_run_mfa -= 1;
            if status != ffi::LUA_OK {
                ffi::lua_pushinteger(l, TRANSPORT_RAISED);
                ffi::lua_insert(l, -2);
                false
            } else if ffi::lua_type(l, -1) == ffi::LUA_TBOOLEAN && ffi::lua_toboolean(l, -1) == 0 {
                ffi::lua_pushinteger(l, TRANSPORT_REFUSED);
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
            // transport_failed(id, how, value), protected: if not even the failure can be
            // queued (out of memory), run_mfa raises and the call ends without a callback.
            push_int(l, id);
            ffi::lua_rotate(l, -3, 1);
            push_helper(l, slot::TRANSPORT_FAILED);
            ffi::lua_insert(l, -4);
            if ffi::lua_pcall(l, 3, 0, 0) != ffi::LUA_OK {
                take_call(l, b, id);
                ffi::lua_error(l);
            }
        }
        push_int(l, id);
        Ok(1)
    }
}

/// The server id at 1 as a ledger key.
unsafe fn server_key(l: *mut lua_State) -> ServerKey {
    if ffi::lua_type(l, 1) == ffi::LUA_TSTRING {
        return ServerKey::Str(bytes_at(l, 1).into());
    }
    // An integer as it is: above 2^53 a float would merge neighbouring ids.
    match number_at(l, 1) {
        Num::Int(i) => ServerKey::Int(i),
        Num::Float(f) => ServerKey::number(f),
    }
}

/// Lua values of a call in its cell (`cells[cell * CELL_SIZE + field]`).
const CELL_SIZE: ffi::lua_Integer = 5;
const CELL_SVR: ffi::lua_Integer = 1;
const CELL_MODULE: ffi::lua_Integer = 2;
const CELL_FUNC: ffi::lua_Integer = 3;
const CELL_ON_RESULT: ffi::lua_Integer = 4;
const CELL_ON_ERROR: ffi::lua_Integer = 5;

/// A call refused before it was sent (its arguments at 1..7): its failure is queued, with a
/// record made from the arguments.
unsafe fn overloaded(
    l: *mut lua_State,
    id: i64,
    timeout: f64,
    message: String,
) -> Result<c_int, String> {
    // The message first: it is freed before anything else can raise.
    push_owned(l, message);
    ffi::lua_createtable(l, RECORD_TIMEOUT as c_int, 0);
    let record = ffi::lua_gettop(l);
    push_int(l, id);
    ffi::lua_rawseti(l, record, 1);
    for arg in [1, 2, 3, 5, 6] {
        if ffi::lua_type(l, arg) == ffi::LUA_TNIL {
            ffi::lua_pushboolean(l, 0);
        } else {
            ffi::lua_pushvalue(l, arg);
        }
        ffi::lua_rawseti(
            l,
            record,
            if arg < 4 { arg + 1 } else { arg } as ffi::lua_Integer,
        );
    }
    ffi::lua_pushnumber(l, timeout);
    ffi::lua_rawseti(l, record, RECORD_TIMEOUT);
    // fail_later(record, "overloaded", message)
    ffi::lua_pushstring(l, c"overloaded".as_ptr());
    ffi::lua_rotate(l, record - 1, -1);
    call_helper(l, slot::FAIL_LATER, 3);
    push_int(l, id);
    Ok(1)
}

/// The last field of a record (see ledger.rs), after the id and the cell's values.
const RECORD_TIMEOUT: ffi::lua_Integer = 2 + CELL_SIZE;

/// Pushes the record of call `id` (see ledger.rs), or nothing when it is not in flight.
unsafe fn push_record(l: *mut lua_State, b: *mut Books, id: i64) -> bool {
    let Some(call) = (*b).ledger.get(id) else {
        return false;
    };
    let (base, timeout) = (call.cell * CELL_SIZE, call.timeout);
    ffi::lua_createtable(l, RECORD_TIMEOUT as c_int, 0);
    let record = ffi::lua_gettop(l);
    push_helper(l, slot::CELLS);
    push_int(l, id);
    ffi::lua_rawseti(l, record, 1);
    for field in 1..=CELL_SIZE {
        ffi::lua_rawgeti(l, record + 1, base + field);
        ffi::lua_rawseti(l, record, field + 1);
    }
    ffi::lua_pop(l, 1);
    ffi::lua_pushnumber(l, timeout);
    ffi::lua_rawseti(l, record, RECORD_TIMEOUT);
    true
}

/// Takes call `id` off the books, letting go of its callbacks; false if it was not in flight.
/// Allocates nothing.
unsafe fn take_call(l: *mut lua_State, b: *mut Books, id: i64) -> bool {
    let Some(call) = (*b).ledger.remove(id) else {
        return false;
    };
    push_helper(l, slot::CELLS);
    clear_callbacks(l, ffi::lua_gettop(l), call.cell * CELL_SIZE);
    ffi::lua_pop(l, 1);
    true
}

/// Lets the cell at `at` of the cells table at `cells` go of its callbacks.
unsafe fn clear_callbacks(l: *mut lua_State, cells: c_int, at: ffi::lua_Integer) {
    for field in [CELL_ON_RESULT, CELL_ON_ERROR] {
        ffi::lua_pushboolean(l, 0);
        ffi::lua_rawseti(l, cells, at + field);
    }
}

/// The reply (or transport failure) of call `id`: content at `content`, the transport's
/// error at `content + 1`.
pub(crate) unsafe fn respond(l: *mut lua_State, id: i64, content: c_int) -> Result<c_int, String> {
    let b = books(l);
    ffi::lua_checkstack(l, 16);
    // Received bytes count whether or not the call still waits for them.
    let is_bytes = ffi::lua_type(l, content) == ffi::LUA_TSTRING;
    if is_bytes {
        (*b).bytes_in += ffi::lua_rawlen(l, content) as i64;
    }
    if (*b).ledger.get(id).is_none() {
        (*b).late_replies += 1;
        return Ok(0);
    }
    if !is_bytes {
        push_int(l, id);
        push_int(l, (*b).inside_run_mfa);
        ffi::lua_pushvalue(l, content + 1);
        call_helper(l, slot::NO_RESPONSE, 3);
        return Ok(0);
    }
    let base = ffi::lua_gettop(l);
    // base + 1: ok; then the results, or kind, message, traceback.
    let count = decode_response(l, content, &(*b).load_limits(), Some(id as u64))?;
    let ok = ffi::lua_toboolean(l, base + 1) != 0;
    let inside = (*b).inside_run_mfa;
    if ok && inside == 0 {
        let Some(call) = (*b).ledger.remove(id) else {
            return Ok(0); // answered while decoding (a finalizer's call)
        };
        (*b).completed += 1;
        // on_result, and its cell let go of the callbacks.
        push_helper(l, slot::CELLS);
        let cells = ffi::lua_gettop(l);
        let at = call.cell * CELL_SIZE;
        ffi::lua_rawgeti(l, cells, at + CELL_ON_RESULT);
        clear_callbacks(l, cells, at);
        if ffi::lua_type(l, -1) != ffi::LUA_TFUNCTION {
            return Ok(0);
        }
        // handler, on_result, results...
        ffi::lua_replace(l, base + 1);
        ffi::lua_pop(l, 1);
        push_helper(l, slot::TRACEBACK);
        ffi::lua_insert(l, base + 1);
        if ffi::lua_pcall(l, count - 1, 0, base + 1) != ffi::LUA_OK {
            call_helper(l, slot::CALLBACK_FAILED, 1);
        }
        return Ok(0);
    }
    // settle_slow(id, inside, ok, ...): failures, and replies that arrive while a request is
    // inside the transport (delivered at the next poll).
    push_helper(l, slot::SETTLE_SLOW);
    push_int(l, id);
    push_int(l, inside);
    ffi::lua_rotate(l, base + 1, 3);
    ffi::lua_call(l, count + 2, 0);
    Ok(0)
}

/// The transport callback of one call: `on_reply(content, transport_error)`, over the books,
/// the helpers and the call id.
unsafe extern "C-unwind" fn lua_on_reply(l: *mut lua_State) -> isize {
    guarded(l, "on_reply", || {
        ffi::lua_settop(l, 2);
        let id = integer_at(l, ffi::lua_upvalueindex(3)).unwrap_or(0);
        respond(l, id, 1)
    })
}

/// `on_response(id, content, transport_error)`: a reply routed by id (a call to this
/// server itself).
pub(crate) unsafe extern "C-unwind" fn lua_on_response(l: *mut lua_State) -> isize {
    guarded(l, "on_response", || {
        ffi::lua_settop(l, 3);
        let id = integer_at(l, 1).unwrap_or(0);
        respond(l, id, 2)
    })
}

/// `untrack(id)` → whether call `id` was in flight; it no longer is.
pub(crate) unsafe extern "C-unwind" fn lua_untrack(l: *mut lua_State) -> isize {
    let id = integer_at(l, 1).unwrap_or(0);
    ffi::lua_pushboolean(l, take_call(l, books(l), id) as c_int);
    1
}

/// `record(id)` → the record of call `id`, or nil when it is not in flight.
pub(crate) unsafe extern "C-unwind" fn lua_record(l: *mut lua_State) -> isize {
    let id = integer_at(l, 1).unwrap_or(0);
    ffi::lua_settop(l, 1);
    if !push_record(l, books(l), id) {
        ffi::lua_pushnil(l);
    }
    1
}

/// `expire(now)`: every call whose timeout slot ended before `now` times out (the helper
/// `time_out(id)` queues its failure and takes it off the books).
pub(crate) unsafe extern "C-unwind" fn lua_expire(l: *mut lua_State) -> isize {
    let now = super::books::time_at(l, 1);
    let b = books(l);
    while let Some(id) = (*b).ledger.first_due(now) {
        push_helper(l, slot::TIME_OUT);
        push_int(l, id);
        ffi::lua_call(l, 1, 0);
        if (*b).ledger.first_due(now) == Some(id) {
            break; // still on the books: the next poll tries again
        }
    }
    0
}

/// `rebase(old_now, now)`: a new clock; every call keeps the time it had left.
pub(crate) unsafe extern "C-unwind" fn lua_rebase(l: *mut lua_State) -> isize {
    let old_now = ffi::lua_tonumberx(l, 1, std::ptr::null_mut());
    let now = ffi::lua_tonumberx(l, 2, std::ptr::null_mut());
    (*books(l)).ledger.rebase(old_now, now);
    0
}
