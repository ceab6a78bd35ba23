//! Lua string literals that every Lua version reads back byte for byte and that are always
//! valid UTF-8: valid UTF-8 sequences pass through raw, `"` and `\\` take a backslash, and
//! every other byte that is not printable ASCII becomes a three-digit decimal escape `\\ddd`
//! (SPEC §3; Lua 5.1 understands it too). One escape form, always four bytes, keeps both the
//! writer and the reader's fast path free of choices between forms.

/// How each byte is written, packed in a word: the escape or the byte itself in the low four
/// bytes, how many of them count at bit `LEN_SHIFT`, and `UTF8_LEAD` for a byte that can start
/// a UTF-8 sequence (raw if the sequence is valid, else its escape) or `CONTINUATION`.
static FORMS: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        let (text, len, lead) = if is_plain(c) {
            ([c, 0, 0, 0], 1, false)
        } else if c == b'"' || c == b'\\' {
            ([b'\\', c, 0, 0], 2, false)
        } else {
            // Control bytes, DEL, continuation bytes, bytes that never start a sequence, and
            // lead bytes unless a valid sequence follows.
            (decimal_escape(c), 4, c >= 0xC2 && c <= 0xF4)
        };
        let continuation = c >= 0x80 && c <= 0xBF;
        t[i] = u32::from_le_bytes(text) as u64
            | (len as u64) << LEN_SHIFT
            | if lead { UTF8_LEAD } else { 0 }
            | if continuation { CONTINUATION } else { 0 };
        i += 1;
    }
    t
};

const LEN_SHIFT: u32 = 32;
const UTF8_LEAD: u64 = 1 << 40;
/// A continuation byte, one bit above `UTF8_LEAD` so that a shift lines the two up.
const CONTINUATION: u64 = UTF8_LEAD << 1;

/// `\ddd` with exactly three digits.
const fn decimal_escape(c: u8) -> [u8; 4] {
    [b'\\', b'0' + c / 100, b'0' + (c / 10) % 10, b'0' + c % 10]
}

/// Printable ASCII other than `"` and `\\`: a byte written as itself.
pub const fn is_plain(c: u8) -> bool {
    c >= 0x20 && c < 0x7f && c != b'"' && c != b'\\'
}

/// Length of the valid UTF-8 sequence (RFC 3629: no overlongs, no surrogates, at most
/// U+10FFFF) that starts `s` with a byte >= 0x80, or 0 if there is none.
#[inline]
pub fn utf8_sequence_len(s: &[u8]) -> usize {
    // Most invalid bytes fail here: every sequence's second byte is a continuation byte.
    if s.get(1).is_none_or(|&b| b & 0xC0 != 0x80) {
        return 0;
    }
    let cont = |i: usize| s.get(i).is_some_and(|&b| b & 0xC0 == 0x80);
    let in_range = |i: usize, lo: u8, hi: u8| s.get(i).is_some_and(|&b| (lo..=hi).contains(&b));
    match s[0] {
        0xC2..=0xDF if cont(1) => 2,
        0xE0 if in_range(1, 0xA0, 0xBF) && cont(2) => 3,
        0xE1..=0xEC | 0xEE..=0xEF if cont(1) && cont(2) => 3,
        0xED if in_range(1, 0x80, 0x9F) && cont(2) => 3,
        0xF0 if in_range(1, 0x90, 0xBF) && cont(2) && cont(3) => 4,
        0xF1..=0xF3 if cont(1) && cont(2) && cont(3) => 4,
        0xF4 if in_range(1, 0x80, 0x8F) && cont(2) && cont(3) => 4,
        _ => 0,
    }
}

/// Appends `s` as a double-quoted Lua string literal.
pub fn write_string(out: &mut Vec<u8>, s: &[u8]) {
    // Worst case: every byte becomes a four-byte `\ddd`.
    out.reserve(s.len() * 4 + 2);
    let start = out.len();
    // SAFETY: before the byte at `i` is handled, at most 4 * i + 1 bytes are written, and
    // handling it stores at most 4 bytes per byte it consumes (8 for a chunk of 8 plain
    // bytes), all within the capacity reserved above; `set_len` covers the bytes written.
    unsafe {
        let base = out.as_mut_ptr().add(start);
        *base = b'"';
        let mut w = 1;
        let mut i = 0;
        // Plain printable ASCII, the usual content, moves eight bytes at a time; a chunk with
        // anything else goes byte by byte (a UTF-8 sequence may run past its end).
        while i + 8 <= s.len() {
            let chunk = word_at(s, i);
            if needs_care(chunk) {
                let chunk_end = i + 8;
                while i < chunk_end {
                    (i, w) = write_byte(s, i, base, w);
                }
            } else {
                std::ptr::write_unaligned(base.add(w) as *mut u64, chunk.to_le());
                w += 8;
                i += 8;
            }
        }
        // The last few bytes (all of a short string): plain ones are copied as they are.
        while let Some(&c) = s.get(i) {
            if FORMS[usize::from(c)] >> LEN_SHIFT & 0xFF == 1 {
                *base.add(w) = c;
                w += 1;
                i += 1;
            } else {
                (i, w) = write_byte(s, i, base, w);
            }
        }
        *base.add(w) = b'"';
        out.set_len(start + w + 1);
    }
}

/// Writes the byte of `s` at `i` (or the valid UTF-8 sequence starting there) at `base + w`;
/// returns the next `i` and `w`. Binary data takes no branch it could mispredict except
/// where a lead byte is followed by a continuation byte.
///
/// # Safety
/// `i < s.len()`, and `base + w` has room for four bytes per byte of `s` from `i` on.
#[inline(always)]
unsafe fn write_byte(s: &[u8], i: usize, base: *mut u8, w: usize) -> (usize, usize) {
    let form = FORMS[usize::from(*s.get_unchecked(i))];
    std::ptr::write_unaligned(base.add(w) as *mut u32, (form as u32).to_le());
    // One test on the two table entries, not two branches on the two bytes: for binary
    // data each of those would go either way at random.
    let next = FORMS[usize::from(s.get(i + 1).copied().unwrap_or(0))];
    if form & (next >> 1) & UTF8_LEAD != 0 {
        let n = utf8_sequence_len(&s[i..]);
        if n != 0 {
            // Text in CJK scripts is mostly such sequences: four bytes are copied where there
            // are four to read (the room is there, as for an escape), not a call to memcpy.
            if i + 4 <= s.len() {
                let four = std::ptr::read_unaligned(s.as_ptr().add(i) as *const u32);
                std::ptr::write_unaligned(base.add(w) as *mut u32, four);
            } else {
                std::ptr::copy_nonoverlapping(s.as_ptr().add(i), base.add(w), n);
            }
            return (i + n, w + n);
        }
    }
    (i + 1, w + (form >> LEN_SHIFT & 0xFF) as usize)
}

/// The eight bytes of `s` from `i` as one little-endian word.
///
/// # Safety
/// `i + 8 <= s.len()`.
#[inline]
unsafe fn word_at(s: &[u8], i: usize) -> u64 {
    u64::from_le(std::ptr::read_unaligned(s.as_ptr().add(i) as *const u64))
}

/// Whether any of the eight bytes is not plain printable ASCII (a control byte, DEL, `"`,
/// `\\` or a byte >= 0x80). False alarms are allowed: they only take the byte-wise path.
#[inline]
fn needs_care(x: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |y: u64| y.wrapping_sub(ONES) & !y & HIGHS;
    let below_space = x.wrapping_sub(ONES * 0x20) & !x & HIGHS;
    let special = has_zero(x ^ (ONES * u64::from(b'"')))
        | has_zero(x ^ (ONES * u64::from(b'\\')))
        | has_zero(x ^ (ONES * 0x7f));
    (x & HIGHS) | below_space | special != 0
}

/// Whether `s` can be written as a bare field name (`name=`) in a table constructor.
pub fn is_identifier(s: &[u8]) -> bool {
    super::lex::is_name(s) && !super::lex::is_keyword(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &[u8]) -> String {
        let mut out = Vec::new();
        write_string(&mut out, s);
        String::from_utf8(out).expect("always valid UTF-8")
    }

    #[test]
    fn escapes() {
        assert_eq!(lit(b"plain"), "\"plain\"");
        assert_eq!(lit(b"a\"b\\c\n"), r#""a\"b\\c\010""#);
        assert_eq!(lit(b"\x00\x01x\t\r"), r#""\000\001x\009\013""#);
        assert_eq!(lit(b"\x001"), r#""\0001""#);
        assert_eq!(lit(b"\x7f\xff"), r#""\127\255""#);
        assert_eq!(lit("日本 ✓".as_bytes()), "\"日本 ✓\"");
        // Overlong, surrogate and out-of-range sequences are escaped byte by byte.
        assert_eq!(lit(b"\xC0\x80"), r#""\192\128""#);
        assert_eq!(lit(b"\xED\xA0\x80"), r#""\237\160\128""#);
        assert_eq!(lit(b"\xF4\x90\x80\x80"), r#""\244\144\128\128""#);
    }

    #[test]
    fn escapes_at_every_position_of_a_long_run() {
        for special in [b'"', b'\\', b'\n', 0x00, 0x1f, 0x7f, 0x80, 0xff] {
            for at in 0..20 {
                let mut s = b"abcdefghijklmnopqrst".to_vec();
                s[at] = special;
                let expected: String = s
                    .iter()
                    .map(|&c| {
                        let one = lit(&[c]);
                        one[1..one.len() - 1].to_string()
                    })
                    .collect();
                assert_eq!(lit(&s), format!("\"{expected}\""), "{special:#x} at {at}");
            }
        }
    }

    /// The literal's body written the slow, obvious way.
    fn reference_body(s: &[u8]) -> String {
        let mut out = String::new();
        let mut i = 0;
        while i < s.len() {
            let c = s[i];
            let utf8 = (2..=4).find_map(|k| std::str::from_utf8(s.get(i..i + k)?).ok());
            match c {
                0x80.. if utf8.is_some() => {
                    let seq = utf8.unwrap_or_default();
                    out.push_str(seq);
                    i += seq.len();
                    continue;
                }
                b'"' => out.push_str("\\\""),
                b'\\' => out.push_str("\\\\"),
                0x20..=0x7e => out.push(c as char),
                _ => out.push_str(&format!("\\{c:03}")),
            }
            i += 1;
        }
        out
    }

    #[test]
    fn every_byte_pair_in_every_context_matches_the_reference() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                for (before, after) in [(&b""[..], &b""[..]), (b"plain tx", b"9abcdefghij")] {
                    let s = [before, &[a, b], b"\x80\xBF", after].concat();
                    assert_eq!(lit(&s), format!("\"{}\"", reference_body(&s)), "{s:x?}");
                }
            }
        }
    }

    #[test]
    fn utf8_agrees_with_std_on_every_short_sequence() {
        for a in 0x80..=0xFFu32 {
            for b in (0..=0xFFu32).step_by(7) {
                for c in [0x80u8, 0xBF, 0x41] {
                    let s = [a as u8, b as u8, c, 0x80];
                    let n = utf8_sequence_len(&s);
                    let expected = (2..=4)
                        .find(|&k| std::str::from_utf8(&s[..k]).is_ok())
                        .unwrap_or(0);
                    assert_eq!(n, expected, "{s:x?}");
                }
            }
        }
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier(b"player_id"));
        assert!(is_identifier(b"_G"));
        assert!(!is_identifier(b"end"));
        assert!(!is_identifier(b"1a"));
        assert!(!is_identifier(b"a-b"));
        assert!(!is_identifier(b""));
    }
}
