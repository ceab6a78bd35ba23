//! Raw C functions that turn Lua values into RunLua messages and back, for the embedded Lua
//! layer (`lua/remote_runner.lua`, `lua/svc_run_lua.lua`). Each message is built or read in
//! one call, without the dump text passing through a Lua string.

use super::api::{
    bad_argument, bytes_at, guarded, number_at, push_bytes, push_int, type_name, Num,
    KEEP_BUFFER_BYTES,
};
use super::dump::dump_at;
use super::load::load_bytes;
use crate::rpc::wire::{
    read_request, read_response, write_request, write_response, RequestView, ResponseView,
};
use crate::text::limits::{DumpLimits, LoadLimits};
use mlua::ffi::{self, lua_State};
use std::cell::RefCell;
use std::os::raw::c_int;

thread_local! {
    /// The message being written, kept between calls.
    static MESSAGE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
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
    MESSAGE.with(|cell| {
        let mut out = cell.take();
        out.clear();
        write(&mut out);
        let result = if out.len() > max_bytes {
            Err(too_large(what, out.len(), max_bytes))
        } else {
            push_bytes(l, &out);
            Ok(())
        };
        if out.capacity() <= KEEP_BUFFER_BYTES {
            cell.replace(out);
        }
        result
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

/// An integer argument, or None for nil.
unsafe fn int_arg(l: *mut lua_State, idx: c_int, fname: &str) -> Result<Option<i64>, String> {
    match ffi::lua_type(l, idx) {
        ffi::LUA_TNIL | ffi::LUA_TNONE => Ok(None),
        ffi::LUA_TNUMBER => match number_at(l, idx) {
            Num::Int(i) => Ok(Some(i)),
            Num::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Some(f as i64)),
            Num::Float(_) => Err(bad_argument(
                idx,
                fname,
                "number has no integer representation",
            )),
        },
        _ => Err(bad_argument(
            idx,
            fname,
            format!("integer expected, got {}", type_name(l, idx)),
        )),
    }
}

unsafe fn size_arg(l: *mut lua_State, idx: c_int, fname: &str) -> Result<usize, String> {
    match int_arg(l, idx, fname)? {
        Some(v) if v > 0 => Ok(v as usize),
        _ => Err(bad_argument(idx, fname, "positive integer expected")),
    }
}

/// `#t`, or `t.n` when it is an integer: the count of an argument or result array.
unsafe fn array_count(l: *mut lua_State, idx: c_int) -> i64 {
    ffi::lua_pushstring(l, c"n".as_ptr());
    ffi::lua_rawget(l, idx);
    let n = match ffi::lua_type(l, -1) {
        ffi::LUA_TNUMBER => match number_at(l, -1) {
            Num::Int(i) if i >= 0 => Some(i),
            Num::Float(f) if f >= 0.0 && f.fract() == 0.0 && f < 9.0e15 => Some(f as i64),
            _ => None,
        },
        _ => None,
    };
    ffi::lua_pop(l, 1);
    n.unwrap_or_else(|| ffi::lua_rawlen(l, idx) as i64)
}

/// `encode_request(module, func, args, caller_id?, call_id, timeout_ms?, maxdepth, maxbytes)`
/// → request bytes. Raises for arguments that cannot be sent, naming their path.
pub(crate) unsafe extern "C-unwind" fn lua_encode_request(l: *mut lua_State) -> isize {
    guarded(l, "encode_request", || {
        let name = "encode_request";
        let module_name = string_arg(l, 1, name)?;
        let function_name = string_arg(l, 2, name)?;
        if ffi::lua_type(l, 3) != ffi::LUA_TTABLE {
            return Err(bad_argument(
                3,
                name,
                format!("table expected, got {}", type_name(l, 3)),
            ));
        }
        let caller_id = int_arg(l, 4, name)?;
        let call_id = int_arg(l, 5, name)?.map(|v| v as u64);
        let timeout_ms = int_arg(l, 6, name)?.map(|v| v.clamp(0, i64::from(u32::MAX)) as u32);
        let limits = DumpLimits {
            max_depth: size_arg(l, 7, name)?,
            max_bytes: size_arg(l, 8, name)?,
        };
        // The dump carries `n`, so that the callee sees nil holes and trailing nils.
        ffi::lua_settop(l, 8);
        ffi::lua_pushstring(l, c"n".as_ptr());
        let has_n = ffi::lua_rawget(l, 3) != ffi::LUA_TNIL;
        ffi::lua_pop(l, 1);
        let root_n = (!has_n).then(|| ffi::lua_rawlen(l, 3) as i64);
        dump_at(l, 3, limits, "arguments", root_n, |arguments_dump| {
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
        })??;
        Ok(1)
    })
}

/// `decode_request(content, maxdepth, maxbytes)` →
/// `module, func, args, n, caller_id?, call_id?, timeout_ms?` or `nil, "bad_request", message`.
pub(crate) unsafe extern "C-unwind" fn lua_decode_request(l: *mut lua_State) -> isize {
    guarded(l, "decode_request", || {
        let name = "decode_request";
        let limits = load_limit_args(l, name)?;
        ffi::lua_settop(l, 3);
        let failure = |msg: String| {
            ffi::lua_pushnil(l);
            ffi::lua_pushstring(l, c"bad_request".as_ptr());
            push_bytes(l, msg.as_bytes());
            Ok(3)
        };
        if ffi::lua_type(l, 1) != ffi::LUA_TSTRING {
            return failure(format!(
                "request content is a {}, not bytes",
                type_name(l, 1)
            ));
        }
        let content = bytes_at(l, 1);
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
        ffi::lua_checkstack(l, 10);
        push_bytes(l, request.module_name);
        push_bytes(l, request.function_name);
        if let Err(msg) = load_bytes(l, request.arguments_dump, &limits) {
            ffi::lua_settop(l, 3);
            return failure(format!("arguments: {msg}"));
        }
        if ffi::lua_type(l, -1) != ffi::LUA_TTABLE {
            let got = type_name(l, -1);
            ffi::lua_settop(l, 3);
            return failure(format!("arguments are a {got}, not an array"));
        }
        push_int(l, array_count(l, ffi::lua_gettop(l)));
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
        Ok(7)
    })
}

/// `encode_response(results, call_id?, maxdepth, maxbytes)` → bytes, or `nil, message` when
/// the results cannot be sent (the caller then answers with a runtime error).
pub(crate) unsafe extern "C-unwind" fn lua_encode_response(l: *mut lua_State) -> isize {
    guarded(l, "encode_response", || {
        let name = "encode_response";
        if ffi::lua_type(l, 1) != ffi::LUA_TTABLE {
            return Err(bad_argument(
                1,
                name,
                format!("table expected, got {}", type_name(l, 1)),
            ));
        }
        let call_id = int_arg(l, 2, name)?.map(|v| v as u64);
        let limits = DumpLimits {
            max_depth: size_arg(l, 3, name)?,
            max_bytes: size_arg(l, 4, name)?,
        };
        let written = dump_at(l, 1, limits, "results", None, |returned_dump| {
            let response = ResponseView {
                returned_dump,
                call_id,
                ..Default::default()
            };
            push_message(l, limits.max_bytes, "results: response", |out| {
                write_response(out, &response)
            })
        });
        match written {
            Ok(Ok(())) => Ok(1),
            Ok(Err(msg)) | Err(msg) => {
                ffi::lua_pushnil(l);
                push_bytes(l, msg.as_bytes());
                Ok(2)
            }
        }
    })
}

/// `encode_error(kind, message, traceback?, call_id?)` → bytes.
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
        let response = ResponseView {
            error_kind: &kind,
            error_message: &message,
            traceback: &traceback,
            call_id: int_arg(l, 4, name)?.map(|v| v as u64),
            ..Default::default()
        };
        push_message(l, usize::MAX, "error response", |out| {
            write_response(out, &response)
        })?;
        Ok(1)
    })
}

/// `decode_response(content, maxdepth, maxbytes)` → `true, results, n` or
/// `false, kind, message, traceback?`.
pub(crate) unsafe extern "C-unwind" fn lua_decode_response(l: *mut lua_State) -> isize {
    guarded(l, "decode_response", || {
        let name = "decode_response";
        let limits = load_limit_args(l, name)?;
        ffi::lua_settop(l, 3);
        ffi::lua_checkstack(l, 8);
        let failure = |kind: &str, msg: &str, traceback: Option<&str>| {
            ffi::lua_pushboolean(l, 0);
            push_bytes(l, kind.as_bytes());
            push_bytes(l, msg.as_bytes());
            match traceback {
                Some(tb) if !tb.is_empty() => push_bytes(l, tb.as_bytes()),
                _ => ffi::lua_pushnil(l),
            }
            Ok(4)
        };
        if ffi::lua_type(l, 1) != ffi::LUA_TSTRING {
            return failure(
                "bad_response",
                &format!("response content is a {}, not bytes", type_name(l, 1)),
                None,
            );
        }
        let content = bytes_at(l, 1);
        if content.len() > limits.max_bytes {
            return failure(
                "bad_response",
                &too_large("response", content.len(), limits.max_bytes),
                None,
            );
        }
        let response = match read_response(content) {
            Ok(r) => r,
            Err(e) => return failure("bad_response", &format!("corrupt response: {e}"), None),
        };
        if !response.error_kind.is_empty() {
            // An unknown kind from a newer peer is still a failure the caller must see.
            let kind = crate::rpc::kind::ErrorKind::parse(response.error_kind)
                .map_or("runtime", |k| k.as_str());
            return failure(kind, response.error_message, Some(response.traceback));
        }
        ffi::lua_pushboolean(l, 1);
        if let Err(msg) = load_bytes(l, response.returned_dump, &limits) {
            ffi::lua_settop(l, 3);
            return failure("bad_response", &format!("results: {msg}"), None);
        }
        if ffi::lua_type(l, -1) != ffi::LUA_TTABLE {
            let got = type_name(l, -1);
            ffi::lua_settop(l, 3);
            return failure(
                "bad_response",
                &format!("results are a {got}, not an array"),
                None,
            );
        }
        push_int(l, array_count(l, ffi::lua_gettop(l)));
        Ok(3)
    })
}
