//! String tokens of the lexer: short strings with every Lua escape, and long strings.

#[cfg(target_arch = "x86_64")]
use super::escaped_runs::{self, OUTPUT_SLACK};
use super::Lexer;
use crate::text::error::{ParseError, ParseErrorKind};

/// Room the decoded text needs past its end: none without the window path.
#[cfg(not(target_arch = "x86_64"))]
const OUTPUT_SLACK: usize = 0;

/// Skips whole 8-byte words that hold no quote, backslash or newline; returns where the
/// byte-wise scan continues.
#[inline]
fn skip_plain_words(src: &[u8], i: usize, quote: u8) -> usize {
    #[cfg(target_arch = "x86_64")]
    let i = match skip_plain_blocks(src, i, quote) {
        Ok(stop) => return stop,
        Err(rest) => rest,
    };
    skip_plain_swar(src, i, quote)
}

/// `skip_plain_words` 16 bytes at a time (SSE2, which every x86-64 has): `Ok` with the first
/// quote, backslash or newline, or `Err` with where fewer than 16 bytes are left.
#[cfg(target_arch = "x86_64")]
#[inline]
fn skip_plain_blocks(src: &[u8], mut i: usize, quote: u8) -> Result<usize, usize> {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    // SAFETY: SSE2 is part of x86-64 itself, so these intrinsics are always available;
    // each load reads the 16 bytes of `chunk`, with no alignment requirement.
    unsafe {
        let quotes = _mm_set1_epi8(quote as i8);
        let backslashes = _mm_set1_epi8(b'\\' as i8);
        let newlines = _mm_set1_epi8(b'\n' as i8);
        let returns = _mm_set1_epi8(b'\r' as i8);
        while let Some(chunk) = src.get(i..i + 16) {
            let block = _mm_loadu_si128(chunk.as_ptr() as *const __m128i);
            let stops = _mm_or_si128(
                _mm_or_si128(
                    _mm_cmpeq_epi8(block, quotes),
                    _mm_cmpeq_epi8(block, backslashes),
                ),
                _mm_or_si128(
                    _mm_cmpeq_epi8(block, newlines),
                    _mm_cmpeq_epi8(block, returns),
                ),
            );
            let mask = _mm_movemask_epi8(stops) as u32;
            if mask != 0 {
                return Ok(i + mask.trailing_zeros() as usize);
            }
            i += 16;
        }
    }
    Err(i)
}

/// `skip_plain_words` 8 bytes at a time.
#[inline]
fn skip_plain_swar(src: &[u8], mut i: usize, quote: u8) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_byte = |word: u64, b: u8| {
        let x = word ^ (ONES * u64::from(b));
        x.wrapping_sub(ONES) & !x & HIGHS
    };
    while let Some(chunk) = src.get(i..i + 8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        if has_byte(word, quote)
            | has_byte(word, b'\\')
            | has_byte(word, b'\n')
            | has_byte(word, b'\r')
            != 0
        {
            break;
        }
        i += 8;
    }
    i
}

/// The byte a `\ddd` escape stands for, given its four source bytes (the backslash first),
/// or `None` when they are not three decimal digits up to 255.
#[inline]
fn three_digit_escape(quad: &[u8]) -> Option<u32> {
    let word = u32::from_le_bytes(quad.try_into().ok()?);
    // The backslash's place is set to '0' so that all four bytes are checked as digits: a
    // digit has high nibble 3, and adding 6 keeps it there (0x3A..0x3F would carry to 4).
    let digits = (word & 0xFFFF_FF00) | u32::from(b'0');
    const NIBBLES: u32 = 0xF0F0_F0F0;
    const THREES: u32 = 0x3030_3030;
    if digits & NIBBLES != THREES || digits.wrapping_add(0x0606_0606) & NIBBLES != THREES {
        return None;
    }
    // Digit values d1, d2, d3 in bytes 1..3; adding d * 10 and d >> 8 puts 10 * d1 + d2 in
    // byte 1 (no byte exceeds 99, so nothing carries).
    let d = digits - THREES;
    let pairs = d * 10 + (d >> 8);
    let value = (pairs >> 8 & 0xFF) * 10 + (d >> 24);
    (value <= 255).then_some(value)
}

/// Bytes that end a run of plain string content: the quote, backslash and newlines.
const fn string_stops(quote: u8) -> [u8; 256] {
    let mut t = [0u8; 256];
    t[quote as usize] = 1;
    t[b'\\' as usize] = 1;
    t[b'\n' as usize] = 1;
    t[b'\r' as usize] = 1;
    t
}

static STOPS_DOUBLE: [u8; 256] = string_stops(b'"');
static STOPS_SINGLE: [u8; 256] = string_stops(b'\'');

impl Lexer<'_> {
    pub(super) fn long_string(&mut self, level: usize) -> Result<(), ParseError> {
        let start = self.start;
        self.pos = start + level + 2;
        // A newline right after the opening bracket is not part of the string.
        if let Some(first) = self.peek(0) {
            self.pos += newline_len(first, self.peek(1));
        }
        let body = &self.src[self.pos..];
        let Some(len) = find_long_close(body, level) else {
            return Err(self.err(start, ParseErrorKind::UnfinishedLongString));
        };
        let body = &body[..len];
        if body.contains(&b'\r') {
            // Lua turns every newline sequence inside a long string into "\n".
            self.buf.clear();
            let mut i = 0;
            while i < body.len() {
                let c = body[i];
                match newline_len(c, body.get(i + 1).copied()) {
                    0 => {
                        self.buf.push(c);
                        i += 1;
                    }
                    len => {
                        self.buf.push(b'\n');
                        i += len;
                    }
                }
            }
            self.str_span = None;
        } else {
            self.str_span = Some((self.pos, self.pos + len));
        }
        self.pos += len + level + 2;
        Ok(())
    }

    pub(super) fn short_string(&mut self, quote: u8) -> Result<(), ParseError> {
        let stops = if quote == b'"' {
            &STOPS_DOUBLE
        } else {
            &STOPS_SINGLE
        };
        let src = self.src;
        let body_start = self.pos;
        let mut i = skip_plain_words(src, body_start, quote);
        while i < src.len() && stops[src[i] as usize] == 0 {
            i += 1;
        }
        if src.get(i) == Some(&quote) {
            // No escapes: the bytes are used in place.
            self.str_span = Some((body_start, i));
            self.pos = i + 1;
            return Ok(());
        }
        self.str_span = None;
        self.buf.clear();
        // Decoded text is never longer than the source it comes from, so everything below
        // fits in this capacity: the writes stay at `w <= i - body_start`, and the window
        // path's 16-byte copies within `OUTPUT_SLACK` past that.
        self.buf.reserve(src.len() - body_start + OUTPUT_SLACK);
        let mut out = self.buf.as_mut_ptr();
        let mut w = 0;
        i = body_start;
        // Digit value of the byte at `k`, or 10 and more for anything else (or the end).
        let digit = |k: usize| src.get(k).map_or(10, |&d| u32::from(d.wrapping_sub(b'0')));
        // Escapes read so far: a string with one or two is read faster here than by setting
        // up windows for it.
        #[cfg(target_arch = "x86_64")]
        let mut escapes = 0;
        loop {
            #[cfg(target_arch = "x86_64")]
            if escapes >= 2 && i + escaped_runs::SOURCE_NEEDED <= src.len() {
                // SAFETY: the capacity reserved above, with w <= i - body_start.
                (i, w) = unsafe { escaped_runs::decode_escaped_runs(src, i, out, w, quote) };
            }
            while let Some(&c) = src.get(i) {
                if stops[c as usize] != 0 {
                    break;
                }
                // SAFETY: w <= i - body_start < capacity (see above).
                unsafe { *out.add(w) = c };
                w += 1;
                i += 1;
            }
            let byte = match src.get(i) {
                Some(&c) if c == quote => {
                    // SAFETY: the first w bytes were written above.
                    unsafe { self.buf.set_len(w) };
                    self.pos = i + 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    #[cfg(target_arch = "x86_64")]
                    {
                        escapes += 1;
                    }
                    // Fast paths for the escapes our writer uses: `\ddd` (three digits, read
                    // in one word), `\"` and `\\`; then the shorter decimal forms.
                    if let Some(value) = src.get(i..i + 4).and_then(three_digit_escape) {
                        i += 4;
                        value
                    } else if let Some(&quoted @ (b'"' | b'\\')) = src.get(i + 1) {
                        i += 2;
                        u32::from(quoted)
                    } else {
                        match (digit(i + 1), digit(i + 2), digit(i + 3)) {
                            (a @ 0..=9, b @ 0..=9, 10..) => {
                                i += 3;
                                a * 10 + b
                            }
                            (a @ 0..=9, 10.., _) => {
                                i += 2;
                                a
                            }
                            _ => {
                                // SAFETY: as above; `escape` appends through the Vec itself.
                                unsafe { self.buf.set_len(w) };
                                self.pos = i;
                                self.escape()?;
                                i = self.pos;
                                w = self.buf.len();
                                out = self.buf.as_mut_ptr();
                                continue;
                            }
                        }
                    }
                }
                _ => return Err(self.err(self.start, ParseErrorKind::UnfinishedString)),
            };
            // SAFETY: an escape of 2 to 4 source bytes yields one byte.
            unsafe { *out.add(w) = byte as u8 };
            w += 1;
        }
    }

    fn escape(&mut self) -> Result<(), ParseError> {
        let at = self.pos;
        self.pos += 1;
        let bad = |lx: &Self, upto: usize| {
            let end = upto.min(lx.src.len());
            let text = String::from_utf8_lossy(&lx.src[at..end]).into_owned();
            lx.err(at, ParseErrorKind::InvalidEscape(text))
        };
        let Some(c) = self.peek(0) else {
            return Err(self.err(self.start, ParseErrorKind::UnfinishedString));
        };
        self.pos += 1;
        let byte = match c {
            _ if SIMPLE_ESCAPES[usize::from(c)] != 0 => SIMPLE_ESCAPES[usize::from(c)],
            b'\n' | b'\r' => {
                // The escaped newline's byte was taken above: its pair's second, if any.
                self.pos += newline_len(c, self.peek(0)) - 1;
                b'\n'
            }
            b'x' => {
                let hex = |d: Option<u8>| d.and_then(|d| (d as char).to_digit(16));
                match (hex(self.peek(0)), hex(self.peek(1))) {
                    (Some(h), Some(l)) => {
                        self.pos += 2;
                        (h * 16 + l) as u8
                    }
                    _ => return Err(bad(self, self.pos + 2)),
                }
            }
            b'z' => {
                while matches!(
                    self.peek(0),
                    Some(b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
                ) {
                    self.pos += 1;
                }
                return Ok(());
            }
            b'u' => {
                if self.peek(0) != Some(b'{') {
                    return Err(bad(self, self.pos));
                }
                self.pos += 1;
                let mut code: u32 = 0;
                let mut digits = 0;
                while let Some(d) = self.peek(0).and_then(|d| (d as char).to_digit(16)) {
                    code = code
                        .checked_mul(16)
                        .map(|v| v + d)
                        .filter(|&v| v <= 0x7FFF_FFFF)
                        .ok_or_else(|| bad(self, self.pos + 1))?;
                    digits += 1;
                    self.pos += 1;
                }
                if digits == 0 || self.peek(0) != Some(b'}') {
                    return Err(bad(self, self.pos + 1));
                }
                self.pos += 1;
                push_utf8_extended(&mut self.buf, code);
                return Ok(());
            }
            b'0'..=b'9' => {
                let mut value = u32::from(c - b'0');
                for _ in 0..2 {
                    match self.peek(0) {
                        Some(d @ b'0'..=b'9') => {
                            value = value * 10 + u32::from(d - b'0');
                            self.pos += 1;
                        }
                        _ => break,
                    }
                }
                if value > 255 {
                    return Err(bad(self, self.pos));
                }
                value as u8
            }
            _ => return Err(bad(self, self.pos)),
        };
        self.buf.push(byte);
        Ok(())
    }
}

/// The byte of each escape of two bytes that stands for one fixed byte (`\n` is 10, `\"`
/// is `"`), by its second byte; 0 for the others.
pub(super) static SIMPLE_ESCAPES: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b'a' as usize] = 7;
    t[b'b' as usize] = 8;
    t[b'f' as usize] = 12;
    t[b'n' as usize] = b'\n';
    t[b'r' as usize] = b'\r';
    t[b't' as usize] = b'\t';
    t[b'v' as usize] = 11;
    t[b'\\' as usize] = b'\\';
    t[b'"' as usize] = b'"';
    t[b'\'' as usize] = b'\'';
    t
};

/// Bytes of the newline Lua reads as one at `first`, `second` following it: 2 for `\r\n`
/// or `\n\r`, 1 for another `\n` or `\r`, 0 when `first` is no newline.
#[inline]
pub(super) fn newline_len(first: u8, second: Option<u8>) -> usize {
    match (first, second) {
        (b'\r', Some(b'\n')) | (b'\n', Some(b'\r')) => 2,
        (b'\r' | b'\n', _) => 1,
        _ => 0,
    }
}

/// Offset of the `]=*]` closing a long bracket of `level` in `body`.
pub(super) fn find_long_close(body: &[u8], level: usize) -> Option<usize> {
    let mut i = 0;
    while let Some(found) = body[i..].iter().position(|&c| c == b']') {
        let at = i + found;
        let eqs = body[at + 1..]
            .iter()
            .take(level)
            .take_while(|&&c| c == b'=')
            .count();
        if eqs == level && body.get(at + 1 + level) == Some(&b']') {
            return Some(at);
        }
        i = at + 1;
    }
    None
}

/// UTF-8 as Lua 5.4 writes `\u{...}`: up to 6 bytes for code points up to 2^31.
fn push_utf8_extended(out: &mut Vec<u8>, code: u32) {
    if code < 0x80 {
        out.push(code as u8);
        return;
    }
    let mut tail = [0u8; 6];
    let mut n = 0;
    let mut x = code;
    let mut first_max = 0x3f;
    while x > first_max {
        tail[n] = 0x80 | (x & 0x3f) as u8;
        n += 1;
        x >>= 6;
        first_max >>= 1;
    }
    out.push(((!first_max << 1) as u8) | x as u8);
    out.extend(tail[..n].iter().rev());
}

#[cfg(test)]
mod tests {
    use super::super::{Lexer, Tok};

    /// What Lua reads for `"` + `body` + `"`: `None` for an error.
    fn lex_string(body: &[u8]) -> Option<Vec<u8>> {
        let src = [&b"\""[..], body, b"\""].concat();
        let mut lexer = Lexer::new(&src, true);
        match lexer.next_token() {
            Ok(Tok::Str) if lexer.remaining() == 0 => Some(lexer.string().to_vec()),
            _ => None,
        }
    }

    /// Lua's rule, spelled out: up to three digits are taken greedily; over 255 is an error.
    fn reference(digits: &[u8], tail: &[u8]) -> Option<Vec<u8>> {
        let taken = digits.len().min(3);
        let value: u32 = std::str::from_utf8(&digits[..taken]).ok()?.parse().ok()?;
        let byte = u8::try_from(value).ok()?;
        Some([&[byte][..], &digits[taken..], tail].concat())
    }

    #[test]
    fn decimal_escapes_in_every_width_and_context() {
        for value in 0..=999u32 {
            for width in 1..=3 {
                let digits = format!("{value:0width$}");
                if digits.len() != width {
                    continue;
                }
                for tail in [&b""[..], b"x", b"7", b"42", b"\\65", b"\xff"] {
                    for before in [&b""[..], b"\\200", b"ab"] {
                        let body = [before, b"\\", digits.as_bytes(), tail].concat();
                        let expected = lex_string(before).and_then(|head| {
                            let tail_digits = tail.iter().take_while(|c| c.is_ascii_digit());
                            let run = [digits.as_bytes(), &tail[..tail_digits.count()]].concat();
                            let rest = &tail[run.len() - digits.len()..];
                            let decoded = reference(&run, &lex_string(rest)?)?;
                            Some([head, decoded].concat())
                        });
                        assert_eq!(
                            lex_string(&body),
                            expected,
                            "{:?}",
                            String::from_utf8_lossy(&body)
                        );
                    }
                }
            }
        }
    }
}
