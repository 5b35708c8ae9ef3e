//! A sample as an answer writes it, `[time, "value"]`: each half read, and refused when out of
//! the range Prometheus writes.

use std::fmt;

use serde::de::{Deserialize, Deserializer, Visitor};

/// A sample's time, in whole seconds as the grid counts them. Prometheus keeps milliseconds in
/// an i64, so a time past that range is no Prometheus answer, and refused before any step
/// arithmetic could overflow on it.
pub struct Stamp(pub i64);

impl Stamp {
    /// The most seconds a Prometheus timestamp can say, either side of 1970.
    const MAX: f64 = (i64::MAX / 1000) as f64;

    /// `seconds` rounded to the grid's, if Prometheus could have written it.
    pub fn new(seconds: f64) -> Option<Stamp> {
        let rounded = seconds.round();
        (rounded.abs() <= Stamp::MAX).then_some(Stamp(rounded as i64))
    }
}

impl<'de> Deserialize<'de> for Stamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let seconds = f64::deserialize(deserializer)?;
        Stamp::new(seconds)
            .ok_or_else(|| serde::de::Error::custom(format!("timestamp {seconds} is out of range")))
    }
}

/// A sample value: a float written as a JSON string ("1.5", "NaN", "+Inf"), parsed without
/// allocating the string.
pub struct Quoted(pub f64);

/// The float a sample value spells, as Prometheus writes them ("NaN", "+Inf" and "-Inf"
/// included); `None` if it is none, or a number too large for a float ("1e400"), which
/// Prometheus never writes and which would otherwise pass as infinite.
pub fn sample_value(text: &str) -> Option<f64> {
    let v: f64 = text.parse().ok()?;
    (v.is_finite() || !text.bytes().any(|b| b.is_ascii_digit())).then_some(v)
}

impl<'de> Deserialize<'de> for Quoted {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct QuotedVisitor;
        impl Visitor<'_> for QuotedVisitor {
            type Value = Quoted;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a float inside a JSON string")
            }

            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Quoted, E> {
                match sample_value(s) {
                    Some(v) => Ok(Quoted(v)),
                    None if s.parse::<f64>().is_ok() => {
                        Err(E::custom(format!("sample value {s:?} is out of range")))
                    }
                    None => Err(E::invalid_value(serde::de::Unexpected::Str(s), &self)),
                }
            }
        }
        deserializer.deserialize_str(QuotedVisitor)
    }
}
