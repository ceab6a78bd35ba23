//! The depth of a loaded value whose tables may be shared. The parser bounds the nesting of
//! each constructor in the text, but the dump chunk's assignments (`__[3][1]={__[2]}`) link
//! tables into chains of any depth at a constant cost per level. A value's depth here is the
//! most tables on the shortest way from the root to any of its tables (keys included), which
//! is never more than what the writer counted on its own walk: whatever `dump` wrote within a
//! depth limit passes the same limit here.

use mlua::ffi::{self, lua_State};
use std::os::raw::c_int;

/// Whether the value at `idx` (absolute), which holds about `tables` tables, has tables more
/// than `max_depth` levels down; `None` when the Lua stack cannot grow for the walk. Walks them level by level; its bookkeeping lives in Lua
/// tables, so that a Lua error (out of memory) raised in the middle leaves nothing behind
/// for Rust to free.
///
/// # Safety
/// A valid state; `idx` an absolute index.
pub unsafe fn deeper_than(
    l: *mut lua_State,
    idx: c_int,
    max_depth: usize,
    tables: usize,
) -> Option<bool> {
    if ffi::lua_type(l, idx) != ffi::LUA_TTABLE {
        return Some(false);
    }
    // Nine slots at most: the three tables of the walk, the table being read, its key and
    // value, the entry looked at and two more while it is marked.
    if ffi::lua_checkstack(l, 9) == 0 {
        return None;
    }
    let base = ffi::lua_gettop(l);
    // base + 1: every table met, as keys, sized once.
    ffi::lua_createtable(l, 0, c_int::try_from(tables).unwrap_or(c_int::MAX));
    let seen = base + 1;
    ffi::lua_createtable(l, 1, 0); // base + 2: the tables of the current level
    let level = base + 2;
    ffi::lua_pushvalue(l, idx);
    mark(l, seen);
    ffi::lua_pushvalue(l, idx);
    ffi::lua_rawseti(l, level, 1);
    let (mut count, mut depth) = (1, 1);
    let deeper = loop {
        if count == 0 {
            break false;
        }
        if depth > max_depth {
            break true;
        }
        ffi::lua_createtable(l, 0, 0); // base + 3: the next level
        let next = base + 3;
        let mut next_count = 0;
        for i in 1..=count {
            ffi::lua_rawgeti(l, level, i);
            let table = base + 4;
            ffi::lua_pushnil(l);
            while ffi::lua_next(l, table) != 0 {
                for entry in [-2, -1] {
                    if ffi::lua_type(l, entry) == ffi::LUA_TTABLE {
                        ffi::lua_pushvalue(l, entry);
                        if !is_marked(l, seen) {
                            ffi::lua_pushvalue(l, -1);
                            mark(l, seen);
                            next_count += 1;
                            ffi::lua_rawseti(l, next, next_count);
                        } else {
                            ffi::lua_pop(l, 1);
                        }
                    }
                }
                ffi::lua_pop(l, 1);
            }
            ffi::lua_pop(l, 1);
        }
        ffi::lua_replace(l, level);
        count = next_count;
        depth += 1;
    };
    ffi::lua_settop(l, base);
    Some(deeper)
}

/// Records the table on top of the stack (popped) in `seen`.
unsafe fn mark(l: *mut lua_State, seen: c_int) {
    ffi::lua_pushboolean(l, 1);
    ffi::lua_rawset(l, seen);
}

/// Whether the table on top of the stack (kept) is in `seen`.
unsafe fn is_marked(l: *mut lua_State, seen: c_int) -> bool {
    ffi::lua_pushvalue(l, -1);
    ffi::lua_rawget(l, seen);
    let marked = ffi::lua_toboolean(l, -1) != 0;
    ffi::lua_pop(l, 1);
    marked
}
