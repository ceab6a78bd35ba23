//! The body of a short string with escapes, 64 source bytes at a time: where the backslashes
//! and the bytes that end a run (the quote, newlines) are is found for the whole window at
//! once (SSE2, part of x86-64 itself), and the loop then goes from backslash to backslash.
//! Binary data written as `\ddd` escapes mixed with plain bytes then costs one unpredictable
//! branch per window instead of one per change between the two.

use super::strings::{newline_len, SIMPLE_ESCAPES};
use std::arch::x86_64::{
    __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
    _mm_set1_epi8, _mm_storeu_si128, _mm_sub_epi8,
};

/// Source bytes one window covers.
const WINDOW: usize = 64;
/// Bytes read past a window: by the search for the digits of an escape that starts near its
/// end, and by its last 16-byte copy.
const READ_PAST: usize = 16;
/// Source bytes a window needs from where it starts.
pub(super) const SOURCE_NEEDED: usize = WINDOW + READ_PAST;
/// Room the output needs past the decoded text: plain bytes are copied 16 at a time.
pub(super) const OUTPUT_SLACK: usize = 16;

/// Decodes `src` from `i` into `out` from `w`, for as long as the string goes on with plain
/// bytes and the escapes writers use: decimal ones (`\ddd`, and `\9` or `\13` before a
/// non-digit), `\\`, `\"`, `\'`, the letters (`\n`, `\t`, ...) and a backslash before a
/// newline. Returns the `i` and `w` where it stopped: at the closing quote or a raw newline,
/// at any other escape (`\x`, `\z`, `\u`, errors), or where fewer than a window and the
/// bytes read past it are left.
///
/// # Safety
/// `out` has room for `w + (src.len() - i) + OUTPUT_SLACK` bytes: decoded text is never
/// longer than its source.
#[inline(never)]
pub(super) unsafe fn decode_escaped_runs(
    src: &[u8],
    mut i: usize,
    out: *mut u8,
    mut w: usize,
    quote: u8,
) -> (usize, usize) {
    while i + SOURCE_NEEDED <= src.len() {
        let masks = window_masks(src.as_ptr().add(i), quote);
        // Where the plain text stops (the quote, a newline), unless an escape takes that byte.
        let mut limit = (masks.stops.trailing_zeros() as usize).min(WINDOW);
        let mut escapes = masks.backslashes & low_bits(limit);
        // Offset in the window of the first byte not yet decoded.
        let mut done = 0;
        while escapes != 0 {
            let at = escapes.trailing_zeros() as usize;
            escapes &= escapes - 1;
            // The second backslash of a `\\` is no escape. (Skipped here rather than cleared
            // there: clearing it would make the next escape wait for this one's bytes.)
            if at < done {
                continue;
            }
            w = copy_plain(src.as_ptr().add(i + done), at - done, out, w);
            let escape = src.as_ptr().add(i + at);
            let byte_at = |k: usize| *escape.add(k);
            let (byte, len) = if masks.three_digits >> at & 1 != 0 {
                let digit = |k: usize| u32::from(byte_at(k));
                let value = digit(1) * 100 + digit(2) * 10 + digit(3) - u32::from(b'0') * 111;
                if value > 255 {
                    return (i + at, w);
                }
                (value as u8, 4)
            } else {
                let next = byte_at(1);
                match SIMPLE_ESCAPES[usize::from(next)] {
                    0 => match rare_escape(escape) {
                        Some(decoded) => decoded,
                        None => return (i + at, w),
                    },
                    byte => (byte, 2),
                }
            };
            *out.add(w) = byte;
            w += 1;
            done = at + len;
            if done > limit {
                // The escape took the stop (an escaped quote or newline): the next stop.
                let later = !low_bits(done);
                limit = ((masks.stops & later).trailing_zeros() as usize).min(WINDOW);
                escapes = masks.backslashes & low_bits(limit) & later;
            }
        }
        if done < limit {
            w = copy_plain(src.as_ptr().add(i + done), limit - done, out, w);
            done = limit;
        }
        i += done;
        if limit < WINDOW {
            break;
        }
    }
    (i, w)
}

/// The byte and length of the less common escapes the window path reads: one or two
/// decimal digits (three were read before), and a backslash before a newline (with the
/// other newline byte after it, if there). None for the rest (`\x`, `\z`, `\u`, errors).
///
/// # Safety
/// Three bytes can be read from `escape`.
#[inline(never)]
unsafe fn rare_escape(escape: *const u8) -> Option<(u8, usize)> {
    let (next, after) = (*escape.add(1), *escape.add(2));
    match next {
        b'0'..=b'9' => {
            let first = next - b'0';
            Some(match after.wrapping_sub(b'0') {
                second @ 0..=9 => (first * 10 + second, 3),
                _ => (first, 2),
            })
        }
        b'\n' | b'\r' => Some((b'\n', 1 + newline_len(next, Some(after)))),
        _ => None,
    }
}

/// Bits `0..n` set (all for `n >= 64`).
#[inline(always)]
fn low_bits(n: usize) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

/// Copies `n` plain bytes (at most a window) from `from` to `out + w` in 16-byte stores;
/// returns the new `w`. The first store is made even for none: between two escapes there
/// are none about as often as some, and a branch on it would go either way at random.
///
/// # Safety
/// `from` can be read for `n` rounded up to 16 bytes (at least 16), and `out + w` has that
/// much room.
#[inline(always)]
unsafe fn copy_plain(from: *const u8, n: usize, out: *mut u8, w: usize) -> usize {
    _mm_storeu_si128(
        out.add(w) as *mut __m128i,
        _mm_loadu_si128(from as *const __m128i),
    );
    let mut k = 16;
    while k < n {
        let chunk = _mm_loadu_si128(from.add(k) as *const __m128i);
        _mm_storeu_si128(out.add(w + k) as *mut __m128i, chunk);
        k += 16;
    }
    w + n
}

/// Where things are in a window, a bit per byte.
struct WindowMasks {
    backslashes: u64,
    /// Bytes that end the string's plain text here: the quote, `\n`, `\r`, unless escaped.
    stops: u64,
    /// Backslashes followed by three decimal digits.
    three_digits: u64,
}

/// The masks of the 64 bytes at `at`.
///
/// # Safety
/// 80 bytes can be read from `at`: the digits of an escape at the window's end lie past it.
#[inline(always)]
unsafe fn window_masks(at: *const u8, quote: u8) -> WindowMasks {
    let backslash = _mm_set1_epi8(b'\\' as i8);
    let quotes = _mm_set1_epi8(quote as i8);
    let newline = _mm_set1_epi8(b'\n' as i8);
    let carriage = _mm_set1_epi8(b'\r' as i8);
    let zero = _mm_set1_epi8(b'0' as i8);
    let nine = _mm_set1_epi8(9);
    let mut backslashes = 0u64;
    let mut stops = 0u64;
    let mut digits = 0u128;
    for part in 0..5 {
        let block = _mm_loadu_si128(at.add(part * 16) as *const __m128i);
        // A digit is a byte whose distance above '0', unsigned, is at most 9.
        let above_zero = _mm_sub_epi8(block, zero);
        let is_digit = _mm_cmpeq_epi8(_mm_min_epu8(above_zero, nine), above_zero);
        digits |= u128::from(_mm_movemask_epi8(is_digit) as u16) << (part * 16);
        if part == 4 {
            break;
        }
        let b = _mm_movemask_epi8(_mm_cmpeq_epi8(block, backslash)) as u16;
        let s = _mm_movemask_epi8(_mm_or_si128(
            _mm_cmpeq_epi8(block, quotes),
            _mm_or_si128(
                _mm_cmpeq_epi8(block, newline),
                _mm_cmpeq_epi8(block, carriage),
            ),
        )) as u16;
        backslashes |= u64::from(b) << (part * 16);
        stops |= u64::from(s) << (part * 16);
    }
    let three = u128::from(backslashes) & digits >> 1 & digits >> 2 & digits >> 3;
    WindowMasks {
        backslashes,
        stops: stops & !escaped_bytes(backslashes),
        three_digits: three as u64,
    }
}

/// The bytes that follow a run of an odd number of backslashes: each is the first byte an
/// escape takes (`\"`, a backslash before a newline), not a stop. Right for a window that
/// starts where no escape is under way, as every window does.
#[inline(always)]
fn escaped_bytes(backslashes: u64) -> u64 {
    const EVEN: u64 = 0x5555_5555_5555_5555;
    let starts = backslashes & !(backslashes << 1);
    // Adding a run's first bit carries through the run to the byte after it.
    let after_even_starts = backslashes.wrapping_add(starts & EVEN) & !backslashes;
    let after_odd_starts = backslashes.wrapping_add(starts & !EVEN) & !backslashes;
    // A run is odd when it starts and ends on positions of different parity.
    (after_even_starts & !EVEN) | (after_odd_starts & EVEN)
}

#[cfg(test)]
mod tests {
    use super::super::{Lexer, Tok};
    use proptest::prelude::*;

    /// A piece of a string body: its source text and the bytes it stands for.
    fn piece() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
        let plain = any::<u8>()
            .prop_filter("not a stop", |c| !matches!(c, b'"' | b'\\' | b'\n' | b'\r'))
            .prop_map(|c| (vec![c], vec![c]));
        let three_digits = any::<u8>().prop_map(|c| (format!("\\{c:03}").into_bytes(), vec![c]));
        // Shorter decimal escapes, with a non-digit after them so that they end there.
        let short_digits = (0u8..100).prop_map(|c| (format!("\\{c}x").into_bytes(), vec![c, b'x']));
        let quoted =
            prop::sample::select(vec![b'\\', b'"', b'\'']).prop_map(|c| (vec![b'\\', c], vec![c]));
        let others = prop::sample::select(vec![
            (&b"\\n"[..], &b"\n"[..]),
            (b"\\t", b"\t"),
            (b"\\a", b"\x07"),
            (b"\\v", b"\x0b"),
            (b"\\r", b"\r"),
            (b"\\\r\n", b"\n"),
            (b"\\\n\r", b"\n"),
            (b"\\\r", b"\n"),
            (b"\\9x", b"\tx"),
            (b"\\x41", b"A"),
            // `\z` skips all the whitespace after it, so something else follows.
            (b"\\z  y", b"y"),
            (b"\\\n", b"\n"),
        ])
        .prop_map(|(s, v)| (s.to_vec(), v.to_vec()));
        prop_oneof![6 => plain, 6 => three_digits, 1 => short_digits, 1 => quoted, 1 => others]
    }

    #[test]
    fn escaped_bytes_follow_odd_runs_of_backslashes() {
        // Every window of up to 12 bytes from {backslash, other}: the reference counts the
        // run before each byte.
        for pattern in 0u64..1 << 12 {
            let mut expected = 0u64;
            let mut run = 0;
            for bit in 0..13 {
                if run % 2 == 1 && pattern >> bit & 1 == 0 {
                    expected |= 1 << bit;
                }
                run = if pattern >> bit & 1 == 1 { run + 1 } else { 0 };
            }
            assert_eq!(super::escaped_bytes(pattern), expected, "{pattern:012b}");
            let shifted = pattern << 50;
            assert_eq!(
                super::escaped_bytes(shifted) >> 50,
                expected & 0x3FFF,
                "{pattern:012b} << 50"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Bodies long enough for several windows, escapes at every offset of a window,
        /// and text after the closing quote that must not be taken.
        #[test]
        fn decodes_like_the_escapes_say(
            pieces in prop::collection::vec(piece(), 0..160),
            after in prop::sample::select(vec![&b""[..], b",\"\\\\\"", b"\n\"\\065\"", b"}"]),
            padding in 0usize..100,
        ) {
            let body: Vec<u8> = pieces.iter().flat_map(|(s, _)| s.clone()).collect();
            let expected: Vec<u8> = pieces.iter().flat_map(|(_, v)| v.clone()).collect();
            let tail = [after, &b" ".repeat(padding)[..]].concat();
            let src = [&b"\""[..], &body, b"\"", &tail].concat();
            let mut lexer = Lexer::new(&src, true);
            prop_assert_eq!(lexer.next_token().ok(), Some(Tok::Str));
            prop_assert_eq!(lexer.string(), &expected[..]);
            prop_assert_eq!(lexer.remaining(), tail.len());
        }

        /// A newline or carriage return cut into the body ends it with an error, wherever
        /// it falls in a window.
        #[test]
        fn a_raw_newline_is_an_error(
            pieces in prop::collection::vec(piece(), 1..160),
            at in any::<prop::sample::Index>(),
            newline in prop::sample::select(vec![b'\n', b'\r']),
        ) {
            // Pieces with a newline byte of their own are left out, and `\z`, which would
            // skip the newline.
            let body: Vec<u8> = pieces
                .iter()
                .filter(|(s, _)| {
                    !s.contains(&b'\n') && !s.contains(&b'\r') && !s.starts_with(b"\\z")
                })
                .flat_map(|(s, _)| s.clone())
                .collect();
            let mut cut = body.clone();
            let at = at.index(cut.len() + 1);
            // Not between a backslash and what it escapes: that would be a valid escape.
            prop_assume!(at == 0 || cut[at - 1] != b'\\');
            cut.insert(at, newline);
            let src = [&b"\""[..], &cut, b"\"", &b" ".repeat(80)].concat();
            let mut lexer = Lexer::new(&src, true);
            let got = lexer.next_token();
            prop_assert!(got.is_err(), "{:?} -> {:?}", String::from_utf8_lossy(&src), got);
        }

        /// A decimal escape over 255 is an error wherever it falls in a window.
        #[test]
        fn a_decimal_escape_over_255_is_an_error(
            pieces in prop::collection::vec(piece(), 1..160),
            at in any::<prop::sample::Index>(),
            value in 256u32..1000,
        ) {
            let mut body: Vec<u8> = Vec::new();
            let cut = at.index(pieces.len() + 1);
            for (k, (s, _)) in pieces.iter().enumerate() {
                if k == cut {
                    body.extend(format!("\\{value}").bytes());
                }
                body.extend(s);
            }
            if cut == pieces.len() {
                body.extend(format!("\\{value}").bytes());
            }
            let src = [&b"\""[..], &body, b"\"", &b" ".repeat(80)].concat();
            let mut lexer = Lexer::new(&src, true);
            prop_assert!(lexer.next_token().is_err());
        }
    }
}
