// Compiles proto/run_lua.proto with protox (pure Rust), so no system `protoc` is needed.
fn main() {
    let proto = "proto/run_lua.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors =
        protox::compile([proto], ["proto"]).expect("proto/run_lua.proto must compile");
    let mut config = prost_build::Config::new();
    config
        .compile_fds(descriptors)
        .expect("prost code generation for run_lua.proto");
}
