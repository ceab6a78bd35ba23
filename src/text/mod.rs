//! The value text format (SPEC §3), free of Lua: parser, writer pieces, limits.

pub mod builder;
pub mod decimal;
pub mod error;
pub mod escape;
pub mod lex;
pub mod limits;
pub mod number;
pub mod parse;
pub mod tree;
pub mod writer;
