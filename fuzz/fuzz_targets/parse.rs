//! The text parser on arbitrary bytes, in both number modes (Lua 5.3+ integers and the
//! doubles-only 5.1/LuaJIT mode): it must never panic, abort or overflow the stack; an error
//! must carry an offset inside the input; success must leave exactly one value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use remote_runner::text::limits::LoadLimits;
use remote_runner::text::parse::parse;
use remote_runner::text::tree::TreeBuilder;

fuzz_target!(|data: &[u8]| {
    // Small node limit: the fuzzer should explore syntax, not spend its time on huge tables.
    let limits = LoadLimits {
        max_depth: 200,
        max_bytes: 1 << 20,
        max_nodes: 100_000,
    };
    for integers in [true, false] {
        let mut b = TreeBuilder::new(integers);
        match parse(data, &limits, &mut b) {
            Ok(()) => assert_eq!(b.stack.len(), 1, "builder stack after a successful parse"),
            Err(e) => {
                assert!(
                    e.offset() <= data.len(),
                    "offset {} past the end ({} bytes)",
                    e.offset(),
                    data.len()
                );
                let msg = e.to_string();
                assert!(msg.ends_with(&format!("at offset {}", e.offset())), "{msg}");
            }
        }
    }
});
