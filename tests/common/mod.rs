//! Helpers shared by the integration tests: an owned value graph, an exact graph comparison
//! (graph isomorphism with backtracking over table-valued keys), a test-only text writer for
//! graphs, and a guarded parse that runs on a small-stack thread with a wall-clock limit.
#![allow(dead_code)]

use remote_runner::text::error::ParseError;
use remote_runner::text::escape::is_identifier;
use remote_runner::text::limits::LoadLimits;
use remote_runner::text::parse::parse;
use remote_runner::text::tree::{TreeBuilder, Val};
use remote_runner::text::writer::Writer;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::mpsc;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Graphs and their exact comparison

/// A value graph: `root` and, for each table index, its (key, value) pairs.
#[derive(Debug, Clone)]
pub struct Graph {
    pub root: Val,
    pub tables: Vec<Vec<(Val, Val)>>,
}

impl Graph {
    /// The single value a successful parse left, with every table the builder made.
    pub fn from_tree(b: &TreeBuilder) -> Result<Graph, String> {
        let root = match b.result() {
            Some(v) => v.clone(),
            None => {
                return Err(format!(
                    "builder stack holds {} values, expected 1",
                    b.stack.len()
                ))
            }
        };
        Ok(Graph {
            root,
            tables: b.tables.iter().map(|t| t.entries.clone()).collect(),
        })
    }
}

/// How numbers compare: Lua 5.3+ keeps the integer/float subtype; Lua 5.1 and LuaJIT only
/// have doubles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumMode {
    Typed,
    Doubles,
    /// Doubles, and 0.0 equals -0.0: only to recognise Lua 5.1's merging of the constants
    /// `0` and `-0` inside one chunk in the oracle's results.
    DoublesAnyZeroSign,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum KeyRepr {
    Bool(bool),
    Int(i64),
    Float(u64),
    Str(Vec<u8>),
}

fn key_repr(v: &Val, mode: NumMode) -> Option<KeyRepr> {
    let float = |f: f64| KeyRepr::Float(if f == 0.0 { 0 } else { f.to_bits() });
    Some(match (v, mode) {
        (Val::Bool(b), _) => KeyRepr::Bool(*b),
        (Val::Int(i), NumMode::Typed) => KeyRepr::Int(*i),
        (Val::Int(i), NumMode::Doubles | NumMode::DoublesAnyZeroSign) => float(*i as f64),
        (Val::Float(f), _) => float(*f),
        (Val::Str(s), _) => KeyRepr::Str(s.clone()),
        (Val::Nil | Val::Table(_), _) => return None,
    })
}

fn float_eq(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

/// Scalars equal under `roundtrip_exact`: same type, same number subtype (Typed), same sign of
/// zero, NaN equals NaN, byte-equal strings.
pub fn scalar_eq(e: &Val, a: &Val, mode: NumMode) -> bool {
    match (e, a) {
        (Val::Nil, Val::Nil) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Str(x), Val::Str(y)) => x == y,
        (Val::Int(x), Val::Int(y)) => x == y,
        (Val::Float(x), Val::Float(y)) if mode == NumMode::DoublesAnyZeroSign => {
            float_eq(*x, *y) || (*x == 0.0 && *y == 0.0)
        }
        (Val::Float(x), Val::Float(y)) => float_eq(*x, *y),
        (Val::Int(x), Val::Float(y)) | (Val::Float(y), Val::Int(x)) if mode != NumMode::Typed => {
            scalar_eq(&Val::Float(*x as f64), &Val::Float(*y), mode)
        }
        _ => false,
    }
}

/// A short readable form of a value for failure messages.
pub fn show(v: &Val) -> String {
    match v {
        Val::Nil => "nil".into(),
        Val::Bool(b) => b.to_string(),
        Val::Int(i) => format!("int {i}"),
        Val::Float(f) => format!("float {f:?}"),
        Val::Str(s) => format!("{:?}", String::from_utf8_lossy(&s[..s.len().min(60)])),
        Val::Table(t) => format!("table #{t}"),
    }
}

#[derive(Clone)]
enum Work {
    Pair(Val, Val, String),
    /// Entries with table-valued keys still to pair up: expected and actual.
    Choose(Vec<(Val, Val)>, Vec<(Val, Val)>, String),
}

struct Matcher<'a> {
    exp: &'a Graph,
    act: &'a Graph,
    mode: NumMode,
    e2a: Vec<Option<usize>>,
    a2e: Vec<Option<usize>>,
    trail: Vec<usize>,
    index: Vec<Option<HashMap<KeyRepr, usize>>>,
    err: String,
    steps: usize,
}

impl Matcher<'_> {
    fn undo(&mut self, mark: usize) {
        while self.trail.len() > mark {
            let e = self.trail.pop().unwrap();
            let a = self.e2a[e].take().unwrap();
            self.a2e[a] = None;
        }
    }

    fn lookup(&mut self, ai: usize, key: &KeyRepr) -> Option<usize> {
        if self.index[ai].is_none() {
            let mut m = HashMap::new();
            for (j, (k, _)) in self.act.tables[ai].iter().enumerate() {
                if let Some(r) = key_repr(k, self.mode) {
                    m.insert(r, j);
                }
            }
            self.index[ai] = Some(m);
        }
        self.index[ai].as_ref().unwrap().get(key).copied()
    }

    fn fail(&mut self, msg: String) -> bool {
        self.err = msg;
        false
    }

    fn solve(&mut self, mut work: Vec<Work>) -> bool {
        while let Some(w) = work.pop() {
            self.steps += 1;
            if self.steps > 5_000_000 {
                return self.fail("comparison gave up: too many backtracking steps".into());
            }
            match w {
                Work::Pair(Val::Table(ei), Val::Table(ai), path) => {
                    if let Some(m) = self.e2a[ei] {
                        if m != ai {
                            return self.fail(format!(
                                "{path}: expected the table already seen as actual #{m}, got a different table #{ai} (sharing differs)"
                            ));
                        }
                        continue;
                    }
                    if let Some(m) = self.a2e[ai] {
                        return self.fail(format!(
                            "{path}: actual table #{ai} is shared with expected #{m}, expected a distinct table #{ei}"
                        ));
                    }
                    self.e2a[ei] = Some(ai);
                    self.a2e[ai] = Some(ei);
                    self.trail.push(ei);
                    let (et, at) = (&self.exp.tables[ei], &self.act.tables[ai]);
                    if et.len() != at.len() {
                        let msg =
                            format!("{path}: expected {} entries, got {}", et.len(), at.len());
                        return self.fail(msg);
                    }
                    let mut e_tk = Vec::new();
                    for (k, v) in et {
                        if let Val::Table(_) = k {
                            e_tk.push((k.clone(), v.clone()));
                            continue;
                        }
                        let Some(repr) = key_repr(k, self.mode) else {
                            return self.fail(format!("{path}: expected graph has a nil key"));
                        };
                        let Some(j) = self.lookup(ai, &repr) else {
                            return self.fail(format!("{path}: key {} missing", show(k)));
                        };
                        let (ak, av) = &self.act.tables[ai][j];
                        // The key itself must match exactly too (subtype, sign of zero).
                        if !scalar_eq(k, ak, self.mode) && self.mode == NumMode::Typed {
                            return self.fail(format!(
                                "{path}: key {} came back as {}",
                                show(k),
                                show(ak)
                            ));
                        }
                        let sub = format!("{path}[{}]", show(k));
                        work.push(Work::Pair(v.clone(), av.clone(), sub));
                    }
                    let a_tk: Vec<(Val, Val)> = at
                        .iter()
                        .filter(|(k, _)| matches!(k, Val::Table(_)))
                        .cloned()
                        .collect();
                    if a_tk.len() != e_tk.len() {
                        let msg = format!(
                            "{path}: expected {} table keys, got {}",
                            e_tk.len(),
                            a_tk.len()
                        );
                        return self.fail(msg);
                    }
                    if !e_tk.is_empty() {
                        work.push(Work::Choose(e_tk, a_tk, path));
                    }
                }
                Work::Pair(e, a, path) => {
                    if !scalar_eq(&e, &a, self.mode) {
                        return self.fail(format!(
                            "{path}: expected {}, got {}",
                            show(&e),
                            show(&a)
                        ));
                    }
                }
                Work::Choose(mut e, a, path) => {
                    let Some((ek, ev)) = e.pop() else { continue };
                    for i in 0..a.len() {
                        let mark = self.trail.len();
                        let mut rest = a.clone();
                        let (ak, av) = rest.swap_remove(i);
                        let mut w2 = work.clone();
                        w2.push(Work::Choose(e.clone(), rest, path.clone()));
                        w2.push(Work::Pair(
                            ev.clone(),
                            av,
                            format!("{path}[<table key {}>]", show(&ek)),
                        ));
                        w2.push(Work::Pair(
                            ek.clone(),
                            ak,
                            format!("{path}<table key {}>", show(&ek)),
                        ));
                        if self.solve(w2) {
                            return true;
                        }
                        self.undo(mark);
                    }
                    let msg = format!(
                        "{path}: no actual table key matches {} ({})",
                        show(&ek),
                        self.err
                    );
                    return self.fail(msg);
                }
            }
        }
        true
    }
}

/// `Ok` when `act` equals `exp` exactly: scalars by `scalar_eq`, tables by a consistent
/// bijection between the table indices reachable from the roots.
pub fn compare(exp: &Graph, act: &Graph, mode: NumMode) -> Result<(), String> {
    let mut m = Matcher {
        exp,
        act,
        mode,
        e2a: vec![None; exp.tables.len()],
        a2e: vec![None; act.tables.len()],
        trail: Vec::new(),
        index: vec![None; act.tables.len()],
        err: String::new(),
        steps: 0,
    };
    if m.solve(vec![Work::Pair(
        exp.root.clone(),
        act.root.clone(),
        "value".into(),
    )]) {
        Ok(())
    } else {
        Err(m.err)
    }
}

// ---------------------------------------------------------------------------------------------
// Guarded parsing

pub enum Guarded {
    Done(Result<TreeBuilder, ParseError>),
    Panicked(String),
    TimedOut,
}

/// Parses on its own thread with a small stack (proves there is no deep native recursion) and
/// gives up waiting after `timeout` (a hang guard: the thread is left behind).
pub fn parse_guarded(
    text: Vec<u8>,
    integers: bool,
    limits: LoadLimits,
    stack: usize,
    timeout: Duration,
) -> (Guarded, Duration) {
    let (tx, rx) = mpsc::channel();
    let start = Instant::now();
    let spawned = std::thread::Builder::new()
        .stack_size(stack)
        .spawn(move || {
            let r = std::panic::catch_unwind(move || {
                let mut b = TreeBuilder::new(integers);
                parse(&text, &limits, &mut b).map(|()| b)
            });
            let _ = tx.send(r);
        });
    if let Err(e) = spawned {
        return (
            Guarded::Panicked(format!("could not spawn: {e}")),
            start.elapsed(),
        );
    }
    let out = match rx.recv_timeout(timeout) {
        Ok(Ok(r)) => Guarded::Done(r),
        Ok(Err(p)) => Guarded::Panicked(panic_text(&p)),
        Err(mpsc::RecvTimeoutError::Timeout) => Guarded::TimedOut,
        // The thread died without sending: a stack overflow aborts the process instead, so
        // this is a panic that escaped catch_unwind.
        Err(mpsc::RecvTimeoutError::Disconnected) => Guarded::Panicked("thread died".into()),
    };
    (out, start.elapsed())
}

pub fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic".into()
    }
}

/// Parses on the current thread: the graph, or the error.
pub fn parse_graph(text: &[u8], integers: bool) -> Result<Graph, String> {
    let mut b = TreeBuilder::new(integers);
    match parse(text, &LoadLimits::default(), &mut b) {
        Ok(()) => Graph::from_tree(&b),
        Err(e) => Err(format!("parse error: {e}")),
    }
}

/// The first `n` bytes of a text, printable, for failure reports.
pub fn head(text: &[u8], n: usize) -> String {
    let mut s = String::new();
    for &c in &text[..text.len().min(n)] {
        match c {
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(c as char),
            _ => {
                let _ = write!(s, "\\x{c:02x}");
            }
        }
    }
    if text.len() > n {
        let _ = write!(s, "...({} bytes)", text.len());
    }
    s
}

// ---------------------------------------------------------------------------------------------
// A model of value graphs and a test-only writer for them

/// A value in a generated graph; `T(i)` refers to `Model::tables[i]`.
#[derive(Debug, Clone, PartialEq)]
pub enum GV {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Vec<u8>),
    T(usize),
}

#[derive(Debug, Clone, Default)]
pub struct GTable {
    /// Positional constructor items; `Nil` is a hole.
    pub pos: Vec<GV>,
    /// Keyed entries; keys are unique and never collide with `1..=pos.len()`.
    pub keyed: Vec<(GV, GV)>,
}

#[derive(Debug, Clone)]
pub struct Model {
    pub root: GV,
    pub tables: Vec<GTable>,
    /// Tables to pre-create in the chunk's `__` even when referenced only once.
    pub force_shared: Vec<bool>,
}

/// The key Lua stores: integral floats become integers (5.3+); NaN and nil are not keys.
fn normalize_key(k: &GV, integers: bool) -> Option<GV> {
    match k {
        GV::Nil => None,
        GV::Float(f) if f.is_nan() => None,
        GV::Float(f)
            if integers
                && f.fract() == 0.0
                && *f >= -9.223_372_036_854_776e18
                && *f < 9.223_372_036_854_776e18 =>
        {
            Some(GV::Int(*f as i64))
        }
        GV::Int(i) if !integers => Some(GV::Float(*i as f64)),
        GV::Float(f) if !integers && *f == 0.0 => Some(GV::Float(0.0)),
        other => Some(other.clone()),
    }
}

fn num_to_double(v: GV) -> GV {
    match v {
        GV::Int(i) => GV::Float(i as f64),
        other => other,
    }
}

fn key_id(k: &GV) -> String {
    match k {
        GV::Float(f) => format!("f{}", f.to_bits()),
        other => format!("{other:?}"),
    }
}

impl Model {
    /// Makes the model valid for `integers` (or doubles-only) Lua: numbers are doubles when
    /// `!integers`, keys are normalized and unique and never collide with positional indices,
    /// NaN/nil keys are dropped, table references are in range.
    pub fn sanitize(mut self, integers: bool) -> Model {
        let n = self.tables.len();
        let fix = |v: GV| -> GV {
            let v = if integers { v } else { num_to_double(v) };
            match v {
                GV::T(i) => GV::T(i % n),
                other => other,
            }
        };
        self.root = fix(self.root.clone());
        self.force_shared.resize(n, false);
        for t in &mut self.tables {
            t.pos = t.pos.drain(..).map(fix).collect();
            let mut seen = std::collections::HashSet::new();
            let npos = t.pos.len() as i64;
            let mut keyed = Vec::new();
            for (k, v) in t.keyed.drain(..) {
                let Some(k) = normalize_key(&fix(k), integers) else {
                    continue;
                };
                let in_pos = match k {
                    GV::Int(i) => (1..=npos).contains(&i),
                    GV::Float(f) => f.fract() == 0.0 && f >= 1.0 && f <= npos as f64,
                    _ => false,
                };
                if in_pos || !seen.insert(key_id(&k)) {
                    continue;
                }
                keyed.push((k, fix(v)));
            }
            t.keyed = keyed;
        }
        self
    }

    fn refs_of(t: &GTable) -> impl Iterator<Item = usize> + '_ {
        t.pos
            .iter()
            .chain(t.keyed.iter().flat_map(|(k, v)| [k, v]))
            .filter_map(|v| if let GV::T(i) = v { Some(*i) } else { None })
    }

    /// Which tables must be pre-created in `__`: reachable ones referenced more than once
    /// (the root reference counts), and forced ones. `None` for unreachable tables.
    pub fn shared(&self) -> Vec<Option<bool>> {
        let n = self.tables.len();
        let mut reach = vec![false; n];
        let mut count = vec![0usize; n];
        let mut stack = Vec::new();
        if let GV::T(r) = self.root {
            count[r] += 1;
            reach[r] = true;
            stack.push(r);
        }
        while let Some(i) = stack.pop() {
            for j in Self::refs_of(&self.tables[i]) {
                count[j] += 1;
                if !reach[j] {
                    reach[j] = true;
                    stack.push(j);
                }
            }
        }
        (0..n)
            .map(|i| reach[i].then(|| count[i] >= 2 || self.force_shared[i]))
            .collect()
    }

    /// The graph Lua would build from the written text.
    pub fn expected(&self) -> Graph {
        let conv = |v: &GV| -> Val {
            match v {
                GV::Nil => Val::Nil,
                GV::Bool(b) => Val::Bool(*b),
                GV::Int(i) => Val::Int(*i),
                GV::Float(f) => Val::Float(*f),
                GV::Str(s) => Val::Str(s.clone()),
                GV::T(i) => Val::Table(*i),
            }
        };
        let tables = self
            .tables
            .iter()
            .map(|t| {
                let mut entries = Vec::new();
                for (i, v) in t.pos.iter().enumerate() {
                    if *v != GV::Nil {
                        entries.push((Val::Int(i as i64 + 1), conv(v)));
                    }
                }
                for (k, v) in &t.keyed {
                    if *v != GV::Nil {
                        entries.push((conv(k), conv(v)));
                    }
                }
                entries
            })
            .collect();
        Graph {
            root: conv(&self.root),
            tables,
        }
    }

    /// Text for the model: a plain constructor when no table is shared, else the chunk form
    /// `do local __={{},{}};__[1][k]=v;...;local _=<root>;return _;end`.
    pub fn write(&self, integers: bool) -> Vec<u8> {
        let shared = self.shared();
        let mut slot = vec![None; self.tables.len()];
        let mut order = Vec::new();
        for (i, s) in shared.iter().enumerate() {
            if *s == Some(true) {
                slot[i] = Some(order.len() + 1);
                order.push(i);
            }
        }
        let mut w = Writer::new(integers);
        if order.is_empty() {
            self.value(&mut w, &self.root, &slot);
            return w.out;
        }
        w.raw(b"do local __={");
        for _ in &order {
            w.raw(b"{},");
        }
        w.close_table();
        w.raw(b";");
        for (s, &i) in order.iter().enumerate() {
            let t = &self.tables[i];
            let target = |w: &mut Writer| {
                w.raw(b"__[");
                w.integer(s as i64 + 1);
                w.raw(b"]");
            };
            for (p, v) in t.pos.iter().enumerate() {
                if *v == GV::Nil {
                    continue;
                }
                target(&mut w);
                w.raw(b"[");
                w.integer(p as i64 + 1);
                w.raw(b"]=");
                self.value(&mut w, v, &slot);
                w.raw(b";");
            }
            for (k, v) in &t.keyed {
                target(&mut w);
                match k {
                    GV::Str(name) if is_identifier(name) => {
                        w.raw(b".");
                        w.raw(name);
                    }
                    _ => {
                        w.raw(b"[");
                        self.value(&mut w, k, &slot);
                        w.raw(b"]");
                    }
                }
                w.raw(b"=");
                self.value(&mut w, v, &slot);
                w.raw(b";");
            }
        }
        w.raw(b"local _=");
        self.value(&mut w, &self.root, &slot);
        w.raw(b";return _;end");
        w.out
    }

    fn value(&self, w: &mut Writer, v: &GV, slot: &[Option<usize>]) {
        match v {
            GV::Nil => w.nil(),
            GV::Bool(b) => w.boolean(*b),
            GV::Int(i) => w.integer(*i),
            GV::Float(f) => w.float(*f),
            GV::Str(s) => w.string(s),
            GV::T(i) => match slot[*i] {
                Some(s) => {
                    w.raw(b"__[");
                    w.integer(s as i64);
                    w.raw(b"]");
                }
                None => {
                    let t = &self.tables[*i];
                    w.open_table();
                    for p in &t.pos {
                        self.value(w, p, slot);
                        w.end_field();
                    }
                    for (k, val) in &t.keyed {
                        match k {
                            GV::Str(s) => w.string_key(s, is_identifier(s)),
                            _ => {
                                w.open_key();
                                self.value(w, k, slot);
                                w.close_key();
                            }
                        }
                        self.value(w, val, slot);
                        w.end_field();
                    }
                    w.close_table();
                }
            },
        }
    }
}
