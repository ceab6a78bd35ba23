//! An owned value graph built by the parser, for Rust tests and the fuzz target.
//! The Lua binding never uses it: it builds Lua values directly.

use super::builder::{BuildError, BuildResult, Builder, Entry, ItemBatch};
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Vec<u8>),
    /// Index into `Tree::tables`; the same index is the same table.
    Table(usize),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum KeyRepr {
    Bool(bool),
    Int(i64),
    Float(u64),
    Str(Vec<u8>),
    Table(usize),
}

#[derive(Debug, Default, Clone)]
pub struct Table {
    pub entries: Vec<(Val, Val)>,
    index: HashMap<KeyRepr, usize>,
}

impl Table {
    pub fn get(&self, key: &Val) -> Option<&Val> {
        let repr = key_repr(key).ok()?;
        self.index.get(&repr).map(|&i| &self.entries[i].1)
    }

    fn set(&mut self, key: Val, value: Val) -> BuildResult {
        let repr = key_repr(&key)?;
        let key = normalize(key);
        match (self.index.get(&repr), value) {
            (Some(&i), Val::Nil) => {
                self.entries.swap_remove(i);
                self.index.remove(&repr);
                if let Some((moved, _)) = self.entries.get(i) {
                    self.index.insert(key_repr(moved)?, i);
                }
            }
            (Some(&i), value) => self.entries[i].1 = value,
            (None, Val::Nil) => {}
            (None, value) => {
                self.index.insert(repr, self.entries.len());
                self.entries.push((key, value));
            }
        }
        Ok(())
    }
}

/// Lua 5.3+ stores float keys with an integral value as integers.
fn normalize(key: Val) -> Val {
    match key {
        Val::Float(f)
            if f.fract() == 0.0
                && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) =>
        {
            Val::Int(f as i64)
        }
        other => other,
    }
}

fn key_repr(key: &Val) -> Result<KeyRepr, BuildError> {
    Ok(match normalize(key.clone()) {
        Val::Nil => return Err(BuildError::NilKey),
        Val::Float(f) if f.is_nan() => return Err(BuildError::NanKey),
        Val::Float(f) => KeyRepr::Float(f.to_bits()),
        Val::Bool(b) => KeyRepr::Bool(b),
        Val::Int(i) => KeyRepr::Int(i),
        Val::Str(s) => KeyRepr::Str(s),
        Val::Table(t) => KeyRepr::Table(t),
    })
}

/// Builds a `Val` graph; `integers` mirrors the Lua version being imitated.
#[derive(Debug, Default)]
pub struct TreeBuilder {
    pub integers: bool,
    pub tables: Vec<Table>,
    pub stack: Vec<Val>,
    locals: Vec<Val>,
}

impl TreeBuilder {
    pub fn new(integers: bool) -> Self {
        TreeBuilder {
            integers,
            ..Default::default()
        }
    }

    /// The single value a successful parse leaves.
    pub fn result(&self) -> Option<&Val> {
        match self.stack.as_slice() {
            [v] => Some(v),
            _ => None,
        }
    }

    fn pop(&mut self) -> Val {
        self.stack
            .pop()
            .expect("parser keeps the builder stack balanced")
    }

    fn table_at(&mut self, v: &Val) -> Result<&mut Table, BuildError> {
        match v {
            Val::Table(i) => Ok(&mut self.tables[*i]),
            _ => Err(BuildError::NotATable),
        }
    }
}

impl Builder for TreeBuilder {
    fn has_integers(&self) -> bool {
        self.integers
    }
    fn nil(&mut self) -> BuildResult {
        self.stack.push(Val::Nil);
        Ok(())
    }
    fn boolean(&mut self, v: bool) -> BuildResult {
        self.stack.push(Val::Bool(v));
        Ok(())
    }
    fn integer(&mut self, v: i64) -> BuildResult {
        self.stack.push(if self.integers {
            Val::Int(v)
        } else {
            Val::Float(v as f64)
        });
        Ok(())
    }
    fn float(&mut self, v: f64) -> BuildResult {
        self.stack.push(Val::Float(v));
        Ok(())
    }
    fn string(&mut self, v: &[u8]) -> BuildResult {
        self.stack.push(Val::Str(v.to_vec()));
        Ok(())
    }
    fn height(&self) -> usize {
        self.stack.len()
    }
    fn reserve(&mut self, _n: usize) -> BuildResult {
        Ok(())
    }
    fn build_table(
        &mut self,
        base: usize,
        entries: &[Entry],
        _items: usize,
        _array_hint: usize,
    ) -> BuildResult {
        let pending = self.stack.split_off(base);
        let mut table = Table::default();
        let mut batch = ItemBatch::default();
        let mut at = 0;
        let mut failed = Ok(());
        for entry in entries {
            batch.before_field(|index, item| {
                failed = failed
                    .clone()
                    .and(table.set(Val::Int(index), pending[item as usize].clone()));
            });
            if *entry == Entry::Item {
                batch.push(at as i32);
                at += 1;
            } else {
                table.set(pending[at].clone(), pending[at + 1].clone())?;
                at += 2;
            }
        }
        batch.flush(|index, item| {
            failed = failed
                .clone()
                .and(table.set(Val::Int(index), pending[item as usize].clone()));
        });
        failed?;
        self.tables.push(table);
        self.stack.push(Val::Table(self.tables.len() - 1));
        Ok(())
    }
    fn append(&mut self, index: i64) -> BuildResult {
        let value = self.pop();
        let t = self.stack.last().cloned().unwrap_or(Val::Nil);
        self.table_at(&t)?.set(Val::Int(index), value)
    }
    fn set(&mut self) -> BuildResult {
        let value = self.pop();
        let key = self.pop();
        let t = self.stack.last().cloned().unwrap_or(Val::Nil);
        self.table_at(&t)?.set(key, value)
    }
    fn check_key(&self) -> BuildResult {
        key_repr(self.stack.last().unwrap_or(&Val::Nil)).map(|_| ())
    }
    fn check_store(&self) -> BuildResult {
        match self.stack.len().checked_sub(2).map(|i| &self.stack[i]) {
            Some(Val::Table(_)) => self.check_key(),
            _ => Err(BuildError::NotATable),
        }
    }
    fn set_local(&mut self, slot: usize) -> BuildResult {
        let v = self.pop();
        if self.locals.len() <= slot {
            self.locals.resize(slot + 1, Val::Nil);
        }
        self.locals[slot] = v;
        Ok(())
    }
    fn get_local(&mut self, slot: usize) -> BuildResult {
        let v = self.locals.get(slot).cloned().unwrap_or(Val::Nil);
        self.stack.push(v);
        Ok(())
    }
    fn index(&mut self) -> BuildResult {
        let key = self.pop();
        let t = self.pop();
        let v = self.table_at(&t)?.get(&key).cloned().unwrap_or(Val::Nil);
        self.stack.push(v);
        Ok(())
    }
    fn assign(&mut self) -> BuildResult {
        let value = self.pop();
        let key = self.pop();
        let t = self.pop();
        self.table_at(&t)?.set(key, value)
    }
}

/// Parses `text` in both number modes and checks what must hold whatever the bytes: success
/// leaves exactly one value, and an error names an offset inside the text in its message.
/// Shared by the fuzz target and the property tests.
pub fn check_parse_invariants(
    text: &[u8],
    limits: &super::limits::LoadLimits,
) -> Result<(), String> {
    for integers in [true, false] {
        let mut b = TreeBuilder::new(integers);
        match super::parse::parse(text, limits, &mut b) {
            Ok(()) if b.stack.len() == 1 => {}
            Ok(()) => {
                return Err(format!(
                    "{} values left after a successful parse",
                    b.stack.len()
                ))
            }
            Err(e) if e.offset() > text.len() => {
                return Err(format!(
                    "offset {} past the end ({} bytes): {e}",
                    e.offset(),
                    text.len()
                ))
            }
            Err(e)
                if !e
                    .to_string()
                    .ends_with(&format!("at offset {}", e.offset())) =>
            {
                return Err(format!("the message does not name the offset: {e}"))
            }
            Err(_) => {}
        }
    }
    Ok(())
}
