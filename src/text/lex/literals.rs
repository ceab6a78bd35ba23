//! Literal items and fields read straight from the bytes, without tokens: the bulk of what
//! writers produce (`1,-2,3.5,` and `count=3,name="x",`). Anything else stays where it was,
//! for the token path.

use super::{is_keyword, is_name_start, Lexer, NAME_CHARS};
use crate::text::number::Num;

/// What `Lexer::scalar_field` found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldScan {
    NotAField,
    /// `name=` (the name's span) and the value to be read as tokens.
    Name(usize, usize),
    /// `name=value`, and whether a ',' followed.
    Scalar(usize, usize, FieldValue, bool),
}

/// The value of a field read by `Lexer::scalar_field`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldValue {
    Num(Num),
    /// A string: its bytes are `Lexer::string()`.
    Str,
    Bool(bool),
    Nil,
}

impl<'a> Lexer<'a> {
    /// Whether the next byte could start a number item (`number_item` decides).
    #[inline]
    pub fn number_may_follow(&self) -> bool {
        matches!(self.src.get(self.pos), Some(b'-' | b'0'..=b'9'))
    }

    /// Whether the next byte could start a name (`scalar_field` decides on a field).
    #[inline]
    pub fn name_may_follow(&self) -> bool {
        self.src.get(self.pos).is_some_and(|&c| is_name_start(c))
    }

    /// Offset of the next byte not read yet.
    #[inline]
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// Right after a ',' in a table: the next item, when it is a decimal number (with at most
    /// one '-') directly followed by ',' or '}', the way writers lay out number arrays. Reads
    /// it without tokens and returns it with whether a ',' followed (consumed then; a '}' is
    /// left for the next token). `None` leaves the lexer as it was.
    #[inline]
    pub fn number_item(&mut self) -> Option<(Num, bool)> {
        let src = self.src;
        let start = self.pos;
        let negative = src.get(start) == Some(&b'-');
        let digits = start + usize::from(negative);
        if !src.get(digits).is_some_and(u8::is_ascii_digit) {
            return None;
        }
        let n = self.decimal_numeral(digits)?;
        let Some(more) = self.take_separator() else {
            self.pos = start;
            return None;
        };
        self.start = start;
        Some((if negative { -n } else { n }, more))
    }

    /// Right after a ',' in a table: a field `name=value`, read without tokens. Its value is
    /// taken when it is a number (as in `number_item`), a short string, `true`, `false` or
    /// `nil`, directly followed by ',' or '}' (consumed if ','), the way writers lay out
    /// records; a string's bytes are then `string()`. Otherwise the lexer stops at the value
    /// (`Name`), or stays where it was when no `name=` comes (`NotAField`).
    #[inline(always)]
    pub fn scalar_field(&mut self) -> FieldScan {
        let src = self.src;
        let name_start = self.pos;
        if !src.get(name_start).is_some_and(|&c| is_name_start(c)) {
            return FieldScan::NotAField;
        }
        let name_len = src[name_start..]
            .iter()
            .position(|&c| !NAME_CHARS[c as usize])
            .unwrap_or(src.len() - name_start);
        let name_end = name_start + name_len;
        if src.get(name_end) != Some(&b'=')
            || src.get(name_end + 1) == Some(&b'=')
            || is_keyword(&src[name_start..name_end])
        {
            return FieldScan::NotAField;
        }
        let value_start = name_end + 1;
        self.pos = value_start;
        self.start = value_start;
        match self.scalar_value(value_start) {
            Some((value, more)) => FieldScan::Scalar(name_start, name_end, value, more),
            None => {
                self.pos = value_start;
                self.start = value_start;
                FieldScan::Name(name_start, name_end)
            }
        }
    }

    /// The literal value at `at` when a ',' or '}' directly follows it; see `scalar_field`.
    #[inline]
    fn scalar_value(&mut self, at: usize) -> Option<(FieldValue, bool)> {
        let src = self.src;
        let value = match *src.get(at)? {
            b'-' | b'0'..=b'9' => {
                let (n, more) = self.number_item()?;
                return Some((FieldValue::Num(n), more));
            }
            quote @ (b'"' | b'\'') => {
                self.pos = at + 1;
                self.short_string(quote).ok()?;
                FieldValue::Str
            }
            _ => {
                let rest = &src[at..];
                let (value, len) = if rest.starts_with(b"true") {
                    (FieldValue::Bool(true), 4)
                } else if rest.starts_with(b"false") {
                    (FieldValue::Bool(false), 5)
                } else if rest.starts_with(b"nil") {
                    (FieldValue::Nil, 3)
                } else {
                    return None;
                };
                self.pos = at + len;
                value
            }
        };
        Some((value, self.take_separator()?))
    }

    /// After an item: a ',' (consumed; `Some(true)`) or a '}' (left for the next token;
    /// `Some(false)`) directly at the current position, else `None`.
    #[inline]
    fn take_separator(&mut self) -> Option<bool> {
        match self.src.get(self.pos) {
            Some(b',') => {
                self.pos += 1;
                Some(true)
            }
            Some(b'}') => Some(false),
            _ => None,
        }
    }

    /// The text between two offsets (a span `scalar_field` returned).
    #[inline]
    pub fn text(&self, start: usize, end: usize) -> &'a [u8] {
        &self.src[start..end]
    }
}
