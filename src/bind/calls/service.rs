//! The service side of a call: `RunMfa(ctx, content)` and the worker coroutines that run
//! served functions. The usual path (a loaded module's allowed function, whose results are
//! sent as its reply) runs here; lua/svc_run_lua.lua keeps the rest (requiring a module,
//! inherited functions, refusals, failures) and hands its jobs back to `start_job`.
//!
//! A worker is a bare coroutine: the served function itself runs in it, and a worker whose
//! function returned has an empty stack and runs the next job. To Lua an idle worker looks
//! dead, so nothing else can resume it. A function that raised, or that yields anywhere but
//! in rr.call, leaves its worker, which is dropped.

use super::books::{books, call_helper, now, push_helper, slot, Books};
use super::caller::push_transport_function;
use crate::bind::api::{guarded, integer_at};
use crate::bind::rpc::{decode_request, encode_response};
use mlua::ffi::{self, lua_State};
use std::os::raw::c_int;

/// Idle workers kept for later jobs (the idle table has room for them all: see books.rs).
pub const MAX_IDLE: i64 = 64;

/// Whether `coroutine.isyieldable` exists, so that rr.call never yields where it cannot.
const HAS_ISYIELDABLE: bool = !cfg!(any(feature = "lua51", feature = "lua52"));

/// `RunMfa(ctx, content)`: serves one request and answers it through the transport's
/// reply_to exactly once.
pub(crate) unsafe extern "C-unwind" fn lua_run_mfa_service(l: *mut lua_State) -> isize {
    guarded(l, "RunMfa", || {
        ffi::lua_settop(l, 2);
        ffi::lua_checkstack(l, 24);
        let b = books(l);
        (*b).served += 1;
        if ffi::lua_type(l, 2) == ffi::LUA_TSTRING {
            (*b).bytes_in += ffi::lua_rawlen(l, 2) as i64;
        }
        // The rules, the names cache, ctx, a slot for the function, then decode_request's
        // results: module, func, caller id, call id, timeout, arguments... (or nil, why; or
        // false and the names of a refused call).
        push_helper(l, slot::ALLOWED);
        push_helper(l, slot::NAMES);
        ffi::lua_pushvalue(l, 1);
        ffi::lua_pushnil(l);
        const MODULE: c_int = 7;
        const FUNC: c_int = 8;
        decode_request(l, 2, 3, 4, &(*b).load_limits())?;
        let top = ffi::lua_gettop(l);
        // The function, found without running any Lua code, or the slow path.
        let found = ffi::lua_type(l, MODULE) == ffi::LUA_TSTRING && {
            push_helper(l, slot::LOADED);
            ffi::lua_pushvalue(l, MODULE);
            ffi::lua_rawget(l, -2) == ffi::LUA_TTABLE && {
                ffi::lua_pushvalue(l, FUNC);
                ffi::lua_rawget(l, -2) == ffi::LUA_TFUNCTION
            }
        };
        if !found {
            // serve_slow(ctx, results...)
            ffi::lua_settop(l, top);
            push_helper(l, slot::SERVE_SLOW);
            ffi::lua_replace(l, 5);
            ffi::lua_pushvalue(l, 1);
            ffi::lua_replace(l, 6);
            ffi::lua_call(l, top - 5, 0);
            return Ok(0);
        }
        // start_job's order from 5: ctx, fn, module, func, caller id, call id, timeout, args...
        ffi::lua_replace(l, 6);
        ffi::lua_settop(l, top);
        start_job(l, b, 5)?;
        Ok(0)
    })
}

/// `start_job(ctx, fn, module, func, caller_id, call_id, timeout_ms, args...)`: runs a
/// served call that svc_run_lua looked up.
pub(crate) unsafe extern "C-unwind" fn lua_start_job(l: *mut lua_State) -> isize {
    guarded(l, "start_job", || {
        ffi::lua_checkstack(l, 24);
        start_job(l, books(l), 1)?;
        Ok(0)
    })
}

// Fields of a worker's state, an array (lua/remote_runner.lua's internal.STATE): what
// rr.caller, a nested call's timeout and svc_run_lua's failure replies read.
const CTX: ffi::lua_Integer = 1;
const CALL_ID: ffi::lua_Integer = 5;
const DEADLINE: ffi::lua_Integer = 6;
const BUSY: ffi::lua_Integer = 7;

/// Runs the job whose ctx is at `first` (start_job's order) in a worker: the stack from
/// `first` is used up.
unsafe fn start_job(l: *mut lua_State, b: *mut Books, first: c_int) -> Result<(), String> {
    let nargs = ffi::lua_gettop(l) - (first + 6);
    let (co, _) = take_worker(l, b);
    // The worker and its state go below the arguments, which then move to the worker as they
    // are (a copy of 7,000 arguments would not fit Lua 5.1's stack).
    ffi::lua_rotate(l, first + 7, 2);
    let co_at = first + 7;
    let state = co_at + 1;
    // ctx, module, func, caller id, call id.
    for (field, at) in [
        (CTX, first),
        (2, first + 2),
        (3, first + 3),
        (4, first + 4),
        (CALL_ID, first + 5),
    ] {
        ffi::lua_pushvalue(l, at);
        ffi::lua_rawseti(l, state, field);
    }
    // The caller's budget bounds the default timeout of nested calls made by this function.
    match integer_at(l, first + 6).filter(|_| ffi::lua_type(l, first + 6) == ffi::LUA_TNUMBER) {
        Some(ms) => {
            let deadline = now(l, b) + ms as f64 / 1000.0;
            ffi::lua_pushnumber(l, deadline);
        }
        None => ffi::lua_pushboolean(l, 0),
    }
    ffi::lua_rawseti(l, state, DEADLINE);
    ffi::lua_pushboolean(l, 1);
    ffi::lua_rawseti(l, state, BUSY);
    (*b).serving += 1;
    if ffi::lua_checkstack(co, nargs + 2) == 0 {
        ffi::lua_pushstring(l, c"too many arguments for the worker's stack".as_ptr());
        failed(l, b, state, 0);
        return Ok(());
    }
    ffi::lua_pushvalue(l, first + 1);
    ffi::lua_xmove(l, co, 1);
    ffi::lua_xmove(l, co, nargs);
    let mut nres: c_int = 0;
    let status = ffi::lua_resume(co, l, nargs, &mut nres);
    match status {
        ffi::LUA_OK => {
            let nres = ffi::lua_gettop(co);
            if ffi::lua_checkstack(l, nres + 16) == 0 {
                ffi::lua_settop(co, 0);
                ffi::lua_pushstring(l, c"too many results for the stack".as_ptr());
                failed(l, b, state, 0);
                return Ok(());
            }
            ffi::lua_xmove(co, l, nres);
            finish(l, b, co_at, state, nres)?;
        }
        ffi::LUA_YIELD => {
            // Parked in rr.call: the job goes on when its answer resumes the worker.
            if !parked_in_call(l, co_at) {
                ffi::lua_pushstring(
                    l,
                    c"a served function may only yield through rr.call".as_ptr(),
                );
                failed(l, b, state, 0);
            }
        }
        _ => {
            ffi::lua_xmove(co, l, 1);
            failed(l, b, state, co_at);
        }
    }
    Ok(())
}

/// The served function failed (the error on top): the job ends, and svc_run_lua answers
/// with the failure, its traceback made from the worker at `co_at` (0: none). The job ends
/// first, so that a Lua error in answering (out of memory, the C stack's limit in a deep
/// chain of calls) cannot leave it running.
unsafe fn failed(l: *mut lua_State, b: *mut Books, state: c_int, co_at: c_int) {
    let err = ffi::lua_gettop(l);
    ffi::lua_rawgeti(l, state, BUSY);
    let busy = ffi::lua_toboolean(l, -1) != 0;
    ffi::lua_pop(l, 1);
    if !busy {
        ffi::lua_settop(l, err - 1);
        return;
    }
    ffi::lua_rawgeti(l, state, CTX);
    let ctx = err + 1;
    end_job(l, b, state);
    // unanswered(state, ctx, err, worker?)
    ffi::lua_pushvalue(l, state);
    ffi::lua_pushvalue(l, ctx);
    ffi::lua_pushvalue(l, err);
    if co_at == 0 {
        ffi::lua_pushnil(l);
    } else {
        ffi::lua_pushvalue(l, co_at);
    }
    call_helper(l, slot::UNANSWERED, 4);
    ffi::lua_settop(l, err - 1);
}

/// Whether `co` has the debug hook `l` has, as far as the C API tells: hook function (all
/// Lua hooks share one on PUC Lua), mask and count.
unsafe fn same_hook(co: *mut lua_State, l: *mut lua_State) -> bool {
    ffi::lua_gethook(co).map(|f| f as usize) == ffi::lua_gethook(l).map(|f| f as usize)
        && ffi::lua_gethookmask(co) == ffi::lua_gethookmask(l)
        && ffi::lua_gethookcount(co) == ffi::lua_gethookcount(l)
}

/// Whether the worker at `co_at`, suspended, waits in rr.call. Where a yield can fail after
/// rr.call marked the worker (5.1, 5.2), the Lua layer also checks where it is suspended.
unsafe fn parked_in_call(l: *mut lua_State, co_at: c_int) -> bool {
    if HAS_ISYIELDABLE {
        push_helper(l, slot::WAITING);
        ffi::lua_pushvalue(l, co_at);
        let parked = ffi::lua_rawget(l, -2) != ffi::LUA_TNIL;
        ffi::lua_pop(l, 2);
        return parked;
    }
    push_helper(l, slot::PARKED_IN_CALL);
    ffi::lua_pushvalue(l, co_at);
    ffi::lua_call(l, 1, 1);
    let parked = ffi::lua_toboolean(l, -1) != 0;
    ffi::lua_pop(l, 1);
    parked
}

/// Pushes an idle worker (or a new one) and its state; returns the worker and where it is.
/// The idle pool keeps each worker with its state: `idle[2k - 1]`, `idle[2k]`.
unsafe fn take_worker(l: *mut lua_State, b: *mut Books) -> (*mut lua_State, c_int) {
    push_helper(l, slot::IDLE);
    let idle = ffi::lua_gettop(l);
    while (*b).idle_workers > 0 {
        let at = (*b).idle_workers * 2;
        (*b).idle_workers -= 1;
        ffi::lua_rawgeti(l, idle, at - 1);
        ffi::lua_rawgeti(l, idle, at);
        ffi::lua_pushnil(l);
        ffi::lua_rawseti(l, idle, at);
        ffi::lua_pushnil(l);
        ffi::lua_rawseti(l, idle, at - 1);
        let co = ffi::lua_tothread(l, -2);
        // A worker something else ended, or given a debug hook of its own (a watchdog's, set
        // through coroutine.running() in an earlier job), is not reused.
        if !co.is_null()
            && ffi::lua_status(co) == ffi::LUA_OK
            && ffi::lua_gettop(co) == 0
            && same_hook(co, l)
        {
            ffi::lua_remove(l, idle);
            return (co, idle);
        }
        ffi::lua_pop(l, 2);
    }
    ffi::lua_pop(l, 1);
    let co = ffi::lua_newthread(l);
    let co_at = ffi::lua_gettop(l);
    ffi::lua_createtable(l, 7, 0);
    push_helper(l, slot::WORKERS);
    ffi::lua_pushvalue(l, co_at);
    ffi::lua_pushvalue(l, co_at + 1);
    ffi::lua_rawset(l, -3);
    ffi::lua_pop(l, 1);
    (co, co_at)
}

/// `finish_job(co, results...)`: a worker that was parked in rr.call has returned
/// (svc_run_lua's after_resume, with coroutine.resume's results).
pub(crate) unsafe extern "C-unwind" fn lua_finish_job(l: *mut lua_State) -> isize {
    guarded(l, "finish_job", || {
        let nres = ffi::lua_gettop(l) - 1;
        ffi::lua_checkstack(l, 24);
        push_helper(l, slot::WORKERS);
        ffi::lua_pushvalue(l, 1);
        ffi::lua_rawget(l, -2);
        ffi::lua_remove(l, -2);
        ffi::lua_insert(l, 2);
        ffi::lua_pushvalue(l, 1);
        ffi::lua_insert(l, 2);
        // co, co, state, results...
        finish(l, books(l), 2, 3, nres)?;
        Ok(0)
    })
}

/// Answers the job of the worker at `co_at` (state at `state`) with the `nres` results on
/// top, and puts the worker back in the pool.
unsafe fn finish(
    l: *mut lua_State,
    b: *mut Books,
    co_at: c_int,
    state: c_int,
    nres: c_int,
) -> Result<(), String> {
    let first = ffi::lua_gettop(l) - nres + 1;
    ffi::lua_rawgeti(l, state, BUSY);
    let busy = ffi::lua_toboolean(l, -1) != 0;
    ffi::lua_pop(l, 1);
    if !busy {
        pool(l, b, co_at);
        return Ok(()); // answered already (a yield outside rr.call)
    }
    // The job ends before its reply is made: that allocates, and a Lua error there (out of
    // memory, a finalizer's) must not leave the job running for good. Whoever catches the
    // error may still answer (svc_run_lua's after a nested call does); else the caller times
    // out.
    ffi::lua_rawgeti(l, state, CTX);
    let ctx = ffi::lua_gettop(l);
    end_job(l, b, state);
    ffi::lua_rawgeti(l, state, CALL_ID);
    let call_id = integer_at(l, -1)
        .filter(|_| ffi::lua_type(l, -1) == ffi::LUA_TNUMBER)
        .map(|v| v as u64);
    push_helper(l, slot::RESULTS_SCRATCH);
    let scratch = ffi::lua_gettop(l);
    if encode_response(l, scratch, call_id, (*b).dump_limits(), first, nres)? == 1 {
        ffi::lua_pushnil(l);
    }
    if ffi::lua_type(l, -2) != ffi::LUA_TSTRING {
        // unsendable_results(state, ctx, why)
        ffi::lua_remove(l, -2);
        ffi::lua_pushvalue(l, state);
        ffi::lua_pushvalue(l, ctx);
        ffi::lua_rotate(l, -3, 2);
        call_helper(l, slot::UNSENDABLE_RESULTS, 3);
    } else {
        ffi::lua_pop(l, 1);
        send_reply(l, b, ctx, ffi::lua_gettop(l))?;
    }
    pool(l, b, co_at);
    Ok(())
}

/// Marks the job of the worker whose state is at `state` answered. Allocates nothing.
unsafe fn end_job(l: *mut lua_State, b: *mut Books, state: c_int) {
    ffi::lua_pushboolean(l, 0);
    ffi::lua_rawseti(l, state, BUSY);
    (*b).serving -= 1;
    ffi::lua_pushboolean(l, 0);
    ffi::lua_rawseti(l, state, CTX);
}

/// Sends the reply at `reply` to the host's request `ctx`: through reply_to, or back to this
/// server's own call.
pub(crate) unsafe fn send_reply(
    l: *mut lua_State,
    b: *mut Books,
    ctx: c_int,
    reply: c_int,
) -> Result<(), String> {
    (*b).bytes_out += ffi::lua_rawlen(l, reply) as i64;
    push_helper(l, slot::LOCAL_ROUTES);
    ffi::lua_pushvalue(l, ctx);
    if ffi::lua_rawget(l, -2) == ffi::LUA_TNUMBER {
        let id = integer_at(l, -1).unwrap_or(0);
        ffi::lua_pushvalue(l, reply);
        ffi::lua_pushnil(l);
        super::caller::respond(l, id, ffi::lua_gettop(l) - 1)?;
        return Ok(());
    }
    if push_transport_function(l, slot::REPLY_TO_NAME) == ffi::LUA_TNIL {
        call_helper(l, slot::REPLY_FAILED, 0);
        return Ok(());
    }
    ffi::lua_pushvalue(l, ctx);
    ffi::lua_pushvalue(l, reply);
    if ffi::lua_pcall(l, 2, 0, 0) != ffi::LUA_OK {
        call_helper(l, slot::REPLY_FAILED, 1);
    }
    Ok(())
}

/// Puts the worker at `co_at` (its state at `co_at + 1`) back in the idle pool if it can run
/// another job.
unsafe fn pool(l: *mut lua_State, b: *mut Books, co_at: c_int) {
    let co = ffi::lua_tothread(l, co_at);
    if co.is_null()
        || ffi::lua_status(co) != ffi::LUA_OK
        || ffi::lua_gettop(co) != 0
        || (*b).idle_workers >= MAX_IDLE
    {
        return;
    }
    push_helper(l, slot::IDLE);
    let at = (*b).idle_workers * 2;
    ffi::lua_pushvalue(l, co_at);
    ffi::lua_rawseti(l, -2, at + 1);
    ffi::lua_pushvalue(l, co_at + 1);
    ffi::lua_rawseti(l, -2, at + 2);
    ffi::lua_pop(l, 1);
    (*b).idle_workers += 1;
}
