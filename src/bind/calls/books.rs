//! The books of one Lua state's calls: counters and settings in a userdata, and the Lua
//! values they go with (calls in flight, timeout slots, callbacks) in a table of helpers,
//! both upvalues of every closure `core.new_books` makes. The embedded Lua layers keep the
//! rare paths (errors, timeouts, configuration) and reach these through those closures.
//!
//! Plain numbers only: a Lua error (out of memory, a finalizer's error) can jump out of any
//! C API call with `longjmp`, and must find nothing on the Rust side to drop or unborrow.
//! A field is read or written through the raw pointer at each use, never kept as a
//! reference across a call into Lua, which may re-enter these functions.

use crate::bind::api::{bytes_at, guarded, push_int};
use mlua::ffi::{self, lua_State};
use once_cell::sync::Lazy;
use std::os::raw::c_int;
use std::time::Instant;

/// Start of the process-wide monotonic clock that timeouts use (`core.now`).
pub static CLOCK_START: Lazy<Instant> = Lazy::new(Instant::now);

pub const UP_BOOKS: c_int = ffi::lua_upvalueindex(1);
pub const UP_HELPERS: c_int = ffi::lua_upvalueindex(2);

/// Counters, settings and calls in flight of one Lua state.
pub struct Books {
    pub ledger: super::ledger::Ledger,
    pub next_id: i64,
    pub sent: i64,
    pub completed: i64,
    pub bytes_out: i64,
    pub bytes_in: i64,
    pub late_replies: i64,
    pub served: i64,
    pub served_failed: i64,
    /// Served calls running (in their worker) and not answered yet.
    pub serving: i64,
    /// Requests inside the transport's `request_svr` (or served on this server) right now:
    /// a reply that arrives then is delivered at the next poll, never inside `run_mfa`.
    pub inside_run_mfa: i64,
    pub idle_workers: i64,
    pub self_id: Option<i64>,
    pub timeout: f64,
    pub max_pending: f64,
    pub max_pending_per_server: f64,
    pub max_depth: i64,
    pub max_bytes: i64,
    /// A clock set with configure{clock=} (in the helpers table) instead of CLOCK_START.
    pub custom_clock: bool,
}

impl Books {
    pub fn dump_limits(&self) -> crate::text::limits::DumpLimits {
        crate::text::limits::DumpLimits {
            max_depth: self.max_depth as usize,
            max_bytes: self.max_bytes as usize,
        }
    }

    pub fn load_limits(&self) -> crate::text::limits::LoadLimits {
        crate::text::limits::LoadLimits {
            max_depth: self.max_depth as usize,
            max_bytes: self.max_bytes as usize,
            ..Default::default()
        }
    }

    /// The counter `rr.stats()` shows (or the Lua layers add to) under `name`.
    fn counter(&mut self, name: &[u8]) -> Option<&mut i64> {
        Some(match name {
            b"sent" => &mut self.sent,
            b"completed" => &mut self.completed,
            b"bytes_out" => &mut self.bytes_out,
            b"bytes_in" => &mut self.bytes_in,
            b"late_replies" => &mut self.late_replies,
            b"served" => &mut self.served,
            b"served_failed" => &mut self.served_failed,
            b"serving" => &mut self.serving,
            b"idle_workers" => &mut self.idle_workers,
            _ => return None,
        })
    }
}

/// Slots of the helpers table: the Lua values the books go with.
pub mod slot {
    use mlua::ffi::lua_Integer;
    pub const CELLS: lua_Integer = 1;
    pub const TIME_OUT: lua_Integer = 2;
    pub const SERVICE_NAME: lua_Integer = 3;
    pub const METHOD_NAME: lua_Integer = 4;
    pub const FAIL_LATER: lua_Integer = 5;
    pub const FAIL_TRACKED_LATER: lua_Integer = 6;
    pub const LOCAL_CALL: lua_Integer = 7;
    pub const NESTED_TIMEOUT: lua_Integer = 8;
    pub const SETTLE_SLOW: lua_Integer = 9;
    pub const CALLBACK_FAILED: lua_Integer = 10;
    pub const TRACEBACK: lua_Integer = 11;
    pub const TRANSPORT_FAILED: lua_Integer = 12;
    pub const NO_RESPONSE: lua_Integer = 13;
    pub const ALLOWED: lua_Integer = 14;
    pub const LOADED: lua_Integer = 15;
    pub const SERVE_SLOW: lua_Integer = 16;
    pub const WORKERS: lua_Integer = 17;
    pub const WAITING: lua_Integer = 18;
    pub const UNANSWERED: lua_Integer = 19;
    pub const LOCAL_ROUTES: lua_Integer = 20;
    pub const UNSENDABLE_RESULTS: lua_Integer = 21;
    pub const REPLY_FAILED: lua_Integer = 22;
    pub const RESULTS_SCRATCH: lua_Integer = 23;
    pub const REQUEST_SVR_NAME: lua_Integer = 24;
    pub const REPLY_TO_NAME: lua_Integer = 25;
    pub const C_RPC_NAME: lua_Integer = 26;
    pub const RUN_MFA_SLOW: lua_Integer = 27;
    pub const NAMES: lua_Integer = 28;
    pub const PARKED_IN_CALL: lua_Integer = 29;
    /// Set by new_books, set_transport and configure, not by name.
    pub const IDLE: lua_Integer = 30;
    pub const TRANSPORT: lua_Integer = 31;
    pub const CLOCK: lua_Integer = 32;
    pub const COUNT: usize = 32;
}

/// The names `core.new_books{...}` takes the helpers under, in slot order.
const HELPER_NAMES: [&std::ffi::CStr; slot::COUNT - 3] = [
    c"cells",
    c"time_out",
    c"service_name",
    c"method_name",
    c"fail_later",
    c"fail_tracked_later",
    c"local_call",
    c"nested_timeout",
    c"settle_slow",
    c"callback_failed",
    c"traceback",
    c"transport_failed",
    c"no_response",
    c"allowed",
    c"loaded",
    c"serve_slow",
    c"workers",
    c"waiting",
    c"unanswered",
    c"local_routes",
    c"unsendable_results",
    c"reply_failed",
    c"results_scratch",
    c"request_svr_name",
    c"reply_to_name",
    c"c_rpc_name",
    c"run_mfa_slow",
    c"names",
    c"parked_in_call",
];

/// The books of the running closure.
///
/// # Safety
/// From a closure made by `new_books`.
#[inline(always)]
pub unsafe fn books(l: *mut lua_State) -> *mut Books {
    ffi::lua_touserdata(l, UP_BOOKS) as *mut Books
}

/// Pushes helper `at`.
///
/// # Safety
/// As `books`, with a free stack slot.
#[inline(always)]
pub unsafe fn push_helper(l: *mut lua_State, at: ffi::lua_Integer) -> c_int {
    ffi::lua_rawgeti(l, UP_HELPERS, at)
}

/// Calls helper `at` with the `nargs` values on top; no results.
///
/// # Safety
/// As `books`; the helper may run any Lua code.
pub unsafe fn call_helper(l: *mut lua_State, at: ffi::lua_Integer, nargs: c_int) {
    push_helper(l, at);
    ffi::lua_insert(l, -(nargs + 1));
    ffi::lua_call(l, nargs, 0);
}

/// Seconds on the configured clock: CLOCK_START's, or configure{clock}'s function.
///
/// # Safety
/// As `books`, with two free stack slots. A custom clock may run any Lua code.
pub unsafe fn now(l: *mut lua_State, b: *mut Books) -> f64 {
    if !(*b).custom_clock {
        return CLOCK_START.elapsed().as_secs_f64();
    }
    push_helper(l, slot::CLOCK);
    ffi::lua_call(l, 0, 1);
    let t = time_at(l, -1);
    ffi::lua_pop(l, 1);
    t
}

/// The time at `idx`, a clock's result, or a Lua error when it is no number of seconds.
///
/// # Safety
/// A valid state, from a C function.
pub unsafe fn time_at(l: *mut lua_State, idx: c_int) -> f64 {
    let mut isnum = 0;
    let t = ffi::lua_tonumberx(l, idx, &mut isnum);
    if isnum == 0 || t.is_nan() {
        let got = if isnum == 0 {
            format!("a {}", crate::bind::api::type_name(l, idx))
        } else {
            "NaN".to_owned()
        };
        crate::bind::api::raise(
            l,
            format!("remote_runner: the configured clock returned {got}, not a number of seconds"),
        );
    }
    t
}

/// `__gc` of the books: the ledger's memory is Rust's.
unsafe extern "C-unwind" fn drop_books(l: *mut lua_State) -> isize {
    let place = ffi::lua_touserdata(l, 1) as *mut Books;
    if !place.is_null() {
        place.drop_in_place();
    }
    0
}

/// `core.new_books{cells=, time_out=, ...}` (HELPER_NAMES) → the table of closures over new
/// books.
pub(crate) unsafe extern "C-unwind" fn lua_new_books(l: *mut lua_State) -> isize {
    ffi::luaL_checktype(l, 1, ffi::LUA_TTABLE);
    ffi::lua_settop(l, 1);
    const {
        assert!(
            std::mem::align_of::<Books>() <= 8,
            "Lua aligns userdata to 8 bytes"
        )
    };
    let place = ffi::lua_newuserdata(l, std::mem::size_of::<Books>()) as *mut Books;
    // The metatable is made before the value is written: an error there leaves nothing to drop.
    ffi::lua_createtable(l, 0, 1);
    ffi::lua_pushcfunction(l, crate::bind::api::c_function(drop_books));
    ffi::lua_setfield(l, -2, c"__gc".as_ptr());
    place.write(Books {
        ledger: Default::default(),
        next_id: 1,
        sent: 0,
        completed: 0,
        bytes_out: 0,
        bytes_in: 0,
        late_replies: 0,
        served: 0,
        served_failed: 0,
        serving: 0,
        inside_run_mfa: 0,
        idle_workers: 0,
        self_id: None,
        timeout: 10.0,
        max_pending: 10000.0,
        max_pending_per_server: 1000.0,
        max_depth: 128,
        max_bytes: 4 << 20,
        custom_clock: false,
    });
    ffi::lua_setmetatable(l, 2);
    ffi::lua_createtable(l, slot::COUNT as c_int, 0);
    set_helpers(l, 1, 3);
    // The idle workers and their states, with room for all of them: putting one back never
    // allocates.
    ffi::lua_createtable(l, 2 * super::service::MAX_IDLE as c_int, 0);
    ffi::lua_rawseti(l, 3, slot::IDLE);
    let closures: [(&std::ffi::CStr, crate::bind::api::RawFunction); 15] = [
        (c"start_call", super::caller::lua_start_call),
        (c"run_mfa", super::caller::lua_run_mfa),
        (c"on_response", super::caller::lua_on_response),
        (c"untrack", super::caller::lua_untrack),
        (c"record", super::caller::lua_record),
        (c"expire", super::caller::lua_expire),
        (c"rebase", super::caller::lua_rebase),
        (c"configure", lua_configure),
        (c"set_transport", lua_set_transport),
        (c"get", lua_get),
        (c"add", lua_add),
        (c"set_helpers", lua_set_helpers),
        (c"run_mfa_service", super::service::lua_run_mfa_service),
        (c"start_job", super::service::lua_start_job),
        (c"finish_job", super::service::lua_finish_job),
    ];
    ffi::lua_createtable(l, 0, closures.len() as c_int);
    for (name, f) in closures {
        ffi::lua_pushvalue(l, 2);
        ffi::lua_pushvalue(l, 3);
        ffi::lua_pushcclosure(l, crate::bind::api::c_function(f), 2);
        ffi::lua_setfield(l, -2, name.as_ptr());
    }
    1
}

/// The number at `idx`, or NaN when it is not one.
unsafe fn number_or_nan(l: *mut lua_State, idx: c_int) -> f64 {
    let mut isnum = 0;
    let v = ffi::lua_tonumberx(l, idx, &mut isnum);
    if isnum == 0 {
        f64::NAN
    } else {
        v
    }
}

/// `configure(self_id?, timeout, max_pending, max_pending_per_server, max_depth, max_bytes,
/// clock?)`: the settings rr.configure checked; `clock` nil for the default one.
unsafe extern "C-unwind" fn lua_configure(l: *mut lua_State) -> isize {
    guarded(l, "configure", || {
        ffi::lua_settop(l, 7);
        let b = books(l);
        // rr.configure takes integers, and integral floats up to 2^53.
        (*b).self_id = (ffi::lua_type(l, 1) == ffi::LUA_TNUMBER)
            .then(|| match crate::bind::api::number_at(l, 1) {
                crate::bind::api::Num::Int(i) => Some(i),
                crate::bind::api::Num::Float(f)
                    if f.fract() == 0.0 && f.abs() <= 9.007_199_254_740_992e15 =>
                {
                    Some(f as i64)
                }
                crate::bind::api::Num::Float(_) => None,
            })
            .flatten();
        (*b).timeout = number_or_nan(l, 2);
        (*b).max_pending = number_or_nan(l, 3);
        (*b).max_pending_per_server = number_or_nan(l, 4);
        (*b).max_depth = number_or_nan(l, 5).min(9.0e15) as i64;
        (*b).max_bytes = number_or_nan(l, 6).min(9.0e15) as i64;
        (*b).custom_clock = ffi::lua_type(l, 7) == ffi::LUA_TFUNCTION;
        ffi::lua_pushvalue(l, 7);
        ffi::lua_rawseti(l, UP_HELPERS, slot::CLOCK);
        Ok(0)
    })
}

/// `set_transport(t?)`: the transport table, or nil for the global c_rpc.
unsafe extern "C-unwind" fn lua_set_transport(l: *mut lua_State) -> isize {
    ffi::lua_settop(l, 1);
    ffi::lua_rawseti(l, UP_HELPERS, slot::TRANSPORT);
    0
}

/// The counter named by the string at 1, or a Lua error.
unsafe fn named_counter<'a>(l: *mut lua_State) -> Result<&'a mut i64, String> {
    let name = if ffi::lua_type(l, 1) == ffi::LUA_TSTRING {
        bytes_at(l, 1)
    } else {
        &[]
    };
    (*books(l)).counter(name).ok_or_else(|| {
        format!(
            "remote_runner: no counter {}",
            String::from_utf8_lossy(name)
        )
    })
}

/// `get(name)` → the counter's value (`in_flight`: the calls on the books).
unsafe extern "C-unwind" fn lua_get(l: *mut lua_State) -> isize {
    guarded(l, "get", || {
        if ffi::lua_type(l, 1) == ffi::LUA_TSTRING && bytes_at(l, 1) == b"in_flight" {
            push_int(l, (*books(l)).ledger.in_flight() as i64);
            return Ok(1);
        }
        let v = *named_counter(l)?;
        push_int(l, v);
        Ok(1)
    })
}

/// `add(name, delta)`.
unsafe extern "C-unwind" fn lua_add(l: *mut lua_State) -> isize {
    guarded(l, "add", || {
        let delta = crate::bind::api::integer_at(l, 2).unwrap_or(0);
        *named_counter(l)? += delta;
        Ok(0)
    })
}

/// Copies the helpers the table at `from` names (HELPER_NAMES) into the helpers table at
/// `helpers`.
unsafe fn set_helpers(l: *mut lua_State, from: c_int, helpers: c_int) {
    for (i, name) in HELPER_NAMES.iter().enumerate() {
        if ffi::lua_getfield(l, from, name.as_ptr()) == ffi::LUA_TNIL {
            ffi::lua_pop(l, 1);
        } else {
            ffi::lua_rawseti(l, helpers, i as ffi::lua_Integer + 1);
        }
    }
}

/// `set_helpers{name = value, ...}`: helpers made after the books (svc_run_lua's).
unsafe extern "C-unwind" fn lua_set_helpers(l: *mut lua_State) -> isize {
    ffi::luaL_checktype(l, 1, ffi::LUA_TTABLE);
    ffi::lua_settop(l, 1);
    set_helpers(l, 1, UP_HELPERS);
    0
}
