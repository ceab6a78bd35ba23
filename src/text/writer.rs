//! The text writer's output buffer and its punctuation; the binding walks the values.
//! Every table is written as a constructor: positional items first, then `name=`/`[key]=`.

use super::escape::write_string;
use super::number::{write_double_untyped, write_float, write_int};

pub struct Writer {
    pub out: Vec<u8>,
    /// False where every number is a double (Lua 5.1, 5.2, LuaJIT).
    integers: bool,
}

impl Writer {
    pub fn new(integers: bool) -> Self {
        Writer {
            out: Vec::with_capacity(256),
            integers,
        }
    }

    pub fn clear(&mut self) {
        self.out.clear();
    }

    pub fn raw(&mut self, text: &[u8]) {
        self.out.extend_from_slice(text);
    }

    pub fn nil(&mut self) {
        self.raw(b"nil");
    }

    pub fn boolean(&mut self, v: bool) {
        self.raw(if v { b"true" } else { b"false" });
    }

    pub fn integer(&mut self, v: i64) {
        write_int(&mut self.out, v);
    }

    pub fn float(&mut self, v: f64) {
        if self.integers {
            write_float(&mut self.out, v);
        } else {
            write_double_untyped(&mut self.out, v);
        }
    }

    pub fn string(&mut self, v: &[u8]) {
        write_string(&mut self.out, v);
    }

    pub fn open_table(&mut self) {
        self.out.push(b'{');
    }

    /// Ends a field; the comma after the last field is dropped by `close_table`.
    pub fn end_field(&mut self) {
        self.out.push(b',');
    }

    pub fn close_table(&mut self) {
        match self.out.last_mut() {
            Some(last @ b',') => *last = b'}',
            _ => self.out.push(b'}'),
        }
    }

    /// A string key: `name=` when the caller found it is an identifier, `["..."]=` otherwise.
    #[inline]
    pub fn string_key(&mut self, key: &[u8], identifier: bool) {
        if identifier {
            self.out.reserve(key.len() + 1);
            let len = self.out.len();
            // SAFETY: the capacity was reserved above; `set_len` covers the bytes written.
            unsafe {
                let dst = self.out.as_mut_ptr().add(len);
                // Field names are short: a byte loop beats a call to memcpy.
                for (i, &b) in key.iter().enumerate() {
                    *dst.add(i) = b;
                }
                *dst.add(key.len()) = b'=';
                self.out.set_len(len + key.len() + 1);
            }
        } else {
            self.out.push(b'[');
            self.string(key);
            self.raw(b"]=");
        }
    }

    /// Brackets around any other key: `open_key`, the key value, `close_key`.
    pub fn open_key(&mut self) {
        self.out.push(b'[');
    }

    pub fn close_key(&mut self) {
        self.raw(b"]=");
    }

    pub fn len(&self) -> usize {
        self.out.len()
    }

    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }
}
