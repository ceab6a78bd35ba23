//! Parser for the value text format: everything serpent writes, and nothing that runs code.
//!
//! Accepted: one value (optionally after `return`), or a chunk of `local NAME = value`,
//! `path = value` and a final `return value`, optionally inside `do ... end` (serpent's dump
//! form and our own). Paths start at a declared local; there are no globals, calls,
//! function literals or operators besides the `1/0`, `-1/0`, `0/0` and `-1/(1/0)` numbers.
//!
//! Nesting is handled with an explicit frame stack, never native recursion, and every
//! value created is counted against the node limit.

use super::builder::{BuildResult, Builder, Entry};
use super::error::{ParseError, ParseErrorKind};
use super::lex::{is_keyword, Lexer, Tok};
use super::limits::{LoadLimits, MAX_LOCALS};
use super::number::Num;

mod runs;

/// Pending entries one table may hold before it is built early and filled directly; this
/// bounds the Lua stack a wide table needs.
const MAX_PENDING: usize = 1024;

/// Buffers a parse needs, kept between calls by callers that parse often.
#[derive(Default)]
pub struct ParseScratch {
    frames: Vec<Frame>,
    entries: Vec<Entry>,
}

/// Parses `src` and leaves exactly one value on the builder's stack.
pub fn parse<B: Builder>(
    src: &[u8],
    limits: &LoadLimits,
    builder: &mut B,
) -> Result<(), ParseError> {
    parse_with(src, limits, builder, &mut ParseScratch::default())
}

/// `parse` with caller-kept buffers.
pub fn parse_with<B: Builder>(
    src: &[u8],
    limits: &LoadLimits,
    builder: &mut B,
    scratch: &mut ParseScratch,
) -> Result<(), ParseError> {
    run(src, limits, builder, scratch, false).map(|_| ())
}

/// `parse_with` for an argument or result array: when the text is a plain constructor the
/// builder can spread (see `Builder::spread`), its values are left on the stack instead of
/// a table, and their count is returned; otherwise one value, and `None`.
pub fn parse_values_with<B: Builder>(
    src: &[u8],
    limits: &LoadLimits,
    builder: &mut B,
    scratch: &mut ParseScratch,
) -> Result<Option<usize>, ParseError> {
    run(src, limits, builder, scratch, true)
}

fn run<B: Builder>(
    src: &[u8],
    limits: &LoadLimits,
    builder: &mut B,
    scratch: &mut ParseScratch,
    want_values: bool,
) -> Result<Option<usize>, ParseError> {
    if src.len() > limits.max_bytes {
        return Err(ParseError::new(
            0,
            ParseErrorKind::TooLarge {
                max: limits.max_bytes,
                len: src.len(),
            },
        ));
    }
    if src.first() == Some(&0x1b) {
        return Err(ParseError::new(0, ParseErrorKind::Bytecode));
    }
    scratch.frames.clear();
    scratch.entries.clear();
    let mut p = Parser {
        lex: Lexer::new(src, builder.has_integers()),
        b: builder,
        limits,
        tok: Tok::Eof,
        depth: 0,
        nodes: 0,
        frames: &mut scratch.frames,
        entries: &mut scratch.entries,
        locals: Vec::new(),
        want_values,
        spread: None,
    };
    p.advance()?;
    p.top()?;
    Ok(p.spread)
}

#[derive(Clone, Copy)]
enum Frame {
    /// Inside a table constructor: `pos` positional items so far; pending entries start at
    /// builder height `base` and at `entries[first]`; `built` once the table exists.
    Table {
        pos: i64,
        base: usize,
        first: usize,
        built: bool,
        /// Offset of the first token after the `{`.
        start: usize,
    },
    /// The value being parsed is the next positional item.
    Positional,
    /// The value being parsed is a `[key]` starting at offset `at`.
    Key { at: usize },
    /// The value being parsed belongs to the key below it.
    Keyed(Entry),
    /// The value being parsed is the key of `path[...]` in a value position, at offset `at`.
    PathKey { at: usize },
}

/// Where `Parser::fields` starts in a table.
#[derive(Clone, Copy, PartialEq, Eq)]
enum At {
    /// At the first token after the `{`.
    Open,
    /// After a positional item: at the ',' or ';' that follows it, or the `}`.
    Item,
    /// After a `name = value` or `[key] = value` field with a literal value: at the ',' or
    /// ';', or the `}`. A ',' here is where `field_run` may take the fields that follow.
    Field,
    /// `Field` after a table value, or at the `{` as if after a ',' (`field_run`'s first
    /// field then keeps the error offsets of the token path, which used to read it).
    FieldAsTokens,
    /// `field_run` stopped at a field's value: its key is pushed, the value is the token.
    Key,
}

struct Parser<'s, 'b, B: Builder> {
    lex: Lexer<'s>,
    b: &'b mut B,
    limits: &'b LoadLimits,
    tok: Tok,
    depth: usize,
    nodes: usize,
    frames: &'b mut Vec<Frame>,
    entries: &'b mut Vec<Entry>,
    /// Spans of declared local names; the index is the builder's slot.
    locals: Vec<&'s [u8]>,
    /// The root table may be left as its values (`parse_values_with`); cleared once the
    /// root value has started, so that no other table qualifies.
    want_values: bool,
    /// How many values the root table was spread into.
    spread: Option<usize>,
}

impl<'s, B: Builder> Parser<'s, '_, B> {
    #[inline]
    fn advance(&mut self) -> Result<(), ParseError> {
        let tok = self.lex.next_tok();
        if tok == Tok::Error {
            return Err(self.lex.take_error());
        }
        self.tok = tok;
        Ok(())
    }

    fn err(&self, kind: ParseErrorKind) -> ParseError {
        ParseError::new(self.lex.start, kind)
    }

    fn unexpected(&self, expected: &'static str) -> ParseError {
        match self.tok {
            Tok::Name if self.lex.token_text() == b"function" => {
                self.err(ParseErrorKind::FunctionLiteral)
            }
            Tok::LParen => self.err(ParseErrorKind::Unexpected {
                found: "'(' (calls and parenthesised expressions are not accepted)".into(),
                expected,
            }),
            _ => self.err(ParseErrorKind::Unexpected {
                found: self.lex.describe(self.tok),
                expected,
            }),
        }
    }

    fn expect(&mut self, tok: Tok, expected: &'static str) -> Result<(), ParseError> {
        if self.tok != tok {
            return Err(self.unexpected(expected));
        }
        self.advance()
    }

    fn build(&self, r: BuildResult) -> Result<(), ParseError> {
        r.map_err(|e| self.err(ParseErrorKind::Build(e)))
    }

    /// `build` for an error that belongs to an earlier token, such as the key at `at`.
    fn build_at(&self, r: BuildResult, at: usize) -> Result<(), ParseError> {
        r.map_err(|e| ParseError::new(at, ParseErrorKind::Build(e)))
    }

    fn is_word(&self, word: &[u8]) -> bool {
        self.tok == Tok::Name && self.lex.token_text() == word
    }

    fn count_node(&mut self) -> Result<(), ParseError> {
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            return Err(self.err(ParseErrorKind::TooManyNodes {
                max: self.limits.max_nodes,
            }));
        }
        Ok(())
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > self.limits.max_depth {
            return Err(self.err(ParseErrorKind::TooDeep {
                max: self.limits.max_depth,
            }));
        }
        Ok(())
    }

    fn top(&mut self) -> Result<(), ParseError> {
        let want_values = std::mem::take(&mut self.want_values);
        if self.tok == Tok::Eof {
            return Err(self.err(ParseErrorKind::Empty));
        }
        if self.is_word(b"do") {
            self.advance()?;
            self.statements()?;
            if !self.is_word(b"end") {
                return Err(self.unexpected("'end' closing the dump chunk"));
            }
            self.advance()?;
        } else if self.is_word(b"local") {
            self.statements()?;
        } else {
            if self.is_word(b"return") {
                self.advance()?;
            }
            // Only a constructor right here is the root table; chunk forms build tables.
            self.want_values = want_values && self.tok == Tok::LBrace;
            self.value()?;
        }
        // Lua allows one ';' after a return value or a statement: `return {1};`, `do ... end;`.
        if self.tok == Tok::Semi {
            self.advance()?;
        }
        if self.tok != Tok::Eof {
            return Err(self.unexpected("end of text after the value"));
        }
        Ok(())
    }

    /// Statements up to and including `return value [;]`.
    fn statements(&mut self) -> Result<(), ParseError> {
        loop {
            match self.tok {
                Tok::Semi => self.advance()?,
                Tok::Name if self.lex.token_text() == b"local" => {
                    self.advance()?;
                    let name = self.lex.token_text();
                    if self.tok != Tok::Name || is_keyword(name) {
                        return Err(self.unexpected("a local name"));
                    }
                    self.advance()?;
                    self.expect(Tok::Assign, "'='")?;
                    self.value()?;
                    // Redeclaring a name shadows it; reusing the slot has the same effect here.
                    let slot = match self.locals.iter().position(|&n| n == name) {
                        Some(slot) => slot,
                        None if self.locals.len() < MAX_LOCALS => {
                            self.locals.push(name);
                            self.locals.len() - 1
                        }
                        None => {
                            return Err(self.err(ParseErrorKind::TooManyLocals { max: MAX_LOCALS }))
                        }
                    };
                    {
                        let r = self.b.set_local(slot);
                        self.build(r)
                    }?;
                }
                Tok::Name if self.lex.token_text() == b"return" => {
                    self.advance()?;
                    self.value()?;
                    if self.tok == Tok::Semi {
                        self.advance()?;
                    }
                    return Ok(());
                }
                Tok::Name => self.assignment()?,
                _ => return Err(self.unexpected("a statement of the dump chunk")),
            }
        }
    }

    fn local_slot(&self) -> Result<usize, ParseError> {
        let name = self.lex.token_text();
        if is_keyword(name) {
            return Err(self.unexpected("a value"));
        }
        self.locals
            .iter()
            .position(|&n| n == name)
            .ok_or_else(|| self.err(ParseErrorKind::GlobalName(super::error::excerpt(name))))
    }

    /// `local(.name | [value])+ = value`
    fn assignment(&mut self) -> Result<(), ParseError> {
        let slot = self.local_slot()?;
        {
            let r = self.b.get_local(slot);
            self.build(r)
        }?;
        self.advance()?;
        loop {
            // Errors of this step (a nil or NaN key, indexing a non-table) point at its key.
            let key_at = match self.tok {
                Tok::Dot => {
                    self.advance()?;
                    if self.tok != Tok::Name {
                        return Err(self.unexpected("a field name"));
                    }
                    {
                        let r = self.b.string(self.lex.token_text());
                        self.build(r)
                    }?;
                    let at = self.lex.start;
                    self.advance()?;
                    at
                }
                Tok::LBracket => {
                    self.advance()?;
                    let at = self.lex.start;
                    self.enter()?;
                    self.value()?;
                    self.depth -= 1;
                    self.expect(Tok::RBracket, "']'")?;
                    at
                }
                _ => return Err(self.unexpected("'.' or '[' in an assignment target")),
            };
            if self.tok == Tok::Assign {
                let r = self.b.check_store();
                self.build_at(r, key_at)?;
                self.advance()?;
                self.value()?;
                self.b.linked();
                let r = self.b.assign();
                return self.build(r);
            }
            let r = self.b.index();
            self.build_at(r, key_at)?;
        }
    }

    /// Parses one value (any nesting) and pushes it.
    fn value(&mut self) -> Result<(), ParseError> {
        let base = self.frames.len();
        'value: loop {
            // `self.tok` starts a value.
            if self.tok == Tok::LBrace {
                self.enter()?;
                self.count_node()?;
                {
                    let r = self.b.reserve(8);
                    self.build(r)
                }?;
                // A name right after the `{` (`{id=1,...`, the way writers lay out records):
                // its fields are read like those after a ',', straight from the bytes.
                let name_first = self.lex.name_may_follow();
                if !name_first {
                    self.advance()?;
                }
                let (base, first) = (self.b.height(), self.entries.len());
                self.frames.push(Frame::Table {
                    pos: 0,
                    base,
                    first,
                    built: false,
                    // The first token's offset: right after the `{` when a name is there.
                    start: if name_first {
                        self.lex.offset()
                    } else {
                        self.lex.start
                    },
                });
                let at = if name_first {
                    // As after a field and its ',', which `field_run` takes to be the
                    // current token (left so when it stops before a field it does not take).
                    self.tok = Tok::Comma;
                    At::FieldAsTokens
                } else {
                    At::Open
                };
                if self.fields(at)? {
                    continue 'value;
                }
            } else if !self.scalar()? {
                if self.tok != Tok::Name {
                    return Err(self.unexpected("a value"));
                }
                // Outside a chunk there are no locals: every other name is a global.
                let slot = self.local_slot()?;
                self.count_node()?;
                if self.depth > 0 {
                    self.b.linked();
                }
                {
                    let r = self.b.get_local(slot);
                    self.build(r)
                }?;
                self.advance()?;
                if self.path_suffix()? {
                    continue 'value;
                }
            }
            // A value is complete: close the frames it completes.
            loop {
                if self.frames.len() == base {
                    return Ok(());
                }
                let at = match self.frames.pop() {
                    Some(Frame::Positional) => {
                        self.add_entry(Entry::Item)?;
                        At::Item
                    }
                    Some(Frame::Keyed(kind)) => {
                        self.add_entry(kind)?;
                        At::FieldAsTokens
                    }
                    Some(Frame::Key { at }) => {
                        let r = self.b.check_key();
                        self.build_at(r, at)?;
                        self.expect(Tok::RBracket, "']'")?;
                        self.expect(Tok::Assign, "'='")?;
                        self.frames.push(Frame::Keyed(Entry::Keyed));
                        continue 'value;
                    }
                    Some(Frame::PathKey { at }) => {
                        self.depth -= 1;
                        self.expect(Tok::RBracket, "']'")?;
                        let r = self.b.index();
                        self.build_at(r, at)?;
                        if self.path_suffix()? {
                            continue 'value;
                        }
                        continue;
                    }
                    Some(Frame::Table { .. }) | None => unreachable!("tables close in field_end"),
                };
                // After a field of the table now on top.
                if self.fields(at)? {
                    continue 'value;
                }
            }
        }
    }

    /// The fields of the table on top of the frames, from where `at` says. Fields whose
    /// value is a scalar are finished here, one after another; returns true when a value must
    /// be parsed next (its frame is pushed), false when the table closed.
    fn fields(&mut self, mut at: At) -> Result<bool, ParseError> {
        loop {
            if matches!(at, At::Field | At::FieldAsTokens)
                && self.tok == Tok::Comma
                && self.field_run(at == At::FieldAsTokens)?
            {
                at = At::Key;
            }
            let kind = if at == At::Key {
                Entry::Named
            } else {
                if at != At::Open {
                    match self.tok {
                        Tok::Comma | Tok::Semi => self.advance()?,
                        Tok::RBrace => {
                            self.close_table()?;
                            return Ok(false);
                        }
                        _ => return Err(self.unexpected("',' or '}' in a table")),
                    }
                }
                match self.tok {
                    Tok::RBrace => {
                        self.close_table()?;
                        return Ok(false);
                    }
                    Tok::LBracket => {
                        self.advance()?;
                        self.frames.push(Frame::Key { at: self.lex.start });
                        return Ok(true);
                    }
                    Tok::Name if !is_keyword(self.lex.token_text()) => {
                        let name = self.lex.token_text();
                        if self.lex.take_assign() {
                            self.count_node()?;
                            {
                                let r = self.b.string(name);
                                self.build(r)
                            }?;
                            self.advance()?;
                            Entry::Named
                        } else {
                            Entry::Item
                        }
                    }
                    _ => Entry::Item,
                }
            };
            if !self.scalar()? {
                self.frames.push(match kind {
                    Entry::Item => Frame::Positional,
                    named => Frame::Keyed(named),
                });
                return Ok(true);
            }
            self.add_entry(kind)?;
            if kind == Entry::Item {
                at = At::Item;
                if self.tok == Tok::Comma && self.lex.number_may_follow() {
                    self.number_run()?;
                }
            } else {
                at = At::Field;
            }
        }
    }

    /// Pushes the value that starts at the current token if it is a literal (string, number,
    /// nil, true, false); false leaves tables and paths to the caller.
    #[inline(always)]
    fn scalar(&mut self) -> Result<bool, ParseError> {
        let r = match self.tok {
            Tok::Str => {
                self.count_node()?;
                self.b.string(self.lex.string())
            }
            Tok::Num | Tok::Minus => {
                self.number()?;
                return Ok(true);
            }
            Tok::Name => match self.lex.token_text() {
                b"nil" => {
                    self.count_node()?;
                    self.b.nil()
                }
                b"true" | b"false" => {
                    self.count_node()?;
                    self.b.boolean(self.lex.token_text() == b"true")
                }
                _ => return Ok(false),
            },
            _ => return Ok(false),
        };
        self.build(r)?;
        self.advance()?;
        Ok(true)
    }

    /// Records a finished entry of the table on top of the frames (or stores it directly
    /// into a table already built).
    #[inline(always)]
    fn add_entry(&mut self, kind: Entry) -> Result<(), ParseError> {
        let Some(Frame::Table {
            pos,
            base,
            first,
            built,
            start,
        }) = self.frames.last_mut()
        else {
            unreachable!("entries belong to a table frame")
        };
        if kind == Entry::Item {
            *pos += 1;
        }
        if *built {
            let r = if kind == Entry::Item {
                self.b.append(*pos)
            } else {
                self.b.set()
            };
            return self.build(r);
        }
        self.entries.push(kind);
        let (base, first, items, start) = (*base, *first, *pos as usize, *start);
        if self.entries.len() - first >= MAX_PENDING {
            let hint = self.expected_items(start, items);
            self.build_pending(base, first, items, hint)?;
            if let Some(Frame::Table { built, .. }) = self.frames.last_mut() {
                *built = true;
            }
            return Ok(());
        }
        let r = self.b.reserve(3);
        self.build(r)
    }

    /// Makes the table from its pending entries, `items` of them positional (a table not
    /// built yet has all its items pending), with room for `array_hint` items.
    fn build_pending(
        &mut self,
        base: usize,
        first: usize,
        items: usize,
        array_hint: usize,
    ) -> Result<(), ParseError> {
        let entries = &self.entries[first..];
        let r = self.b.build_table(base, entries, items, array_hint);
        self.entries.truncate(first);
        self.build(r)
    }

    /// For a wide table built before its `}`: the positional items it will likely hold, from
    /// the bytes its first `items` took and the bytes left, so that Lua does not regrow it
    /// (and rehash every key) several times. At most 16 times `items`: a wrong guess costs
    /// bounded memory.
    fn expected_items(&self, start: usize, items: usize) -> usize {
        let used = self.lex.start.saturating_sub(start);
        expected_items(used, self.lex.remaining(), items)
    }

    /// At `}`: builds the table unless it was built early, and leaves it as a value.
    fn close_table(&mut self) -> Result<(), ParseError> {
        let Some(Frame::Table {
            pos,
            base,
            first,
            built,
            ..
        }) = self.frames.pop()
        else {
            unreachable!("a closing brace closes a table frame")
        };
        let items = pos as usize;
        if !built && !self.spread_root(base, first, items)? {
            self.build_pending(base, first, items, items)?;
        }
        self.depth -= 1;
        self.advance()
    }

    /// At a table's `}`: when it is the root and the caller wants its values, asks the
    /// builder to leave them on the stack. True when it did.
    fn spread_root(&mut self, base: usize, first: usize, items: usize) -> Result<bool, ParseError> {
        if !self.want_values || !self.frames.is_empty() {
            return Ok(false);
        }
        self.want_values = false;
        let spread = self.b.spread(base, &self.entries[first..], items);
        match spread.map_err(|e| self.err(ParseErrorKind::Build(e)))? {
            Some(count) => {
                self.entries.truncate(first);
                self.spread = Some(count);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// After a path read: `.name` steps are taken here; `[` pushes a frame and returns true.
    fn path_suffix(&mut self) -> Result<bool, ParseError> {
        loop {
            match self.tok {
                Tok::Dot => {
                    self.advance()?;
                    if self.tok != Tok::Name {
                        return Err(self.unexpected("a field name"));
                    }
                    {
                        let r = self.b.string(self.lex.token_text());
                        self.build(r)
                    }?;
                    {
                        let r = self.b.index();
                        self.build(r)
                    }?;
                    self.advance()?;
                }
                Tok::LBracket => {
                    self.enter()?;
                    self.advance()?;
                    self.frames.push(Frame::PathKey { at: self.lex.start });
                    return Ok(true);
                }
                _ => return Ok(false),
            }
        }
    }

    /// `[-]* numeral [ / 0 | / (1/0) ]`: the numbers serpent and our writer produce.
    fn number(&mut self) -> Result<(), ParseError> {
        // One minus is how a negative number is written, and is no nesting level, so that
        // what `dump` writes within a depth limit loads within the same limit. Each further
        // minus is a nesting level to Lua's parser, and counts as one here.
        let mut negate = false;
        let mut minuses = 0;
        while self.tok == Tok::Minus {
            negate = !negate;
            minuses += 1;
            if self.depth + minuses - 1 > self.limits.max_depth {
                return Err(self.err(ParseErrorKind::TooDeep {
                    max: self.limits.max_depth,
                }));
            }
            self.advance()?;
        }
        if self.tok != Tok::Num {
            return Err(self.unexpected("a number after '-'"));
        }
        let n = self.lex.number;
        let numerator_text = self.lex.token_text();
        let mut value = if negate { -n } else { n };
        self.advance()?;
        if self.tok == Tok::Slash {
            let op_offset = self.lex.start;
            let operator = || ParseError::new(op_offset, ParseErrorKind::Operator("/".into()));
            if numerator_text != b"1" && numerator_text != b"0" {
                return Err(operator());
            }
            self.advance()?;
            let denominator = match self.tok {
                Tok::Num if self.lex.token_text() == b"0" => 0.0,
                Tok::LParen => {
                    // Only `(1/0)`, which our writer uses to spell negative zero.
                    for expected in [&b"1"[..], b"/", b"0", b")"] {
                        self.advance()?;
                        if self.lex.token_text() != expected || matches!(self.tok, Tok::Str) {
                            return Err(operator());
                        }
                    }
                    f64::INFINITY
                }
                _ => return Err(operator()),
            };
            value = Num::Float(value.as_f64() / denominator);
            self.advance()?;
        }
        self.count_node()?;
        let r = self.number_value(value);
        self.build(r)
    }

    /// Pushes a number with its subtype.
    fn number_value(&mut self, value: Num) -> BuildResult {
        match value {
            Num::Int(i) => self.b.integer(i),
            Num::Float(f) => self.b.float(f),
        }
    }
}

/// `items` positional items took `used` bytes and `left` bytes follow: the items to expect in
/// all, if the rest of the text were more of the same, capped at 16 times `items`.
fn expected_items(used: usize, left: usize, items: usize) -> usize {
    let more = left as u128 * items as u128 / used.max(1) as u128;
    items
        + usize::try_from(more)
            .unwrap_or(usize::MAX)
            .min(items.saturating_mul(15))
}

#[cfg(test)]
mod tests {
    use super::expected_items;

    #[test]
    fn wide_tables_expect_more_of_the_same_within_a_bound() {
        // 1,024 items in 12,800 bytes, 112,000 bytes left: about 8,960 more.
        assert_eq!(expected_items(12_800, 112_000, 1024), 1024 + 8960);
        // Nothing left: exactly what was read.
        assert_eq!(expected_items(12_800, 0, 1024), 1024);
        // A huge rest (say one long string) never asks for more than 16 times the items.
        assert_eq!(expected_items(2048, 1 << 30, 1024), 16 * 1024);
        // Only keyed entries so far: no array part to size.
        assert_eq!(expected_items(5000, 5000, 0), 0);
    }
}
