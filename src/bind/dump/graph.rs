//! The graph form of `dump`, for values with shared tables, cycles or tables as keys: a
//! counting pass finds the shared tables, then the text pre-creates them in one constructor
//! and fills them with assignments.

use super::{write_shared_ref, Dumper, Failure, Mode};
use crate::bind::api::bytes_at;
use crate::text::escape::is_identifier;
use mlua::ffi;
use std::os::raw::c_int;

impl Dumper<'_> {
    /// Graph form: count references, then write the chunk.
    pub(super) unsafe fn graph(&mut self, idx: c_int) -> Result<(), Failure> {
        let l = self.l;
        // Only the root's own constructor (or the statement after it) gets the `n`.
        let root_n = self.root_n.take();
        self.s.nodes.clear();
        ffi::lua_createtable(l, 0, 0);
        self.seen = ffi::lua_gettop(l);
        self.walk(idx, Mode::Count)?;
        let mut order: Vec<(u32, usize)> = self
            .s
            .nodes
            .iter()
            .filter(|(_, n)| n.refs > 1 || n.used_as_key)
            .map(|(&ptr, n)| (n.order, ptr))
            .collect();
        order.sort_unstable();
        for (j, &(_, ptr)) in order.iter().enumerate() {
            if let Some(node) = self.s.nodes.get_mut(&ptr) {
                node.shared = j as u32 + 1;
            }
        }
        let w = &mut self.s.writer;
        w.clear();
        w.raw(b"do local __={");
        for _ in 0..order.len() {
            w.raw(b"{},");
        }
        w.close_table();
        w.raw(b";");
        for (j, &(seen_at, _)) in order.iter().enumerate() {
            ffi::lua_rawgeti(l, self.seen, seen_at as _);
            self.assignments(j as u32 + 1)?;
            ffi::lua_pop(l, 1);
        }
        self.s.writer.raw(b"local _=");
        ffi::lua_pushvalue(l, idx);
        let root_shared = if ffi::lua_type(l, -1) == ffi::LUA_TTABLE {
            self.shared_index(ffi::lua_topointer(l, -1) as usize)
        } else {
            0
        };
        if root_shared != 0 {
            write_shared_ref(&mut self.s.writer, root_shared);
            if let Some(n) = root_n {
                self.s.writer.raw(b";_.n=");
                self.s.writer.integer(n);
            }
        } else {
            self.root_n = root_n;
            self.walk(ffi::lua_gettop(l), Mode::Inline)?;
        }
        ffi::lua_pop(l, 1);
        self.s.writer.raw(b";return _;end");
        Ok(())
    }

    /// `__[j]<key>=<value>;` for every entry of the shared table on top.
    unsafe fn assignments(&mut self, j: u32) -> Result<(), Failure> {
        let l = self.l;
        let table = ffi::lua_gettop(l);
        self.room()?;
        ffi::lua_pushnil(l);
        while ffi::lua_next(l, table) != 0 {
            let w = &mut self.s.writer;
            write_shared_ref(w, j);
            match ffi::lua_type(l, -2) {
                ffi::LUA_TSTRING if is_identifier(bytes_at(l, -2)) => {
                    w.raw(b".");
                    w.raw(bytes_at(l, -2));
                }
                ffi::LUA_TTABLE => {
                    let k = self.shared_index(ffi::lua_topointer(l, -2) as usize);
                    let w = &mut self.s.writer;
                    w.raw(b"[");
                    write_shared_ref(w, k);
                    w.raw(b"]");
                }
                _ => {
                    w.raw(b"[");
                    self.scalar(ffi::lua_type(l, -2), -2, Mode::Inline)?;
                    self.s.writer.raw(b"]");
                }
            }
            self.s.writer.raw(b"=");
            let value = ffi::lua_gettop(l);
            let shared = match ffi::lua_type(l, value) {
                ffi::LUA_TTABLE => self.shared_index(ffi::lua_topointer(l, value) as usize),
                _ => 0,
            };
            if shared != 0 {
                write_shared_ref(&mut self.s.writer, shared);
            } else {
                self.walk(value, Mode::Inline)?;
            }
            self.s.writer.raw(b";");
            ffi::lua_pop(l, 1);
            if self.s.writer.len() > self.limits.max_bytes {
                return Err(self.too_large());
            }
        }
        Ok(())
    }
}
