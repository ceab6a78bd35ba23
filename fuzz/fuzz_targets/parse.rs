//! The text parser on arbitrary bytes, in both number modes (Lua 5.3+ integers and the
//! doubles-only 5.1/LuaJIT mode): it must never panic, abort or overflow the stack; an error
//! must carry an offset inside the input; success must leave exactly one value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use remote_runner::text::limits::LoadLimits;
use remote_runner::text::tree::check_parse_invariants;

fuzz_target!(|data: &[u8]| {
    // Small node limit: the fuzzer should explore syntax, not spend its time on huge tables.
    let limits = LoadLimits {
        max_depth: 200,
        max_bytes: 1 << 20,
        max_nodes: 100_000,
    };
    if let Err(msg) = check_parse_invariants(data, &limits) {
        panic!("{msg}");
    }
});
