//! Calls in flight and served calls: the books and the hot paths of both sides, over the
//! Lua tables the embedded Lua layers share with them.

pub mod books;
pub mod caller;
pub mod ledger;
pub mod service;
