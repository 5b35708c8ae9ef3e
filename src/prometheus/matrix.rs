//! Reads the matrix a range query answers straight onto the engine's step grid.
//!
//! The answer of an unaggregated query in a big cluster is tens of megabytes of JSON. Generic
//! decoding (the Prometheus client crate's tagged enums, or a `serde_json::Value`) first builds a
//! tree of the whole answer, many times its size, then copies it into series, then the judge
//! copied it once more onto its grid. Here the body is parsed while it arrives, chunk by chunk,
//! without ever being held whole ([`super::stream`] cuts it into its series); each sample goes
//! straight into the grid, where the judge reads it in place; and series past `max_series` are
//! counted, not kept.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use tokio::sync::mpsc;

use super::error::{api_status, shown_url, SourceError};
use super::stream::{Parts, Row, Stream};
use crate::engine::grid::Grid;
use crate::engine::series::Window;

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
    let (chunks, mut received) = mpsc::channel::<Bytes>(8);
    let parser = tokio::task::spawn_blocking(move || {
        parse(
            std::iter::from_fn(|| received.blocking_recv()),
            window,
            max_series,
            timeout,
        )
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

/// Parses the body of `/api/v1/query_range`, given as the chunks it arrived in, onto `window`'s
/// grid. `timeout` names the limit in a timeout Prometheus reports itself.
pub fn parse(
    body: impl IntoIterator<Item = impl AsRef<[u8]>>,
    window: Window,
    max_series: usize,
    timeout: Duration,
) -> Result<Grid, SourceError> {
    let mut stream = Stream::new(window, max_series);
    for chunk in body {
        stream.feed(chunk.as_ref());
        if stream.failed() {
            break;
        }
    }
    let bytes = stream.envelope().map_err(SourceError::BadResponse)?;
    let mut envelope = Envelope {
        stream: &mut stream,
        status: None,
        result_type: None,
        error_type: None,
        error: None,
        warnings: None,
    };
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    (&mut envelope)
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| SourceError::BadResponse(e.to_string()))?;
    api_status(
        envelope.status.as_deref(),
        envelope.error_type.take(),
        envelope.error.take(),
        envelope.warnings.take(),
        timeout,
    )?;
    match envelope.result_type.as_deref() {
        Some("matrix") => {}
        Some(other) => {
            return Err(SourceError::BadResponse(format!(
                "expected a matrix, got a {other}"
            )))
        }
        None => return Err(SourceError::BadResponse("no resultType".into())),
    }
    let Parts {
        grid,
        returned,
        not_series,
    } = stream.finish();
    if not_series {
        return Err(SourceError::BadResponse(
            "a result element is not a series".into(),
        ));
    }
    if returned > max_series {
        return Err(SourceError::TooManySeries {
            returned,
            limit: max_series,
        });
    }
    Ok(grid)
}

/// `{status, data: {resultType, result}, errorType, error, warnings}`, in any key order. Its
/// `result` is normally empty, its series read by [`Stream`] as they arrived; a result the
/// stream did not recognise (a key written with escapes) is read here, onto the same grid.
struct Envelope<'a> {
    stream: &'a mut Stream,
    status: Option<String>,
    result_type: Option<String>,
    error_type: Option<String>,
    error: Option<String>,
    warnings: Option<Vec<String>>,
}

impl<'de> DeserializeSeed<'de> for &mut Envelope<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(EnvelopeVisitor(self))
    }
}

struct EnvelopeVisitor<'a, 'b>(&'a mut Envelope<'b>);

impl<'de> Visitor<'de> for EnvelopeVisitor<'_, '_> {
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
                "warnings" => envelope.warnings = map.next_value()?,
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

struct DataSeed<'a, 'b>(&'a mut Envelope<'b>);

impl<'de> DeserializeSeed<'de> for DataSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DataSeed<'_, '_> {
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
struct ResultSeed<'a, 'b>(&'a mut Envelope<'b>);

impl<'de> DeserializeSeed<'de> for ResultSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ResultSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of series")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let stream = &mut *self.0.stream;
        loop {
            if stream.keeps() {
                match seq.next_element::<Row>()? {
                    Some(row) => stream.push(row),
                    None => return Ok(()),
                }
            } else if seq.next_element::<IgnoredAny>()?.is_some() {
                stream.count();
            } else {
                return Ok(());
            }
        }
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
        chunked(body.as_bytes(), &[], max)
    }

    /// `body` cut at `cuts` (increasing offsets), each piece its own chunk.
    fn chunked(body: &[u8], cuts: &[usize], max: usize) -> Result<Grid, SourceError> {
        let bounds = std::iter::once(0).chain(cuts.iter().copied());
        let ends = cuts.iter().copied().chain(std::iter::once(body.len()));
        let chunks: Vec<&[u8]> = bounds.zip(ends).map(|(a, b)| &body[a..b]).collect();
        parse(chunks, W, max, Duration::from_secs(2))
    }

    /// What the answer says, read by serde_json as a whole into a `Value`, for comparison.
    fn reference(body: &[u8]) -> Grid {
        reference_on(body, W)
    }

    fn reference_on(body: &[u8], window: Window) -> Grid {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        let series: Vec<_> = v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| crate::engine::series::Series {
                labels: serde_json::from_value(s["metric"].clone()).unwrap_or_default(),
                samples: s["values"]
                    .as_array()
                    .map(|vs| {
                        vs.iter()
                            .map(|p| {
                                let ts = p[0].as_f64().unwrap().round() as i64;
                                (ts, p[1].as_str().unwrap().parse::<f64>().unwrap())
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect();
        Grid::from_series(window, &series)
    }

    /// Grids equal, NaN for NaN.
    fn same(a: &Grid, b: &Grid) -> bool {
        let (a, b): (Vec<_>, Vec<_>) = (a.series().collect(), b.series().collect());
        a.len() == b.len()
            && a.iter().zip(&b).all(|((la, va), (lb, vb))| {
                la == lb
                    && va.len() == vb.len()
                    && va
                        .iter()
                        .zip(vb.iter())
                        .all(|(x, y)| x.to_bits() == y.to_bits())
            })
    }

    /// Labels with what could fool a scanner (braces, brackets, commas, escaped quotes, a key
    /// named like the envelope's), other keys around `data`, and Prometheus' compact form for
    /// one series, with whitespace for the others.
    const TRICKY: &str = r#"{"infos":["a \"]\" [{"], "status" : "success",
        "data":{"result":[ {"metric":{"data":"{[\"result\":[}]","svc":"a,b"},"values":[[100,"1"],[115,"-2.5"]]},
        {"values":[[130, "+Inf"], [100.4,"1e3"]], "metric":{"\u0041":"\n\t\\"}, "extra": {"x": [1, {"y": "]"}]}},
        {"metric":{},"values":[]},
        {"metric":{"i":"3"},"values":[[115,"0.1234567890123456789"],[130,"12345678901234567"]]} ],
        "resultType":"matrix"},"notes":["}"],"stats":{"timings":{"evalTotalTime":0.1}}}"#;

    #[test]
    fn a_series_cut_at_any_byte_reads_the_same() {
        let body = TRICKY.as_bytes();
        let whole = parsed(TRICKY, 10).unwrap();
        assert!(same(&whole, &reference(body)));
        assert_eq!(whole.series_count(), 4);
        for cut in 1..body.len() {
            let g = chunked(body, &[cut], 10).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
            assert!(same(&g, &whole), "cut at {cut}");
        }
        // One byte per chunk: every element is carried.
        let cuts: Vec<usize> = (1..body.len()).collect();
        assert!(same(&chunked(body, &cuts, 10).unwrap(), &whole));
    }

    /// An answer whose first series has `points` samples on the steps of its window, in the
    /// shape the shortcut reads; the second the same samples in a shape only serde_json reads (an
    /// escape, another key); then a short one.
    fn long_answer(points: i64) -> (Vec<u8>, Window) {
        let values = [
            "0.25",
            "NaN",
            "+Inf",
            "-Inf",
            "12345.678",
            "1e3",
            "-0",
            "0.1234567890123456789",
        ];
        let samples: Vec<String> = (0..points)
            .map(|k| {
                let fraction = if k % 5 == 0 { ".4" } else { "" };
                let value = values[k as usize % values.len()];
                format!(r#"[{}{fraction},"{value}"]"#, 100 + 15 * k)
            })
            .collect();
        let body = format!(
            r#"{{"status":"success","data":{{"resultType":"matrix","result":[{{"metric":{{"svc":"a,]\"}}"}},"values":[{}]}}, {{"values":[ {} ], "metric":{{"\u0041":"b"}}, "extra":[1]}},{{"metric":{{}},"values":[[115,"2"]]}}]}},"infos":["]"]}}"#,
            samples.join(","),
            samples.join(", ")
        );
        let window = Window {
            start: 100,
            end: 100 + 15 * (points - 1),
            step: 15,
        };
        (body.into_bytes(), window)
    }

    #[test]
    fn a_series_over_many_chunks_reads_as_the_whole_body() {
        let t = Duration::from_secs(2);
        let (body, window) = long_answer(3_000);
        let whole = parse([&body], window, 10, t).unwrap();
        assert!(same(&whole, &reference_on(&body, window)));
        assert_eq!(whole.series_count(), 3);
        let first = whole.series().next().unwrap().1;
        assert_eq!((first.len(), first[0], first[4]), (3_000, 0.25, 12345.678));
        for size in [1, 2, 3, 7, 64, 1000, 4096, 16 << 10] {
            let g = parse(body.chunks(size), window, 10, t).unwrap();
            assert!(same(&g, &whole), "chunks of {size}");
        }
        // Every byte boundary of series cut into many chunks: chunks of 64 from every offset.
        let (body, window) = long_answer(100);
        let whole = parse([&body], window, 10, t).unwrap();
        for first in 1..=64 {
            let chunks = std::iter::once(&body[..first]).chain(body[first..].chunks(64));
            let g = parse(chunks, window, 10, t).unwrap();
            assert!(same(&g, &whole), "first chunk of {first}");
        }
    }

    #[test]
    fn times_and_values_out_of_range_are_refused() {
        let t = Duration::from_secs(2);
        let answer = |sample: &str, other: &str| {
            format!(
                r#"{{"status":"success","data":{{"resultType":"matrix","result":[{{"metric":{{}}{other},"values":[[100,"1"],{sample}]}}]}}}}"#
            )
        };
        let huge = format!(r#"[100,"{}"]"#, "9".repeat(400));
        for sample in [
            "[9223372036854775807,\"1\"]",
            "[-9223372036854775808,\"1\"]",
            "[1e16,\"1\"]",
            "[-1e300,\"1\"]",
            "[1e400,\"1\"]",
            "[100,\"1e400\"]",
            "[100,\"-1e309\"]",
            &huge,
        ] {
            // The shortcut's shape, and one only serde_json reads.
            for other in ["", r#","other":1"#] {
                let body = answer(sample, other);
                for cuts in [&[][..], &[body.len() - 20]] {
                    let e = chunked(body.as_bytes(), cuts, 10).unwrap_err();
                    assert!(
                        matches!(&e, SourceError::BadResponse(m) if m.contains("out of range")),
                        "{body}: {e}"
                    );
                }
            }
        }
        // The ends of Prometheus' clock, and what it writes for values that are not finite.
        for sample in [
            "[9223372036854775,\"1\"]",
            "[-9223372036854775,\"1\"]",
            "[100,\"NaN\"]",
            "[115,\"+Inf\"]",
            "[130,\"-Inf\"]",
            "[130,\"1e308\"]",
        ] {
            for other in ["", r#","other":1"#] {
                let body = answer(sample, other);
                let g =
                    parse([body.as_bytes()], W, 10, t).unwrap_or_else(|e| panic!("{body}: {e}"));
                assert!(same(&g, &reference(body.as_bytes())), "{body}");
            }
        }
    }

    #[test]
    fn the_answer_besides_its_series_is_capped() {
        use super::super::stream::MAX_ENVELOPE;
        let answer = |info: usize, points: i64| {
            let samples: Vec<String> = (0..points).map(|k| format!(r#"[{k},"0.5"]"#)).collect();
            format!(
                r#"{{"status":"success","infos":["{}"],"data":{{"resultType":"matrix","result":[{{"metric":{{}},"values":[{}]}}]}}}}"#,
                "w".repeat(info),
                samples.join(",")
            )
        };
        // Series do not count: more than the cap of them, and an envelope just under it.
        let body = answer(MAX_ENVELOPE - 200, 250_000);
        assert!(body.len() > 3 * MAX_ENVELOPE);
        assert!(parse(
            body.as_bytes().chunks(16 << 10),
            W,
            10,
            Duration::from_secs(2)
        )
        .is_ok());
        let body = answer(MAX_ENVELOPE, 1);
        let e = parse(
            body.as_bytes().chunks(16 << 10),
            W,
            10,
            Duration::from_secs(2),
        )
        .unwrap_err();
        assert_eq!(
            e,
            SourceError::BadResponse("the answer besides its series is over 1 MiB".into())
        );
    }

    #[test]
    fn an_empty_result_and_keys_in_any_order() {
        for body in [
            r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#,
            r#"{"data":{"result":[ ],"resultType":"matrix"},"warnings":[],"status":"success"}"#,
            " \n{ \"stats\" : {\"a\":[[]]}, \"data\" : { \"result\" : [\n] , \"resultType\" : \"matrix\" } , \"status\" : \"success\" } \n",
        ] {
            assert_eq!(parsed(body, 10).unwrap().series_count(), 0, "{body}");
        }
        // A key spelt with an escape is not recognised as `result`: read with the envelope.
        let escaped = r#"{"status":"success","data":{"resultType":"matrix","res\u0075lt":[{"metric":{"a":"1"},"values":[[100,"1"]]}]}}"#;
        assert_eq!(parsed(escaped, 10).unwrap().series_count(), 1);
    }

    #[test]
    fn a_broken_or_cut_answer_is_refused_at_any_byte() {
        let body = TRICKY.as_bytes();
        for end in 0..body.len() - 1 {
            let e = chunked(&body[..end], &[end / 2], 10).unwrap_err();
            assert!(
                matches!(e, SourceError::BadResponse(_)),
                "cut at {end}: {e}"
            );
        }
        for broken in [
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{}},]}}"#,
            r#"{"status":"success","data":{"resultType":"matrix","result":[,{"metric":{}}]}}"#,
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{}} {}]}}"#,
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"values":[[1,"x"]]}]}}"#,
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":1}}]}}"#,
            r#"{"status":"success","data":{"resultType":"matrix","result":[]}} trailing"#,
            r#"{"status":"success","data":{"resultType":"matrix","result":[]}}{}"#,
            r#"{"status":"success","data":{"resultType":"matrix","result":[1]}}"#,
        ] {
            let e = parsed(broken, 10).unwrap_err();
            assert!(matches!(e, SourceError::BadResponse(_)), "{broken}: {e}");
        }
    }

    #[test]
    fn random_answers_in_random_chunks_read_as_serde_json_reads_them() {
        let mut rng = fastrand::Rng::with_seed(8);
        let texts = [
            "a",
            "ns-1",
            "{",
            "}",
            "[",
            "]",
            "\"",
            "\\",
            ",",
            ":",
            " ",
            "é",
            "\u{1F600}",
        ];
        let values = [
            "0",
            "1",
            "-2.5",
            "0.25",
            "NaN",
            "+Inf",
            "-Inf",
            "1e3",
            "3.",
            "123456789012345678",
            "0.1",
        ];
        for round in 0..300 {
            let series: Vec<serde_json::Value> = (0..rng.usize(0..6))
                .map(|_| {
                    let labels: serde_json::Map<String, serde_json::Value> = (0..rng.usize(0..4))
                        .map(|_| {
                            (
                                rng.choice(texts).unwrap().repeat(rng.usize(1..3)),
                                rng.choice(texts).unwrap().into(),
                            )
                        })
                        .collect();
                    let samples: Vec<serde_json::Value> = (0..rng.usize(0..5))
                        .map(|_| {
                            let ts = 100.0
                                + f64::from(rng.u8(0..40))
                                + [0.0, 0.25, 0.5][rng.usize(0..3)];
                            serde_json::json!([ts, rng.choice(values).unwrap()])
                        })
                        .collect();
                    if rng.bool() {
                        serde_json::json!({"metric": labels, "values": samples})
                    } else {
                        serde_json::json!({"values": samples, "metric": labels})
                    }
                })
                .collect();
            let answer = serde_json::json!({"status": "success", "infos": ["]"],
                "data": {"resultType": "matrix", "result": series}});
            let body = if rng.bool() {
                serde_json::to_vec(&answer).unwrap()
            } else {
                serde_json::to_vec_pretty(&answer).unwrap()
            };
            let mut cuts: Vec<usize> = (0..rng.usize(0..8))
                .map(|_| rng.usize(0..=body.len()))
                .collect();
            cuts.sort_unstable();
            let g = chunked(&body, &cuts, 10).unwrap();
            assert!(
                same(&g, &reference(&body)),
                "round {round}: {}",
                String::from_utf8_lossy(&body)
            );
        }
    }

    #[test]
    fn a_matrix_lands_on_the_grid() {
        let g = parsed(
            r#"{"status":"success","data":{"resultType":"matrix","result":[
                {"metric":{"svc":"a"},"values":[[100,"1"],[115.0,"NaN"],[130,"+Inf"]]},
                {"values":[[130,"2.5"]],"metric":{"svc":"b"}}]},"infos":["x"]}"#,
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

    /// Thanos and Mimir say in `warnings` that stores were missing from the answer: its series
    /// are not all there, so it is refused whole, at any cut; `infos` and an empty list are not.
    #[test]
    fn an_answer_with_warnings_is_partial() {
        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[100,"1"]]}]},"warnings":["store s2 unreachable","x"],"infos":["y"]}"#;
        for cut in [0, 40, body.len() - 10] {
            let e = chunked(body.as_bytes(), &[cut], 10).unwrap_err();
            assert_eq!(
                e,
                SourceError::Partial {
                    warnings: vec!["store s2 unreachable".into(), "x".into()]
                },
                "cut at {cut}"
            );
        }
        let whole = body.replace(r#","warnings":["store s2 unreachable","x"]"#, "");
        assert_eq!(parsed(&whole, 10).unwrap().series_count(), 1);
        let empty = body.replace(r#"["store s2 unreachable","x"]"#, "[]");
        assert_eq!(parsed(&empty, 10).unwrap().series_count(), 1);
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
