//! Property tests of the parser: random value graphs written with the text writer pieces
//! (`Writer`, `write_string`, `write_float`, `write_int`) come back exactly, in the plain
//! constructor form and in the `do local __={{},{}};__[1][k]=v;...;local _=<root>;return _;end`
//! chunk form the Lua binding emits for shared and cyclic tables. Random bytes and mutated
//! texts never panic, and their errors carry an offset inside the text.

mod common;

use common::{compare, parse_graph, GTable, Model, NumMode, GV};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use remote_runner::text::escape::write_string;
use remote_runner::text::limits::LoadLimits;
use remote_runner::text::number::{
    parse_numeral, write_double_untyped, write_float, write_int, Num,
};
use remote_runner::text::tree::{check_parse_invariants, Val};

// ---------------------------------------------------------------------------------------------
// Strategies

fn float_strategy() -> BoxedStrategy<f64> {
    prop_oneof![
        4 => any::<u64>().prop_map(f64::from_bits),
        2 => select(vec![
            0.0,
            -0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            -f64::NAN,
            1.0,
            -1.0,
            0.1,
            0.5,
            1e300,
            -1e-300,
            5e-324,
            -5e-324,
            9_007_199_254_740_992.0,
            9_007_199_254_740_994.0,
            9.223_372_036_854_776e18,
            -9.223_372_036_854_776e18,
            1e15,
            1e16,
            123_456_789_012_345_680.0,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            f64::EPSILON,
        ]),
        2 => (-1000i32..1000).prop_map(f64::from),
        1 => (-1000i32..1000).prop_map(|i| f64::from(i) / 8.0),
    ]
    .boxed()
}

fn int_strategy() -> BoxedStrategy<i64> {
    prop_oneof![
        3 => any::<i64>(),
        2 => select(vec![
            i64::MIN,
            i64::MIN + 1,
            i64::MAX,
            0,
            -1,
            1 << 53,
            (1 << 53) + 1,
            -(1 << 53) - 1,
            1 << 62,
            999_999_999_999_999,
            1_000_000_000_000_000,
        ]),
        3 => -100i64..100,
    ]
    .boxed()
}

fn bytes_strategy() -> BoxedStrategy<Vec<u8>> {
    let interesting = vec![
        0u8, 1, 9, b'\n', b'\r', b'"', b'\'', b'\\', b'1', b'0', b'9', b']', b'[', b'=', b'-',
        b'z', b'x', 0x7f, 0x80, 0xbf, 0xc0, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xed, 0xa0, 0xf0, 0x9f,
        0x98, 0x80, 0xf4, 0x90, 0xff,
    ];
    prop_oneof![
        3 => vec(any::<u8>(), 0..16),
        2 => "[a-zA-Z_][a-zA-Z0-9_]{0,6}".prop_map(String::into_bytes),
        1 => select(vec!["end", "nil", "true", "function", "local", "return", "do", "_", "__", "goto", "n", ""])
            .prop_map(|s| s.as_bytes().to_vec()),
        2 => vec(select(interesting), 0..12),
        1 => ".{0,8}".prop_map(String::into_bytes),
    ]
    .boxed()
}

fn scalar(nil: bool) -> BoxedStrategy<GV> {
    let s = prop_oneof![
        1 => any::<bool>().prop_map(GV::Bool),
        3 => int_strategy().prop_map(GV::Int),
        3 => float_strategy().prop_map(GV::Float),
        3 => bytes_strategy().prop_map(GV::Str),
    ];
    if nil {
        prop_oneof![1 => Just(GV::Nil), 8 => s].boxed()
    } else {
        s.boxed()
    }
}

/// A tree of nested constructors (no sharing), flattened into a `Model`.
#[derive(Debug, Clone)]
enum Tr {
    Leaf(GV),
    Tab(Vec<Tr>, Vec<(Tr, Tr)>),
}

fn flatten(t: &Tr, tables: &mut Vec<GTable>) -> GV {
    match t {
        Tr::Leaf(v) => v.clone(),
        Tr::Tab(pos, keyed) => {
            let i = tables.len();
            tables.push(GTable::default());
            let pos = pos.iter().map(|x| flatten(x, tables)).collect();
            let keyed = keyed
                .iter()
                .map(|(k, v)| (flatten(k, tables), flatten(v, tables)))
                .collect();
            tables[i] = GTable { pos, keyed };
            GV::T(i)
        }
    }
}

fn tree_model() -> impl Strategy<Value = Model> {
    let leaf = scalar(true).prop_map(Tr::Leaf);
    let tree = leaf.prop_recursive(6, 64, 6, |inner| {
        let key = prop_oneof![4 => scalar(false).prop_map(Tr::Leaf), 1 => inner.clone()];
        (vec(inner.clone(), 0..6), vec((key, inner), 0..6)).prop_map(|(p, k)| Tr::Tab(p, k))
    });
    let root = prop_oneof![1 => scalar(true).prop_map(Tr::Leaf), 6 => tree];
    (root, vec(any::<bool>(), 0..32)).prop_map(|(t, force_shared)| {
        let mut tables = Vec::new();
        let root = flatten(&t, &mut tables);
        Model {
            root,
            tables,
            force_shared,
        }
    })
}

/// Up to 8 tables whose values and keys refer to each other freely: sharing and cycles.
fn graph_model() -> impl Strategy<Value = Model> {
    (1usize..9)
        .prop_flat_map(|n| {
            let val = prop_oneof![3 => scalar(true), 1 => (0..n).prop_map(GV::T)];
            let key = prop_oneof![4 => scalar(false), 1 => (0..n).prop_map(GV::T)];
            let table = (vec(val.clone(), 0..5), vec((key, val), 0..5))
                .prop_map(|(pos, keyed)| GTable { pos, keyed });
            let root = prop_oneof![1 => scalar(true), 6 => Just(GV::T(0))];
            (root, vec(table, n), vec(any::<bool>(), n))
        })
        .prop_map(|(root, tables, force_shared)| Model {
            root,
            tables,
            force_shared,
        })
}

// ---------------------------------------------------------------------------------------------
// Checks

fn mode(integers: bool) -> NumMode {
    if integers {
        NumMode::Typed
    } else {
        NumMode::Doubles
    }
}

fn roundtrip(model: Model, integers: bool) -> Result<(), TestCaseError> {
    let model = model.sanitize(integers);
    let text = model.write(integers);
    prop_assert!(
        std::str::from_utf8(&text).is_ok(),
        "writer output is not UTF-8"
    );
    let shown = String::from_utf8_lossy(&text).into_owned();
    let got = parse_graph(&text, integers)
        .map_err(|e| TestCaseError::fail(format!("{e}\ntext: {shown}")))?;
    compare(&model.expected(), &got, mode(integers))
        .map_err(|e| TestCaseError::fail(format!("{e}\ntext: {shown}\nmodel: {model:?}")))
}

/// Whatever the bytes: no panic, an error carries an offset inside the text and a message
/// that names it, and success leaves exactly one value.
fn parse_never_panics(text: &[u8]) -> Result<(), TestCaseError> {
    let limits = LoadLimits {
        max_depth: 200,
        max_bytes: 1 << 20,
        max_nodes: 100_000,
    };
    check_parse_invariants(text, &limits).map_err(TestCaseError::fail)
}

fn parse_one(text: &[u8], integers: bool) -> Result<Val, String> {
    let g = parse_graph(text, integers)?;
    Ok(g.root)
}

const TOKENS: &[&str] = &[
    "{", "}", "[", "]", "=", ",", ";", "(", ")", ".", "-", "/", "0", "1", "1/0", "0/0", "-1/(1/0)",
    "1.5", "0x10", "1e", "\"", "'", "\"s\"", "\\", "\\ddd", "\\x", "\\u{", "--", "--[[", "]]",
    "[[", "[==[", "]==]", "nil", "true", "false", "do", "end", "local", "return", "_", "__",
    "__[1]", "x", "function", "...", "..", "==", " ", "\n", "\r", "\x1b", "\u{00e9}", "\u{feff}",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn trees_roundtrip_typed(m in tree_model()) {
        roundtrip(m, true)?;
    }

    #[test]
    fn trees_roundtrip_doubles(m in tree_model()) {
        roundtrip(m, false)?;
    }

    #[test]
    fn graphs_roundtrip_typed(m in graph_model()) {
        roundtrip(m, true)?;
    }

    #[test]
    fn graphs_roundtrip_doubles(m in graph_model()) {
        roundtrip(m, false)?;
    }

    #[test]
    fn mutated_texts_never_panic(
        m in graph_model(),
        integers in any::<bool>(),
        edits in vec((any::<Index>(), 0u8..4, any::<u8>(), any::<Index>()), 1..6),
    ) {
        let mut text = m.sanitize(integers).write(integers);
        for (at, op, byte, tok) in edits {
            let i = if text.is_empty() { 0 } else { at.index(text.len() + 1) };
            match op {
                0 if i < text.len() => { text.remove(i); }
                1 if i < text.len() => text[i] = byte,
                2 => text.insert(i, byte),
                _ => {
                    let t = tok.get(TOKENS).as_bytes();
                    text.splice(i..i, t.iter().copied());
                }
            }
        }
        parse_never_panics(&text)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5000, ..ProptestConfig::default() })]

    #[test]
    fn garbage_never_panics(text in vec(any::<u8>(), 0..300)) {
        parse_never_panics(&text)?;
    }

    #[test]
    fn token_soup_never_panics(toks in vec(select(TOKENS), 0..60)) {
        parse_never_panics(toks.concat().as_bytes())?;
    }

    #[test]
    fn strings_roundtrip(s in prop_oneof![vec(any::<u8>(), 0..64), bytes_strategy()]) {
        let mut lit = Vec::new();
        write_string(&mut lit, &s);
        prop_assert!(std::str::from_utf8(&lit).is_ok(), "literal is not UTF-8: {:?}", lit);
        for integers in [true, false] {
            let v = parse_one(&lit, integers).map_err(TestCaseError::fail)?;
            prop_assert_eq!(v, Val::Str(s.clone()));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20000, ..ProptestConfig::default() })]

    #[test]
    fn floats_roundtrip(bits in any::<u64>(), special in float_strategy(), pick in any::<bool>()) {
        let v = if pick { f64::from_bits(bits) } else { special };
        let same = |got: &Val| matches!(got, Val::Float(g) if (g.is_nan() && v.is_nan()) || g.to_bits() == v.to_bits());

        // Lua 5.3+: write_float keeps the float subtype.
        let mut text = Vec::new();
        write_float(&mut text, v);
        let got = parse_one(&text, true).map_err(TestCaseError::fail)?;
        prop_assert!(same(&got), "{} -> {:?}, wanted {:?}", String::from_utf8_lossy(&text), got, v);

        // Lua 5.1/LuaJIT: write_double_untyped; integral values come back as doubles too.
        let mut text = Vec::new();
        write_double_untyped(&mut text, v);
        let got = parse_one(&text, false).map_err(TestCaseError::fail)?;
        prop_assert!(same(&got), "{} -> {:?}, wanted {:?}", String::from_utf8_lossy(&text), got, v);

        // A 5.3+ text read by a doubles-only parser: same double.
        let mut text = Vec::new();
        write_float(&mut text, v);
        let got = parse_one(&text, false).map_err(TestCaseError::fail)?;
        prop_assert!(same(&got), "{} -> {:?}, wanted {:?}", String::from_utf8_lossy(&text), got, v);
    }

    /// The lexer reads a numeral exactly as `parse_numeral` does (its fast paths included).
    #[test]
    fn numerals_agree_with_parse_numeral(
        s in prop_oneof![
            "[0-9.][0-9a-fA-FxXpP.eE+-]{0,24}",
            "[0-9]{1,22}",
            "\\.[0-9]{1,5}([eE][+-]?[0-9]{1,3})?",
            "0[xX][0-9a-fA-F]{0,18}(\\.[0-9a-fA-F]{0,4})?([pP][+-]?[0-9]{1,3})?",
        ],
        integers in any::<bool>(),
    ) {
        // `--` starts a comment: not one numeral token.
        prop_assume!(!s.contains("--"));
        let want = parse_numeral(s.as_bytes(), integers);
        let got = parse_one(s.as_bytes(), integers);
        let same = match (&want, &got) {
            (None, Err(_)) => true,
            (Some(Num::Int(a)), Ok(Val::Int(b))) => a == b,
            (Some(Num::Int(a)), Ok(Val::Float(b))) => !integers && (*a as f64) == *b,
            (Some(Num::Float(a)), Ok(Val::Float(b))) => a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
            _ => false,
        };
        prop_assert!(same, "{:?} (integers {}): parse_numeral {:?}, parser {:?}", s, integers, want, got);
    }

    #[test]
    fn ints_roundtrip(a in any::<i64>(), b in int_strategy(), pick in any::<bool>()) {
        let v = if pick { a } else { b };
        let mut text = Vec::new();
        write_int(&mut text, v);
        let shown = String::from_utf8_lossy(&text).into_owned();
        prop_assert_eq!(parse_one(&text, true).map_err(TestCaseError::fail)?, Val::Int(v), "{}", shown);
        let got = parse_one(&text, false).map_err(TestCaseError::fail)?;
        prop_assert!(matches!(got, Val::Float(f) if f == v as f64), "{} -> {:?}", shown, got);
    }
}

#[test]
fn deep_chains_roundtrip_up_to_the_default_depth() {
    for depth in [1usize, 2, 50, 199, 200] {
        // {{...{1}...}} with `depth` tables, in both forms.
        let tables: Vec<GTable> = (0..depth)
            .map(|i| GTable {
                pos: vec![if i + 1 < depth {
                    GV::T(i + 1)
                } else {
                    GV::Int(1)
                }],
                keyed: vec![(GV::Str(b"d".to_vec()), GV::Int(i as i64))],
            })
            .collect();
        for force in [false, true] {
            let mut force_shared = vec![false; depth];
            force_shared[0] = force;
            let m = Model {
                root: GV::T(0),
                tables: tables.clone(),
                force_shared,
            };
            let text = m.write(true);
            let got = parse_graph(&text, true).unwrap_or_else(|e| panic!("depth {depth}: {e}"));
            compare(&m.expected(), &got, NumMode::Typed)
                .unwrap_or_else(|e| panic!("depth {depth}: {e}"));
        }
    }
}

#[test]
fn self_cycle_and_table_keys_roundtrip() {
    // t = {}; t[t] = t; t.k = {[t] = 1}
    let m = Model {
        root: GV::T(0),
        tables: vec![
            GTable {
                pos: vec![GV::T(0)],
                keyed: vec![(GV::T(0), GV::T(0)), (GV::Str(b"k".to_vec()), GV::T(1))],
            },
            GTable {
                pos: vec![],
                keyed: vec![(GV::T(0), GV::Int(1))],
            },
        ],
        force_shared: vec![],
    }
    .sanitize(true);
    let text = m.write(true);
    assert_eq!(
        String::from_utf8_lossy(&text),
        "do local __={{}};__[1][1]=__[1];__[1][__[1]]=__[1];__[1].k={[__[1]]=1};local _=__[1];return _;end"
    );
    let got = parse_graph(&text, true).unwrap();
    compare(&m.expected(), &got, NumMode::Typed).unwrap();
    // The comparison is strict: a tree of the same shape but without the cycle differs.
    let flat = parse_graph(b"{{}, [{}] = {}, k = {[{}] = 1}}", true).unwrap();
    assert!(compare(&m.expected(), &flat, NumMode::Typed).is_err());
}

// ---------------------------------------------------------------------------------------------
// Lists of numbers: the parser reads `,<number>,` runs straight from the bytes; a space after
// each comma sends every item through the token path instead. Both must agree.

fn list_item() -> BoxedStrategy<String> {
    let written_float = any::<u64>().prop_map(|bits| {
        let mut text = Vec::new();
        write_float(&mut text, f64::from_bits(bits));
        String::from_utf8(text).expect("ASCII")
    });
    let written_int = int_strategy().prop_map(|v| {
        let mut text = Vec::new();
        write_int(&mut text, v);
        String::from_utf8(text).expect("ASCII")
    });
    prop_oneof![
        4 => written_float,
        4 => written_int,
        4 => "-?[0-9]{1,21}(\\.[0-9]{0,20})?([eE][+-]?[0-9]{1,4})?",
        2 => select(&[
            "0/0", "1/0", "-1/0", "-1/(1/0)", "0x10", "-0x1p4", "5.", ".5", "-.5", "1..2", "1e",
            "--1", "- 1", "-", "1a", "0", "-0", "9223372036854775808", "-9223372036854775808",
            "\"s\"", "{}", "{1,2}", "nil", "true", "x", "[1]=2", "y=3",
        ][..]).prop_map(str::to_string),
    ]
    .boxed()
}

fn parsed_alike(a: &[u8], b: &[u8], integers: bool) -> Result<(), String> {
    let without_offset = |e: String| e.split(" at offset").next().unwrap_or("").to_string();
    match (parse_graph(a, integers), parse_graph(b, integers)) {
        (Ok(ga), Ok(gb)) => compare(&ga, &gb, mode(integers)),
        (Err(ea), Err(eb)) if without_offset(ea.clone()) == without_offset(eb.clone()) => Ok(()),
        (ra, rb) => Err(format!("{ra:?} vs {rb:?}", ra = ra.err(), rb = rb.err())),
    }
}

/// `{e1,e2,...}` (read by the literal runs) against `{e1, e2, ...}` (read as tokens), with or
/// without a trailing comma.
fn packed_and_spaced_alike(
    entries: &[String],
    trailing: bool,
    integers: bool,
) -> Result<(), TestCaseError> {
    let end = if trailing { ",}" } else { "}" };
    let packed = format!("{{{}{end}", entries.join(","));
    let spaced = format!("{{{}{end}", entries.join(", "));
    parsed_alike(packed.as_bytes(), spaced.as_bytes(), integers)
        .map_err(|e| TestCaseError::fail(format!("{packed}: {e}")))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5000, ..ProptestConfig::default() })]

    #[test]
    fn number_lists_read_alike_packed_and_spaced(
        items in vec(list_item(), 1..40),
        trailing in any::<bool>(),
        integers in any::<bool>(),
    ) {
        packed_and_spaced_alike(&items, trailing, integers)?;
    }
}

fn record_field() -> BoxedStrategy<String> {
    let name = select(
        &[
            "x", "_", "a1", "count", "name", "end", "nil", "true", "local", "n", "x ", "1x",
        ][..],
    );
    let value = prop_oneof![
        3 => list_item(),
        2 => select(&[
            "\"s\"", "'q'", "\"a\\nb\"", "\"\\65\\066\"", "\"unterminated", "\"a\".. \"b\"", "true",
            "false", "nil", "true_x", "nil1", "{}", "{y=1}", "[[long]]", "=2", "",
        ][..]).prop_map(str::to_string),
    ];
    (name, value, any::<bool>())
        .prop_map(|(name, value, keyed)| {
            if keyed {
                format!("{name}={value}")
            } else {
                value
            }
        })
        .boxed()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5000, ..ProptestConfig::default() })]

    /// The same for `name=value` fields, which are read straight from the bytes too.
    #[test]
    fn records_read_alike_packed_and_spaced(
        fields in vec(record_field(), 1..30),
        trailing in any::<bool>(),
        integers in any::<bool>(),
    ) {
        packed_and_spaced_alike(&fields, trailing, integers)?;
    }
}

/// One minus is part of a negative number, as the writer spells it, and no nesting level:
/// what dump writes within a depth limit loads within the same limit. A second minus is a
/// level, as it is to Lua's parser. Runs and tokens agree.
#[test]
fn only_a_second_minus_counts_as_a_level_at_the_depth_limit() {
    let limits = LoadLimits::default();
    let depth = limits.max_depth;
    for (list, deep_enough_to_fail) in [
        ("1,2,-3", false),
        ("1,2,3", false),
        ("-1,x=-2", false),
        ("1,2,- -3", true),
    ] {
        for spacing in [",", ", "] {
            let inner = list.replace(',', spacing);
            let text = format!("{}{inner}{}", "{".repeat(depth), "}".repeat(depth));
            let got = parse_graph(text.as_bytes(), true);
            assert_eq!(
                got.as_ref()
                    .err()
                    .is_some_and(|e| e.contains("depth limit")),
                deep_enough_to_fail,
                "{spacing:?} {list}: {:?}",
                got.err()
            );
        }
    }
}
