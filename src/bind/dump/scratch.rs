//! Buffers a dump keeps per thread between calls, so that it allocates nothing in the steady
//! state.

use super::{Level, Node};
use crate::bind::api::{HAS_INTEGERS, KEEP_BUFFER_BYTES};
use crate::text::escape::is_identifier;
use crate::text::writer::Writer;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// Hashes table addresses: they are unique already, so one multiply spreads them enough.
#[derive(Default)]
pub(super) struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_usize(&mut self, v: usize) {
        self.0 = (v as u64 >> 3).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

pub(super) type ByAddress = BuildHasherDefault<AddressHasher>;

/// Whether a key string is an identifier, remembered by the string's address for one dump:
/// records repeat the same few field names. Every string seen belongs to the value being
/// dumped, which stays alive, so an address cannot be reused within the dump; the generation
/// forgets everything between dumps.
pub(super) struct IdentifierCache {
    generation: u32,
    slots: [(usize, u32, bool); 64],
}

impl IdentifierCache {
    fn new() -> Self {
        IdentifierCache {
            generation: 1,
            slots: [(0, 0, false); 64],
        }
    }

    pub(super) fn next_dump(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            *self = IdentifierCache::new();
        }
    }

    pub(super) fn is_identifier(&mut self, key: &[u8]) -> bool {
        let address = key.as_ptr() as usize;
        let slot = &mut self.slots[(address >> 4) & 63];
        if slot.0 == address && slot.1 == self.generation {
            return slot.2;
        }
        let answer = is_identifier(key);
        *slot = (address, self.generation, answer);
        answer
    }
}

/// Tables a plain dump has entered. Most values hold a few tables, where a short list beats
/// hashing; past `FEW` the set takes over.
#[derive(Default)]
pub(super) struct Visited {
    few: Vec<usize>,
    many: HashSet<usize, ByAddress>,
}

impl Visited {
    const FEW: usize = 16;

    pub(super) fn clear(&mut self) {
        self.few.clear();
        if !self.many.is_empty() {
            self.many.clear();
        }
    }

    /// False when `ptr` was entered already.
    #[inline]
    pub(super) fn insert(&mut self, ptr: usize) -> bool {
        if self.many.is_empty() {
            if self.few.contains(&ptr) {
                return false;
            }
            if self.few.len() < Self::FEW {
                self.few.push(ptr);
                return true;
            }
            self.many.extend(self.few.drain(..));
        }
        self.many.insert(ptr)
    }

    fn trim(&mut self) {
        if self.many.capacity() > 4096 {
            self.many = HashSet::default();
        }
    }
}

/// Buffers kept per thread between calls, so a dump allocates nothing in the steady state.
pub(super) struct Scratch {
    pub(super) writer: Writer,
    pub(super) levels: Vec<Level>,
    pub(super) visited: Visited,
    pub(super) nodes: HashMap<usize, Node, ByAddress>,
    pub(super) identifiers: IdentifierCache,
}

impl Scratch {
    pub(super) fn new() -> Self {
        Scratch {
            writer: Writer::new(HAS_INTEGERS),
            levels: Vec::with_capacity(16),
            visited: Visited::default(),
            nodes: HashMap::default(),
            identifiers: IdentifierCache::new(),
        }
    }

    /// Releases what one unusually large dump made grow.
    pub(super) fn trim(&mut self) {
        if self.writer.out.capacity() > KEEP_BUFFER_BYTES {
            self.writer.out = Vec::with_capacity(256);
        }
        if self.nodes.capacity() > 4096 {
            self.nodes = HashMap::default();
        }
        self.visited.trim();
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new()
    }
}

thread_local! {
    pub(super) static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::new());
}
