//! Lua numerals: reading them with Lua 5.3+ rules (or 5.1 rules where every number is a
//! double) and writing numbers so that every Lua version reads back the same value.

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    pub fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    /// The integer this number holds: an integer, or a float with an integral value small
    /// enough to be exact.
    pub fn as_integer(self) -> Option<i64> {
        match self {
            Num::Int(i) => Some(i),
            Num::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(f as i64),
            Num::Float(_) => None,
        }
    }
}

impl std::ops::Neg for Num {
    type Output = Num;

    /// Lua's unary minus: integers wrap, floats flip the sign bit.
    fn neg(self) -> Num {
        match self {
            Num::Int(i) => Num::Int(i.wrapping_neg()),
            Num::Float(f) => Num::Float(-f),
        }
    }
}

/// Reads a whole numeral. `None` when Lua would call it malformed.
pub fn parse_numeral(text: &[u8], has_integers: bool) -> Option<Num> {
    if text.len() > 2 && text[0] == b'0' && (text[1] | 0x20) == b'x' {
        return parse_hex(&text[2..], has_integers);
    }
    if text.iter().all(u8::is_ascii_digit) {
        if has_integers {
            let mut v: u64 = 0;
            let mut fits = true;
            for &d in text {
                match v
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(u64::from(d - b'0')))
                {
                    Some(n) if n <= i64::MAX as u64 => v = n,
                    _ => {
                        fits = false;
                        break;
                    }
                }
            }
            if fits {
                return Some(Num::Int(v as i64));
            }
        } else if text.len() <= 15 {
            // Exact in a double; skips the float parser for the common case.
            let v = text.iter().fold(0u64, |v, &d| v * 10 + u64::from(d - b'0'));
            return Some(Num::Float(v as f64));
        }
    }
    // The float grammar: digits [. digits] [e [sign] digits], with at least one digit.
    let mut i = 0;
    let digits = |i: &mut usize| {
        let s = *i;
        while text.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - s
    };
    let mut mantissa = digits(&mut i);
    if text.get(i) == Some(&b'.') {
        i += 1;
        mantissa += digits(&mut i);
    }
    if mantissa == 0 {
        return None;
    }
    if matches!(text.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(text.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return None;
        }
    }
    if i != text.len() {
        return None;
    }
    // Only ASCII digits, '.', 'e' and signs remain: valid UTF-8 and Rust's grammar.
    let s = std::str::from_utf8(text).ok()?;
    s.parse::<f64>().ok().map(Num::Float)
}

fn parse_hex(body: &[u8], has_integers: bool) -> Option<Num> {
    if body.iter().all(u8::is_ascii_hexdigit) {
        // Lua 5.3+ hex integers wrap around modulo 2^64.
        let v = body.iter().fold(0u64, |v, &d| (v << 4) | hex_value(d));
        return Some(if has_integers {
            Num::Int(v as i64)
        } else {
            Num::Float(hex_float(body, 0))
        });
    }
    let (mant, exp) = match body.iter().position(|&c| c | 0x20 == b'p') {
        Some(p) => (&body[..p], Some(&body[p + 1..])),
        None => (body, None),
    };
    let (int_part, frac_part) = match mant.iter().position(|&c| c == b'.') {
        Some(d) => (&mant[..d], &mant[d + 1..]),
        None => (mant, &mant[mant.len()..]),
    };
    let all_hex = |s: &[u8]| s.iter().all(u8::is_ascii_hexdigit);
    if int_part.len() + frac_part.len() == 0 || !all_hex(int_part) || !all_hex(frac_part) {
        return None;
    }
    let mut exp2: i64 = 0;
    if let Some(e) = exp {
        let (neg, digits) = match e.first() {
            Some(b'-') => (true, &e[1..]),
            Some(b'+') => (false, &e[1..]),
            _ => (false, e),
        };
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let v = digits
            .iter()
            .fold(0i64, |v, &d| (v * 10 + i64::from(d - b'0')).min(1 << 20));
        exp2 = if neg { -v } else { v };
    }
    let mut digits = Vec::with_capacity(int_part.len() + frac_part.len());
    digits.extend_from_slice(int_part);
    digits.extend_from_slice(frac_part);
    Some(Num::Float(hex_float(
        &digits,
        exp2 - 4 * frac_part.len() as i64,
    )))
}

fn hex_value(d: u8) -> u64 {
    (d as char).to_digit(16).unwrap_or(0) as u64
}

/// value = hexdigits * 2^exp2, rounded once to the nearest double (ties to even), as
/// `strtod` does. The first 15 significant hex digits (60 bits) are kept exactly; any
/// non-zero digit after them only breaks a tie, which is all it can change.
fn hex_float(digits: &[u8], mut exp2: i64) -> f64 {
    let mut m: u64 = 0;
    let mut used = 0;
    let mut sticky = false;
    for &d in digits.iter().skip_while(|&&d| d == b'0') {
        if used < 15 {
            m = (m << 4) | hex_value(d);
            used += 1;
        } else {
            exp2 += 4;
            sticky |= d != b'0';
        }
    }
    if m == 0 {
        return 0.0;
    }
    let exp2 = exp2.clamp(-2200, 2200);
    let bits = i64::from(64 - m.leading_zeros());
    // Bits the result can hold: 53, fewer for subnormals (the last one is worth 2^-1074).
    let top = exp2 + bits - 1;
    let keep = (top + 1075).min(53);
    if keep < 0 {
        return 0.0; // below half the smallest subnormal
    }
    let shift = bits - keep;
    let (q, scale) = if shift > 0 {
        let dropped = m & ((1u64 << shift) - 1);
        let half = 1u64 << (shift - 1);
        let q = m >> shift;
        let up = dropped > half || (dropped == half && (sticky || q & 1 == 1));
        (q + u64::from(up), exp2 + shift)
    } else {
        (m, exp2)
    };
    if q == 0 {
        return 0.0;
    }
    // q < 2^54 converts exactly, and q * 2^scale is representable (or overflows to inf):
    // scaling in two steps keeps each factor finite.
    let scale = scale as i32;
    let half = scale / 2;
    q as f64 * 2f64.powi(half) * 2f64.powi(scale - half)
}

/// Appends an integer in decimal; `i64::MIN` as `-0x8000000000000000`, because its decimal
/// form is read by Lua 5.3+ as a float (the literal without the sign overflows).
pub fn write_int(out: &mut Vec<u8>, v: i64) {
    if v == i64::MIN {
        out.extend_from_slice(b"-0x8000000000000000");
        return;
    }
    // Straight into the vector: a sign and at most 19 digits.
    out.reserve(20);
    let len = out.len();
    // SAFETY: 20 bytes of spare capacity were reserved; `set_len` covers the bytes written.
    unsafe {
        let mut at = out.as_mut_ptr().add(len);
        if v < 0 {
            *at = b'-';
            at = at.add(1);
        }
        let digits = write_digits(at, v.unsigned_abs());
        out.set_len(len + usize::from(v < 0) + digits);
    }
}

/// Two-digit pairs "00" to "99".
static DIGIT_PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

/// Writes `v` in decimal at `dst` and returns the digit count.
///
/// # Safety
/// `dst` must have room for 20 bytes.
#[inline]
unsafe fn write_digits(dst: *mut u8, mut v: u64) -> usize {
    let len = decimal_len(v);
    let mut end = len;
    while v >= 100 {
        let pair = (v % 100) as usize;
        v /= 100;
        end -= 2;
        std::ptr::copy_nonoverlapping(DIGIT_PAIRS.as_ptr().add(2 * pair), dst.add(end), 2);
    }
    if v >= 10 {
        std::ptr::copy_nonoverlapping(DIGIT_PAIRS.as_ptr().add(2 * v as usize), dst, 2);
    } else {
        *dst = b'0' + v as u8;
    }
    len
}

/// Number of decimal digits of `v` (1 for 0), without a loop: the bit length gives the
/// count or one more, and one comparison with a power of ten decides.
fn decimal_len(v: u64) -> usize {
    static POWERS_OF_TEN: [u64; 20] = {
        let mut t = [1u64; 20];
        let mut i = 1;
        while i < 20 {
            t[i] = t[i - 1] * 10;
            i += 1;
        }
        t
    };
    // `| 1` keeps 0 at one digit and changes no comparison below (the powers from 10 up
    // are even).
    let x = v | 1;
    let bits = 64 - x.leading_zeros() as usize;
    // 1233 / 4096 is just above log10(2), so this is floor(log10(x)) or one more (exact
    // for bits <= 64); the digit count is one more than floor(log10(x)).
    let estimate = (bits * 1233) >> 12;
    estimate + usize::from(x >= POWERS_OF_TEN[estimate])
}

/// Appends a float so that Lua 5.3+ reads it back as the same float (subtype included).
/// Non-finite values use the forms serpent writes; negative zero uses `-1/(1/0)`, because
/// Lua 5.1 folds a `-0.0` literal into the same constant slot as a `0` in the same chunk.
pub fn write_float(out: &mut Vec<u8>, v: f64) {
    if v.is_nan() {
        out.extend_from_slice(b"0/0");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"1/0" } else { b"-1/0" });
    } else if v == 0.0 && v.is_sign_negative() {
        out.extend_from_slice(b"-1/(1/0)");
    } else {
        // zmij writes the shortest text that reads back exactly, always with '.' or 'e'.
        let mut buf = zmij::Buffer::new();
        let text = buf.format_finite(v).as_bytes();
        // Large magnitudes come as `1e+16`: drop the '+', for the shorter form other writers use.
        let plus = if v.abs() >= 1e15 {
            text.iter().position(|&c| c == b'+')
        } else {
            None
        };
        match plus {
            Some(at) => {
                out.extend_from_slice(&text[..at]);
                out.extend_from_slice(&text[at + 1..]);
            }
            None => out.extend_from_slice(text),
        }
    }
}

/// For Lua versions without an integer subtype: integral doubles in the exact range are
/// written as integers, which is what the sending program meant and what 5.3+ peers expect.
pub fn write_double_untyped(out: &mut Vec<u8>, v: f64) {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if v.fract() == 0.0 && v.abs() <= EXACT && !(v == 0.0 && v.is_sign_negative()) {
        write_int(out, v as i64);
    } else {
        write_float(out, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(s: &str) -> Option<Num> {
        parse_numeral(s.as_bytes(), true)
    }

    #[test]
    fn decimal_len_at_every_power_boundary() {
        let mut probes = vec![0u64, 1, u64::MAX];
        for k in 0..64 {
            let p = 1u64 << k;
            probes.extend([p - 1, p, p + 1]);
        }
        let mut p = 1u64;
        for _ in 0..20 {
            probes.extend([p - 1, p, p + 1]);
            p = p.saturating_mul(10);
        }
        for v in probes {
            assert_eq!(decimal_len(v), v.to_string().len(), "{v}");
        }
    }

    #[test]
    fn decimal_integers_and_overflow() {
        assert_eq!(int("0"), Some(Num::Int(0)));
        assert_eq!(int("9223372036854775807"), Some(Num::Int(i64::MAX)));
        assert_eq!(
            int("9223372036854775808"),
            Some(Num::Float(9223372036854775808.0))
        );
        assert_eq!(parse_numeral(b"42", false), Some(Num::Float(42.0)));
    }

    #[test]
    fn hex_integers_wrap() {
        assert_eq!(int("0x10"), Some(Num::Int(16)));
        assert_eq!(int("0XfF"), Some(Num::Int(255)));
        assert_eq!(int("0x8000000000000000"), Some(Num::Int(i64::MIN)));
        assert_eq!(int("0xffffffffffffffff"), Some(Num::Int(-1)));
    }

    #[test]
    fn float_forms() {
        assert_eq!(int(".5"), Some(Num::Float(0.5)));
        assert_eq!(int("5."), Some(Num::Float(5.0)));
        assert_eq!(int("1E2"), Some(Num::Float(100.0)));
        assert_eq!(int("3e+0"), Some(Num::Float(3.0)));
        assert_eq!(int("1e-2"), Some(Num::Float(0.01)));
        assert_eq!(int("0x1p4"), Some(Num::Float(16.0)));
        assert_eq!(int("0xA.8p0"), Some(Num::Float(10.5)));
        assert_eq!(int("0x.1p4"), Some(Num::Float(1.0)));
    }

    #[test]
    fn hex_floats_round_once_to_nearest_even() {
        // Expected bits from Python's float.fromhex, an independent correctly rounded reader:
        // ties broken by digits past the 15th, ties to even, subnormals and their edges.
        for (text, bits) in [
            ("0x1.0000000000000801p0", 0x3ff0000000000001),
            ("0x1.000000000000080001p0", 0x3ff0000000000001),
            ("0x1.00000000000011p-1023", 0x0008000000000001),
            ("0x1.00000000000018p-1023", 0x0008000000000001),
            ("0x1.0000000000000800p0", 0x3ff0000000000000),
            ("0x1.0000000000001800p0", 0x3ff0000000000002),
            ("0x1.fffffffffffff8p0", 0x4000000000000000),
            ("0x1.fffffffffffff7ffffffp0", 0x3fffffffffffffff),
            ("0x1p-1074", 0x0000000000000001),
            ("0x1p-1075", 0x0000000000000000),
            ("0x1.0000000000001p-1075", 0x0000000000000001),
            ("0x1.8p-1075", 0x0000000000000001),
            ("0x1p-1076", 0x0000000000000000),
            ("0x1.fffffffffffffp1023", 0x7fefffffffffffff),
            ("0x1.fffffffffffff7ffp1023", 0x7fefffffffffffff),
            ("0x123456789abcdef0123p-20", 0x43323456789abcdf),
            ("0x0.000000000000000000001p0", 0x3ab0000000000000),
            ("0x.8", 0x3fe0000000000000),
            ("0xA.", 0x4024000000000000),
            ("0x1P-2", 0x3fd0000000000000),
            ("0x00000000000000000000000000001.8p3", 0x4028000000000000),
            ("0x1.ffffffffffffe8p-1023", 0x000fffffffffffff),
            ("0x3.ffffffffffffep-1024", 0x0010000000000000),
        ] {
            let got = parse_numeral(text.as_bytes(), true);
            assert_eq!(got, Some(Num::Float(f64::from_bits(bits))), "{text}");
        }
        assert_eq!(int("0x1p1024"), Some(Num::Float(f64::INFINITY)));
        assert_eq!(
            int("0x1.fffffffffffff8p1023"),
            Some(Num::Float(f64::INFINITY))
        );
    }

    #[test]
    fn malformed() {
        for bad in [
            "1e", "1e+", "1..2", "0x", "1a", "1_0", "0xp1", "3f", "1.2.3", "0x1p",
        ] {
            assert_eq!(int(bad), None, "{bad}");
        }
    }

    fn written(f: impl Fn(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn writes_forms_lua_reads_back() {
        assert_eq!(written(|o| write_int(o, i64::MIN)), "-0x8000000000000000");
        let mut x: u64 = 99;
        for shift in 0..64 {
            for v in [0i64, 1, 9, 10, 99, 100, i64::MAX, -1, -10, -100] {
                let v = v.wrapping_add((x >> shift) as i64);
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                if v != i64::MIN {
                    assert_eq!(written(|o| write_int(o, v)), v.to_string());
                }
            }
        }
        for p in 0..19 {
            let v = 10i64.pow(p);
            for w in [v - 1, v, v + 1, -v] {
                assert_eq!(written(|o| write_int(o, w)), w.to_string());
            }
        }
        assert_eq!(written(|o| write_int(o, -5)), "-5");
        assert_eq!(written(|o| write_float(o, 1.0)), "1.0");
        assert_eq!(written(|o| write_float(o, -0.0)), "-1/(1/0)");
        assert_eq!(written(|o| write_float(o, f64::NAN)), "0/0");
        assert_eq!(written(|o| write_float(o, f64::NEG_INFINITY)), "-1/0");
        assert_eq!(written(|o| write_float(o, 1e300)), "1e300");
        // Around the switch to exponent form, where the '+' is dropped.
        for v in [
            9.999999999999998e15,
            1e15,
            1e16,
            -1e16,
            1.25e16,
            1e-5,
            1e-300,
            5e-324,
        ] {
            assert_eq!(
                written(|o| write_float(o, v)),
                ryu::Buffer::new().format_finite(v),
                "{v:e}"
            );
        }
        assert_eq!(written(|o| write_double_untyped(o, 3.0)), "3");
        assert_eq!(
            written(|o| write_double_untyped(o, 2f64.powi(60))),
            "1.152921504606847e18"
        );
        assert_eq!(written(|o| write_double_untyped(o, -0.0)), "-1/(1/0)");
    }

    #[test]
    fn every_written_float_reads_back_exactly() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = f64::from_bits(x);
            if !v.is_finite() || v == 0.0 {
                continue;
            }
            let text = written(|o| write_float(o, v));
            // Byte for byte what earlier releases wrote (they used ryu).
            assert_eq!(text, ryu::Buffer::new().format_finite(v), "{v:e}");
            let body = text.strip_prefix('-').unwrap_or(&text);
            let back = parse_numeral(body.as_bytes(), true).unwrap();
            let back = if text.starts_with('-') { -back } else { back };
            assert_eq!(back, Num::Float(v), "{text}");
        }
    }
}
