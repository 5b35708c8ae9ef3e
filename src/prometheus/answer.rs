//! Reads a range-query answer straight onto the engine's step grid.
//!
//! The answer of an unaggregated query in a big cluster is tens of megabytes of JSON. Generic
//! decoding (the Prometheus client crate's tagged enums, or a `serde_json::Value`) first builds a
//! tree of the whole answer, many times its size, then copies it into series, then the judge
//! copied it once more onto its grid. Here the body is parsed while it arrives, chunk by chunk,
//! without ever being held whole; each sample goes straight into the grid, where the judge reads
//! it in place; and series past `max_series` are counted, not kept.

use std::fmt;
use std::io::Read;
use std::time::Duration;

use bytes::{Buf, Bytes};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use tokio::sync::mpsc;

use super::error::{shown_url, SourceError};
use crate::engine::grid::Grid;
use crate::engine::series::{Labels, Window};

/// Reads the answer to `/api/v1/query_range` onto `window`'s grid as its body arrives. The
/// parser runs on a blocking thread, fed the chunks through a short queue, so that at most a few
/// chunks of the body are in memory at once.
pub async fn read(
    mut response: reqwest::Response,
    window: Window,
    max_series: usize,
    timeout: Duration,
    at: &str,
) -> Result<Grid, SourceError> {
    let (chunks, received) = mpsc::channel(8);
    let parser = tokio::task::spawn_blocking(move || {
        let body = std::io::BufReader::with_capacity(
            64 * 1024,
            Chunks {
                received,
                current: Bytes::new(),
            },
        );
        parse(body, window, max_series, timeout)
    });
    let mut failed = None;
    loop {
        match response.chunk().await {
            // The parser gave up (not JSON): what it says is the answer.
            Ok(Some(chunk)) => {
                if chunks.send(chunk).await.is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    drop(chunks);
    let parsed = parser
        .await
        .unwrap_or_else(|e| Err(SourceError::BadResponse(e.to_string())));
    match failed {
        Some(e) if e.is_timeout() => Err(SourceError::Timeout(timeout)),
        Some(e) => Err(SourceError::Unreachable {
            at: shown_url(at),
            reason: format!("the answer broke off: {}", e.without_url()),
        }),
        None => parsed,
    }
}

/// The body as it arrives, for a blocking reader.
struct Chunks {
    received: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while !self.current.has_remaining() {
            match self.received.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.remaining());
        self.current.copy_to_slice(&mut buf[..n]);
        Ok(n)
    }
}

/// Parses the body of `/api/v1/query_range` onto `window`'s grid. `timeout` names the limit in a
/// timeout Prometheus reports itself.
pub fn parse(
    body: impl Read,
    window: Window,
    max_series: usize,
    timeout: Duration,
) -> Result<Grid, SourceError> {
    let mut envelope = Envelope {
        grid: Grid::new(window),
        returned: 0,
        max_series,
        status: None,
        result_type: None,
        error_type: None,
        error: None,
    };
    let mut de = serde_json::Deserializer::from_reader(body);
    (&mut envelope)
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| SourceError::BadResponse(e.to_string()))?;
    match envelope.status.as_deref() {
        Some("success") => {}
        Some("error") if envelope.error_type.as_deref() == Some("timeout") => {
            return Err(SourceError::Timeout(timeout))
        }
        Some("error") => {
            return Err(SourceError::Rejected(format!(
                "{}: {}",
                envelope.error_type.unwrap_or_default(),
                envelope.error.unwrap_or_default()
            )))
        }
        other => {
            return Err(SourceError::BadResponse(format!(
                "status {:?}",
                other.unwrap_or("missing")
            )))
        }
    }
    match envelope.result_type.as_deref() {
        Some("matrix") => {}
        Some(other) => {
            return Err(SourceError::BadResponse(format!(
                "expected a matrix, got a {other}"
            )))
        }
        None => return Err(SourceError::BadResponse("no resultType".into())),
    }
    if envelope.returned > max_series {
        return Err(SourceError::TooManySeries {
            returned: envelope.returned,
            limit: max_series,
        });
    }
    Ok(envelope.grid)
}

/// `{status, data: {resultType, result}, errorType, error, warnings}`, in any key order.
struct Envelope {
    grid: Grid,
    /// Series in the answer, including those past the limit.
    returned: usize,
    max_series: usize,
    status: Option<String>,
    result_type: Option<String>,
    error_type: Option<String>,
    error: Option<String>,
}

impl<'de> DeserializeSeed<'de> for &mut Envelope {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(EnvelopeVisitor(self))
    }
}

struct EnvelopeVisitor<'a>(&'a mut Envelope);

impl<'de> Visitor<'de> for EnvelopeVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Prometheus API answer")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let envelope = self.0;
        while let Some(key) = map.next_key::<KeyName>()? {
            match key.0.as_str() {
                "status" => envelope.status = Some(map.next_value()?),
                "errorType" => envelope.error_type = Some(map.next_value()?),
                "error" => envelope.error = Some(map.next_value()?),
                "data" => map.next_value_seed(DataSeed(envelope))?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A map key, read without keeping a borrowed string (a reader may not lend one).
struct KeyName(String);

impl<'de> serde::Deserialize<'de> for KeyName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(KeyName)
    }
}

struct DataSeed<'a>(&'a mut Envelope);

impl<'de> DeserializeSeed<'de> for DataSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DataSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a query result")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let envelope = self.0;
        while let Some(key) = map.next_key::<KeyName>()? {
            match key.0.as_str() {
                "resultType" => envelope.result_type = Some(map.next_value()?),
                "result"
                    if envelope
                        .result_type
                        .as_deref()
                        .is_none_or(|t| t == "matrix") =>
                {
                    map.next_value_seed(ResultSeed(envelope))?
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// The list of series; each is put on the grid until `max_series`, then only counted.
struct ResultSeed<'a>(&'a mut Envelope);

impl<'de> DeserializeSeed<'de> for ResultSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ResultSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of series")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let envelope = self.0;
        loop {
            let more = if envelope.returned < envelope.max_series {
                seq.next_element_seed(SeriesSeed(&mut envelope.grid))?
                    .is_some()
            } else {
                seq.next_element::<IgnoredAny>()?.is_some()
            };
            if !more {
                return Ok(());
            }
            envelope.returned += 1;
        }
    }
}

/// `{metric: {...}, values: [[t, "v"], ...]}`: one row of the grid.
struct SeriesSeed<'a>(&'a mut Grid);

impl<'de> DeserializeSeed<'de> for SeriesSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for SeriesSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a series with metric and values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let grid = self.0;
        let row = grid.add_series(Labels::new());
        while let Some(key) = map.next_key::<KeyName>()? {
            match key.0.as_str() {
                "metric" => grid.set_labels(row, map.next_value()?),
                "values" => map.next_value_seed(SamplesSeed { grid, row })?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

struct SamplesSeed<'a> {
    grid: &'a mut Grid,
    row: usize,
}

impl<'de> DeserializeSeed<'de> for SamplesSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for SamplesSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of [time, \"value\"] samples")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some((ts, Quoted(v))) = seq.next_element::<(f64, Quoted)>()? {
            self.grid.set(self.row, ts.round() as i64, v);
        }
        Ok(())
    }
}

/// A sample value: a float written as a JSON string ("1.5", "NaN", "+Inf"), parsed without
/// allocating the string.
struct Quoted(f64);

impl<'de> serde::Deserialize<'de> for Quoted {
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

    fn parsed(body: &str, max: usize) -> Result<Grid, SourceError> {
        parse(body.as_bytes(), W, max, Duration::from_secs(2))
    }

    #[test]
    fn a_matrix_lands_on_the_grid() {
        let g = parsed(
            r#"{"status":"success","data":{"resultType":"matrix","result":[
                {"metric":{"svc":"a"},"values":[[100,"1"],[115.0,"NaN"],[130,"+Inf"]]},
                {"values":[[130,"2.5"]],"metric":{"svc":"b"}}]},"warnings":["x"]}"#,
            10,
        )
        .unwrap();
        let rows: Vec<_> = g.series().collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].0["svc"], "a");
        assert_eq!(rows[0].1[0], 1.0);
        assert!(rows[0].1[1].is_nan() && rows[0].1[2].is_nan());
        assert_eq!(rows[1].0["svc"], "b", "key order does not matter");
        assert_eq!(rows[1].1[2], 2.5);
    }

    #[test]
    fn too_many_series_are_counted_and_refused() {
        let series: Vec<String> = (0..7)
            .map(|i| format!(r#"{{"metric":{{"i":"{i}"}},"values":[[100,"1"]]}}"#))
            .collect();
        let body = format!(
            r#"{{"status":"success","data":{{"resultType":"matrix","result":[{}]}}}}"#,
            series.join(",")
        );
        assert!(parsed(&body, 7).is_ok());
        let e = parsed(&body, 5).unwrap_err();
        assert_eq!(
            e,
            SourceError::TooManySeries {
                returned: 7,
                limit: 5
            }
        );
    }

    #[test]
    fn errors_say_what_prometheus_said() {
        let e = parsed(
            r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#,
            10,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Prometheus rejected the query: bad_data: parse error"
        );
        let e = parsed(
            r#"{"status":"error","errorType":"timeout","error":"query timed out"}"#,
            10,
        )
        .unwrap_err();
        assert_eq!(e, SourceError::Timeout(Duration::from_secs(2)));
        let e = parsed(
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"1"]}]}}"#,
            10,
        )
        .unwrap_err();
        assert_eq!(
            e,
            SourceError::BadResponse("expected a matrix, got a vector".into())
        );
        for garbage in [r#"{"status":"success","data":{not json"#, "<html>", ""] {
            assert!(
                matches!(parsed(garbage, 10), Err(SourceError::BadResponse(_))),
                "{garbage}"
            );
        }
    }
}
