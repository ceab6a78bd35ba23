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

pub fn is_keyword(name: &[u8]) -> bool {
    matches!(
        name,
        b"and"
            | b"break"
            | b"do"
            | b"else"
            | b"elseif"
            | b"end"
            | b"false"
            | b"for"
            | b"function"
            | b"goto"
            | b"if"
            | b"in"
            | b"local"
            | b"nil"
            | b"not"
            | b"or"
            | b"repeat"
            | b"return"
            | b"then"
            | b"true"
            | b"until"
            | b"while"
    )
}

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
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
    pub fn next(&mut self) -> Result<Tok, ParseError> {
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
                while self.peek(0).is_some_and(is_name_char) {
                    self.pos += 1;
                }
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
        let body_start = self.pos;
        // Fast path: no escapes.
        let rest = &self.src[self.pos..];
        let stop = rest
            .iter()
            .position(|&c| c == quote || c == b'\\' || c == b'\n' || c == b'\r');
        match stop {
            Some(n) if rest[n] == quote => {
                self.str_span = Some((body_start, body_start + n));
                self.pos += n + 1;
                return Ok(());
            }
            Some(n) if rest[n] == b'\\' => {
                self.buf.clear();
                self.buf.extend_from_slice(&rest[..n]);
                self.pos += n;
            }
            _ => return Err(self.err(self.start, ParseErrorKind::UnfinishedString)),
        }
        self.str_span = None;
        loop {
            let Some(c) = self.peek(0) else {
                return Err(self.err(self.start, ParseErrorKind::UnfinishedString));
            };
            match c {
                b'\\' => self.escape()?,
                b'\n' | b'\r' => return Err(self.err(self.start, ParseErrorKind::UnfinishedString)),
                c if c == quote => {
                    self.pos += 1;
                    return Ok(());
                }
                c => {
                    self.buf.push(c);
                    self.pos += 1;
                }
            }
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
        if self.has_integers {
            // Fast path: a short plain decimal integer.
            let mut v = u64::from(self.src[start] - b'0');
            let mut end = start + 1;
            while let Some(d) = self.src.get(end).filter(|d| d.is_ascii_digit()) {
                v = v * 10 + u64::from(d - b'0');
                end += 1;
            }
            let done = !self
                .src
                .get(end)
                .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_');
            if done && end - start <= 18 {
                self.pos = end;
                self.number = Num::Int(v as i64);
                return Ok(Tok::Num);
            }
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
