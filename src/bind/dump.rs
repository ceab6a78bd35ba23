//! `remote_runner.dump(value [, opts]) -> text`.
//!
//! One pass writes a plain constructor while remembering every table it entered. Only when
//! a table turns up a second time (shared or cyclic) or as a key does it start over in graph
//! form: a counting pass finds the shared tables, then the text pre-creates them in one
//! constructor and fills them with assignments:
//! `do local __={{},{}};__[1].x=__[2];__[2][1]=__[1];local _={a=__[1]};return _;end`.

mod graph;
mod scratch;

use super::api::{
    bad_argument, bytes_at, guarded, key_number_at, number_at, push_bytes, type_name, Num,
};
use super::args::{check_option_names, limit_field, opts_table, string_field};
use super::scratch_slot::with_scratch;
use crate::text::error::EXCERPT_BYTES;
use crate::text::escape::{is_identifier, write_string};
use crate::text::limits::DumpLimits;
use crate::text::writer::Writer;
use mlua::ffi::{self, lua_State};
use scratch::{Scratch, SCRATCH};
use std::os::raw::c_int;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Ask `lua_next` for the next entry.
    Next,
    /// The entry's key is handled; its value (on top) is next.
    Value,
    /// A child table (the value) is being walked; end the field when it is done.
    AfterValue,
}

#[derive(Clone, Copy)]
struct Level {
    /// Absolute stack index of the table; its current key is at `table + 1`.
    table: c_int,
    /// Positional items written so far.
    pos: i64,
    phase: Phase,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Plain constructor; bail out on the first shared table or table key.
    Fast,
    /// Graph form, pass 1: count references, write nothing.
    Count,
    /// Graph form, pass 2: write a constructor, shared tables as `__[j]`.
    Inline,
}

enum Failure {
    NeedGraph,
    Error(String),
}

impl From<String> for Failure {
    fn from(msg: String) -> Self {
        Failure::Error(msg)
    }
}

struct Node {
    refs: u32,
    /// Order of discovery, the table's index in the `seen` array.
    order: u32,
    used_as_key: bool,
    /// Index in `__` when shared, else 0.
    shared: u32,
}

struct Dumper<'a> {
    l: *mut lua_State,
    s: &'a mut Scratch,
    limits: DumpLimits,
    root_name: &'a str,
    /// The root is a call's argument or result array (see `Root::CallArray`).
    call_array: bool,
    /// Stack index of the Lua array of tables in discovery order (graph form).
    seen: c_int,
    /// `n = count` to add to the root table when it closes (argument arrays without `n`).
    root_n: Option<i64>,
    /// For argument and result arrays: holes in the root's positions up to this one are
    /// written as `nil` items, as serpent writes them, so that a legacy peer's
    /// `table.unpack` (which ignores `n`) still sees the values after a hole.
    holes_up_to: i64,
    /// The last hole `fill_holes` could not fill: its start and the first position in it
    /// that holds a value. A later key beyond that position fails at once instead of
    /// rescanning the hole (which made arrays with a long leading hole quadratic).
    blocked_hole: Option<(i64, i64)>,
}

impl Dumper<'_> {
    unsafe fn walk(&mut self, idx: c_int, mode: Mode) -> Result<(), Failure> {
        let l = self.l;
        let kind = ffi::lua_type(l, idx);
        if kind != ffi::LUA_TTABLE {
            return self.scalar(kind, idx, mode);
        }
        self.s.levels.clear();
        self.room()?;
        ffi::lua_pushvalue(l, idx);
        let ptr = ffi::lua_topointer(l, -1) as usize;
        match mode {
            Mode::Fast => {
                self.s.visited.insert(ptr);
            }
            Mode::Count => self.discover(ptr),
            Mode::Inline => {}
        }
        self.enter(mode);
        let writing = mode != Mode::Count;
        loop {
            if self.s.writer.len() > self.limits.max_bytes {
                return Err(self.too_large());
            }
            let n = self.s.levels.len();
            let level = self.s.levels[n - 1];
            if level.phase == Phase::Next {
                if ffi::lua_next(l, level.table) == 0 {
                    self.s.levels.pop();
                    if writing {
                        if self.s.levels.is_empty() {
                            if let Some(n) = self.root_n.take() {
                                self.s.writer.raw(b"n=");
                                self.s.writer.integer(n);
                                self.s.writer.end_field();
                            }
                        }
                        self.s.writer.close_table();
                    }
                    ffi::lua_pop(l, 1);
                    match self.s.levels.last_mut() {
                        None => return Ok(()),
                        Some(parent) if parent.phase == Phase::AfterValue => {
                            parent.phase = Phase::Next;
                            if writing {
                                self.s.writer.end_field();
                            }
                        }
                        Some(_) => {} // a key table was walked; its value is next
                    }
                    continue;
                }
                if self.key(mode)? {
                    continue;
                }
            }
            self.value(mode)?;
        }
    }

    /// Pushes a level for the table on top and opens its constructor.
    unsafe fn enter(&mut self, mode: Mode) {
        let table = ffi::lua_gettop(self.l);
        self.s.levels.push(Level {
            table,
            pos: 0,
            phase: Phase::Next,
        });
        if mode != Mode::Count {
            self.s.writer.open_table();
        }
        ffi::lua_pushnil(self.l);
    }

    unsafe fn room(&self) -> Result<(), Failure> {
        if ffi::lua_checkstack(self.l, 6) == 0 {
            return Err(Failure::Error("dump: out of Lua stack".into()));
        }
        Ok(())
    }

    unsafe fn discover(&mut self, ptr: usize) {
        let order = self.s.nodes.len() as u32 + 1;
        self.s.nodes.insert(
            ptr,
            Node {
                refs: 1,
                order,
                used_as_key: false,
                shared: 0,
            },
        );
        ffi::lua_pushvalue(self.l, -1);
        ffi::lua_rawseti(self.l, self.seen, order as _);
    }

    fn shared_index(&self, ptr: usize) -> u32 {
        self.s.nodes.get(&ptr).map_or(0, |n| n.shared)
    }

    /// Handles the key at -2. Returns true when it descended into a table key.
    unsafe fn key(&mut self, mode: Mode) -> Result<bool, Failure> {
        let l = self.l;
        let n = self.s.levels.len();
        let w = &mut self.s.writer;
        match ffi::lua_type(l, -2) {
            ffi::LUA_TSTRING => {
                if mode != Mode::Count {
                    let key = bytes_at(l, -2);
                    if w.len() + key.len() > self.limits.max_bytes {
                        return Err(self.too_large());
                    }
                    w.string_key(key, self.s.identifiers.is_identifier(key));
                }
            }
            ffi::LUA_TNUMBER => {
                if mode != Mode::Count {
                    let num = key_number_at(l, -2);
                    let level = self.s.levels[n - 1];
                    let next = level.pos + 1;
                    if num == Num::Int(next)
                        || num == Num::Float(next as f64) && !super::api::HAS_INTEGERS
                    {
                        self.s.levels[n - 1].pos = next;
                    } else if n == 1 && self.fill_holes(level.table, next, num) {
                        self.s.levels[n - 1].pos = position(num);
                    } else {
                        let w = &mut self.s.writer;
                        w.open_key();
                        write_number(w, num);
                        w.close_key();
                    }
                }
            }
            ffi::LUA_TBOOLEAN => {
                if mode != Mode::Count {
                    w.open_key();
                    w.boolean(ffi::lua_toboolean(l, -2) != 0);
                    w.close_key();
                }
            }
            ffi::LUA_TTABLE => {
                let ptr = ffi::lua_topointer(l, -2) as usize;
                match mode {
                    Mode::Fast => return Err(Failure::NeedGraph),
                    Mode::Inline => {
                        let j = self.shared_index(ptr);
                        let w = &mut self.s.writer;
                        w.open_key();
                        write_shared_ref(w, j);
                        w.close_key();
                    }
                    Mode::Count => {
                        self.s.levels[n - 1].phase = Phase::Value;
                        ffi::lua_pushvalue(l, -2);
                        if let Some(node) = self.s.nodes.get_mut(&ptr) {
                            node.refs += 1;
                            node.used_as_key = true;
                            ffi::lua_pop(l, 1);
                            return Ok(false);
                        }
                        self.check_depth()?;
                        self.discover(ptr);
                        if let Some(node) = self.s.nodes.get_mut(&ptr) {
                            node.used_as_key = true;
                        }
                        self.room()?;
                        self.enter(mode);
                        return Ok(true);
                    }
                }
            }
            _ => {
                let what = type_name(l, -2);
                return Err(
                    format!("{}: cannot send a {what} as a table key", self.path(false)).into(),
                );
            }
        }
        self.s.levels[n - 1].phase = Phase::Value;
        Ok(false)
    }

    /// Handles the value at -1 of the current entry.
    unsafe fn value(&mut self, mode: Mode) -> Result<(), Failure> {
        let l = self.l;
        let n = self.s.levels.len();
        let kind = ffi::lua_type(l, -1);
        if kind == ffi::LUA_TTABLE {
            let ptr = ffi::lua_topointer(l, -1) as usize;
            match mode {
                Mode::Fast => {
                    if !self.s.visited.insert(ptr) {
                        return Err(Failure::NeedGraph);
                    }
                }
                Mode::Count => {
                    if let Some(node) = self.s.nodes.get_mut(&ptr) {
                        node.refs += 1;
                        self.next_entry();
                        return Ok(());
                    }
                    self.discover(ptr);
                }
                Mode::Inline => {
                    let j = self.shared_index(ptr);
                    if j != 0 {
                        write_shared_ref(&mut self.s.writer, j);
                        self.s.writer.end_field();
                        self.next_entry();
                        return Ok(());
                    }
                }
            }
            self.check_depth()?;
            self.room()?;
            self.s.levels[n - 1].phase = Phase::AfterValue;
            self.enter(mode);
            return Ok(());
        }
        self.scalar(kind, -1, mode)?;
        if mode != Mode::Count {
            self.s.writer.end_field();
        }
        self.next_entry();
        Ok(())
    }

    /// The current entry is done: pops its value; `lua_next` comes next.
    unsafe fn next_entry(&mut self) {
        ffi::lua_pop(self.l, 1);
        if let Some(level) = self.s.levels.last_mut() {
            level.phase = Phase::Next;
        }
    }

    unsafe fn check_depth(&self) -> Result<(), Failure> {
        if self.s.levels.len() >= self.limits.max_depth {
            let (depth_name, _) = self.setting_names();
            return Err(format!(
                "{}: tables nest deeper than the depth limit ({} = {})",
                self.path(true),
                depth_name,
                self.limits.max_depth - usize::from(self.call_array)
            )
            .into());
        }
        Ok(())
    }

    /// Writes the non-table value at `idx`, of type `kind`, or fails naming its path.
    #[inline(always)]
    unsafe fn scalar(&mut self, kind: c_int, idx: c_int, mode: Mode) -> Result<(), Failure> {
        let l = self.l;
        let w = &mut self.s.writer;
        let writing = mode != Mode::Count;
        match kind {
            ffi::LUA_TNIL | ffi::LUA_TNONE => {
                if writing {
                    w.nil()
                }
            }
            ffi::LUA_TBOOLEAN => {
                if writing {
                    w.boolean(ffi::lua_toboolean(l, idx) != 0)
                }
            }
            ffi::LUA_TNUMBER => {
                if writing {
                    write_number(w, number_at(l, idx))
                }
            }
            ffi::LUA_TSTRING => {
                if writing {
                    let text = bytes_at(l, idx);
                    // Checked before writing: the writer reserves up to 4 bytes per byte, and
                    // a huge string must fail here, not in an allocation far over the limit.
                    if w.len() + text.len() > self.limits.max_bytes {
                        return Err(self.too_large());
                    }
                    w.string(text)
                }
            }
            _ => {
                let what = type_name(l, idx);
                return Err(format!("{}: cannot send a {what}", self.path(true)).into());
            }
        }
        Ok(())
    }

    /// At the root of an argument or result array, key `num` after a hole that starts at
    /// position `next`: writes a `nil` item for each missing position and returns true, so
    /// that `num` goes on as a positional item. Only when every position in the hole is
    /// really empty (then no later key can land in it and be overwritten by the positional
    /// items, which Lua stores last) and within `holes_up_to`.
    unsafe fn fill_holes(&mut self, table: c_int, next: i64, num: Num) -> bool {
        let k = position(num);
        if k <= next || k > self.holes_up_to {
            return false;
        }
        if let Some((start, filled)) = self.blocked_hole {
            if start == next && k > filled {
                return false;
            }
        }
        for j in next..k {
            let empty = ffi::lua_rawgeti(self.l, table, j as ffi::lua_Integer) == ffi::LUA_TNIL;
            ffi::lua_pop(self.l, 1);
            if !empty {
                self.blocked_hole = Some((next, j));
                return false;
            }
        }
        for _ in next..k {
            self.s.writer.nil();
            self.s.writer.end_field();
        }
        true
    }

    /// The names of the depth and size limits as the user set them: rr.configure's settings
    /// for the argument and result arrays of calls, else dump's options.
    fn setting_names(&self) -> (&'static str, &'static str) {
        if self.call_array {
            ("max_depth", "max_message_bytes")
        } else {
            ("maxdepth", "maxbytes")
        }
    }

    fn too_large(&self) -> Failure {
        Failure::Error(format!(
            "{}: text exceeds the size limit ({} = {})",
            self.root_name,
            self.setting_names().1,
            self.limits.max_bytes
        ))
    }

    /// `root[2].cb`-style path of the current position; `with_key` adds the current key.
    unsafe fn path(&self, with_key: bool) -> String {
        let mut path = self.root_name.to_string();
        let levels = &self.s.levels;
        let keyed = if with_key {
            levels.len()
        } else {
            levels.len().saturating_sub(1)
        };
        for level in &levels[..keyed] {
            push_path_key(self.l, &mut path, level.table + 1);
        }
        path
    }
}

fn write_number(w: &mut Writer, num: Num) {
    match num {
        Num::Int(i) => w.integer(i),
        Num::Float(f) => w.float(f),
    }
}

fn write_shared_ref(w: &mut Writer, j: u32) {
    w.raw(b"__[");
    w.integer(i64::from(j));
    w.raw(b"]");
}

/// Appends `.name`, `["str"]`, `[3]`, `[true]` or `[table]` for the key at `idx`.
unsafe fn push_path_key(l: *mut lua_State, path: &mut String, idx: c_int) {
    match ffi::lua_type(l, idx) {
        ffi::LUA_TSTRING => {
            let key = bytes_at(l, idx);
            // A huge key is shown cut, so that the error message stays small.
            let shown = &key[..key.len().min(EXCERPT_BYTES)];
            let cut = if shown.len() < key.len() { "..." } else { "" };
            if is_identifier(key) {
                path.push('.');
                path.push_str(&String::from_utf8_lossy(shown));
                path.push_str(cut);
            } else {
                let mut quoted = Vec::new();
                write_string(&mut quoted, shown);
                path.push('[');
                path.push_str(&String::from_utf8_lossy(&quoted));
                path.push_str(cut);
                path.push(']');
            }
        }
        ffi::LUA_TNUMBER => {
            let mut w = Writer::new(super::api::HAS_INTEGERS);
            write_number(&mut w, number_at(l, idx));
            path.push('[');
            path.push_str(&String::from_utf8_lossy(&w.out));
            path.push(']');
        }
        ffi::LUA_TBOOLEAN => path.push_str(if ffi::lua_toboolean(l, idx) != 0 {
            "[true]"
        } else {
            "[false]"
        }),
        _ => {
            path.push('[');
            path.push_str(type_name(l, idx));
            path.push(']');
        }
    }
}

unsafe fn dump_options(l: *mut lua_State) -> Result<(DumpLimits, Option<String>), String> {
    let mut limits = DumpLimits::default();
    let mut name = None;
    if opts_table(l, 2, "dump")? {
        check_option_names(l, 2, "dump")?;
        if let Some(v) = limit_field(l, 2, "dump", c"maxdepth")? {
            limits.max_depth = v;
        }
        if let Some(v) = limit_field(l, 2, "dump", c"maxbytes")? {
            limits.max_bytes = v;
        }
        name = string_field(l, 2, "dump", c"name")?;
    }
    Ok((limits, name))
}

/// The array position a numeric key stands for, or 0 when it is not a whole number.
fn position(num: Num) -> i64 {
    num.as_integer().unwrap_or(0)
}

/// What `dump_at` writes.
#[derive(Clone, Copy)]
pub enum Root<'a> {
    /// A value; errors name its path from this name (dump's `name` option).
    Value(&'a str),
    /// The argument or result array of a call, named `what` in errors, whose limits are
    /// rr.configure's. With `n`, the root table (which must have no `n` of its own) is
    /// written with `n = n` added. Holes among its first `holes_up_to` positions are written
    /// as `nil` items. `max_depth` counts the values' tables, as `maxdepth` counts a dumped
    /// value's: the array that carries them is one more level of the text.
    CallArray {
        what: &'static str,
        n: Option<i64>,
        holes_up_to: i64,
    },
}

/// Writes the value at `idx` (absolute) and hands the text to `emit`; the stack is left as
/// it was.
///
/// # Safety
/// A valid state; `idx` an absolute index.
pub unsafe fn dump_at<R>(
    l: *mut lua_State,
    idx: c_int,
    limits: DumpLimits,
    root: Root<'_>,
    emit: impl FnOnce(&[u8]) -> R,
) -> Result<R, String> {
    let (root_name, call_array, root_n, holes_up_to) = match root {
        Root::Value(name) => (name, false, None, 0),
        Root::CallArray {
            what,
            n,
            holes_up_to,
        } => (what, true, n, holes_up_to),
    };
    let limits = DumpLimits {
        max_depth: limits.max_depth.saturating_add(usize::from(call_array)),
        ..limits
    };
    with_scratch(l, &SCRATCH, |scratch: &mut Scratch| {
        let base = ffi::lua_gettop(l);
        scratch.writer.clear();
        scratch.visited.clear();
        // A failed dump leaves its levels behind; a root that is not a table never clears
        // them, and its error path is built from them.
        scratch.levels.clear();
        scratch.identifiers.next_dump();
        let mut dumper = Dumper {
            l,
            s: scratch,
            limits,
            root_name,
            call_array,
            seen: 0,
            root_n,
            holes_up_to,
            blocked_hole: None,
        };
        let mut outcome = dumper.walk(idx, Mode::Fast);
        if let Err(Failure::NeedGraph) = outcome {
            ffi::lua_settop(l, base);
            dumper.root_n = root_n;
            dumper.blocked_hole = None;
            outcome = dumper.graph(idx);
        }
        ffi::lua_settop(l, base);
        let result = match outcome {
            Ok(()) if dumper.s.writer.len() > limits.max_bytes => Err(match dumper.too_large() {
                Failure::Error(msg) => msg,
                Failure::NeedGraph => unreachable!(),
            }),
            Ok(()) => Ok(emit(&dumper.s.writer.out)),
            Err(Failure::Error(msg)) => Err(msg),
            Err(Failure::NeedGraph) => Err("dump: internal error: graph form failed".into()),
        };
        dumper.s.trim();
        result
    })
}

pub(crate) unsafe extern "C-unwind" fn lua_dump(l: *mut lua_State) -> isize {
    guarded(l, "dump", || {
        if ffi::lua_gettop(l) < 1 {
            return Err(bad_argument(1, "dump", "value expected"));
        }
        let (limits, name) = dump_options(l)?;
        let root = name.as_deref().unwrap_or("value");
        dump_at(l, 1, limits, Root::Value(root), |text| {
            push_bytes(l, text);
        })?;
        Ok(1)
    })
}
