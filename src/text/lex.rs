//! Tokens of the Lua data subset, read the way Lua 5.4's lexer reads them.

#[cfg(target_arch = "x86_64")]
mod escaped_runs;
mod literals;
mod strings;

use super::decimal::decimal_to_f64;
use super::error::{ParseError, ParseErrorKind};
use super::number::{parse_numeral, Num};
pub use literals::{FieldScan, FieldValue};
use strings::find_long_close;

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
    /// `Lexer::next_tok` met an error: `Lexer::take_error` has it.
    Error,
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
    /// The error behind the last `Tok::Error`.
    error: Option<ParseError>,
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

/// Lua's reserved words, at most two per length (2..=8, with 8 at 0) and first byte (its low
/// five bits): each slot holds their words, 0 where there are none (0 never matches).
static KEYWORD_SLOTS: [[u64; 2]; 256] = {
    const KEYWORDS: [&[u8]; 22] = [
        b"and",
        b"break",
        b"do",
        b"else",
        b"elseif",
        b"end",
        b"false",
        b"for",
        b"function",
        b"goto",
        b"if",
        b"in",
        b"local",
        b"nil",
        b"not",
        b"or",
        b"repeat",
        b"return",
        b"then",
        b"true",
        b"until",
        b"while",
    ];
    let mut t = [[0u64; 2]; 256];
    let mut k = 0;
    while k < KEYWORDS.len() {
        let name = KEYWORDS[k];
        let slot = &mut t[keyword_slot(name.len(), name[0])];
        // Every slot has room: no length and first byte is shared by more than two words.
        let free = if slot[0] == 0 { 0 } else { 1 };
        assert!(slot[free] == 0, "more than two keywords in one slot");
        slot[free] = word(name);
        k += 1;
    }
    t
};

const fn keyword_slot(len: usize, first: u8) -> usize {
    (len & 7) << 5 | (first & 31) as usize
}

/// Whether `name` is one of Lua's reserved words.
#[inline]
pub fn is_keyword(name: &[u8]) -> bool {
    if name.len() < 2 || name.len() > 8 {
        return false;
    }
    let [a, b] = KEYWORD_SLOTS[keyword_slot(name.len(), name[0])];
    if a == 0 {
        return false;
    }
    let v = short_word(name);
    v == a || v == b
}

/// `word` for a name of 2 to 8 bytes, from two overlapping loads rather than a loop: the
/// first and the last four (or two) bytes, whose shared bytes are equal.
#[inline(always)]
fn short_word(name: &[u8]) -> u64 {
    let n = name.len();
    debug_assert!((2..=8).contains(&n));
    if n >= 4 {
        let lo = u32::from_le_bytes([name[0], name[1], name[2], name[3]]);
        let hi = u32::from_le_bytes([name[n - 4], name[n - 3], name[n - 2], name[n - 1]]);
        u64::from(lo) | u64::from(hi) << (8 * (n - 4))
    } else {
        let lo = u16::from_le_bytes([name[0], name[1]]);
        let hi = u16::from_le_bytes([name[n - 2], name[n - 1]]);
        u64::from(lo) | u64::from(hi) << (8 * (n - 2))
    }
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

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

/// Whether `s` has the form of a Lua name (keywords included): one table lookup a byte.
pub fn is_name(s: &[u8]) -> bool {
    s.first().is_some_and(|&c| is_name_start(c)) && s.iter().all(|&c| NAME_CHARS[c as usize])
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
            error: None,
        }
    }

    fn err(&self, offset: usize, kind: ParseErrorKind) -> ParseError {
        ParseError::new(offset, kind)
    }

    /// Bytes of the current token, for names and error messages.
    #[inline]
    pub fn token_text(&self) -> &'a [u8] {
        &self.src[self.start..self.pos]
    }

    /// Steps over a single `=` if that is the next token (after a field name in a
    /// constructor); false, moving nothing, when the next token is anything else.
    #[inline]
    pub fn take_assign(&mut self) -> bool {
        if self.peek(0) == Some(b'=') {
            if self.peek(1) == Some(b'=') {
                return false;
            }
            self.pos += 1;
            return true;
        }
        self.take_assign_after_space()
    }

    /// `take_assign` when whitespace or comments come first.
    fn take_assign_after_space(&mut self) -> bool {
        let mut ahead = Lexer::new(self.src, self.has_integers);
        ahead.pos = self.pos;
        if ahead.skip_space_and_comments().is_err() {
            return false;
        }
        if ahead.peek(0) == Some(b'=') && ahead.peek(1) != Some(b'=') {
            self.pos = ahead.pos + 1;
            return true;
        }
        false
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.src.len() - self.pos
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

    /// `next_token` with its error kept aside (`Tok::Error`, then `take_error`), so that the
    /// token comes back in a register rather than through memory.
    #[inline(never)]
    pub fn next_tok(&mut self) -> Tok {
        match self.next_token() {
            Ok(tok) => tok,
            Err(e) => {
                self.error = Some(e);
                Tok::Error
            }
        }
    }

    /// The error of the last `Tok::Error`.
    #[cold]
    pub fn take_error(&mut self) -> ParseError {
        self.error
            .take()
            .unwrap_or_else(|| unreachable!("Tok::Error comes with an error"))
    }

    #[inline(always)]
    pub fn next_token(&mut self) -> Result<Tok, ParseError> {
        match self.peek(0) {
            Some(b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) => self.skip_space_and_comments()?,
            // A lone '-' is a minus sign (negative numbers): only "--" starts a comment.
            Some(b'-') if self.peek(1) == Some(b'-') => self.skip_space_and_comments()?,
            _ => {}
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

    fn numeral(&mut self) -> Result<Tok, ParseError> {
        let start = self.start;
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
                ParseErrorKind::MalformedNumber(super::error::excerpt(text)),
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
        let mut int_value: u64 = 0;
        let int_digits = digits_into(&src[start..], &mut int_value);
        let mut i = start + int_digits;
        let mut is_float = false;
        // Every digit of the mantissa, as read; exact while there are at most 19 of them.
        let mut mantissa = int_value;
        let mut frac_digits = 0;
        if src.get(i) == Some(&b'.') {
            is_float = true;
            i += 1;
            frac_digits = digits_into(&src[i..], &mut mantissa);
            i += frac_digits;
            if int_digits == 0 && frac_digits == 0 {
                return None;
            }
        }
        let mut exponent: i64 = 0;
        if matches!(src.get(i), Some(b'e' | b'E')) {
            is_float = true;
            i += 1;
            let negative = src.get(i) == Some(&b'-');
            if matches!(src.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let exp_start = i;
            while src.get(i).is_some_and(u8::is_ascii_digit) {
                exponent = (exponent * 10 + i64::from(src[i] - b'0')).min(1 << 20);
                i += 1;
            }
            if i == exp_start {
                return None;
            }
            if negative {
                exponent = -exponent;
            }
        }
        if src
            .get(i)
            .is_some_and(|&c| NAME_CHARS[c as usize] || c == b'.')
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
        } else if let Some(v) = decimal_to_f64(
            mantissa,
            int_digits + frac_digits,
            exponent - frac_digits as i64,
        ) {
            Num::Float(v)
        } else {
            // SAFETY: the span holds only ASCII digits, '.', 'e'/'E' and a sign.
            let text = unsafe { std::str::from_utf8_unchecked(&src[start..i]) };
            Num::Float(text.parse().ok()?)
        };
        self.pos = i;
        Some(value)
    }
}

/// Adds the decimal digits at the start of `bytes` to `acc` (`acc * 10 + digit` each, wrapping:
/// callers count digits to know whether the value is exact) and returns how many there were.
#[inline(always)]
fn digits_into(bytes: &[u8], acc: &mut u64) -> usize {
    let mut count = 0;
    for &c in bytes {
        let digit = c.wrapping_sub(b'0');
        if digit > 9 {
            break;
        }
        *acc = acc.wrapping_mul(10).wrapping_add(u64::from(digit));
        count += 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::is_keyword;

    #[test]
    fn short_decimals_read_exactly_like_the_full_parser() {
        let mut texts: Vec<String> = [
            "1.5",
            "2.25",
            "0.1",
            "0.3",
            "123.456",
            "1e22",
            "1e23",
            "9007199254740993.0",
            "4.9e-324",
            "1.7976931348623157e308",
            "0.000001",
            "3.14159",
            "1e-22",
            "2.5E+3",
            "00000000000000000001.5",
            "0.0",
            "12345678901234567890.5",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut x: u64 = 42;
        for _ in 0..20000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let digits = (x >> 40) % 10_000_000_000_000_000;
            let point = (x >> 20) % 17;
            let s = digits.to_string();
            let (a, b) = s.split_at((point as usize).min(s.len()));
            texts.push(format!(
                "{}.{}e{}",
                if a.is_empty() { "0" } else { a },
                b,
                (x % 41) as i64 - 20
            ));
        }
        for text in texts {
            let mut lex = super::Lexer::new(text.as_bytes(), true);
            assert_eq!(lex.next_token().ok(), Some(super::Tok::Num), "{text}");
            let expected: f64 = text.parse().expect("valid float text");
            match lex.number {
                super::Num::Float(v) => assert_eq!(v.to_bits(), expected.to_bits(), "{text}"),
                other => panic!("{text} read as {other:?}"),
            }
        }
    }

    #[test]
    fn keywords_exactly() {
        let reserved = [
            "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto",
            "if", "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until",
            "while",
        ];
        for k in reserved {
            assert!(is_keyword(k.as_bytes()), "{k}");
            assert_eq!(
                super::short_word(k.as_bytes()),
                super::word(k.as_bytes()),
                "{k}"
            );
        }
        for name in [
            "ab", "abc", "abcd", "abcde", "abcdef", "abcdefg", "abcdefgh",
        ] {
            assert_eq!(
                super::short_word(name.as_bytes()),
                super::word(name.as_bytes())
            );
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
            "AND",
            "True",
            "FUNCTION",
        ] {
            assert!(!is_keyword(name.as_bytes()), "{name}");
        }
    }
}
