//! Calls in flight, in Rust: id → what the books need of a call, calls per server, and the
//! timeouts in deadline order. The Lua values of a call (server id, names, callbacks) sit in
//! a cell of the `cells` table, five slots a cell, reused from call to call, so that keeping
//! a call allocates nothing on the Lua side in the steady state.
//!
//! The Lua layer sees a call as a record, `{ id, svr_id, module, func, on_result|false,
//! on_error|false, timeout }`, made on demand (`push_record`) for the rare
//! paths: failures, timeouts, cancel.

use rustc_hash::FxHashMap;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Timeouts are kept in slots of this many seconds; a call times out on the first poll after
/// the end of its slot.
const SLOT_SECONDS: f64 = 0.01;

/// The slot of a deadline: floor(deadline / SLOT_SECONDS) + 1, saturating (math.huge: never).
pub fn slot_of(deadline: f64) -> i64 {
    let q = (deadline / SLOT_SECONDS).floor();
    if q.is_nan() {
        return i64::MAX;
    }
    (q as i64).saturating_add(1)
}

/// Servers kept in `per_server` before those with no call in flight are dropped.
const MAX_IDLE_SERVERS: usize = 1024;

/// A server id as a key: integral numbers are one key whatever their subtype, as in a Lua
/// table.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum ServerKey {
    Int(i64),
    Float(u64),
    Str(Box<[u8]>),
}

impl ServerKey {
    pub fn number(v: f64) -> ServerKey {
        if v == v.trunc() && v.abs() < 9.2e18 {
            ServerKey::Int(v as i64)
        } else {
            ServerKey::Float(v.to_bits())
        }
    }
}

/// What the books keep of a call in flight.
#[derive(Debug)]
pub struct Call {
    pub cell: i64,
    pub server: ServerKey,
    pub deadline: f64,
    pub timeout: f64,
    pub slot: i64,
}

/// Calls in flight of one Lua state.
#[derive(Default)]
pub struct Ledger {
    calls: FxHashMap<i64, Call>,
    per_server: FxHashMap<ServerKey, i64>,
    /// (slot, id) of every call in flight with a timeout, earliest first, and of calls that
    /// left the books since (dropped when they come up, or when there are many).
    timeouts: BinaryHeap<Reverse<(i64, i64)>>,
    free_cells: Vec<i64>,
    /// Cells ever used: 0..cells_made.
    cells_made: i64,
}

impl Ledger {
    /// The cell the next call gets (not taken until `add`).
    pub fn next_cell(&self) -> i64 {
        self.free_cells.last().copied().unwrap_or(self.cells_made)
    }

    /// Calls in flight to `server`.
    pub fn to_server(&self, server: &ServerKey) -> i64 {
        self.per_server.get(server).copied().unwrap_or(0)
    }

    /// Puts call `id` on the books in cell `next_cell()`.
    pub fn add(&mut self, id: i64, server: ServerKey, deadline: f64, timeout: f64) {
        let cell = match self.free_cells.pop() {
            Some(cell) => cell,
            None => {
                self.cells_made += 1;
                self.cells_made - 1
            }
        };
        let slot = slot_of(deadline);
        match self.per_server.get_mut(&server) {
            Some(count) => *count += 1,
            None => {
                // Servers with no call in flight keep their entry (the next call to them
                // likely comes soon) until there are many.
                if self.per_server.len() >= MAX_IDLE_SERVERS.max(2 * self.calls.len()) {
                    self.per_server.retain(|_, count| *count > 0);
                }
                self.per_server.insert(server.clone(), 1);
            }
        }
        self.schedule(slot, id);
        self.calls.insert(
            id,
            Call {
                cell,
                server,
                deadline,
                timeout,
                slot,
            },
        );
    }

    pub fn get(&self, id: i64) -> Option<&Call> {
        self.calls.get(&id)
    }

    fn schedule(&mut self, slot: i64, id: i64) {
        if slot == i64::MAX {
            return; // no timeout
        }
        // Entries of calls that left are dropped when they outnumber the calls in flight.
        if self.timeouts.len() >= 2 * self.calls.len() + 64 {
            let calls = &self.calls;
            self.timeouts
                .retain(|Reverse((slot, id))| calls.get(id).is_some_and(|c| c.slot == *slot));
        }
        self.timeouts.push(Reverse((slot, id)));
    }

    /// Takes call `id` off the books; its cell is free again (the caller clears it).
    pub fn remove(&mut self, id: i64) -> Option<Call> {
        let call = self.calls.remove(&id)?;
        if let Some(count) = self.per_server.get_mut(&call.server) {
            *count -= 1;
        }
        self.free_cells.push(call.cell);
        Some(call)
    }

    /// The first call in flight whose slot ended before `now`'s slot, if any.
    pub fn first_due(&mut self, now: f64) -> Option<i64> {
        let last = slot_of(now) - 1;
        while let Some(&Reverse((slot, id))) = self.timeouts.peek() {
            if slot > last {
                return None;
            }
            if self.calls.get(&id).is_some_and(|c| c.slot == slot) {
                return Some(id);
            }
            self.timeouts.pop();
        }
        None
    }

    /// A new clock: every deadline keeps what was left of it (`old_now` on the old clock is
    /// `now` on the new one).
    pub fn rebase(&mut self, old_now: f64, now: f64) {
        self.timeouts.clear();
        for (&id, call) in self.calls.iter_mut() {
            call.deadline = now + (call.deadline - old_now);
            call.slot = slot_of(call.deadline);
            if call.slot != i64::MAX {
                self.timeouts.push(Reverse((call.slot, id)));
            }
        }
    }

    pub fn in_flight(&self) -> usize {
        self.calls.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_leave_every_index_and_free_their_cell() {
        let mut ledger = Ledger::default();
        ledger.add(1, ServerKey::Int(2), 5.0, 5.0);
        ledger.add(2, ServerKey::number(2.0), 1.0, 1.0);
        assert_eq!(ledger.to_server(&ServerKey::Int(2)), 2);
        assert_eq!(ledger.next_cell(), 2);
        assert_eq!(ledger.first_due(1.0), None, "due after the end of its slot");
        assert_eq!(ledger.first_due(1.02), Some(2));
        assert_eq!(ledger.remove(2).map(|c| c.cell), Some(1));
        assert!(ledger.remove(2).is_none());
        assert_eq!(ledger.next_cell(), 1, "the freed cell is reused first");
        assert_eq!(ledger.first_due(1.02), None);
        assert_eq!(ledger.to_server(&ServerKey::Int(2)), 1);
        ledger.remove(1);
        assert_eq!(ledger.to_server(&ServerKey::Int(2)), 0);
        assert_eq!(ledger.in_flight(), 0);
    }

    #[test]
    fn entries_of_answered_calls_do_not_pile_up() {
        let mut ledger = Ledger::default();
        for id in 0..10_000 {
            ledger.add(id, ServerKey::Int(1), 3600.0, 3600.0);
            ledger.remove(id);
        }
        assert!(
            ledger.timeouts.len() <= 65,
            "{} entries kept",
            ledger.timeouts.len()
        );
        ledger.add(10_000, ServerKey::Int(1), 1.0, 1.0);
        assert_eq!(ledger.first_due(4000.0), Some(10_000));
    }

    #[test]
    fn a_call_due_is_found_among_stale_entries() {
        let mut ledger = Ledger::default();
        ledger.add(1, ServerKey::Int(1), 1.0, 1.0);
        ledger.add(2, ServerKey::Int(1), 2.0, 2.0);
        ledger.remove(1);
        assert_eq!(ledger.first_due(1.5), None);
        assert_eq!(ledger.first_due(2.5), Some(2));
    }

    #[test]
    fn a_new_clock_keeps_the_time_left() {
        let mut ledger = Ledger::default();
        ledger.add(7, ServerKey::Str(b"gate".to_vec().into()), 100.5, 0.5);
        ledger.rebase(100.0, 3.0);
        assert_eq!(ledger.get(7).map(|c| c.deadline), Some(3.5));
        assert_eq!(ledger.first_due(3.49), None);
        assert_eq!(ledger.first_due(3.52), Some(7));
    }

    #[test]
    fn no_timeout_is_never_due() {
        let mut ledger = Ledger::default();
        ledger.add(1, ServerKey::Int(1), f64::INFINITY, f64::INFINITY);
        assert_eq!(slot_of(f64::INFINITY), i64::MAX);
        assert_eq!(ledger.first_due(1e300), None);
    }
}
