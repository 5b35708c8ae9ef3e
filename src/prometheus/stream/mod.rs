//! Cuts a range-query answer, chunk by chunk as it arrives, into the series of its
//! `data.result` array, each parsed by serde_json from a slice, and the rest of the answer (the
//! envelope: status, errors, `resultType`, warnings...), kept with that array emptied for
//! [`super::answer`] to read once the body is complete.
//!
//! Why: serde_json reads a slice several times faster than an `io::Read`, which it takes a byte at
//! a time, copying every string into a scratch buffer (a profile of the reader version: 82% of
//! `check`'s CPU on a 71 MB answer was parsing). But the whole body as one slice costs its size in
//! memory, and grows with the answer. Here each series is parsed straight from the chunk holding
//! it; only a series that a chunk boundary cuts is copied, into a carry buffer, and parsed when
//! the next chunk completes it. Memory stays at the chunks in flight plus one series.
//!
//! Each series in the shape Prometheus writes is read by [`compact`], a shortcut that defers to
//! serde_json for anything else.
//!
//! Why by hand: a series' end is found by serde_json itself (a `StreamDeserializer` over the slice
//! says how many bytes the series took, and an end-of-input error means "cut by the chunk"), so
//! the only hand-written part is the scanner of the small envelope: it follows strings, escapes
//! and nesting depth to find where `data.result` opens, and validates nothing (serde_json parses
//! every byte it keeps). The push parsers that take chunks (`actson`, `json-event-parser`) turn
//! every number and string into an event: using them would mean a second tokenizer over the
//! 99% of the body that serde_json reads anyway, or hand-writing the answer's grammar over their
//! events instead of serde's visitors.

mod compact;

use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::engine::grid::Grid;
use crate::engine::series::{Labels, Window};

/// The answer read so far: the series on the grid, the envelope's bytes, and where the scanner is.
pub struct Stream {
    grid: Grid,
    /// Series in the answer, including those past the limit.
    returned: usize,
    max_series: usize,
    /// An element of `data.result` that is not a series object, as only a non-matrix answer has.
    not_series: bool,
    /// The answer without the elements of `data.result` (`"result":[]`).
    envelope: Vec<u8>,
    /// The start of an element that the last chunk cut.
    carry: Vec<u8>,
    scan: Scan,
    /// Inside `data.result`: what came last.
    in_result: Option<Last>,
    /// The first malformed series; nothing more is read after it.
    broken: Option<String>,
    /// The answer's top-level object has closed.
    closed: bool,
    /// Past the end of the answer, or it is not an object: the rest is not kept, and serde_json
    /// refuses what was.
    stopped: bool,
}

/// Where the envelope scanner stands. Depth 1 is inside the top-level object.
#[derive(Default)]
struct Scan {
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// Where the string being read starts in the envelope.
    string_start: usize,
    /// The last string closed at depth 1 was `"data"`, or at depth 2 `"result"`: the key of the
    /// value that follows, since in an object a value always comes right after its key.
    data_key: bool,
    result_key: bool,
    /// The object at depth 2 is `data`'s value.
    in_data: bool,
}

/// What came last inside `data.result`.
#[derive(Clone, Copy, PartialEq)]
enum Last {
    Open,
    Element,
    Comma,
}

/// The series of a complete answer.
pub struct Parts {
    pub grid: Grid,
    /// Series in the answer, including those past the limit.
    pub returned: usize,
    /// An element was not a series object.
    pub not_series: bool,
}

/// A carried element grows by at least this much per retry, then doubles.
const CARRY_STEP: usize = 4096;

impl Stream {
    pub fn new(window: Window, max_series: usize) -> Stream {
        Stream {
            grid: Grid::new(window),
            returned: 0,
            max_series,
            not_series: false,
            envelope: Vec::new(),
            carry: Vec::new(),
            scan: Scan::default(),
            in_result: None,
            broken: None,
            closed: false,
            stopped: false,
        }
    }

    /// Whether reading on is pointless: a series was malformed, or the body is not an answer.
    pub fn failed(&self) -> bool {
        self.broken.is_some() || self.stopped
    }

    /// Reads the next chunk of the body.
    pub fn feed(&mut self, chunk: &[u8]) {
        let mut pos = 0;
        // An element cut by the last chunk: extend it from this one until it parses.
        while !self.carry.is_empty() && pos < chunk.len() && !self.failed() {
            let before = self.carry.len();
            let take = before.max(CARRY_STEP).min(chunk.len() - pos);
            self.carry.extend_from_slice(&chunk[pos..pos + take]);
            pos += take;
            let carry = std::mem::take(&mut self.carry);
            let used = self.advance(&carry);
            if used >= before {
                // The cut element is done; the rest is this chunk's, read from the chunk itself.
                pos -= carry.len() - used;
            } else {
                self.carry = carry;
                self.carry.drain(..used);
            }
        }
        if self.carry.is_empty() && !self.failed() {
            let used = pos + self.advance(&chunk[pos..]);
            self.carry.extend_from_slice(&chunk[used..]);
        }
    }

    /// Once the body has ended: the answer with `data.result` emptied, for the envelope's own
    /// parser; or why a series in it is not JSON.
    pub fn envelope(&mut self) -> Result<Vec<u8>, String> {
        match &self.broken {
            Some(why) => Err(why.clone()),
            None if !self.carry.is_empty() => Err("the answer ends inside a series".into()),
            None => Ok(std::mem::take(&mut self.envelope)),
        }
    }

    /// The series read.
    pub fn finish(self) -> Parts {
        Parts {
            grid: self.grid,
            returned: self.returned,
            not_series: self.not_series,
        }
    }

    /// Whether the next series goes on the grid; past `max_series` series are only counted.
    pub fn keeps(&self) -> bool {
        self.returned < self.max_series
    }

    /// Counts an element of `data.result` past the limit.
    pub fn count(&mut self) {
        self.returned += 1;
    }

    /// Puts one element of `data.result` on the grid.
    pub fn push(&mut self, row: Row) {
        self.returned += 1;
        match row {
            Row::Series { labels, samples } => {
                let row = self.grid.add_series(labels);
                for (ts, v) in samples {
                    self.grid.set(row, ts.round() as i64, v.0);
                }
            }
            Row::Other => self.not_series = true,
        }
    }

    /// Reads what it can of `input`; answers how many bytes it used. It stops early only before
    /// an element that `input` does not hold whole.
    fn advance(&mut self, input: &[u8]) -> usize {
        let mut i = 0;
        while i < input.len() && !self.failed() {
            let b = input[i];
            let Some(last) = self.in_result else {
                i += 1;
                self.envelope.push(b);
                self.in_result = self.envelope_byte(b).then_some(Last::Open);
                continue;
            };
            match (b, last) {
                (b' ' | b'\t' | b'\n' | b'\r', _) => i += 1,
                (b',', Last::Element) => {
                    self.in_result = Some(Last::Comma);
                    i += 1;
                }
                // The envelope scanner takes the closing bracket.
                (b']', Last::Open | Last::Element) => self.in_result = None,
                (_, Last::Open | Last::Comma) => match self.element(&input[i..]) {
                    Some(used) => {
                        i += used;
                        self.in_result = Some(Last::Element);
                    }
                    None => break,
                },
                _ => {
                    self.broken = Some(format!(
                        "expected `,` or `]` in the result, found {:?}",
                        b as char
                    ))
                }
            }
        }
        // Once failed, the rest is of no use: none of it is carried.
        if self.failed() {
            input.len()
        } else {
            i
        }
    }

    /// Parses the element at the start of `input`: the bytes it took, or `None` if `input` ends
    /// inside it or it is broken (then `broken` says why).
    fn element(&mut self, input: &[u8]) -> Option<usize> {
        if self.keeps() {
            if let Some((row, used)) = compact::series(input) {
                self.push(row);
                return Some(used);
            }
        }
        let parsed = if self.keeps() {
            first::<Row>(input).map(|r| r.map(|(row, used)| (Some(row), used)))
        } else {
            first::<IgnoredAny>(input).map(|r| r.map(|(_, used)| (None, used)))
        };
        match parsed {
            Ok(Some((row, used))) => {
                match row {
                    Some(row) => self.push(row),
                    None => self.count(),
                }
                Some(used)
            }
            Ok(None) => None,
            Err(e) => {
                self.broken = Some(e.to_string());
                None
            }
        }
    }

    /// Follows one envelope byte, already appended; answers whether it opened `data.result`.
    fn envelope_byte(&mut self, b: u8) -> bool {
        let scan = &mut self.scan;
        if scan.in_string {
            if scan.escaped {
                scan.escaped = false;
            } else if b == b'\\' {
                scan.escaped = true;
            } else if b == b'"' {
                scan.in_string = false;
                let text = &self.envelope[scan.string_start..self.envelope.len() - 1];
                match scan.depth {
                    1 => scan.data_key = text == b"data",
                    2 => scan.result_key = text == b"result",
                    _ => {}
                }
            }
            return false;
        }
        if scan.depth == 0 {
            match b {
                b' ' | b'\t' | b'\n' | b'\r' => {}
                b'{' if !self.closed => scan.depth = 1,
                // Not an answer (an HTML page?), or bytes after it: serde_json says which.
                _ => self.stopped = true,
            }
            return false;
        }
        match b {
            b'"' => {
                scan.in_string = true;
                scan.string_start = self.envelope.len();
            }
            b'{' | b'[' => {
                scan.depth += 1;
                match scan.depth {
                    2 => scan.in_data = b == b'{' && scan.data_key,
                    3 => return b == b'[' && scan.in_data && scan.result_key,
                    _ => {}
                }
            }
            b'}' | b']' => {
                scan.depth -= 1;
                self.closed = scan.depth == 0;
            }
            _ => {}
        }
        false
    }
}

/// The first JSON value in `input` and the bytes it took (with whitespace before it); `None`
/// when `input` ends inside it.
fn first<'de, T: Deserialize<'de>>(
    input: &'de [u8],
) -> Result<Option<(T, usize)>, serde_json::Error> {
    let mut values = serde_json::Deserializer::from_slice(input).into_iter::<T>();
    match values.next() {
        Some(Ok(value)) => Ok(Some((value, values.byte_offset()))),
        Some(Err(e)) if e.is_eof() => Ok(None),
        Some(Err(e)) => Err(e),
        None => Ok(None),
    }
}

/// One element of `data.result`: a series, `{metric, values}` in either order, or anything else,
/// which only a non-matrix answer holds (its `resultType` then says what went wrong).
pub enum Row {
    Series {
        labels: Labels,
        samples: Vec<(f64, Quoted)>,
    },
    Other,
}

impl<'de> Deserialize<'de> for Row {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Row, D::Error> {
        deserializer.deserialize_any(RowVisitor)
    }
}

struct RowVisitor;

impl<'de> Visitor<'de> for RowVisitor {
    type Value = Row;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a series with metric and values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Row, A::Error> {
        let (mut labels, mut samples) = (Labels::new(), Vec::new());
        while let Some(key) = map.next_key::<SeriesKey>()? {
            match key {
                SeriesKey::Metric => labels = map.next_value()?,
                SeriesKey::Values => samples = map.next_value()?,
                SeriesKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Row::Series { labels, samples })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Row, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Row::Other)
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Row, E> {
        Ok(Row::Other)
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Row, E> {
        Ok(Row::Other)
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Row, E> {
        Ok(Row::Other)
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Row, E> {
        Ok(Row::Other)
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Row, E> {
        Ok(Row::Other)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Row, E> {
        Ok(Row::Other)
    }
}

/// A series' key, matched without allocating it.
enum SeriesKey {
    Metric,
    Values,
    Other,
}

impl<'de> Deserialize<'de> for SeriesKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<SeriesKey, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = SeriesKey;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }

            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<SeriesKey, E> {
                Ok(match s {
                    "metric" => SeriesKey::Metric,
                    "values" => SeriesKey::Values,
                    _ => SeriesKey::Other,
                })
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// A sample value: a float written as a JSON string ("1.5", "NaN", "+Inf"), parsed without
/// allocating the string.
pub struct Quoted(f64);

impl<'de> Deserialize<'de> for Quoted {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct QuotedVisitor;
        impl Visitor<'_> for QuotedVisitor {
            type Value = Quoted;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a float inside a JSON string")
            }

            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Quoted, E> {
                s.parse()
                    .map(Quoted)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Str(s), &self))
            }
        }
        deserializer.deserialize_str(QuotedVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Window = Window {
        start: 100,
        end: 130,
        step: 15,
    };

    #[test]
    fn the_series_are_taken_out_of_the_envelope() {
        let mut stream = Stream::new(W, 1);
        stream.feed(br#"{"data":{"result":[{"metric":{"a":"1"}}, {"metric":{}} ],"#);
        stream.feed(br#""resultType":"matrix"},"status":"success"}"#);
        assert_eq!(
            String::from_utf8(stream.envelope().unwrap()).unwrap(),
            r#"{"data":{"result":[],"resultType":"matrix"},"status":"success"}"#
        );
        let parts = stream.finish();
        assert_eq!((parts.grid.series_count(), parts.returned), (1, 2));
    }

    #[test]
    fn a_page_that_is_not_json_is_not_kept() {
        let mut stream = Stream::new(W, 1);
        stream.feed(b"<html><body>");
        assert!(stream.failed());
        assert_eq!(stream.envelope().unwrap(), b"<");
    }
}
