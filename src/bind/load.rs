//! `remote_runner.load(text [, opts]) -> true, value | false, err`: the parser drives a
//! builder that makes Lua values directly on the Lua stack.

use super::api::{
    bad_argument, bytes_at, guarded, integer_at, push_int, push_owned, type_name, HAS_INTEGERS,
};
use super::args::{check_option_names, limit_field, opts_table, typed_field};
use super::flat_values::push_flat_table;
use super::graph_depth::deeper_than;
use super::scratch_slot::with_scratch;
use crate::text::builder::{BuildError, BuildResult, Builder, Entry, ItemBatch};
use crate::text::error::{ParseError, ParseErrorKind};
use crate::text::limits::LoadLimits;
use crate::text::parse::{parse_values_with, parse_with, ParseScratch};
use mlua::ffi::{self, lua_State};
use std::cell::RefCell;
use std::os::raw::c_int;

struct LuaBuilder {
    l: *mut lua_State,
    /// Stack index of the dump chunk's locals (nil until the first `local`).
    locals: c_int,
    /// Mirror of `lua_gettop`, kept by every operation, so `reserve` is a comparison.
    top: c_int,
    /// The stack is known to have room up to this index.
    reserved: c_int,
    /// Tables built so far (at least as many as the value holds).
    tables: usize,
    /// Whether the chunk linked tables (see `Builder::linked`).
    linked: bool,
}

/// Extra slots asked for at once, so `lua_checkstack` runs rarely.
const RESERVE_CHUNK: c_int = 64;

impl LuaBuilder {
    #[inline]
    fn push(&mut self) -> BuildResult {
        self.top += 1;
        Ok(())
    }

    /// Lua refuses nil and NaN keys; the key is at `idx`.
    #[inline]
    unsafe fn check_key_at(&self, idx: c_int) -> BuildResult {
        match ffi::lua_type(self.l, idx) {
            ffi::LUA_TNIL => Err(BuildError::NilKey),
            ffi::LUA_TNUMBER if ffi::lua_tonumber(self.l, idx).is_nan() => Err(BuildError::NanKey),
            _ => Ok(()),
        }
    }

    /// Stores the key at `slot` and the value above it into the table at `table`; a `[key]`
    /// entry's key is checked first.
    #[inline]
    unsafe fn store_pair(&self, table: c_int, slot: c_int, entry: Entry) -> BuildResult {
        if entry == Entry::Keyed {
            self.check_key_at(slot)?;
        }
        ffi::lua_pushvalue(self.l, slot);
        ffi::lua_pushvalue(self.l, slot + 1);
        ffi::lua_rawset(self.l, table);
        Ok(())
    }

    #[inline]
    unsafe fn check_table(&self, idx: c_int) -> BuildResult {
        if ffi::lua_type(self.l, idx) != ffi::LUA_TTABLE {
            return Err(BuildError::NotATable);
        }
        Ok(())
    }
}

// SAFETY for every method: `l` is the state of the running C function, the parser keeps the
// stack balanced as the trait documents, and it reserves room before the stack grows.
impl Builder for LuaBuilder {
    fn has_integers(&self) -> bool {
        HAS_INTEGERS
    }
    #[inline]
    fn nil(&mut self) -> BuildResult {
        unsafe { ffi::lua_pushnil(self.l) };
        self.push()
    }
    #[inline]
    fn boolean(&mut self, v: bool) -> BuildResult {
        unsafe { ffi::lua_pushboolean(self.l, v as c_int) };
        self.push()
    }
    #[inline]
    fn integer(&mut self, v: i64) -> BuildResult {
        unsafe { push_int(self.l, v) };
        self.push()
    }
    #[inline]
    fn float(&mut self, v: f64) -> BuildResult {
        unsafe { ffi::lua_pushnumber(self.l, v) };
        self.push()
    }
    #[inline]
    fn string(&mut self, v: &[u8]) -> BuildResult {
        unsafe { ffi::lua_pushlstring(self.l, v.as_ptr() as *const _, v.len()) };
        self.push()
    }
    #[inline]
    fn height(&self) -> usize {
        self.top as usize
    }
    #[inline]
    fn reserve(&mut self, n: usize) -> BuildResult {
        // Saturating: a count past c_int's range is refused by lua_checkstack, not wrapped.
        let n = c_int::try_from(n).unwrap_or(c_int::MAX);
        if self.top.saturating_add(n) > self.reserved {
            if unsafe { ffi::lua_checkstack(self.l, n.saturating_add(RESERVE_CHUNK)) } == 0 {
                return Err(BuildError::Exhausted("Lua stack"));
            }
            self.reserved = self.top + n + RESERVE_CHUNK;
        }
        Ok(())
    }
    fn spread(
        &mut self,
        base: usize,
        entries: &[Entry],
        items: usize,
    ) -> Result<Option<usize>, BuildError> {
        let l = self.l;
        let first = base as c_int + 1;
        let count = match entries.split_last() {
            Some((Entry::Named, rest)) if rest.len() == items => {
                // `n = count` last: its key and value are the top two slots.
                let (key, value) = (self.top - 1, self.top);
                let is_n = unsafe { bytes_at(l, key) } == b"n";
                let count = match unsafe { ffi::lua_type(l, value) } {
                    ffi::LUA_TNUMBER if is_n => unsafe { integer_at(l, value) },
                    _ => None,
                };
                // More values than a Lua stack holds (LUAI_MAXSTACK is 1,000,000) take the
                // table path, which reports them.
                match count {
                    Some(c) if (0..=1_000_000).contains(&c) => c as usize,
                    _ => return Ok(None),
                }
            }
            _ if entries.len() == items => {
                let any_nil = (first..first + items as c_int)
                    .any(|slot| unsafe { ffi::lua_type(l, slot) } == ffi::LUA_TNIL);
                if any_nil {
                    return Ok(None); // `#t` of a table with holes is Lua's choice: keep the table
                }
                items
            }
            _ => return Ok(None),
        };
        if count > items {
            let missing = (count - items) as c_int;
            if self.reserve(count - items).is_err() {
                return Ok(None);
            }
            // Drop `n = count`, then the trailing nils it stands for.
            unsafe { ffi::lua_settop(l, first - 1 + items as c_int) };
            for _ in 0..missing {
                unsafe { ffi::lua_pushnil(l) };
            }
        } else {
            unsafe { ffi::lua_settop(l, first - 1 + count as c_int) };
        }
        self.top = first - 1 + count as c_int;
        Ok(Some(count))
    }
    fn build_table(
        &mut self,
        base: usize,
        entries: &[Entry],
        items: usize,
        array_hint: usize,
    ) -> BuildResult {
        let array_size = c_int::try_from(array_hint.max(items)).unwrap_or(c_int::MAX);
        let l = self.l;
        let first = base as c_int + 1;
        let keyed = entries.len() - items;
        self.reserve(4)?;
        self.tables += 1;
        if keyed == 0 && items > 0 {
            // Only positional items: no key can collide, so any order gives Lua's table. The
            // table goes under the items, which are then stored from the top, without copies.
            unsafe {
                ffi::lua_createtable(l, array_size, 0);
                ffi::lua_insert(l, first);
                for index in (1..=items).rev() {
                    ffi::lua_rawseti(l, first, index as _);
                }
            }
            self.top = first;
            return Ok(());
        }
        // Sized once, then filled in the order Lua's own constructor stores entries.
        unsafe {
            ffi::lua_createtable(l, array_size, keyed as c_int);
            let table = self.top + 1;
            if items == 0 {
                // Only keyed entries (a record): no batch of items to replay.
                for (pair, entry) in entries.iter().enumerate() {
                    self.store_pair(table, first + 2 * pair as c_int, *entry)?;
                }
            } else {
                let mut batch = ItemBatch::default();
                let mut slot = first;
                for entry in entries {
                    batch.before_field(|index, item| {
                        ffi::lua_pushvalue(l, item);
                        ffi::lua_rawseti(l, table, index);
                    });
                    if *entry == Entry::Item {
                        batch.push(slot);
                        slot += 1;
                    } else {
                        self.store_pair(table, slot, *entry)?;
                        slot += 2;
                    }
                }
                batch.flush(|index, item| {
                    ffi::lua_pushvalue(l, item);
                    ffi::lua_rawseti(l, table, index);
                });
            }
            if !entries.is_empty() {
                // Over the first entry, dropping the rest (an empty table is already there).
                ffi::lua_replace(l, first);
                ffi::lua_settop(l, first);
            }
        }
        self.top = first;
        Ok(())
    }
    #[inline]
    fn append(&mut self, index: i64) -> BuildResult {
        // Positional indices never approach lua_Integer's range: each needs a value in memory.
        unsafe { ffi::lua_rawseti(self.l, -2, index as ffi::lua_Integer) };
        self.top -= 1;
        Ok(())
    }
    #[inline]
    fn set(&mut self) -> BuildResult {
        unsafe {
            self.check_key_at(-2)?;
            ffi::lua_rawset(self.l, -3);
        }
        self.top -= 2;
        Ok(())
    }
    fn set_local(&mut self, slot: usize) -> BuildResult {
        self.reserve(2)?;
        unsafe {
            if ffi::lua_type(self.l, self.locals) != ffi::LUA_TTABLE {
                ffi::lua_createtable(self.l, 4, 0);
                ffi::lua_replace(self.l, self.locals);
            }
            ffi::lua_rawseti(self.l, self.locals, slot as _);
        }
        self.top -= 1;
        Ok(())
    }
    fn check_key(&self) -> BuildResult {
        unsafe { self.check_key_at(-1) }
    }
    fn check_store(&self) -> BuildResult {
        unsafe {
            self.check_table(-2)?;
            self.check_key_at(-1)
        }
    }
    fn get_local(&mut self, slot: usize) -> BuildResult {
        self.reserve(4)?;
        unsafe {
            self.check_table(self.locals)?;
            ffi::lua_rawgeti(self.l, self.locals, slot as _);
        }
        self.push()
    }
    fn index(&mut self) -> BuildResult {
        unsafe {
            self.check_table(-2)?;
            ffi::lua_rawget(self.l, -2);
            ffi::lua_remove(self.l, -2);
        }
        self.top -= 1;
        Ok(())
    }
    fn linked(&mut self) {
        self.linked = true;
    }
    fn assign(&mut self) -> BuildResult {
        unsafe {
            self.check_table(-3)?;
            self.check_key_at(-2)?;
            ffi::lua_rawset(self.l, -3);
            ffi::lua_pop(self.l, 1);
        }
        self.top -= 3;
        Ok(())
    }
}

thread_local! {
    static PARSE_SCRATCH: RefCell<ParseScratch> = RefCell::new(ParseScratch::default());
}

unsafe fn load_limits(l: *mut lua_State) -> Result<LoadLimits, String> {
    let mut limits = LoadLimits::default();
    if opts_table(l, 2, "load")? {
        check_option_names(l, 2, "load")?;
        if let Some(v) = limit_field(l, 2, "load", c"maxdepth")? {
            limits.max_depth = v;
        }
        if let Some(v) = limit_field(l, 2, "load", c"maxbytes")? {
            limits.max_bytes = v;
        }
        if let Some(v) = limit_field(l, 2, "load", c"maxnodes")? {
            limits.max_nodes = v;
        }
        // serpent.load's switch for running code: this reader never runs any, whichever.
        typed_field(l, 2, "load", c"safe", ffi::LUA_TBOOLEAN, |_| ())?;
    }
    Ok(limits)
}

/// Parses the string at `idx` and pushes the value, or returns the error message with the
/// stack as it was.
///
/// # Safety
/// A valid state; `idx` is an absolute index holding a string.
pub unsafe fn load_at(l: *mut lua_State, idx: c_int, limits: &LoadLimits) -> Result<(), String> {
    load_bytes(l, bytes_at(l, idx), limits)
}

/// Parses `text` and pushes the value, or returns the error message with the stack as it was.
///
/// # Safety
/// A valid state.
pub unsafe fn load_bytes(
    l: *mut lua_State,
    text: &[u8],
    limits: &LoadLimits,
) -> Result<(), String> {
    load(l, text, limits, false).map(|_| ())
}

/// What `load_values` pushed.
pub enum Loaded {
    /// One value (not necessarily a table).
    Value,
    /// The root table's values, this many, in its place (see `Builder::spread`).
    Values(usize),
}

/// `load_bytes` for an argument or result array: a plain root constructor comes out as its
/// values, saving the table the caller would only unpack. `limits.max_depth` counts the
/// values' tables, as rr.configure's `max_depth` does: the array is one more level.
///
/// # Safety
/// A valid state.
pub unsafe fn load_values(
    l: *mut lua_State,
    text: &[u8],
    limits: &LoadLimits,
) -> Result<Loaded, String> {
    let limits = LoadLimits {
        max_depth: limits.max_depth.saturating_add(1),
        ..*limits
    };
    load(l, text, &limits, true)
}

unsafe fn load(
    l: *mut lua_State,
    text: &[u8],
    limits: &LoadLimits,
    values: bool,
) -> Result<Loaded, String> {
    with_scratch(l, &PARSE_SCRATCH, |scratch| {
        load_with(l, text, limits, values, scratch)
    })
}

unsafe fn load_with(
    l: *mut lua_State,
    text: &[u8],
    limits: &LoadLimits,
    values: bool,
    scratch: &mut ParseScratch,
) -> Result<Loaded, String> {
    let base = ffi::lua_gettop(l);
    // Room for the locals slot and what the root table's `reserve(8)` asks for, in one call
    // when the stack can grow that much; otherwise as little as before.
    let room = if ffi::lua_checkstack(l, 1 + 8 + RESERVE_CHUNK) != 0 {
        8 + RESERVE_CHUNK
    } else if ffi::lua_checkstack(l, 8) != 0 {
        7
    } else {
        return Err("out of Lua stack".into());
    };
    ffi::lua_pushnil(l); // the locals slot
    let top = base + 1;
    let mut builder = LuaBuilder {
        l,
        locals: top,
        top,
        reserved: top + room,
        tables: 0,
        linked: false,
    };
    let parsed = if values {
        parse_values_with(text, limits, &mut builder, scratch)
    } else {
        parse_with(text, limits, &mut builder, scratch).map(|()| None)
    };
    // What the caller set: `load_values` added the array's level.
    let shown_depth = limits.max_depth - usize::from(values);
    match parsed {
        Ok(None) => {
            // A dump chunk that links tables can nest them deeper than any of its
            // constructors (serpent's plain `do local _={...};return _;end` does not); not
            // deeper than it has tables, though.
            if builder.linked && builder.tables > limits.max_depth {
                let deeper = deeper_than(l, ffi::lua_gettop(l), limits.max_depth, builder.tables);
                if deeper != Some(false) {
                    ffi::lua_settop(l, base);
                    return Err(match deeper {
                        None => "out of Lua stack".to_string(),
                        _ => format!(
                            "nesting exceeds the depth limit (maxdepth = {shown_depth}) \
                             through the dump chunk's shared tables"
                        ),
                    });
                }
            }
            // The value takes the locals slot's place.
            ffi::lua_replace(l, base + 1);
            Ok(Loaded::Value)
        }
        Ok(Some(count)) => {
            ffi::lua_remove(l, base + 1);
            Ok(Loaded::Values(count))
        }
        Err(e) => {
            ffi::lua_settop(l, base);
            match e.kind() {
                &ParseErrorKind::TooDeep { .. } if values => Err(ParseError::new(
                    e.offset(),
                    ParseErrorKind::TooDeep { max: shown_depth },
                )
                .to_string()),
                _ => Err(e.to_string()),
            }
        }
    }
}

pub(crate) unsafe extern "C-unwind" fn lua_load(l: *mut lua_State) -> isize {
    guarded(l, "load", || {
        if ffi::lua_type(l, 1) != ffi::LUA_TSTRING {
            return Err(bad_argument(
                1,
                "load",
                format!("string expected, got {}", type_name(l, 1)),
            ));
        }
        let limits = load_limits(l)?;
        ffi::lua_pushboolean(l, 1);
        // A flat array of plain scalars, read without the parser when it is within every
        // limit (the parser then reports whichever it exceeds): the root table and a node
        // for each value and `n`.
        let text = bytes_at(l, 1);
        if text.len() <= limits.max_bytes
            && limits.max_depth >= 1
            && push_flat_table(l, text, limits.max_nodes.saturating_sub(2))
        {
            return Ok(2);
        }
        if let Err(msg) = load_at(l, 1, &limits) {
            ffi::lua_pop(l, 1);
            ffi::lua_pushboolean(l, 0);
            push_owned(l, msg);
        }
        Ok(2)
    })
}
