//! Errors of the text parser: what went wrong and at which byte offset.

use super::builder::BuildError;
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum ParseErrorKind {
    Empty,
    TooLarge {
        max: usize,
        len: usize,
    },
    TooDeep {
        max: usize,
    },
    TooManyNodes {
        max: usize,
    },
    Bytecode,
    Unexpected {
        found: String,
        expected: &'static str,
    },
    GlobalName(String),
    FunctionLiteral,
    Operator(String),
    MalformedNumber(String),
    UnfinishedString,
    UnfinishedLongString,
    UnfinishedComment,
    InvalidEscape(String),
    TooManyLocals {
        max: usize,
    },
    Build(BuildError),
}

/// Longest piece of the input an error message quotes.
pub const EXCERPT_BYTES: usize = 40;

/// How an error message quotes a piece of the input: a huge token (a 15 MiB name) must not
/// become a huge message.
pub fn excerpt(text: &[u8]) -> String {
    if text.len() <= EXCERPT_BYTES {
        return String::from_utf8_lossy(text).into_owned();
    }
    format!(
        "{}... ({} bytes)",
        String::from_utf8_lossy(&text[..EXCERPT_BYTES]),
        text.len()
    )
}

/// Boxed, so that the `Result`s of the lexer's hot path stay small.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError(Box<Located>);

#[derive(Debug, Clone, PartialEq)]
struct Located {
    offset: usize,
    kind: ParseErrorKind,
}

impl ParseError {
    pub fn new(offset: usize, kind: ParseErrorKind) -> Self {
        ParseError(Box::new(Located { offset, kind }))
    }

    pub fn offset(&self) -> usize {
        self.0.offset
    }

    pub fn kind(&self) -> &ParseErrorKind {
        &self.0.kind
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ParseErrorKind::*;
        match &self.0.kind {
            Empty => f.write_str("no value in the text")?,
            TooLarge { max, len } => write!(
                f,
                "text of {len} bytes exceeds the size limit (maxbytes = {max})"
            )?,
            TooDeep { max } => write!(f, "nesting exceeds the depth limit (maxdepth = {max})")?,
            TooManyNodes { max } => write!(
                f,
                "text has more values than the nodes limit (maxnodes = {max})"
            )?,
            Bytecode => f.write_str("precompiled Lua bytecode is not accepted")?,
            Unexpected { found, expected } => write!(f, "unexpected {found}, expected {expected}")?,
            GlobalName(name) => write!(
                f,
                "global name '{name}' is not accepted (only data and the dump chunk's locals)"
            )?,
            FunctionLiteral => {
                f.write_str("function literals are not accepted (they carry code)")?
            }
            Operator(op) => write!(
                f,
                "operator '{op}' is not accepted (only 1/0, -1/0 and 0/0)"
            )?,
            MalformedNumber(text) => write!(f, "malformed number '{text}'")?,
            UnfinishedString => f.write_str("unfinished string")?,
            UnfinishedLongString => f.write_str("unfinished long string")?,
            UnfinishedComment => f.write_str("unfinished long comment")?,
            InvalidEscape(esc) => write!(f, "invalid escape sequence '{esc}'")?,
            TooManyLocals { max } => write!(f, "more than {max} locals")?,
            Build(e) => write!(f, "{e}")?,
        }
        write!(f, " at offset {}", self.0.offset)
    }
}

impl std::error::Error for ParseError {}
