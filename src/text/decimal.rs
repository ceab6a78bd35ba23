//! Exact decimal-to-double conversion for the short numerals writers produce (at most 19
//! digits, small exponents), without going through text again.

/// The double nearest to `mantissa * 10^exponent` (ties to even), for the decimal numerals
/// writers produce: at most 19 significant digits (`digits` counts the digits read, leading
/// zeros included, so the mantissa is exact) and a small exponent. `None` sends the caller to
/// the general float parser.
#[inline]
pub fn decimal_to_f64(mantissa: u64, digits: usize, exponent: i64) -> Option<f64> {
    const POWERS: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ];
    if digits > 19 {
        return None;
    }
    if mantissa < 1 << 53 && (-22..=22).contains(&exponent) {
        // Both operands are exact doubles, so the one operation rounds correctly.
        let m = mantissa as f64;
        let power = POWERS[exponent.unsigned_abs() as usize];
        return Some(if exponent < 0 { m / power } else { m * power });
    }
    if mantissa == 0 || !(-19..=19).contains(&exponent) {
        return None;
    }
    let power = 10u64.pow(exponent.unsigned_abs() as u32);
    if exponent >= 0 {
        // An integer below 2^128: round it to 53 bits.
        return Some(round_to_double(
            u128::from(mantissa) * u128::from(power),
            false,
            0,
        ));
    }
    let n = exponent.unsigned_abs() as i32;
    if let Some(v) = divide_by_power_of_ten(mantissa, n) {
        return Some(v);
    }
    // Exact or within a hair of a rounding boundary: divide. mantissa / 10^n, scaled up by
    // 2^shift so that the quotient keeps at least 64 bits; the remainder says whether anything
    // was cut off below them.
    let shift = 64 + mantissa.leading_zeros() as i32;
    let numerator = u128::from(mantissa << mantissa.leading_zeros()) << 64;
    let divisor = u128::from(power);
    let quotient = numerator / divisor;
    let inexact = numerator % divisor != 0;
    Some(round_to_double(quotient, inexact, -shift))
}

/// `2^(127 + b) / 5^n` rounded up, with `b` the bit length of `5^n`: a 128-bit reciprocal
/// with its top bit set, for `n` in 1..=19 (index 0 is unused).
static FIVE_RECIPROCALS: [(u128, i32); 20] = {
    let mut table = [(0u128, 0i32); 20];
    let mut n = 1;
    while n < 20 {
        let divisor = 5u64.pow(n as u32);
        let b = 64 - divisor.leading_zeros();
        // Long division of 2^(127 + b), one bit at a time; the remainder stays below 5^19.
        let mut quotient = 0u128;
        let mut remainder = 0u64;
        let mut bit = 0;
        while bit <= 127 + b {
            remainder = remainder * 2 + if bit == 0 { 1 } else { 0 };
            quotient <<= 1;
            if remainder >= divisor {
                remainder -= divisor;
                quotient |= 1;
            }
            bit += 1;
        }
        // 5^n never divides a power of two, so rounding up always adds one.
        table[n] = (quotient + 1, b as i32);
        n += 1;
    }
    table
};

/// `mantissa / 10^n` rounded to the nearest double by multiplying with a 128-bit reciprocal
/// (a hardware-free u128 division costs several times more). `None` when the product lands
/// too close to a rounding boundary to decide, which covers every quotient exact in 54
/// bits (ties between two doubles among them).
#[inline]
fn divide_by_power_of_ten(mantissa: u64, n: i32) -> Option<f64> {
    let (reciprocal, b) = FIVE_RECIPROCALS[n as usize];
    let lz = mantissa.leading_zeros() as i32;
    let w = u128::from(mantissa << lz);
    // The top 128 bits of the 192-bit product w * reciprocal. It exceeds the exact value
    // w * 2^(127+b) / 5^n by less than 2^64, one unit of `top`'s lowest bit.
    let high = w * (reciprocal >> 64);
    let low = w * u128::from(reciprocal as u64);
    let top = high + (low >> 64);
    // `top` has 127 or 128 bits; 54 of them are the mantissa and the rounding bit. If the bits
    // below are at least 2, subtracting that error can change neither the rounding nor the
    // fact that something non-zero lies below the rounding bit.
    let below = 128 - top.leading_zeros() as i32 - 54;
    if top & ((1u128 << below) - 1) <= 1 {
        return None;
    }
    // value = top * 2^64 / 2^(127 + b) / 2^lz / 2^n
    Some(round_to_double(top, true, 64 - 127 - b - lz - n))
}

/// `value * 2^scale` rounded to the nearest double, ties to even; `inexact` means the true
/// value is a little above `value` (bits were cut off below it). The result must be a normal
/// double, which holds for the callers' range (about 1e-19 to 1e38).
fn round_to_double(value: u128, inexact: bool, scale: i32) -> f64 {
    let bits = 128 - value.leading_zeros() as i32;
    if bits <= 53 {
        // Exact in 53 bits (and then nothing was cut off that could matter: callers only pass
        // `inexact` with 64 or more bits).
        return value as f64 * pow2(scale);
    }
    let drop = bits - 53;
    let mut kept = (value >> drop) as u64;
    let rest = value & ((1u128 << drop) - 1);
    let half = 1u128 << (drop - 1);
    if rest > half || (rest == half && (inexact || kept & 1 == 1)) {
        kept += 1;
    }
    // A carry into bit 53 (kept == 2^53) is still exact as a double.
    kept as f64 * pow2(scale + drop)
}

/// 2^e for a normal exponent.
fn pow2(e: i32) -> f64 {
    debug_assert!((-1022..=1023).contains(&e));
    f64::from_bits(((1023 + e) as u64) << 52)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Digits of `m` as a writer would print them (no leading zeros).
    fn digit_count(m: u64) -> usize {
        m.to_string().len()
    }

    fn check_decimal(m: u64, e: i64) {
        let text = format!("{m}e{e}");
        let expected: f64 = text.parse().expect("valid float text");
        if let Some(v) = decimal_to_f64(m, digit_count(m), e) {
            assert_eq!(v.to_bits(), expected.to_bits(), "{text}");
        }
    }

    #[test]
    fn quotients_near_rounding_boundaries_leave_the_reciprocal_path() {
        // Quotients exact in 54 bits, ties between two doubles included: k * 5^n / 10^n is
        // k / 2^n. (2^54 + 1) has 55 bits: exact, yet clear of any boundary.
        for n in 1..=19i32 {
            let five = 5u64.pow(n as u32);
            for k in [1u64, 3, (1 << 53) + 1, (1 << 53) - 1, 12345, (1 << 54) + 1] {
                let Some(m) = k.checked_mul(five).filter(|&m| m < 10u64.pow(19)) else {
                    continue;
                };
                if k < 1 << 54 {
                    assert_eq!(divide_by_power_of_ten(m, n), None, "{m}e-{n}");
                }
                check_decimal(m, -i64::from(n));
            }
        }
        // An everyday ryu-style float takes it.
        let v = divide_by_power_of_ten(47_319_183_873_437_913, 14);
        assert_eq!(v, Some(473.191_838_734_379_13));
    }

    #[test]
    fn decimal_to_f64_rounds_like_the_full_parser() {
        let mut x: u64 = 7;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..1_000_000 {
            let r = next();
            // Mantissas of every length up to 19 digits, exponents across the fast range.
            let m = r % 10u64.pow((next() % 19 + 1) as u32);
            let e = (next() % 41) as i64 - 20;
            check_decimal(m, e);
        }
        // Exact ties between two doubles must round to the even one, in both paths.
        for k in 0..64u64 {
            for j in 0..10 {
                let tie = ((1u64 << 53) + 2 * k + 1) << j;
                check_decimal(tie, 0);
                if let Some(m) = tie.checked_mul(10) {
                    check_decimal(m, -1);
                }
                check_decimal(tie - 1, 0);
                check_decimal(tie + 1, 0);
            }
        }
        // Shortest round-trip texts of random doubles: what a shortest-form writer produces.
        let mut exercised = 0;
        for i in 0..200_000 {
            let scale = 10f64.powi((i % 30) - 10);
            let v = (next() >> 11) as f64 / (1u64 << 53) as f64 * scale;
            if v == 0.0 {
                continue;
            }
            let text = ryu::Buffer::new().format_finite(v).to_string();
            let (mantissa, exponent) = match text.split_once('e') {
                Some((a, b)) => (a.to_string(), b.parse::<i64>().expect("exponent")),
                None => (text.clone(), 0),
            };
            let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((&mantissa, ""));
            let digits = format!("{int_part}{frac_part}");
            if digits.len() > 19 {
                continue;
            }
            let m: u64 = digits.parse().expect("digits");
            let e = exponent - frac_part.len() as i64;
            if let Some(got) = decimal_to_f64(m, digits.len(), e) {
                assert_eq!(got.to_bits(), v.to_bits(), "{text}");
                exercised += 1;
            }
        }
        assert!(
            exercised > 150_000,
            "only {exercised} texts took the fast paths"
        );
    }
}
