//! Raw C functions that turn Lua values into RunLua messages and back, for the embedded Lua
//! layer (`lua/remote_runner.lua`, `lua/svc_run_lua.lua`). Each message is built or read in
//! one call, without the dump text passing through a Lua string. Arguments and results travel
//! as Lua values on the stack, not as tables the Lua side would pack or unpack.

use super::api::{
    bad_argument, bytes_at, guarded, integer_at, number_at, push_bytes, push_int, push_owned,
    type_name, with_staging, Num,
};
use super::dump::{dump_at, Root};
use super::flat_values::push_flat_values;
use super::load::{load_values, Loaded};
use crate::rpc::wire::{
    read_request, read_response, response_len, varint_len, write_request, write_response,
    RequestView, ResponseView,
};
use crate::rpc::MAX_CALL_VALUES;
use crate::text::limits::{DumpLimits, LoadLimits};
use mlua::ffi::{self, lua_State};
use std::os::raw::c_int;

/// `what` ("arguments" or "results") holds `count` values, more than MAX_CALL_VALUES.
fn too_many_values(what: &str, count: impl std::fmt::Display) -> String {
    format!("{what}: too many values ({count}; a call carries at most {MAX_CALL_VALUES})")
}

fn too_large(what: &str, len: usize, max_bytes: usize) -> String {
    format!(
        "{what} of {len} bytes exceeds the message size limit (max_message_bytes = {max_bytes})"
    )
}

/// Arguments 2 and 3 of the decoders: the depth and size limits.
unsafe fn load_limit_args(l: *mut lua_State, name: &str) -> Result<LoadLimits, String> {
    Ok(LoadLimits {
        max_depth: size_arg(l, 2, name)?,
        max_bytes: size_arg(l, 3, name)?,
        ..LoadLimits::default()
    })
}

/// Writes a message with `write` and pushes it, or fails when it is over `max_bytes`.
unsafe fn push_message(
    l: *mut lua_State,
    max_bytes: usize,
    what: &str,
    write: impl FnOnce(&mut Vec<u8>),
) -> Result<(), String> {
    with_staging(l, |out| {
        write(out);
        if out.len() > max_bytes {
            return Err(too_large(what, out.len(), max_bytes));
        }
        push_bytes(l, out);
        Ok(())
    })
}

unsafe fn string_arg<'a>(l: *mut lua_State, idx: c_int, fname: &str) -> Result<&'a [u8], String> {
    if ffi::lua_type(l, idx) != ffi::LUA_TSTRING {
        return Err(bad_argument(
            idx,
            fname,
            format!("string expected, got {}", type_name(l, idx)),
        ));
    }
    Ok(bytes_at(l, idx))
}

/// An integer argument, or None for nil. One C API call in the usual case: these arguments
/// come from the embedded Lua layer, which passes integers (or integral floats).
unsafe fn int_arg(l: *mut lua_State, idx: c_int, fname: &str) -> Result<Option<i64>, String> {
    let mut isnum = 0;
    let v = ffi::lua_tointegerx(l, idx, &mut isnum);
    if isnum != 0 {
        return Ok(Some(v as i64));
    }
    match ffi::lua_type(l, idx) {
        ffi::LUA_TNIL | ffi::LUA_TNONE => Ok(None),
        ffi::LUA_TNUMBER => Err(bad_argument(
            idx,
            fname,
            "number has no integer representation",
        )),
        _ => Err(bad_argument(
            idx,
            fname,
            format!("integer expected, got {}", type_name(l, idx)),
        )),
    }
}

unsafe fn size_arg(l: *mut lua_State, idx: c_int, fname: &str) -> Result<usize, String> {
    let mut isnum = 0;
    let v = ffi::lua_tointegerx(l, idx, &mut isnum);
    if isnum != 0 && v > 0 {
        return Ok(v as usize);
    }
    Err(bad_argument(idx, fname, "positive integer expected"))
}

/// `t.n` of the table at `idx` when it is a non-negative integer.
unsafe fn field_n(l: *mut lua_State, idx: c_int) -> Option<i64> {
    ffi::lua_pushstring(l, c"n".as_ptr());
    ffi::lua_rawget(l, idx);
    let n = match ffi::lua_type(l, -1) {
        ffi::LUA_TNUMBER => integer_at(l, -1).filter(|&n| n >= 0),
        _ => None,
    };
    ffi::lua_pop(l, 1);
    n
}

/// Pushes `t[1..count]` of the table at `table` (absolute). The values are the last results
/// of the C function, so the table itself can stay below them. Fails when there are more
/// than a call carries, or more than the stack holds.
unsafe fn push_elements(l: *mut lua_State, table: c_int, what: &str) -> Result<(), String> {
    // `t.n` wins over `#t`, as in `unpack(t, 1, t.n)`.
    let count = field_n(l, table).unwrap_or_else(|| ffi::lua_rawlen(l, table) as i64);
    if count > MAX_CALL_VALUES as i64 {
        return Err(too_many_values(what, count));
    }
    if ffi::lua_checkstack(l, count as c_int + 8) == 0 {
        return Err(format!("{what}: out of Lua stack for {count} values"));
    }
    for i in 1..=count {
        ffi::lua_rawgeti(l, table, i as ffi::lua_Integer);
    }
    Ok(())
}

/// The dump of an empty argument or result array, as `dump_at` writes it.
const NO_VALUES: &[u8] = b"{n=0}";

/// Pushes the values of the argument or result array in `text` (`what` names it in errors),
/// or returns why it cannot, with the stack as it was.
unsafe fn push_array_values(
    l: *mut lua_State,
    text: &[u8],
    limits: &LoadLimits,
    what: &str,
) -> Result<(), String> {
    if text == NO_VALUES {
        return Ok(()); // what a function that returns nothing sends back, read at once
    }
    let below = ffi::lua_gettop(l);
    match push_flat_values(l, text) {
        Some(count) if count > MAX_CALL_VALUES => {
            ffi::lua_settop(l, below);
            return Err(too_many_values(what, count));
        }
        Some(_) => return Ok(()),
        None => {}
    }
    let failure = match load_values(l, text, limits).map_err(|msg| format!("{what}: {msg}"))? {
        Loaded::Values(count) if count > MAX_CALL_VALUES => too_many_values(what, count),
        Loaded::Values(_) => return Ok(()),
        // Not a plain constructor (a dump chunk, holes without `n`, other keys...): unpack
        // the table as `unpack(t, 1, t.n or #t)` would.
        Loaded::Value if ffi::lua_type(l, below + 1) != ffi::LUA_TTABLE => {
            format!("{what} are a {}, not an array", type_name(l, below + 1))
        }
        Loaded::Value => match push_elements(l, below + 1, what) {
            Ok(()) => {
                ffi::lua_remove(l, below + 1);
                return Ok(());
            }
            Err(failure) => failure,
        },
    };
    ffi::lua_settop(l, below);
    Err(failure)
}

/// The argument checks `run_mfa` and `call` need, done here where they cost little: server
/// id a number (not NaN) or a string, names strings, arguments a table whose `n` is absent
/// or a non-negative integer, on_result absent or a function. None when one fails (the Lua
/// side gives the error), else the arguments' `n` if they have one.
unsafe fn check_call_args(l: *mut lua_State) -> Option<Option<f64>> {
    let svr_id_ok = match ffi::lua_type(l, 1) {
        ffi::LUA_TSTRING => true,
        ffi::LUA_TNUMBER => !ffi::lua_tonumber(l, 1).is_nan(),
        _ => false,
    };
    if !(svr_id_ok
        && ffi::lua_type(l, 2) == ffi::LUA_TSTRING
        && ffi::lua_type(l, 3) == ffi::LUA_TSTRING
        && ffi::lua_type(l, 4) == ffi::LUA_TTABLE
        && matches!(
            ffi::lua_type(l, 5),
            ffi::LUA_TNIL | ffi::LUA_TNONE | ffi::LUA_TFUNCTION
        ))
    {
        return None;
    }
    ffi::lua_pushstring(l, c"n".as_ptr());
    let n = match ffi::lua_rawget(l, 4) {
        ffi::LUA_TNIL => Some(None),
        // What `n >= 0 and n == floor(n)` accepts, math.huge included.
        ffi::LUA_TNUMBER => match number_at(l, -1) {
            Num::Int(i) => (i >= 0).then_some(Some(i as f64)),
            Num::Float(f) => (f >= 0.0 && f == f.floor()).then_some(Some(f)),
        },
        _ => None,
    };
    ffi::lua_pop(l, 1);
    n
}

/// What is wrong with a module or function name, if anything: the request's name fields
/// must be valid UTF-8 (SPEC §2), and an empty name can only end in `bad_request`.
fn name_problem(what: &str, name: &[u8]) -> Option<String> {
    if name.is_empty() {
        return Some(format!("{what} name is empty"));
    }
    if name.is_ascii() {
        return None; // the usual name, checked faster than by from_utf8
    }
    std::str::from_utf8(name).err().map(|e| {
        format!(
            "{what} name is not valid UTF-8 (byte {} of {})",
            e.valid_up_to() + 1,
            String::from_utf8_lossy(name)
        )
    })
}

/// `nil, n, what`: argument `n` of the public function cannot be sent, and why (the Lua side
/// raises it in that function's words, at its caller).
unsafe fn unsendable_argument(l: *mut lua_State, n: ffi::lua_Integer, what: String) -> c_int {
    ffi::lua_pushnil(l);
    ffi::lua_pushinteger(l, n);
    push_owned(l, what);
    3
}

/// `encode_request(svr_id, module, func, args, on_result, caller_id?, call_id, timeout_ms?,
/// maxdepth, maxbytes)` → request bytes; nothing when one of the first five arguments has
/// the wrong type, or `nil, n, what` when argument `n` (a name, or the arguments, naming the
/// path of what cannot be sent or the limit it exceeds) is not sendable.
pub(crate) unsafe extern "C-unwind" fn lua_encode_request(l: *mut lua_State) -> isize {
    guarded(l, "encode_request", || {
        let name = "encode_request";
        let caller_id = int_arg(l, 6, name)?;
        let call_id = int_arg(l, 7, name)?.map(|v| v as u64);
        let timeout_ms = int_arg(l, 8, name)?.map(|v| v.clamp(0, i64::from(u32::MAX)) as u32);
        let limits = DumpLimits {
            max_depth: size_arg(l, 9, name)?,
            max_bytes: size_arg(l, 10, name)?,
        };
        ffi::lua_settop(l, 10);
        encode_request(l, caller_id, call_id, timeout_ms, limits)
    })
}

/// Pushes the request of the call whose server id, module, function, arguments and
/// on_result are at 1..5: the bytes (1 value); nothing when one of them has the wrong type;
/// or `nil, n, what` when argument `n` cannot be sent.
///
/// # Safety
/// From a C function, with those values at 1..5.
pub(crate) unsafe fn encode_request(
    l: *mut lua_State,
    caller_id: Option<i64>,
    call_id: Option<u64>,
    timeout_ms: Option<u32>,
    limits: DumpLimits,
) -> Result<c_int, String> {
    {
        let Some(n) = check_call_args(l) else {
            return Ok(0);
        };
        let length = ffi::lua_rawlen(l, 4);
        let count = n.unwrap_or(length as f64);
        if count > MAX_CALL_VALUES as f64 {
            return Ok(unsendable_argument(
                l,
                4,
                too_many_values("arguments", count),
            ));
        }
        let module_name = bytes_at(l, 2);
        let function_name = bytes_at(l, 3);
        for (n, what, name) in [(2, "module", module_name), (3, "function", function_name)] {
            if let Some(problem) = name_problem(what, name) {
                return Ok(unsendable_argument(l, n, problem));
            }
        }
        // The dump carries `n`, so that the callee sees nil holes and trailing nils.
        let root_n = n.is_none().then_some(length as i64);
        let encoded = dump_at(
            l,
            4,
            limits,
            Root::CallArray {
                what: "arguments",
                n: root_n,
                holes_up_to: count as i64,
            },
            |arguments_dump| {
                let request = RequestView {
                    module_name,
                    function_name,
                    arguments_dump,
                    caller_id,
                    call_id,
                    timeout_ms,
                };
                push_message(l, limits.max_bytes, "arguments: request", |out| {
                    write_request(out, &request)
                })
            },
        );
        match encoded.and_then(|pushed| pushed) {
            Ok(()) => Ok(1),
            Err(problem) => Ok(unsendable_argument(l, 4, problem)),
        }
    }
}

/// Whether the rules at `rules` (module name → true for every function, or a table of
/// function name → true) allow calling the function named at `function` of the module named
/// at `module`.
unsafe fn allowed(l: *mut lua_State, rules: c_int, module: c_int, function: c_int) -> bool {
    let is_true =
        |idx: c_int| ffi::lua_type(l, idx) == ffi::LUA_TBOOLEAN && ffi::lua_toboolean(l, idx) != 0;
    ffi::lua_pushvalue(l, module);
    ffi::lua_rawget(l, rules);
    let allowed = if ffi::lua_type(l, -1) == ffi::LUA_TTABLE {
        ffi::lua_pushvalue(l, function);
        ffi::lua_rawget(l, -2);
        let allowed = is_true(-1);
        ffi::lua_pop(l, 1);
        allowed
    } else {
        is_true(-1)
    };
    ffi::lua_pop(l, 1);
    allowed
}

/// `decode_request(content, maxdepth, maxbytes, rules?)` →
/// `module, func, caller_id?, call_id?, timeout_ms?, args...`, or `nil, message` (a
/// bad_request), or with `rules` (see `allowed`) `false, module, func, call_id?` when they do
/// not allow the call: its arguments are not read, so that a request no rule allows costs
/// no more than its names.
pub(crate) unsafe extern "C-unwind" fn lua_decode_request(l: *mut lua_State) -> isize {
    guarded(l, "decode_request", || {
        let name = "decode_request";
        let limits = load_limit_args(l, name)?;
        ffi::lua_settop(l, 4);
        decode_request(l, 1, 4, 0, &limits)
    })
}

/// Pushes `name`; with a `cache` table (not 0), the string kept in it at `at` when it holds
/// the same bytes: the usual request names the function of the request before, and a string
/// already made costs less than making it again.
unsafe fn push_name(l: *mut lua_State, name: &[u8], cache: c_int, at: ffi::lua_Integer) {
    if cache == 0 {
        return push_bytes(l, name);
    }
    if ffi::lua_rawgeti(l, cache, at) == ffi::LUA_TSTRING && bytes_at(l, -1) == name {
        return;
    }
    ffi::lua_pop(l, 1);
    push_bytes(l, name);
    ffi::lua_pushvalue(l, -1);
    ffi::lua_rawseti(l, cache, at);
}

/// Pushes what `decode_request` returns for the content at `content`, with the rules at
/// `rules` (not a table: none) and a cache of names at `names` (see `push_name`; 0: none).
///
/// # Safety
/// From a C function.
pub(crate) unsafe fn decode_request(
    l: *mut lua_State,
    content: c_int,
    rules: c_int,
    names: c_int,
    limits: &LoadLimits,
) -> Result<c_int, String> {
    {
        let below = ffi::lua_gettop(l);
        let failure = |msg: String| {
            ffi::lua_settop(l, below);
            ffi::lua_pushnil(l);
            push_owned(l, msg);
            Ok(2)
        };
        if ffi::lua_type(l, content) != ffi::LUA_TSTRING {
            return failure(format!(
                "request content is a {}, not bytes",
                type_name(l, content)
            ));
        }
        let content = bytes_at(l, content);
        if content.len() > limits.max_bytes {
            return failure(too_large("request", content.len(), limits.max_bytes));
        }
        let request = match read_request(content) {
            Ok(r) => r,
            Err(e) => return failure(format!("corrupt request: {e}")),
        };
        if request.module_name.is_empty() || request.function_name.is_empty() {
            return failure("request names no module or no function".into());
        }
        // Stack: what was there, then the fields, then the argument values.
        ffi::lua_checkstack(l, 8);
        push_name(l, request.module_name, names, 1);
        push_name(l, request.function_name, names, 2);
        if ffi::lua_type(l, rules) == ffi::LUA_TTABLE && !allowed(l, rules, below + 1, below + 2) {
            ffi::lua_pushboolean(l, 0);
            ffi::lua_insert(l, below + 1);
            match request.call_id {
                Some(v) => push_int(l, v as i64),
                None => ffi::lua_pushnil(l),
            }
            return Ok(4);
        }
        for field in [
            request.caller_id,
            request.call_id.map(|v| v as i64),
            request.timeout_ms.map(i64::from),
        ] {
            match field {
                Some(v) => push_int(l, v),
                None => ffi::lua_pushnil(l),
            }
        }
        if let Err(msg) = push_array_values(l, request.arguments_dump, limits, "arguments") {
            return failure(msg);
        }
        Ok(ffi::lua_gettop(l) - below)
    }
}

/// Most results that go through the caller's reusable table; more get a table of their own,
/// so that a kept table never holds a large array part.
const SCRATCH_RESULTS: c_int = 64;

/// `encode_response(scratch, call_id?, maxdepth, maxbytes, results...)` → bytes, or
/// `nil, message` when the results cannot be sent (the caller then answers with a runtime
/// error). `scratch` is an empty table the results are put in for the dump (and taken out
/// again), which saves a table per call; anything else (or a table that is not empty) and a
/// new table is used.
pub(crate) unsafe extern "C-unwind" fn lua_encode_response(l: *mut lua_State) -> isize {
    guarded(l, "encode_response", || {
        let name = "encode_response";
        let call_id = int_arg(l, 2, name)?.map(|v| v as u64);
        let limits = DumpLimits {
            max_depth: size_arg(l, 3, name)?,
            max_bytes: size_arg(l, 4, name)?,
        };
        let count = ffi::lua_gettop(l).max(4) - 4;
        ffi::lua_settop(l, 4 + count);
        encode_response(l, 1, call_id, limits, 5, count)
    })
}

/// Pushes the response for the `count` results from `first`: the bytes, or `nil, message`
/// when they cannot be sent. `scratch` as for `encode_response`.
///
/// # Safety
/// From a C function.
pub(crate) unsafe fn encode_response(
    l: *mut lua_State,
    scratch: c_int,
    call_id: Option<u64>,
    limits: DumpLimits,
    first: c_int,
    count: c_int,
) -> Result<c_int, String> {
    if count as usize > MAX_CALL_VALUES {
        ffi::lua_pushnil(l);
        push_owned(l, too_many_values("results", count));
        return Ok(2);
    }
    if count == 0 {
        // A function that returns nothing, the usual answer: no table to fill and walk.
        let response = ResponseView {
            returned_dump: NO_VALUES,
            call_id,
            ..Default::default()
        };
        return match push_message(l, limits.max_bytes, "results: response", |out| {
            write_response(out, &response)
        }) {
            Ok(()) => Ok(1),
            Err(msg) => {
                ffi::lua_pushnil(l);
                push_owned(l, msg);
                Ok(2)
            }
        };
    }
    ffi::lua_checkstack(l, 8);
    let top = ffi::lua_gettop(l);
    let reuse = count <= SCRATCH_RESULTS && ffi::lua_type(l, scratch) == ffi::LUA_TTABLE && {
        ffi::lua_pushnil(l);
        let empty = ffi::lua_next(l, scratch) == 0;
        ffi::lua_settop(l, top);
        empty
    };
    if reuse {
        ffi::lua_pushvalue(l, scratch);
    } else {
        ffi::lua_createtable(l, count, 0);
    }
    // The results in one array for the dump; `n` is written from the count, so trailing
    // nils arrive.
    let results = top + 1;
    for i in 1..=count {
        ffi::lua_pushvalue(l, first + i - 1);
        ffi::lua_rawseti(l, results, ffi::lua_Integer::from(i));
    }
    let written = dump_at(
        l,
        results,
        limits,
        Root::CallArray {
            what: "results",
            n: Some(i64::from(count)),
            holes_up_to: i64::from(count),
        },
        |returned_dump| {
            let response = ResponseView {
                returned_dump,
                call_id,
                ..Default::default()
            };
            push_message(l, limits.max_bytes, "results: response", |out| {
                write_response(out, &response)
            })
        },
    );
    if reuse {
        for i in 1..=count {
            ffi::lua_pushnil(l);
            ffi::lua_rawseti(l, results, ffi::lua_Integer::from(i));
        }
    }
    match written {
        Ok(Ok(())) => Ok(1),
        Ok(Err(msg)) | Err(msg) => {
            ffi::lua_pushnil(l);
            push_owned(l, msg);
            Ok(2)
        }
    }
}

/// `text` cut to at most `max` bytes at a character boundary, ending with a note of how
/// much was cut when anything was and the note fits.
fn cut_to(text: &str, max: usize) -> String {
    cut_of(text, text.len(), max)
}

/// The largest character boundary of `text` at or below `at`.
fn char_floor(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// `cut_to` for the start of a longer text of `total` bytes (the note counts those).
fn cut_of(text: &str, total: usize, max: usize) -> String {
    if total <= max {
        return text.to_string();
    }
    let note = format!(" [... {total} bytes cut]");
    let with_note = note.len() <= max;
    let keep = char_floor(text, if with_note { max - note.len() } else { max });
    let mut out = text[..keep].to_string();
    if with_note {
        out.push_str(&note);
    }
    out
}

/// An error response's message and traceback, cut as little as they must be for the whole
/// response to fit in `max_bytes`, and the results for legacy callers that go with them.
/// When something must be cut, the legacy results (which repeat the start of the message)
/// keep at most a quarter of `max_bytes`, the message as much of the rest as it needs, and
/// the traceback (which repeats the message) what is left. The message's room depends on
/// the legacy results' budget, not on their size, so that it never shrinks as `max_bytes`
/// grows.
fn fit_error_texts(
    kind: &str,
    message: String,
    traceback: String,
    call_id: Option<u64>,
    max_bytes: usize,
) -> (String, String, Vec<u8>) {
    let len = |message: &str, traceback: &str, for_legacy: &[u8]| {
        response_len(&ResponseView {
            returned_dump: for_legacy,
            error_kind: kind,
            error_message: message,
            traceback,
            call_id,
        })
    };
    let for_legacy = legacy_error_results(kind, &message, LEGACY_ERROR_TEXT);
    if len(&message, &traceback, &for_legacy) <= max_bytes {
        return (message, traceback, for_legacy);
    }
    let shortest = legacy_error_results(kind, &message, 0).len();
    let budget = for_legacy.len().min(max_bytes / 4).max(shortest);
    // The longest excerpt whose results fit the budget (their size grows with the excerpt).
    let (mut fits, mut too_long) = (0, LEGACY_ERROR_TEXT + 1);
    while too_long - fits > 1 {
        let excerpt = (fits + too_long) / 2;
        if legacy_error_results(kind, &message, excerpt).len() <= budget {
            fits = excerpt;
        } else {
            too_long = excerpt;
        }
    }
    let for_legacy = legacy_error_results(kind, &message, fits);
    // The longest text of at most `room` bytes whose field fits in `room`.
    let longest = |room: usize| room.saturating_sub(1 + varint_len(room as u64));
    // The legacy field's tag and length: counting at least two bytes for the length, which
    // is what a budget from 128 to 2^14 takes, keeps the message's room from shrinking when
    // the budget reaches 128.
    let legacy_field = 1 + varint_len(budget as u64).max(2) + budget;
    let room = max_bytes.saturating_sub(len("", "", &[]) + legacy_field);
    let message = cut_to(&message, longest(room));
    let room = max_bytes.saturating_sub(len(&message, "", &for_legacy));
    let traceback = cut_to(&traceback, longest(room));
    (message, traceback, for_legacy)
}

/// Longest excerpt of the message in the results written for legacy callers.
const LEGACY_ERROR_TEXT: usize = 200;

/// The results an error reply carries for legacy callers, which know no error fields and
/// call `on_result(table.unpack(results))`: `nil, "remote_runner: <kind>: <message>"`, Lua's
/// usual failure convention, instead of an empty dump that would make their unpack raise.
/// Our own callers read the error fields and ignore these. The text is cut to `max_text`.
fn legacy_error_results(kind: &str, message: &str, max_text: usize) -> Vec<u8> {
    let first_line = message.lines().next().unwrap_or("");
    // Only as much of a long line as can be kept is copied.
    let shown = char_floor(first_line, max_text);
    let prefix = format!("remote_runner: {kind}: ");
    let total = prefix.len() + first_line.len();
    let text = cut_of(&(prefix + &first_line[..shown]), total, max_text);
    let mut out = b"{nil,".to_vec();
    crate::text::escape::write_string(&mut out, text.as_bytes());
    out.extend_from_slice(b",n=2}");
    out
}

/// `encode_error(kind, message, traceback?, call_id?, maxbytes?)` → bytes. The message and
/// traceback are cut so that the response stays within `maxbytes`: a huge error message
/// still arrives as its kind and the start of its text, not as a bad_response.
pub(crate) unsafe extern "C-unwind" fn lua_encode_error(l: *mut lua_State) -> isize {
    guarded(l, "encode_error", || {
        let name = "encode_error";
        let text = |idx: c_int| -> Result<String, String> {
            match ffi::lua_type(l, idx) {
                ffi::LUA_TNIL | ffi::LUA_TNONE => Ok(String::new()),
                // Proto `string` fields must hold UTF-8; messages may quote raw bytes.
                _ => Ok(String::from_utf8_lossy(string_arg(l, idx, name)?).into_owned()),
            }
        };
        let (kind, message, traceback) = (text(1)?, text(2)?, text(3)?);
        let max_bytes = match ffi::lua_type(l, 5) {
            ffi::LUA_TNIL | ffi::LUA_TNONE => usize::MAX,
            _ => size_arg(l, 5, name)?,
        };
        let call_id = int_arg(l, 4, name)?.map(|v| v as u64);
        let (message, traceback, for_legacy) =
            fit_error_texts(&kind, message, traceback, call_id, max_bytes);
        // Within max_bytes after the cuts, unless max_bytes is too small for any error at
        // all; an error reply is sent regardless (the peer's own limit decides then). The
        // texts move into the writer, so that they are freed before the push.
        push_message(l, usize::MAX, "error response", move |out| {
            let response = ResponseView {
                returned_dump: &for_legacy,
                error_kind: &kind,
                error_message: &message,
                traceback: &traceback,
                call_id,
            };
            write_response(out, &response)
        })?;
        Ok(1)
    })
}

/// `decode_response(content, maxdepth, maxbytes, call_id?)` → `true, results...` or
/// `false, kind, message, traceback?`. A response that echoes another call's id than
/// `call_id` is a bad_response (a transport that mixed up its callbacks); legacy peers
/// echo none.
pub(crate) unsafe extern "C-unwind" fn lua_decode_response(l: *mut lua_State) -> isize {
    guarded(l, "decode_response", || {
        let name = "decode_response";
        let limits = load_limit_args(l, name)?;
        let expected = int_arg(l, 4, name)?.map(|v| v as u64);
        ffi::lua_settop(l, 3);
        decode_response(l, 1, &limits, expected)
    })
}

/// Pushes what `decode_response` returns for the content at `content`.
///
/// # Safety
/// From a C function.
pub(crate) unsafe fn decode_response(
    l: *mut lua_State,
    content: c_int,
    limits: &LoadLimits,
    expected: Option<u64>,
) -> Result<c_int, String> {
    {
        let below = ffi::lua_gettop(l);
        let failure = |kind: &str, msg: String, traceback: Option<&str>| {
            ffi::lua_settop(l, below);
            ffi::lua_pushboolean(l, 0);
            push_bytes(l, kind.as_bytes());
            push_owned(l, msg);
            match traceback {
                Some(tb) if !tb.is_empty() => push_bytes(l, tb.as_bytes()),
                _ => ffi::lua_pushnil(l),
            }
            Ok(4)
        };
        if ffi::lua_type(l, content) != ffi::LUA_TSTRING {
            return failure(
                "bad_response",
                format!("response content is a {}, not bytes", type_name(l, content)),
                None,
            );
        }
        let content = bytes_at(l, content);
        if content.len() > limits.max_bytes {
            return failure(
                "bad_response",
                too_large("response", content.len(), limits.max_bytes),
                None,
            );
        }
        let response = match read_response(content) {
            Ok(r) => r,
            Err(e) => return failure("bad_response", format!("corrupt response: {e}"), None),
        };
        if let (Some(got), Some(wanted)) = (response.call_id, expected) {
            if got != wanted {
                return failure(
                    "bad_response",
                    format!("the reply is for call {got}, not this one (the transport mixed up its callbacks)"),
                    None,
                );
            }
        }
        if !response.error_kind.is_empty() {
            // An unknown kind from a newer peer is still a failure the caller must see.
            let kind = crate::rpc::kind::ErrorKind::parse(response.error_kind)
                .map_or("runtime", |k| k.as_str());
            return failure(
                kind,
                response.error_message.to_owned(),
                Some(response.traceback),
            );
        }
        // Stack: what was there, then true and the values.
        ffi::lua_checkstack(l, 8);
        ffi::lua_pushboolean(l, 1);
        if let Err(msg) = push_array_values(l, response.returned_dump, limits, "results") {
            return failure("bad_response", msg, None);
        }
        Ok(ffi::lua_gettop(l) - below)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_texts_fit_and_never_shrink_as_the_limit_grows() {
        let emoji = "😀".repeat(800);
        let zeros = "\0".repeat(3000);
        let line = "boom: player 1234 not found in zone 7";
        let traceback = format!("{line}\nstack traceback:\n\t[C]: in function 'error'");
        let shapes = [
            (line, traceback.as_str()),
            (zeros.as_str(), "\"\\"),
            (emoji.as_str(), "中中中"),
            ("", "t"),
        ];
        for (message, traceback) in shapes {
            for call_id in [None, Some(7), Some(u64::MAX)] {
                let view = |m: &'_ str, t: &'_ str, legacy: &[u8]| {
                    response_len(&ResponseView {
                        returned_dump: legacy,
                        error_kind: "runtime",
                        error_message: m,
                        traceback: t,
                        call_id,
                    })
                };
                let smallest = view("", "", &legacy_error_results("runtime", message, 0));
                let mut shortest_message = 0;
                for max_bytes in 1..1500 {
                    let (m, t, legacy) = fit_error_texts(
                        "runtime",
                        message.into(),
                        traceback.into(),
                        call_id,
                        max_bytes,
                    );
                    let len = view(&m, &t, &legacy);
                    assert!(len <= max_bytes.max(smallest), "{len} > {max_bytes}");
                    assert!(m.len() >= shortest_message, "shrank at {max_bytes}");
                    shortest_message = m.len();
                    let kept = m.split(" [... ").next().unwrap_or("");
                    assert!(message.starts_with(kept), "{m:?}");
                }
                // At the last limit the message is whole, or has all but the legacy
                // results' quarter and the fields' few bytes.
                let max_bytes = 1499;
                assert!(
                    shortest_message == message.len()
                        || shortest_message + max_bytes / 4 + 32 >= max_bytes,
                    "{shortest_message} of {}",
                    message.len()
                );
            }
        }
    }
}
