//! The RunLua message readers on arbitrary bytes, as they arrive from the network: they must
//! never panic, and they must agree with the prost decoder generated from
//! `proto/run_lua.proto` (accept what it accepts, read the same fields, reject the rest).
//! The dump a message carries goes on through the text parser, as the service does with it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use remote_runner::rpc::wire::{read_request, read_response};
use remote_runner::rpc::{RunLuaMfaRequest, RunLuaMfaResponse};
use remote_runner::text::limits::LoadLimits;
use remote_runner::text::tree::check_parse_invariants;

const LIMITS: LoadLimits = LoadLimits {
    max_depth: 200,
    max_bytes: 1 << 20,
    max_nodes: 100_000,
};

fuzz_target!(|data: &[u8]| {
    match (read_request(data), RunLuaMfaRequest::decode(data)) {
        (Ok(ours), Ok(theirs)) => {
            assert_eq!(RunLuaMfaRequest::from(&ours), theirs);
            if let Err(msg) = check_parse_invariants(ours.arguments_dump, &LIMITS) {
                panic!("{msg}");
            }
        }
        (Err(_), Err(_)) => {}
        (ours, theirs) => panic!("request: ours {ours:?}, prost {theirs:?}"),
    }
    match (read_response(data), RunLuaMfaResponse::decode(data)) {
        (Ok(ours), Ok(theirs)) => assert_eq!(RunLuaMfaResponse::from(&ours), theirs),
        (Err(_), Err(_)) => {}
        (ours, theirs) => panic!("response: ours {ours:?}, prost {theirs:?}"),
    }
});
