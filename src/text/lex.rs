//! Tokens of the Lua data subset, read the way Lua 5.4's lexer reads them.

use super::error::{ParseError, ParseErrorKind};
use super::number::{parse_numeral, Num};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tok {
    Eof,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    LParen,
    RParen,
    Assign,
    Comma,
    Semi,
    Dot,
    Minus,
    Slash,
    Name,
    Str,
    /// A numeral; its value is `Lexer::number`.
    Num,
    /// Any other operator or stray byte; the parser reports it.
    Other,
}

pub struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
    /// Offset of the current token's first byte.
    pub start: usize,
    has_integers: bool,
    /// Value of the last numeral token.
    pub number: Num,
    /// Decoded bytes of the last string token when it had escapes.
    buf: Vec<u8>,
    /// Where the last string token's bytes are: a span of `src`, or `buf`.
    str_span: Option<(usize, usize)>,
}

/// A name of at most 8 bytes as one little-endian word (zero-padded), for comparisons
/// without `memcmp`.
const fn word(name: &[u8]) -> u64 {
    let mut v = 0u64;
    let mut i = 0;
    while i < name.len() {
        v |= (name[i] as u64) << (8 * i);
        i += 1;
    }
    v
}

/// Lua's reserved words, by length and first byte: a name is compared with at most two words
/// (0 never matches: names are not empty).
pub fn is_keyword(name: &[u8]) -> bool {
    const fn w(k: &[u8]) -> u64 {
        word(k)
    }
    let (a, b) = match (name.len(), name.first()) {
        (2, Some(b'd')) => (w(b"do"), 0),
        (2, Some(b'i')) => (w(b"if"), w(b"in")),
        (2, Some(b'o')) => (w(b"or"), 0),
        (3, Some(b'a')) => (w(b"and"), 0),
        (3, Some(b'e')) => (w(b"end"), 0),
        (3, Some(b'f')) => (w(b"for"), 0),
        (3, Some(b'n')) => (w(b"nil"), w(b"not")),
        (4, Some(b'e')) => (w(b"else"), 0),
        (4, Some(b'g')) => (w(b"goto"), 0),
        (4, Some(b't')) => (w(b"then"), w(b"true")),
        (5, Some(b'b')) => (w(b"break"), 0),
        (5, Some(b'f')) => (w(b"false"), 0),
        (5, Some(b'l')) => (w(b"local"), 0),
        (5, Some(b'u')) => (w(b"until"), 0),
        (5, Some(b'w')) => (w(b"while"), 0),
        (6, Some(b'e')) => (w(b"elseif"), 0),
        (6, Some(b'r')) => (w(b"repeat"), w(b"return")),
        (8, Some(b'f')) => (w(b"function"), 0),
        _ => return false,
    };
    let v = word(name);
    v == a || v == b
}

/// Bytes that may continue a name (letters, digits, `_`).
static NAME_CHARS: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || b == b'_';
        c += 1;
    }
    t
};

/// Skips whole 8-byte words that hold no quote, backslash or newline; returns where the
/// byte-wise scan continues.
#[inline]
fn skip_plain_words(src: &[u8], mut i: usize, quote: u8) -> usize {
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

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a [u8], has_integers: bool) -> Self {
        Lexer {
            src,
            pos: 0,
            start: 0,
            has_integers,
            number: Num::Int(0),
            buf: Vec::new(),
            str_span: None,
        }
    }

    fn err(&self, offset: usize, kind: ParseErrorKind) -> ParseError {
        ParseError::new(offset, kind)
    }

    /// Bytes of the current token, for names and error messages.
    pub fn token_text(&self) -> &'a [u8] {
        &self.src[self.start..self.pos]
    }

    /// Steps over the `=` that `peek_is_assign` found, so it is not lexed twice.
    pub fn skip_assign(&mut self) {
        if self.peek(0) != Some(b'=') {
            // Whitespace or comments first: take the slow way.
            let _ = self.skip_space_and_comments();
        }
        self.pos += 1;
    }

    /// Whether the next token is a single `=` (a field name in a constructor).
    pub fn peek_is_assign(&self) -> bool {
        if let (Some(b'='), next) = (self.peek(0), self.peek(1)) {
            return next != Some(b'=');
        }
        let mut ahead = Lexer::new(self.src, self.has_integers);
        ahead.pos = self.pos;
        if ahead.skip_space_and_comments().is_err() {
            return false;
        }
        ahead.peek(0) == Some(b'=') && ahead.peek(1) != Some(b'=')
    }

    /// The decoded bytes of the current string token.
    pub fn string(&self) -> &[u8] {
        match self.str_span {
            Some((a, b)) => &self.src[a..b],
            None => &self.buf,
        }
    }

    /// A short printable description of the current token for error messages.
    pub fn describe(&self, tok: Tok) -> String {
        match tok {
            Tok::Eof => "end of text".to_string(),
            Tok::Str => "string".to_string(),
            _ => {
                let text = self.token_text();
                let shown = &text[..text.len().min(24)];
                format!("'{}'", String::from_utf8_lossy(shown))
            }
        }
    }

    #[inline]
    pub fn next_token(&mut self) -> Result<Tok, ParseError> {
        if matches!(
            self.peek(0),
            Some(b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | b'-')
        ) {
            self.skip_space_and_comments()?;
        }
        self.start = self.pos;
        let Some(&c) = self.src.get(self.pos) else {
            return Ok(Tok::Eof);
        };
        self.pos += 1;
        let tok = match c {
            b'{' => Tok::LBrace,
            b'}' => Tok::RBrace,
            b']' => Tok::RBracket,
            b'(' => Tok::LParen,
            b')' => Tok::RParen,
            b',' => Tok::Comma,
            b';' => Tok::Semi,
            b'/' => Tok::Slash,
            b'-' => Tok::Minus,
            b'=' => {
                if self.peek(0) == Some(b'=') {
                    self.pos += 1;
                    Tok::Other
                } else {
                    Tok::Assign
                }
            }
            b'[' => match self.long_bracket_level(self.pos - 1) {
                Some(level) => {
                    self.long_string(level)?;
                    Tok::Str
                }
                None => Tok::LBracket,
            },
            b'"' | b'\'' => {
                self.short_string(c)?;
                Tok::Str
            }
            b'.' => {
                if self.peek(0).is_some_and(|d| d.is_ascii_digit()) {
                    self.numeral()?
                } else {
                    if self.peek(0) == Some(b'.') {
                        self.pos += 1;
                        if self.peek(0) == Some(b'.') {
                            self.pos += 1;
                        }
                        return Ok(Tok::Other);
                    }
                    Tok::Dot
                }
            }
            b'0'..=b'9' => self.numeral()?,
            c if is_name_start(c) => {
                let rest = &self.src[self.pos..];
                self.pos += rest
                    .iter()
                    .position(|&c| !NAME_CHARS[c as usize])
                    .unwrap_or(rest.len());
                Tok::Name
            }
            _ => Tok::Other,
        };
        Ok(tok)
    }

    fn peek(&self, ahead: usize) -> Option<u8> {
        self.src.get(self.pos + ahead).copied()
    }

    fn skip_space_and_comments(&mut self) -> Result<(), ParseError> {
        loop {
            match self.peek(0) {
                Some(b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) => self.pos += 1,
                Some(b'-') if self.peek(1) == Some(b'-') => {
                    let start = self.pos;
                    self.pos += 2;
                    if let Some(level) = self.long_bracket_level(self.pos) {
                        self.pos += level + 2;
                        match find_long_close(&self.src[self.pos..], level) {
                            Some(end) => self.pos += end + level + 2,
                            None => return Err(self.err(start, ParseErrorKind::UnfinishedComment)),
                        }
                    } else {
                        while !matches!(self.peek(0), None | Some(b'\n' | b'\r')) {
                            self.pos += 1;
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    /// `[` `=`* `[` at `at`: the number of `=`.
    fn long_bracket_level(&self, at: usize) -> Option<usize> {
        if self.src.get(at) != Some(&b'[') {
            return None;
        }
        let mut level = 0;
        while self.src.get(at + 1 + level) == Some(&b'=') {
            level += 1;
        }
        (self.src.get(at + 1 + level) == Some(&b'[')).then_some(level)
    }

    fn long_string(&mut self, level: usize) -> Result<(), ParseError> {
        let start = self.start;
        self.pos = start + level + 2;
        // A newline right after the opening bracket is not part of the string.
        match (self.peek(0), self.peek(1)) {
            (Some(b'\r'), Some(b'\n')) | (Some(b'\n'), Some(b'\r')) => self.pos += 2,
            (Some(b'\r' | b'\n'), _) => self.pos += 1,
            _ => {}
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
                if c == b'\r' || c == b'\n' {
                    let pair = body
                        .get(i + 1)
                        .is_some_and(|&d| (d == b'\r' || d == b'\n') && d != c);
                    i += if pair { 2 } else { 1 };
                    self.buf.push(b'\n');
                } else {
                    self.buf.push(c);
                    i += 1;
                }
            }
            self.str_span = None;
        } else {
            self.str_span = Some((self.pos, self.pos + len));
        }
        self.pos += len + level + 2;
        Ok(())
    }

    fn short_string(&mut self, quote: u8) -> Result<(), ParseError> {
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
        // fits in this capacity: the writes stay at `w <= i - body_start`.
        self.buf.reserve(src.len() - body_start);
        let mut out = self.buf.as_mut_ptr();
        let mut w = 0;
        i = body_start;
        // Digit value of the byte at `k`, or 10 and more for anything else (or the end).
        let digit = |k: usize| src.get(k).map_or(10, |&d| u32::from(d.wrapping_sub(b'0')));
        loop {
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
                    // Fast path for the `\ddd` escapes our writer uses for non-UTF-8 bytes.
                    let (a, b, c) = (digit(i + 1), digit(i + 2), digit(i + 3));
                    if a < 10 && b < 10 && c < 10 && a * 100 + b * 10 + c <= 255 {
                        i += 4;
                        a * 100 + b * 10 + c
                    } else if a < 10 && b < 10 && c >= 10 {
                        i += 3;
                        a * 10 + b
                    } else if a < 10 && b >= 10 {
                        i += 2;
                        a
                    } else {
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
            b'a' => 7,
            b'b' => 8,
            b'f' => 12,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'v' => 11,
            b'\\' | b'"' | b'\'' => c,
            b'\n' | b'\r' => {
                if let Some(d) = self.peek(0) {
                    if (d == b'\n' || d == b'\r') && d != c {
                        self.pos += 1;
                    }
                }
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

    fn numeral(&mut self) -> Result<Tok, ParseError> {
        let start = self.start;
        // Fast path: a short plain decimal integer, the most common number in game data.
        if self.has_integers {
            let digits = &self.src[start..self.src.len().min(start + 18)];
            let n = digits
                .iter()
                .position(|d| !d.is_ascii_digit())
                .unwrap_or(digits.len());
            let follows = self.src.get(start + n).copied().unwrap_or(b' ');
            if n < 18 && !NAME_CHARS[follows as usize] && follows != b'.' {
                let v = digits[..n]
                    .iter()
                    .fold(0i64, |v, &d| v * 10 + i64::from(d - b'0'));
                self.pos = start + n;
                self.number = Num::Int(v);
                return Ok(Tok::Num);
            }
        }
        if let Some(n) = self.decimal_numeral(start) {
            self.number = n;
            return Ok(Tok::Num);
        }
        let hex = self.src[start] == b'0' && matches!(self.peek(0), Some(b'x' | b'X'));
        let (e1, e2) = if hex { (b'p', b'P') } else { (b'e', b'E') };
        loop {
            match self.peek(0) {
                Some(c) if c == e1 || c == e2 => {
                    self.pos += 1;
                    if matches!(self.peek(0), Some(b'+' | b'-')) {
                        self.pos += 1;
                    }
                }
                Some(c) if c.is_ascii_alphanumeric() || c == b'.' || c == b'_' => self.pos += 1,
                _ => break,
            }
        }
        let text = &self.src[start..self.pos];
        match parse_numeral(text, self.has_integers) {
            Some(n) => {
                self.number = n;
                Ok(Tok::Num)
            }
            None => Err(self.err(
                start,
                ParseErrorKind::MalformedNumber(String::from_utf8_lossy(text).into_owned()),
            )),
        }
    }
}

impl Lexer<'_> {
    /// Fast path for decimal numerals, validated in one pass: `digits [. digits]
    /// [e [sign] digits]` not followed by a name character. `None` sends the caller to the
    /// general path (hex, malformed text, or integers too long to accumulate here).
    #[inline]
    fn decimal_numeral(&mut self, start: usize) -> Option<Num> {
        let src = self.src;
        let is_digit = |i: usize| i < src.len() && src[i].is_ascii_digit();
        let mut i = start;
        let mut int_value: u64 = 0;
        while is_digit(i) {
            int_value = int_value
                .wrapping_mul(10)
                .wrapping_add(u64::from(src[i] - b'0'));
            i += 1;
        }
        let int_digits = i - start;
        let mut is_float = false;
        if src.get(i) == Some(&b'.') {
            is_float = true;
            i += 1;
            let frac_start = i;
            while is_digit(i) {
                i += 1;
            }
            if int_digits == 0 && i == frac_start {
                return None;
            }
        }
        if matches!(src.get(i), Some(b'e' | b'E')) {
            is_float = true;
            i += 1;
            if matches!(src.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let exp_start = i;
            while is_digit(i) {
                i += 1;
            }
            if i == exp_start {
                return None;
            }
        }
        if src
            .get(i)
            .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_')
        {
            return None;
        }
        let value = if !is_float {
            if !self.has_integers {
                if int_digits > 15 {
                    return None;
                }
                Num::Float(int_value as f64)
            } else if int_digits <= 18 {
                Num::Int(int_value as i64)
            } else {
                return None;
            }
        } else {
            // SAFETY: the span holds only ASCII digits, '.', 'e'/'E' and a sign.
            let text = unsafe { std::str::from_utf8_unchecked(&src[start..i]) };
            Num::Float(text.parse().ok()?)
        };
        self.pos = i;
        Some(value)
    }
}

/// Offset of the `]=*]` closing a long bracket of `level` in `body`.
fn find_long_close(body: &[u8], level: usize) -> Option<usize> {
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
    use super::is_keyword;

    #[test]
    fn keywords_exactly() {
        let reserved = [
            "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto",
            "if", "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until",
            "while",
        ];
        for k in reserved {
            assert!(is_keyword(k.as_bytes()), "{k}");
        }
        for name in [
            "",
            "a",
            "i",
            "ends",
            "If",
            "in_",
            "function_",
            "functio",
            "nill",
            "id",
            "name",
            "count",
            "_G",
        ] {
            assert!(!is_keyword(name.as_bytes()), "{name}");
        }
    }
}
