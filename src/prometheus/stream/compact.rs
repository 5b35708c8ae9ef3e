//! A fast reader for one series of `data.result` in the shape Prometheus writes:
//! `{"metric":{"name":"value",...},"values":[[1700000000.5,"0.25"],...]}`, with or without
//! whitespace, the two keys in either order.
//!
//! Why: even from a slice, serde_json spent 60% of `check`'s CPU on the samples of a 71 MB answer
//! (about 85 ns a sample: a sequence visitor per pair, a string borrowed and UTF-8-checked per
//! value, then the float parsed). A sample here is two scans and a float parse. Why by hand:
//! it is a reader of one fixed, tiny grammar; a general parser is what it is a shortcut past.
//!
//! It accepts a strict subset of JSON: anything else (an escape in a string, another key, an
//! exponent, a number with a leading zero, a time or value out of range) answers
//! [`Read::Other`], and the caller lets serde_json read the element instead, which parses it or
//! says what is wrong. A series the input ends inside answers [`Read::Cut`]: the caller carries
//! it, and reads it once it is whole.
//! So for any input it either agrees with serde_json or defers to it; the tests in
//! `super::super::matrix` check both readers on random bodies.

use super::sample::{sample_value, Quoted, Stamp};
use super::Row;
use crate::engine::series::Labels;

/// What the start of an input holds.
pub enum Read {
    /// A series, and the bytes it took.
    Series(Row, usize),
    /// The input ends inside what may be a series in this shape (or only with a byte the shape
    /// does not allow: read whole, serde_json says).
    Cut,
    /// Something this reader does not know.
    Other,
}

/// The series at the start of `input`.
pub fn series(input: &[u8]) -> Read {
    let mut c = Cursor { s: input, i: 0 };
    match c.series() {
        Some((row, used)) => Read::Series(row, used),
        None if c.i >= input.len() => Read::Cut,
        None => Read::Other,
    }
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn series(&mut self) -> Option<(Row, usize)> {
        let c = self;
        let (mut labels, mut samples) = (None, None);
        c.eat(b'{')?;
        loop {
            match c.string()? {
                "metric" if labels.is_none() => {
                    c.eat(b':')?;
                    labels = Some(c.labels()?);
                }
                "values" if samples.is_none() => {
                    c.eat(b':')?;
                    samples = Some(c.samples()?);
                }
                _ => return None,
            }
            match c.next()? {
                b',' => {}
                b'}' => break,
                _ => return None,
            }
        }
        let row = Row::Series {
            labels: labels.unwrap_or_default(),
            samples: samples.unwrap_or_default(),
        };
        Some((row, c.i))
    }

    /// The next byte that is not whitespace, consumed.
    fn next(&mut self) -> Option<u8> {
        while let Some(&b) = self.s.get(self.i) {
            self.i += 1;
            if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                return Some(b);
            }
        }
        None
    }

    fn eat(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    /// A string without escapes or control characters.
    fn string(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.raw_string()?).ok()
    }

    /// The bytes of a string without escapes or control characters.
    fn raw_string(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            match *self.s.get(self.i)? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => self.i += 1,
            }
        }
        self.i += 1;
        Some(&self.s[start..self.i - 1])
    }

    /// `{"name":"value",...}`
    fn labels(&mut self) -> Option<Labels> {
        let mut labels = Labels::new();
        self.eat(b'{')?;
        if self.peek_is(b'}') {
            return Some(labels);
        }
        loop {
            let name = self.string()?;
            self.eat(b':')?;
            let value = self.string()?;
            labels.insert(name.to_string(), value.to_string());
            match self.next()? {
                b',' => {}
                b'}' => return Some(labels),
                _ => return None,
            }
        }
    }

    /// `[[t,"v"],...]`
    fn samples(&mut self) -> Option<Vec<(Stamp, Quoted)>> {
        let mut samples = Vec::new();
        self.eat(b'[')?;
        if self.peek_is(b']') {
            return Some(samples);
        }
        loop {
            self.eat(b'[')?;
            let ts = Stamp::new(self.number()?)?;
            self.eat(b',')?;
            let value = float(self.raw_string()?)?;
            self.eat(b']')?;
            samples.push((ts, Quoted(value)));
            match self.next()? {
                b',' => {}
                b']' => return Some(samples),
                _ => return None,
            }
        }
    }

    /// Consumes `want` if it is the next byte that is not whitespace.
    fn peek_is(&mut self, want: u8) -> bool {
        let at = self.i;
        if self.next() == Some(want) {
            return true;
        }
        self.i = at;
        false
    }

    /// A JSON number without exponent: `-?(0|[1-9][0-9]*)(\.[0-9]+)?`, followed by a delimiter.
    fn number(&mut self) -> Option<f64> {
        self.next()?;
        let start = self.i - 1;
        self.i = start + usize::from(self.s[start] == b'-');
        let digits = |c: &mut Cursor| {
            let from = c.i;
            while c.s.get(c.i).is_some_and(u8::is_ascii_digit) {
                c.i += 1;
            }
            c.i - from
        };
        let first = self.s.get(self.i).copied();
        let whole = digits(self);
        if whole == 0 || (first == Some(b'0') && whole > 1) {
            return None;
        }
        if self.s.get(self.i) == Some(&b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return None;
            }
        }
        // An exponent, or the chunk ends inside the number: serde_json decides.
        if matches!(self.s.get(self.i), None | Some(b'e' | b'E')) {
            return None;
        }
        float(&self.s[start..self.i])
    }
}

/// The float `text` (a sample value, or a JSON number already checked) spells, as
/// `str::parse::<f64>` reads it. The common case, at most 15 digits with a point somewhere, is
/// one division of two exact floats, so correctly rounded like `str::parse` (Clinger's fast path,
/// which `str::parse` also takes first); anything else goes to `str::parse`.
fn float(text: &[u8]) -> Option<f64> {
    const POW10: [f64; 16] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    // At most 15 digits and a point: the mantissa is below 2^53, the divisor at most 1e15.
    if digits.is_empty() || digits.len() > 16 {
        return parse(text);
    }
    let (mut mantissa, mut point) = (0u64, None);
    for (i, &b) in digits.iter().enumerate() {
        match b {
            b'0'..=b'9' => mantissa = mantissa * 10 + u64::from(b - b'0'),
            b'.' if point.is_none() => point = Some(i),
            _ => return parse(text),
        }
    }
    let scale = match point {
        None if digits.len() <= 15 => 0,
        Some(at) if digits.len() > 1 => digits.len() - 1 - at,
        _ => return parse(text),
    };
    let magnitude = mantissa as f64 / POW10[scale];
    Some(if negative { -magnitude } else { magnitude })
}

fn parse(text: &[u8]) -> Option<f64> {
    sample_value(std::str::from_utf8(text).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_read_as_str_parse_reads_them() {
        let mut rng = fastrand::Rng::with_seed(8);
        let mut texts: Vec<String> = [
            "0", "-0", "1.", ".5", "-.5", ".", "-", "", "1e3", "NaN", "+Inf", "1.2.3",
        ]
        .map(String::from)
        .into();
        for _ in 0..20_000 {
            let digits: String = (0..rng.usize(1..19)).map(|_| rng.digit(10)).collect();
            let at = rng.usize(0..=digits.len());
            let sign = if rng.bool() { "-" } else { "" };
            texts.push(format!("{sign}{}.{}", &digits[..at], &digits[at..]));
            texts.push(format!("{sign}{digits}"));
        }
        for text in texts {
            let want = text.parse::<f64>().ok();
            let got = float(text.as_bytes());
            assert_eq!(got.map(f64::to_bits), want.map(f64::to_bits), "{text:?}");
        }
    }
}
