//! Specific rejections of the parser, its limits, and its behaviour on hostile nesting: the
//! error names the limit or the construct, and its offset points at the offending token.

mod common;

use common::{head, parse_guarded, Guarded};
use remote_runner::text::error::ParseError;
use remote_runner::text::limits::LoadLimits;
use remote_runner::text::parse::parse;
use remote_runner::text::tree::{TreeBuilder, Val};
use std::time::Duration;

const SMALL_STACK: usize = 256 * 1024;
const QUICK: Duration = Duration::from_secs(2);

fn try_parse(text: &[u8], limits: &LoadLimits) -> Result<Val, ParseError> {
    let mut b = TreeBuilder::new(true);
    parse(text, limits, &mut b).map(|()| b.result().cloned().expect("one value after success"))
}

fn reject(text: &[u8]) -> ParseError {
    match try_parse(text, &LoadLimits::default()) {
        Ok(v) => panic!(
            "{:?} was accepted as {v:?}; it must be rejected",
            head(text, 80)
        ),
        Err(e) => {
            assert!(
                e.offset() <= text.len(),
                "{:?}: offset {} past the end",
                head(text, 80),
                e.offset()
            );
            assert!(
                e.to_string()
                    .ends_with(&format!("at offset {}", e.offset())),
                "{e}"
            );
            e
        }
    }
}

/// Parses on a 256 KiB thread (no deep native recursion can fit) and insists on an error,
/// quickly. Returns the error text.
fn reject_on_small_stack(text: Vec<u8>, limits: LoadLimits) -> String {
    let shown = head(&text, 40);
    let len = text.len();
    let (outcome, took) = parse_guarded(text, true, limits, SMALL_STACK, QUICK);
    let msg = match outcome {
        Guarded::Done(Ok(b)) => panic!(
            "{shown:?} was accepted as {:?}; it must be rejected",
            b.result()
        ),
        Guarded::Done(Err(e)) => {
            assert!(e.offset() <= len);
            e.to_string()
        }
        Guarded::Panicked(p) => panic!("{shown:?}: panic: {p}"),
        Guarded::TimedOut => panic!("{shown:?}: no answer within {QUICK:?}"),
    };
    assert!(took < QUICK, "{shown:?} took {took:?}");
    msg
}

fn rep(parts: &[(&str, usize)]) -> Vec<u8> {
    parts
        .iter()
        .flat_map(|(s, n)| s.as_bytes().repeat(*n))
        .collect()
}

const DEEP: usize = 100_000;

#[test]
fn deep_braces_hit_maxdepth_without_recursion() {
    let msg = reject_on_small_stack(rep(&[("{", DEEP), ("}", DEEP)]), LoadLimits::default());
    assert!(msg.contains("maxdepth"), "{msg}");
    let msg = reject_on_small_stack(rep(&[("{", DEEP)]), LoadLimits::default());
    assert!(msg.contains("maxdepth"), "{msg}");
    // Also with no depth limit to speak of: the parser must still not recurse natively.
    let unlimited = LoadLimits {
        max_depth: usize::MAX,
        ..LoadLimits::default()
    };
    let msg = reject_on_small_stack(rep(&[("{", DEEP), ("}", DEEP - 1)]), unlimited);
    assert!(msg.contains("end of text"), "{msg}");
}

#[test]
fn deep_keys_and_paths_hit_maxdepth_without_recursion() {
    for text in [
        rep(&[("{[", DEEP), ("1", 1), ("]=1}", DEEP)]),
        rep(&[
            ("local _={} return ", 1),
            ("_[", DEEP),
            ("1", 1),
            ("]", DEEP),
        ]),
        rep(&[
            ("do local _={};", 1),
            ("_[", DEEP),
            ("1", 1),
            ("]", DEEP),
            ("=1 return _ end", 1),
        ]),
        rep(&[
            ("do local _={};_[1]=", 1),
            ("{", DEEP),
            ("}", DEEP),
            (" return _ end", 1),
        ]),
    ] {
        let msg = reject_on_small_stack(text, LoadLimits::default());
        assert!(msg.contains("maxdepth"), "{msg}");
    }
}

#[test]
fn deep_parens_rejected_without_recursion() {
    let msg = reject_on_small_stack(
        rep(&[("(", DEEP), ("1", 1), (")", DEEP)]),
        LoadLimits::default(),
    );
    assert!(msg.contains("at offset 0"), "{msg}");
}

#[test]
fn deep_unary_minus_rejected_without_recursion() {
    // Real Lua refuses this (C stack overflow / too many syntax levels), and the corpus says
    // reject. 100000 is even, so an unbounded sign loop would read it as the number 1.
    reject_on_small_stack(rep(&[("- ", DEEP), ("1", 1)]), LoadLimits::default());
    reject_on_small_stack(rep(&[("- ", DEEP + 1), ("1", 1)]), LoadLimits::default());
}

#[test]
fn short_minus_chains_are_fine() {
    assert_eq!(
        try_parse(b"- -1", &LoadLimits::default()).unwrap(),
        Val::Int(1)
    );
    assert_eq!(
        try_parse(b"-1", &LoadLimits::default()).unwrap(),
        Val::Int(-1)
    );
}

#[test]
fn maxdepth_is_enforced_and_named() {
    let lim = |d| LoadLimits {
        max_depth: d,
        ..LoadLimits::default()
    };
    let e = try_parse(b"{{{}}}", &lim(2)).unwrap_err();
    assert!(e.to_string().contains("maxdepth"), "{e}");
    assert!(e.to_string().contains("maxdepth = 2"), "{e}");
    assert_eq!(e.offset(), 2, "{e}");
    try_parse(b"{{{}}}", &lim(3)).unwrap();
    // Keys count as nesting too.
    let e = try_parse(b"{[{[{}]=1}]=1}", &lim(2)).unwrap_err();
    assert!(e.to_string().contains("maxdepth"), "{e}");
    try_parse(b"{[{[{}]=1}]=1}", &lim(3)).unwrap();
    // The default admits what Lua itself can load (about 200 levels) and no more than that.
    let d = LoadLimits::default().max_depth;
    try_parse(&rep(&[("{", d), ("}", d)]), &LoadLimits::default()).unwrap();
    let e = try_parse(&rep(&[("{", d + 1), ("}", d + 1)]), &LoadLimits::default()).unwrap_err();
    assert!(e.to_string().contains("maxdepth"), "{e}");
    assert_eq!(e.offset(), d, "{e}");
}

#[test]
fn maxbytes_is_enforced_and_named() {
    let lim = LoadLimits {
        max_bytes: 10,
        ..LoadLimits::default()
    };
    let e = try_parse(b"{1,2,3,4,5}", &lim).unwrap_err();
    assert!(e.to_string().contains("maxbytes"), "{e}");
    assert!(e.to_string().contains("maxbytes = 10"), "{e}");
    try_parse(b"{1,2,3,45}", &lim).unwrap();
    // Checked before anything is read: even garbage gets the size error.
    let e = try_parse(&[0xffu8; 11], &lim).unwrap_err();
    assert!(e.to_string().contains("maxbytes"), "{e}");
}

#[test]
fn maxnodes_is_enforced_and_named() {
    let lim = |n| LoadLimits {
        max_nodes: n,
        ..LoadLimits::default()
    };
    let e = try_parse(b"{1,2,3}", &lim(1)).unwrap_err();
    assert!(e.to_string().contains("maxnodes"), "{e}");
    assert!(e.to_string().contains("maxnodes = 1"), "{e}");
    try_parse(b"{1,2,3}", &lim(4)).unwrap();
    let big = [&b"{"[..], &b"1,".repeat(1000), b"}"].concat();
    let e = try_parse(&big, &lim(500)).unwrap_err();
    assert!(e.to_string().contains("maxnodes"), "{e}");
    try_parse(&big, &lim(1001)).unwrap();
    // Keys are values too: 1 table + 3 keys + 3 values.
    let e = try_parse(b"{a=1,b=2,c=3}", &lim(6)).unwrap_err();
    assert!(e.to_string().contains("maxnodes"), "{e}");
    try_parse(b"{a=1,b=2,c=3}", &lim(7)).unwrap();
}

#[test]
fn too_many_locals() {
    let mut text = b"do ".to_vec();
    for i in 0..=200 {
        text.extend(format!("local a{i}=1;").bytes());
    }
    text.extend(b"return a0 end");
    let e = reject(&text);
    assert!(e.to_string().contains("locals"), "{e}");
}

/// (text, offset of the offending token, a word the message must contain)
const REJECTED: &[(&str, usize, &str)] = &[
    ("print", 0, "print"),
    ("{a = print}", 5, "print"),
    ("math.huge", 0, "math"),
    ("nan", 0, "nan"),
    ("inf", 0, "inf"),
    ("-inf", 1, "inf"),
    ("os.execute('x')", 0, "os"),
    ("require(\"os\")", 0, "require"),
    ("{home = os.getenv(\"HOME\")}", 8, "os"),
    ("(\"x\"):rep(3)", 0, "("),
    ("(\"x\"):rep(2^40)", 0, "("),
    ("(function() return 42 end)()", 0, "("),
    ("1 + 2", 2, "+"),
    ("{1 + 2}", 3, "+"),
    ("\"a\" .. \"b\"", 4, ".."),
    ("#\"abc\"", 0, "#"),
    ("not nil", 0, "not"),
    ("1 == 1", 2, "=="),
    ("{...}", 1, "..."),
    ("function() end", 0, "function"),
    ("function() os.execute(\"x\") end", 0, "function"),
    ("{f = function() return 1 end}", 5, "function"),
    ("{f = function() --[[..skipped..]] end}", 5, "function"),
    (
        "do local _={f=function() --[[..skipped..]] end,x=1};return _;end",
        14,
        "function",
    ),
    (
        "local function f() return f() end return f()",
        6,
        "function",
    ),
    ("x = 1", 0, "x"),
    ("do x = 5 return x end", 3, "x"),
    ("do x = 5; return x end", 3, "x"),
    ("do local _={};_.x=os.exit;return _;end", 18, "os"),
    (
        "do local _={};_.x=os.execute(\"id\");return _;end",
        18,
        "os",
    ),
    ("while true do end", 0, "while"),
    ("::a:: goto a", 0, ":"),
    ("{1} garbage", 4, "garbage"),
    ("{1} {2}", 4, "{"),
    ("1, 2", 1, ","),
    ("1 2", 2, "2"),
    ("{1 2}", 3, "2"),
    ("{a=}", 3, "}"),
    ("{=1}", 1, "="),
    ("{1, 2", 5, "end of text"),
    ("", 0, "no value"),
    ("   \n\t ", 6, "no value"),
    ("-- nothing here", 15, "no value"),
    ("--1", 3, "no value"),
    ("--[[ a ]] --[==[ b ]==]", 23, "no value"),
    ("'it''s'", 4, "string"),
    ("return", 6, "end of text"),
    ("return 1 2", 9, "2"),
    ("1/2", 1, "/"),
    ("2/0", 1, "/"),
    ("1/(2/0)", 1, "/"),
    ("1/0/0", 3, "/"),
    ("#!/usr/bin/lua\n{1}", 0, "#"),
    ("\u{feff}{1}", 0, "unexpected"),
    ("\"abc", 0, "unfinished string"),
    ("\"ab\nc\"", 0, "unfinished string"),
    ("\"\\q\"", 1, "escape"),
    ("\"\\300\"", 1, "escape"),
    ("\"\\xZZ\"", 1, "escape"),
    ("[[abc", 0, "long string"),
    ("--[[ x", 0, "comment"),
    ("1e", 0, "malformed number"),
    ("0x", 0, "malformed number"),
    ("3f", 0, "malformed number"),
    ("do local _=1 end", 13, "end"),
    ("local _={}", 10, "end of text"),
    ("do local _={} return _", 22, "end"),
    ("do local _={} return _ end x", 27, "x"),
    ("do local end=1 return end end", 9, "end"),
    // Builder errors (nil/NaN key, indexing a non-table) point at the key of the step.
    ("{[nil]=1}", 2, "nil"),
    ("{[0/0]=1}", 2, "NaN"),
    ("{1, 2, {a=1, [0/0]=2}}", 14, "NaN"),
    ("do local _={} return {[_[2]]=true} end", 23, "nil"),
    ("do local _=1;_.x=1;return _ end", 15, "not a table"),
    ("do local _={};_[_.y]=1;return _ end", 16, "nil"),
    ("do local _={};_.a.b=1;return _ end", 18, "not a table"),
    ("do local _=1 return {_.x} end", 23, "not a table"),
    ("do local _=1 return {_[1]} end", 23, "not a table"),
];

#[test]
fn rejections_name_the_construct_and_point_at_it() {
    let mut problems = Vec::new();
    for &(text, offset, word) in REJECTED {
        match try_parse(text.as_bytes(), &LoadLimits::default()) {
            Ok(v) => problems.push(format!("{text:?}: accepted as {v:?}")),
            Err(e) => {
                let msg = e.to_string();
                if !msg.ends_with(&format!("at offset {}", e.offset())) {
                    problems.push(format!(
                        "{text:?}: message does not end with its offset: {msg}"
                    ));
                }
                if e.offset() != offset {
                    problems.push(format!(
                        "{text:?}: offset {} (wanted {offset}): {msg}",
                        e.offset()
                    ));
                }
                if !msg.contains(word) {
                    problems.push(format!("{text:?}: message lacks {word:?}: {msg}"));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn bytecode_is_rejected() {
    for text in [
        &b"\x1bLuaT\x00\x19\x93\r\n\x1a\n\x04\x08\x08xV"[..],
        b"\x1bLua",
        b"\x1b",
    ] {
        let e = reject(text);
        assert_eq!(e.offset(), 0);
        assert!(e.to_string().contains("bytecode"), "{e}");
    }
    // Not at the start: still refused, as a stray byte.
    let e = reject(b" \x1bLua");
    assert_eq!(e.offset(), 1, "{e}");
}

#[test]
fn accepted_forms_for_contrast() {
    let ok = |t: &str| {
        try_parse(t.as_bytes(), &LoadLimits::default()).unwrap_or_else(|e| panic!("{t:?}: {e}"))
    };
    assert_eq!(ok("1/0"), Val::Float(f64::INFINITY));
    assert_eq!(ok("-1/0"), Val::Float(f64::NEG_INFINITY));
    assert!(matches!(ok("0/0"), Val::Float(f) if f.is_nan()));
    assert!(matches!(ok("-1/(1/0)"), Val::Float(f) if f == 0.0 && f.is_sign_negative()));
    assert_eq!(ok("-0x8000000000000000"), Val::Int(i64::MIN));
    assert_eq!(ok("return 5"), Val::Int(5));
    assert_eq!(ok("do local _=5;return _;end"), Val::Int(5));
    assert_eq!(ok("local _ = 5 return _"), Val::Int(5));
    assert!(matches!(ok("{1} --[[table: 0x55]]"), Val::Table(_)));
    // One ';' may end the value or statement, as in Lua: `return {1};`, `do ... end;`.
    assert_eq!(ok("return 5;"), Val::Int(5));
    assert_eq!(ok("5 ;"), Val::Int(5));
    assert!(matches!(ok("{1};"), Val::Table(_)));
    assert_eq!(ok("do local _=5;return _;end;"), Val::Int(5));
    assert_eq!(ok("local _ = 5 return _;"), Val::Int(5));
    for text in ["{1};;", ";{1}", "return 5;;", "do local _=5;return _;end;;"] {
        reject(text.as_bytes());
    }
    // Number forms serpent never writes but Lua reads (both number modes).
    for integers in [true, false] {
        let mut b = TreeBuilder::new(integers);
        parse(
            b"{.5, 5., 1E2, 1e-2, 3e+0, .25e1}",
            &LoadLimits::default(),
            &mut b,
        )
        .unwrap();
        let t = &b.tables[0];
        for (i, want) in [0.5, 5.0, 100.0, 0.01, 3.0, 2.5].into_iter().enumerate() {
            let got = t.get(&Val::Int(i as i64 + 1));
            assert_eq!(
                got,
                Some(&Val::Float(want)),
                "item {} (integers {integers})",
                i + 1
            );
        }
    }
    assert_eq!(ok("\"\\65\\066\\0677\""), Val::Str(b"ABC7".to_vec()));
}

#[test]
fn big_inputs_are_linear() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "1M positional",
            [&b"{"[..], &b"1,".repeat(1_000_000), b"}"].concat(),
        ),
        (
            "500k keyed",
            [&b"{"[..], &b"a=1,".repeat(500_000), b"}"].concat(),
        ),
        (
            "8MB string",
            [&b"\""[..], &b"x".repeat(8 << 20), b"\""].concat(),
        ),
        (
            "1M escapes",
            [&b"\""[..], &b"\\0".repeat(1_000_000), b"\""].concat(),
        ),
        (
            "long comment then value",
            [&b"--[==["[..], &b"]=]".repeat(1_000_000), b"]==] 1"].concat(),
        ),
        (
            "many comments between fields",
            [
                &b"{"[..],
                &b"a --[[c]] = --[[c]] 1 --[[c]],".repeat(100_000),
                b"}",
            ]
            .concat(),
        ),
        (
            "unfinished long bracket",
            [&b"[=========["[..], &b"]========]".repeat(200_000)].concat(),
        ),
    ];
    // A debug build is some 20 times slower; the bound is there to catch quadratic behaviour.
    let bound = if cfg!(debug_assertions) {
        Duration::from_secs(30)
    } else {
        QUICK
    };
    for (name, text) in cases {
        let len = text.len();
        let (outcome, took) = parse_guarded(text, true, LoadLimits::default(), 1 << 20, bound * 3);
        match outcome {
            Guarded::Done(r) => {
                if let Err(e) = r {
                    assert!(e.offset() <= len, "{name}: {e}");
                }
            }
            Guarded::Panicked(p) => panic!("{name}: panic {p}"),
            Guarded::TimedOut => panic!("{name}: no answer within {:?}", bound * 3),
        }
        println!("{name}: {len} bytes in {took:?}");
        assert!(took < bound, "{name}: took {took:?}");
    }
}
