//! Cuts a range-query answer, chunk by chunk as it arrives, into the series of its
//! `data.result` array, each parsed by serde_json from a slice, and the rest of the answer (the
//! envelope: status, errors, `resultType`, warnings...), kept with that array emptied for
//! [`super::matrix`] to read once the body is complete.
//!
//! Why: serde_json reads a slice several times faster than an `io::Read`, which it takes a byte at
//! a time, copying every string into a scratch buffer (a profile of the reader version: 82% of
//! `check`'s CPU on a 71 MB answer was parsing). But the whole body as one slice costs its size in
//! memory, and grows with the answer. Here each series is parsed straight from the chunk holding
//! it; only a series that a chunk boundary cuts is copied, into a carry buffer, and parsed once,
//! when a later chunk completes it. Memory stays at the chunks in flight plus one series.
//!
//! A carried series is read again only once a chunk brings a `}`, which it needs to be whole:
//! in Prometheus' shape that is about once, so a series of K chunks costs one parse, not K parses
//! of its growing start (a range answer near Prometheus' limit of 11,000 points is about 300 kB a
//! series, many chunks). Anything else carried, or a series read again in vain for twice its
//! size, has its end found by [`value_end`], which follows strings, escapes and nesting over each
//! new chunk once, and is parsed once whole.
//!
//! Each series in the shape Prometheus writes is read by [`compact`], a shortcut that defers to
//! serde_json for anything else.
//!
//! Why by hand: a series' end is found by serde_json itself (a `StreamDeserializer` over the slice
//! says how many bytes the series took, and an end-of-input error means "cut by the chunk"), so
//! the hand-written parts are two scanners that validate nothing (serde_json parses every byte
//! they keep): the envelope's, which follows strings, escapes and nesting depth to find where
//! `data.result` opens, and [`value_end`], the same over one carried series. The push parsers that take chunks (`actson`, `json-event-parser`) turn
//! every number and string into an event: using them would mean a second tokenizer over the
//! 99% of the body that serde_json reads anyway, or hand-writing the answer's grammar over their
//! events instead of serde's visitors.

mod compact;
mod sample;
mod value_end;

use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::engine::grid::Grid;
use crate::engine::series::{Labels, Window};
use sample::{Quoted, Stamp};
use value_end::ValueEnd;

/// The most the answer besides its series (status, warnings, stats...) may take. Prometheus'
/// envelope is a few hundred bytes; with `stats=all`, per-step statistics of an 11,000-step query
/// are about 250 kB. Past this the answer is refused rather than held.
pub const MAX_ENVELOPE: usize = 1 << 20;

/// The most one element of `data.result` may take while it is carried across chunks: a series of
/// 11,000 points (Prometheus' limit per series) is about 300 kB, so only a broken answer (a string
/// or a bracket never closed) comes near, and it is refused rather than held whole.
pub const MAX_SERIES_BYTES: usize = 64 << 20;

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
    /// The start of an element that a chunk cut, while `carrying`; its allocation is kept for
    /// the next one.
    carry: Vec<u8>,
    carrying: bool,
    /// Where the carried element ends, followed over each chunk once; `None` while it is a
    /// series object waiting for a `}`, which it needs to be whole (see [`Stream::carry_until`]).
    carried_end: Option<ValueEnd>,
    /// Bytes the parsers took in vain since the last element read: reading a carried series
    /// again is allowed up to twice its size, then its end is scanned for.
    tried: usize,
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
    /// Bytes the parsers and the carry scanner went over: linear reading means O(body).
    #[cfg(test)]
    read: usize,
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

impl Stream {
    pub fn new(window: Window, max_series: usize) -> Stream {
        Stream {
            grid: Grid::new(window),
            returned: 0,
            max_series,
            not_series: false,
            envelope: Vec::new(),
            carry: Vec::new(),
            carrying: false,
            carried_end: None,
            tried: 0,
            scan: Scan::default(),
            in_result: None,
            broken: None,
            closed: false,
            stopped: false,
            #[cfg(test)]
            read: 0,
        }
    }

    /// Whether reading on is pointless: a series was malformed, or the body is not an answer.
    pub fn failed(&self) -> bool {
        self.broken.is_some() || self.stopped
    }

    /// Reads the next chunk of the body.
    pub fn feed(&mut self, chunk: &[u8]) {
        let mut pos = 0;
        while pos < chunk.len() && !self.failed() {
            if self.carrying {
                pos += self.carry_on(&chunk[pos..]);
            } else {
                pos += self.advance(&chunk[pos..], false);
                if pos < chunk.len() {
                    self.carry_from(chunk[pos]);
                }
            }
        }
    }

    /// An element a chunk does not hold whole, starting with `first`, is carried from there.
    fn carry_from(&mut self, first: u8) {
        self.carrying = true;
        self.carried_end = (first != b'{').then(ValueEnd::default);
    }

    /// Extends the carried element from `bytes`, and reads it once they complete it; answers how
    /// many of `bytes` it took.
    fn carry_on(&mut self, bytes: &[u8]) -> usize {
        if self.carried_end.is_none() {
            self.carry_until(bytes);
            return bytes.len();
        }
        let end = self.carried_end.as_mut().and_then(|scan| scan.find(bytes));
        let taken = end.unwrap_or(bytes.len());
        self.note_read(taken);
        if self.carry.len() + taken > MAX_SERIES_BYTES {
            self.broken = Some(format!("a series is over {} MiB", MAX_SERIES_BYTES >> 20));
            return bytes.len();
        }
        self.carry.extend_from_slice(&bytes[..taken]);
        if end.is_some() {
            let carry = std::mem::take(&mut self.carry);
            if self.advance(&carry, true) < carry.len() && self.broken.is_none() {
                self.broken = Some("a series ends before its JSON does".into());
            }
            self.carry = carry;
            self.carry.clear();
            self.carrying = false;
        }
        taken
    }

    /// Carries a series object: keeps all of `bytes` and reads the carry again only when they hold
    /// a `}`. In Prometheus' answers a series has one `}` besides its last, closing its labels,
    /// so a series of many chunks is read about once, without a scan; a series with `}` in every
    /// chunk (in its label values) is read again up to twice its size, then scanned.
    fn carry_until(&mut self, bytes: &[u8]) {
        if self.carry.len() + bytes.len() > MAX_SERIES_BYTES {
            self.broken = Some(format!("a series is over {} MiB", MAX_SERIES_BYTES >> 20));
            return;
        }
        self.carry.extend_from_slice(bytes);
        if !bytes.contains(&b'}') {
            return;
        }
        let carry = std::mem::take(&mut self.carry);
        let used = self.advance(&carry, false);
        self.carry = carry;
        if self.failed() {
            return;
        }
        self.carry.drain(..used);
        if self.carry.is_empty() {
            self.carrying = false;
        } else if used > 0 {
            // The rest of the chunk ends inside another element.
            self.carry_from(self.carry[0]);
        } else if self.tried > 2 * self.carry.len() {
            let mut scan = ValueEnd::default();
            match scan.find(&self.carry) {
                None => self.carried_end = Some(scan),
                Some(_) => self.broken = Some("a series ends before its JSON does".into()),
            }
        }
    }

    /// Once the body has ended: the answer with `data.result` emptied, for the envelope's own
    /// parser; or why a series in it is not JSON.
    pub fn envelope(&mut self) -> Result<Vec<u8>, String> {
        match &self.broken {
            Some(why) => Err(why.clone()),
            None if self.carrying => Err("the answer ends inside a series".into()),
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

    /// Bytes the parsers and the carry scanner went over so far.
    #[cfg(test)]
    pub fn read(&self) -> usize {
        self.read
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
                    self.grid.set(row, ts.0, v.0);
                }
            }
            Row::Other => self.not_series = true,
        }
    }

    /// Reads what it can of `input`; answers how many bytes it used. It stops early only before
    /// an element that `input` does not hold whole. `whole`: `input` is a carried element, now
    /// complete.
    fn advance(&mut self, input: &[u8], whole: bool) -> usize {
        let mut i = 0;
        while i < input.len() && !self.failed() {
            let b = input[i];
            let Some(last) = self.in_result else {
                i += 1;
                if self.envelope.len() == MAX_ENVELOPE {
                    self.broken = Some(format!(
                        "the answer besides its series is over {} MiB",
                        MAX_ENVELOPE >> 20
                    ));
                    break;
                }
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
                (_, Last::Open | Last::Comma) => match self.element(&input[i..], whole) {
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
    /// inside it or it is broken (then `broken` says why). `whole`: `input` holds all of it, so
    /// that the shortcut's "cut" can only be a shape it does not know.
    fn element(&mut self, input: &[u8], whole: bool) -> Option<usize> {
        if self.keeps() {
            match compact::series(input) {
                compact::Read::Series(row, used) => {
                    self.note_read(used);
                    self.tried = 0;
                    self.push(row);
                    return Some(used);
                }
                compact::Read::Cut if !whole => {
                    self.note_read(input.len());
                    self.tried += input.len();
                    return None;
                }
                compact::Read::Cut | compact::Read::Other => {}
            }
        }
        let parsed = if self.keeps() {
            first::<Row>(input).map(|r| r.map(|(row, used)| (Some(row), used)))
        } else {
            first::<IgnoredAny>(input).map(|r| r.map(|(_, used)| (None, used)))
        };
        match parsed {
            Ok(Some((row, used))) => {
                self.note_read(used);
                self.tried = 0;
                match row {
                    Some(row) => self.push(row),
                    None => self.count(),
                }
                Some(used)
            }
            Ok(None) => {
                self.note_read(input.len());
                self.tried += input.len();
                None
            }
            Err(e) => {
                self.broken = Some(e.to_string());
                None
            }
        }
    }

    #[cfg(test)]
    fn note_read(&mut self, bytes: usize) {
        self.read += bytes;
    }

    #[cfg(not(test))]
    fn note_read(&mut self, _: usize) {}

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
        samples: Vec<(Stamp, Quoted)>,
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

    /// `body` fed in chunks of `size`: the stream, stopped where it failed.
    fn fed(body: &[u8], size: usize) -> Stream {
        let mut stream = Stream::new(W, 10);
        for chunk in body.chunks(size) {
            stream.feed(chunk);
            if stream.failed() {
                break;
            }
        }
        stream
    }

    #[test]
    fn a_series_over_many_chunks_is_read_once() {
        let samples: Vec<String> = (0..2_000)
            .map(|k| format!(r#"[{},"{k}.5"]"#, 100 + 15 * k))
            .collect();
        let samples = samples.join(",");
        // The shortcut's shape, one only serde_json reads, and one with `}` in every chunk.
        let braces = "}".repeat(40_000);
        let body = format!(
            r#"{{"status":"success","data":{{"resultType":"matrix","result":[{{"metric":{{"a":"1"}},"values":[{samples}]}},{{"values":[{samples}],"metric":{{}},"other":1}},{{"metric":{{"a":"{braces}"}},"values":[{samples}]}}]}}}}"#
        );
        for size in [1, 7, 64, 4096] {
            let mut stream = fed(body.as_bytes(), size);
            assert!(stream.envelope().is_ok(), "chunks of {size}");
            // Each series is read again in vain for at most twice its size, scanned at most once
            // and parsed whole at most twice (the shortcut, then serde_json). Parsing its growing
            // start again on every chunk, as this reader once did, reads hundreds of times the
            // body in chunks of 64 bytes.
            assert!(
                stream.read() <= 6 * body.len(),
                "chunks of {size}: {} bytes read for a body of {}",
                stream.read(),
                body.len()
            );
            assert_eq!(stream.finish().returned, 3);
        }
    }

    #[test]
    fn a_series_never_closed_is_not_held_past_the_cap() {
        let mut stream = Stream::new(W, 10);
        stream.feed(
            br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":""#,
        );
        let chunk = vec![b'x'; 1 << 20];
        let mut fed = 0;
        while !stream.failed() {
            stream.feed(&chunk);
            fed += 1;
        }
        assert_eq!(fed, MAX_SERIES_BYTES >> 20);
        assert_eq!(stream.envelope().unwrap_err(), "a series is over 64 MiB");
    }

    #[test]
    fn a_page_that_is_not_json_is_not_kept() {
        let mut stream = Stream::new(W, 1);
        stream.feed(b"<html><body>");
        assert!(stream.failed());
        assert_eq!(stream.envelope().unwrap(), b"<");
    }
}
