//! The arguments or results of most calls, read without the parser: a flat array of plain
//! scalars as `dump_at` writes a call array, `{"name",42,true,nil,-7,n=5}`. Anything else
//! (floats, escapes, bytes outside printable ASCII, tables, spaces, comments) is left to the
//! parser, which reads every form; this only recognizes a strict subset of it, and gives the
//! same values for it.

use super::api::{push_int, HAS_INTEGERS};
use crate::rpc::MAX_CALL_VALUES;
use crate::text::escape::is_plain;
use mlua::ffi::{self, lua_State};
use std::os::raw::c_int;

/// Largest integer pushed from here: 18 digits always fit an i64; without integers (5.1,
/// LuaJIT) a double holds integers up to 2^53 exactly.
const MAX_INTEGER: u64 = if HAS_INTEGERS {
    999_999_999_999_999_999
} else {
    1 << 53
};

/// Pushes the values of `text` and returns how many, when it is such an array; otherwise
/// pushes nothing and returns None.
///
/// # Safety
/// A valid state, from a C function. Pushing may raise a Lua error (out of memory).
pub unsafe fn push_flat_values(l: *mut lua_State, text: &[u8]) -> Option<usize> {
    let below = ffi::lua_gettop(l);
    let pushed = scan(l, text, MAX_CALL_VALUES).and_then(|items| pad(l, items));
    if pushed.is_none() {
        ffi::lua_settop(l, below);
    }
    pushed
}

/// Pushes the table `text` is, when it is such an array without nil values and with at
/// most `max_items` of them (`rr.load`'s fast path); otherwise pushes nothing and returns
/// false.
///
/// # Safety
/// As `push_flat_values`.
pub unsafe fn push_flat_table(l: *mut lua_State, text: &[u8], max_items: usize) -> bool {
    let below = ffi::lua_gettop(l);
    let Some(items) = scan(l, text, max_items).filter(|items| !items.has_nil) else {
        ffi::lua_settop(l, below);
        return false;
    };
    let count = items.count as c_int;
    ffi::lua_createtable(l, count, c_int::from(items.n.is_some()));
    let table = ffi::lua_gettop(l);
    for i in 1..=count {
        ffi::lua_pushvalue(l, below + i);
        ffi::lua_rawseti(l, table, ffi::lua_Integer::from(i));
    }
    if let Some(n) = items.n {
        ffi::lua_pushstring(l, c"n".as_ptr());
        push_int(l, n as i64);
        ffi::lua_rawset(l, table);
    }
    if count > 0 {
        ffi::lua_replace(l, below + 1);
        ffi::lua_settop(l, below + 1);
    }
    true
}

/// What `scan` pushed: the array's values in order, and its `n` field if it has one.
struct Items {
    count: usize,
    n: Option<usize>,
    has_nil: bool,
}

/// The values after the `count` pushed, to `n` (nils), for an argument or result array.
unsafe fn pad(l: *mut lua_State, items: Items) -> Option<usize> {
    let Items { count, n, has_nil } = items;
    let total = match n {
        Some(n) if n <= MAX_CALL_VALUES => n,
        Some(_) => return None,
        // Without `n`, nil values leave holes whose length Lua does not define.
        None if has_nil => return None,
        None => count,
    };
    if ffi::lua_checkstack(l, (total - count) as c_int + 8) == 0 {
        return None;
    }
    for _ in count..total {
        ffi::lua_pushnil(l);
    }
    Some(total)
}

/// Pushes the values of the array `text` is, at most `max_items` of them, when it is one of
/// this reader's; None (some values may be pushed) when it is not.
unsafe fn scan(l: *mut lua_State, text: &[u8], max_items: usize) -> Option<Items> {
    let body = text.strip_prefix(b"{")?.strip_suffix(b"}")?;
    let mut at = 0;
    let mut count = 0usize;
    let mut has_nil = false;
    let mut n = None;
    while at < body.len() {
        if count >= max_items {
            return None;
        }
        if count.is_multiple_of(32) && ffi::lua_checkstack(l, 40) == 0 {
            return None;
        }
        let rest = &body[at..];
        let used = match rest[0] {
            b'"' => {
                let len = plain_string_len(&rest[1..]);
                if rest.get(1 + len) != Some(&b'"') {
                    return None; // an escape or a byte the parser must read
                }
                ffi::lua_pushlstring(l, rest[1..].as_ptr().cast(), len);
                len + 2
            }
            b't' if rest.starts_with(b"true") => {
                ffi::lua_pushboolean(l, 1);
                4
            }
            b'f' if rest.starts_with(b"false") => {
                ffi::lua_pushboolean(l, 0);
                5
            }
            b'n' if rest.starts_with(b"nil") => {
                ffi::lua_pushnil(l);
                has_nil = true;
                3
            }
            b'n' if rest.starts_with(b"n=") => {
                let (value, len) = integer(&rest[2..])?;
                // The last field, a count no smaller than the values (the parser decides
                // what any other `n` means).
                if 2 + len != rest.len() || value < 0 || (value as usize) < count {
                    return None;
                }
                n = Some(value as usize);
                break;
            }
            b'-' | b'0'..=b'9' => {
                let (value, len) = integer(rest)?;
                push_int(l, value);
                len
            }
            _ => return None,
        };
        count += 1;
        at += used;
        match body.get(at) {
            None => break,
            Some(b',') => at += 1,
            Some(_) => return None,
        }
    }
    Some(Items { count, n, has_nil })
}

/// A decimal integer at the start of `text` and its length, when it is one the parser
/// would read as that integer: digits (one minus before them), not followed by anything
/// that makes it a float or another number.
fn integer(text: &[u8]) -> Option<(i64, usize)> {
    let negative = text.first() == Some(&b'-');
    let digits = &text[usize::from(negative)..];
    // One pass, digit by digit: the numbers of calls are short.
    let mut magnitude = 0u64;
    let mut len = 0;
    while let Some(digit) = digits.get(len).map(|&c| c.wrapping_sub(b'0')) {
        if digit > 9 {
            break;
        }
        if len == 18 {
            return None;
        }
        magnitude = magnitude * 10 + u64::from(digit);
        len += 1;
    }
    if len == 0 || matches!(digits.get(len), Some(b'.' | b'e' | b'E' | b'x' | b'X')) {
        return None;
    }
    // Without integers, `-0` is the float -0.0, which the parser keeps.
    if magnitude > MAX_INTEGER || (negative && magnitude == 0 && !HAS_INTEGERS) {
        return None;
    }
    let value = magnitude as i64;
    Some((
        if negative { -value } else { value },
        len + usize::from(negative),
    ))
}

/// Length of the run of printable ASCII other than `"` and `\\` at the start of `text`: the
/// body of a string literal that needs no decoding.
#[inline]
fn plain_string_len(text: &[u8]) -> usize {
    let mut len = 0;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE2 is part of x86-64; each load reads 16 bytes inside `text`.
    unsafe {
        use std::arch::x86_64::*;
        let (space, del) = (_mm_set1_epi8(0x20), _mm_set1_epi8(0x7f));
        let (quote, backslash) = (_mm_set1_epi8(b'"' as i8), _mm_set1_epi8(b'\\' as i8));
        while len + 16 <= text.len() {
            let block = _mm_loadu_si128(text.as_ptr().add(len) as *const __m128i);
            // Signed, bytes from 0x80 up are negative: below 0x20 catches them too.
            let stops = _mm_or_si128(
                _mm_or_si128(_mm_cmplt_epi8(block, space), _mm_cmpeq_epi8(block, del)),
                _mm_or_si128(
                    _mm_cmpeq_epi8(block, quote),
                    _mm_cmpeq_epi8(block, backslash),
                ),
            );
            let mask = _mm_movemask_epi8(stops) as u32;
            if mask != 0 {
                return len + mask.trailing_zeros() as usize;
            }
            len += 16;
        }
    }
    while text.get(len).is_some_and(|&c| is_plain(c)) {
        len += 1;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::{integer, plain_string_len, HAS_INTEGERS};

    #[test]
    fn integers_are_read_only_when_the_parser_would_read_the_same() {
        assert_eq!(integer(b"123456,"), Some((123456, 6)));
        assert_eq!(integer(b"-5}"), Some((-5, 2)));
        assert_eq!(integer(b"-0,"), HAS_INTEGERS.then_some((0, 2)));
        assert_eq!(integer(b"1.5,"), None);
        assert_eq!(integer(b"1e3,"), None);
        assert_eq!(integer(b"0x10,"), None);
        assert_eq!(integer(b"--1,"), None);
        assert_eq!(integer(b"-,"), None);
        assert_eq!(
            integer(b"1234567890123456789,"),
            None,
            "19 digits: the parser decides"
        );
        assert_eq!(
            integer(b"123456789012345678}"),
            Some((123456789012345678, 18))
        );
        assert_eq!(integer(b"7"), Some((7, 1)));
        assert_eq!(integer(b"-"), None);
    }

    #[test]
    fn plain_strings_end_at_the_first_byte_the_parser_must_read() {
        for at in 0..40 {
            for stop in [b'"', b'\\', 0x00, 0x1f, 0x7f, 0x80, 0xff] {
                let mut text = vec![b'a'; 40];
                text[at] = stop;
                assert_eq!(plain_string_len(&text), at, "{stop:#x} at {at}");
            }
            assert_eq!(plain_string_len(&vec![b'~'; at]), at);
        }
    }
}
