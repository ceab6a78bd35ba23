//! Runs of literal items and fields (`1,-2,3.5,`, `count=3,name="x",`) read by the lexer
//! straight from the bytes: what writers produce in bulk, without a token per sign, numeral,
//! name, `=` and comma. Whatever a run does not take goes on through the token path.

use super::{Entry, Parser};
use crate::text::builder::Builder;
use crate::text::error::ParseError;
use crate::text::lex::{FieldScan, FieldValue};

impl<B: Builder> Parser<'_, '_, B> {
    /// After a `name=` field and its ',': the fields with literal values that follow
    /// (`count=3,name="x",bind=true,`), read straight from the bytes like `number_run`.
    /// Returns true when it stopped at a field whose value it does not take: that field's key
    /// is pushed and its value is the current token.
    ///
    /// `as_tokens`: the first field is one the token path used to read (the first of a table,
    /// or the one after a table value); its errors keep the offsets that path gives them.
    #[inline(never)]
    pub(super) fn field_run(&mut self, mut as_tokens: bool) -> Result<bool, ParseError> {
        loop {
            let (name_start, name_end, value) = match self.lex.scalar_field() {
                FieldScan::NotAField => return Ok(false),
                FieldScan::Name(start, end) => (start, end, None),
                FieldScan::Scalar(start, end, value, more) => (start, end, Some((value, more))),
            };
            // Node counts and their errors at the name, then at the value, as tokens would.
            let value_start = self.lex.start;
            self.lex.start = name_start;
            self.count_node()?;
            let r = self.b.string(self.lex.text(name_start, name_end));
            self.build(r)?;
            let Some((value, more)) = value else {
                self.advance()?;
                return Ok(true);
            };
            self.lex.start = value_start;
            // The token path counts a number once it has read the token after it, and records
            // every entry there: at the ',' or '}' that follows the value.
            if as_tokens && matches!(value, FieldValue::Num(_)) {
                self.lex.start = self.lex.offset() - usize::from(more);
            }
            self.count_node()?;
            let r = match value {
                FieldValue::Num(n) => self.number_value(n),
                FieldValue::Str => self.b.string(self.lex.string()),
                FieldValue::Bool(v) => self.b.boolean(v),
                FieldValue::Nil => self.b.nil(),
            };
            self.build(r)?;
            if as_tokens {
                self.lex.start = self.lex.offset() - usize::from(more);
                as_tokens = false;
            }
            self.add_entry(Entry::Named)?;
            if !more {
                self.advance()?;
                return Ok(false);
            }
        }
    }

    /// After an item and its ',': the plain numbers that follow (`-2,3.5,...`), read
    /// straight from the bytes, without a token per sign, numeral and comma. Stops at the
    /// first item it does not take, with `Comma` still the current token.
    #[inline(never)]
    pub(super) fn number_run(&mut self) -> Result<(), ParseError> {
        while let Some((value, more)) = self.lex.number_item() {
            self.count_node()?;
            let r = self.number_value(value);
            self.build(r)?;
            self.add_entry(Entry::Item)?;
            if !more {
                return self.advance();
            }
        }
        Ok(())
    }
}
