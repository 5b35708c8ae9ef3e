//! Self-tests of the recording [`Receiver`] and of [`TestAlertmanager`] (a real Alertmanager).

mod common;

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use common::alertmanager::{TestAlertmanager, RECEIVER};
use common::receiver::{Receiver, Reply};
use serde_json::{json, Value};

const DEADLINE: Duration = Duration::from_secs(10);

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn post(url: &str, body: &str) -> (u16, String) {
    let resp = client()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

// ---------------------------------------------------------------- Receiver

#[tokio::test]
async fn scripted_replies_come_in_order_then_200() {
    let receiver = Receiver::start(vec![Reply::Status(503), Reply::Status(500)]).await;
    let url = format!("{}/hooks/slack?x=1", receiver.url());

    let answers = [
        post(&url, r#"{"n":1}"#).await,
        post(&url, r#"{"n":2}"#).await,
        post(&url, r#"{"n":3}"#).await,
        post(&url, r#"{"n":4}"#).await,
    ];
    let codes: Vec<u16> = answers.iter().map(|(code, _)| *code).collect();
    assert_eq!(codes, [503, 500, 200, 200]);

    // Every request is recorded, also those answered with an error, in order.
    let got = receiver.received();
    assert_eq!(got.len(), 4, "{got:#?}");
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/hooks/slack", "path has no query string");
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        assert_eq!(r.json()["n"], i + 1);
    }
    assert!(got.windows(2).all(|w| w[0].at <= w[1].at));
}

#[tokio::test]
async fn status_with_header_sends_retry_after() {
    let receiver = Receiver::start(vec![Reply::StatusWithHeader(
        429,
        "Retry-After",
        "7".to_owned(),
    )])
    .await;

    let first = client().post(receiver.url()).send().await.unwrap();
    assert_eq!(first.status(), 429);
    assert_eq!(first.headers()["retry-after"], "7");
    let second = client().post(receiver.url()).send().await.unwrap();
    assert_eq!(second.status(), 200);
    assert!(second.headers().get("retry-after").is_none());
    assert_eq!(second.text().await.unwrap(), "ok");

    assert_eq!(receiver.wait_for(2, DEADLINE).await.len(), 2);
}

#[tokio::test]
async fn hang_never_answers_and_is_recorded() {
    let receiver = Receiver::start(vec![Reply::Hang]).await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();

    let err = impatient
        .post(format!("{}/hook", receiver.url()))
        .body("first")
        .send()
        .await
        .expect_err("a hanging reply must not answer");
    assert!(err.is_timeout(), "expected a timeout, got {err:?}");

    // The hanging request was recorded, and it does not block later ones.
    let later = impatient
        .post(format!("{}/hook", receiver.url()))
        .body("second")
        .send()
        .await
        .unwrap();
    assert_eq!(later.status(), 200);
    let got = receiver.received();
    let bodies: Vec<&str> = got.iter().map(|r| r.body.as_str()).collect();
    assert_eq!(bodies, ["first", "second"]);
}

#[tokio::test]
async fn wait_for_returns_once_enough_requests_arrived() {
    let receiver = Receiver::start(vec![]).await;
    let url = receiver.url();
    let sender = tokio::spawn(async move {
        for i in 0..3 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            client()
                .post(&url)
                .body(format!("{i}"))
                .send()
                .await
                .unwrap();
        }
    });

    let got = receiver.wait_for(3, DEADLINE).await;
    assert!(got.len() >= 3, "{got:#?}");
    let bodies: Vec<&str> = got.iter().map(|r| r.body.as_str()).collect();
    assert_eq!(&bodies[..3], ["0", "1", "2"]);
    sender.await.unwrap();
    // Already reached: returns at once.
    assert_eq!(receiver.wait_for(1, Duration::ZERO).await.len(), 3);
}

#[tokio::test]
#[should_panic(expected = "expected at least 2 request(s)")]
async fn wait_for_panics_with_what_was_received() {
    let receiver = Receiver::start(vec![]).await;
    client().get(receiver.url()).send().await.unwrap();
    receiver.wait_for(2, Duration::from_millis(200)).await;
}

// ---------------------------------------------------------------- Alertmanager

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn time_of(alert: &Value, field: &str) -> DateTime<Utc> {
    let text = alert[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} missing: {alert}"));
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{field} {text:?}: {e}"))
        .with_timezone(&Utc)
}

fn alert(name: &str, starts: DateTime<Utc>, ends: DateTime<Utc>, summary: &str) -> String {
    json!([{
        "labels": {"alertname": name, "phase": "istio", "severity": "critical"},
        "annotations": {"summary": summary},
        "startsAt": rfc3339(starts),
        "endsAt": rfc3339(ends),
    }])
    .to_string()
}

#[tokio::test]
async fn alertmanager_lists_firing_alerts_and_drops_resolved_ones() {
    let am = TestAlertmanager::start();
    let url = format!("{}/api/v2/alerts", am.url());
    // It broke a minute ago (so that it can be resolved in the past below: endsAt must not be
    // before startsAt).
    let starts = Utc::now() - chrono::Duration::minutes(1);
    let five_minutes = chrono::Duration::minutes(5);

    let (status, body) = post(&url, &alert("GateNoGo", starts, starts + five_minutes, "s")).await;
    assert_eq!(status, 200, "{body}");

    let firing = am.alerts();
    assert_eq!(firing.len(), 1, "{firing:#?}");
    let a = &firing[0];
    assert_eq!(
        a["labels"],
        json!({"alertname": "GateNoGo", "phase": "istio", "severity": "critical"})
    );
    assert_eq!(a["annotations"]["summary"], "s");
    assert_eq!(a["status"]["state"], "active", "{a}");
    assert_eq!(a["status"]["silencedBy"], json!([]));
    assert_eq!(a["receivers"], json!([{"name": RECEIVER}]));
    assert_eq!(time_of(a, "startsAt"), starts.trunc_subsecs(3));
    assert_eq!(am.alerts_matching("GateNoGo").len(), 1);
    assert!(am.alerts_matching("Other").is_empty());

    // Resolving with startsAt = now and endsAt in the past is rejected as a whole...
    let now = Utc::now();
    let (status, body) = post(
        &url,
        &alert("GateNoGo", now, now - chrono::Duration::minutes(1), "s"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("start time must be before end time"),
        "{body}"
    );
    assert_eq!(am.alerts_matching("GateNoGo").len(), 1, "still firing");

    // ...so a resolve carries the original startsAt. Then the alert is gone from the list.
    let (status, body) = post(
        &url,
        &alert(
            "GateNoGo",
            starts,
            Utc::now() - chrono::Duration::seconds(1),
            "s",
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(am.alerts(), Vec::<Value>::new());
    // Not even the inactive filter shows it.
    assert_eq!(am.get("/api/v2/alerts?active=false").trim(), "[]");
}

#[tokio::test]
async fn alertmanager_merges_the_same_alert_from_two_senders() {
    let am = TestAlertmanager::start();
    let url = format!("{}/api/v2/alerts", am.url());
    let now = Utc::now();
    let replica_a_start = now - chrono::Duration::minutes(2);
    let replica_b_start = now - chrono::Duration::minutes(1);
    let a_ends = now + chrono::Duration::minutes(10);
    let b_ends = now + chrono::Duration::minutes(3);

    // Replica A over reqwest, replica B over the blocking helper.
    let (status, body) = post(&url, &alert("Dup", replica_a_start, a_ends, "from a")).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = am.post_alerts(&alert("Dup", replica_b_start, b_ends, "from b"));
    assert_eq!(status, 200, "{body}");

    let dup = am.alerts_matching("Dup");
    assert_eq!(dup.len(), 1, "one alert per label set: {dup:#?}");
    let merged = &dup[0];
    assert_eq!(
        time_of(merged, "startsAt"),
        replica_a_start.trunc_subsecs(3)
    );
    assert_eq!(time_of(merged, "endsAt"), a_ends.trunc_subsecs(3));
    assert_eq!(
        merged["annotations"]["summary"], "from b",
        "latest post wins"
    );

    // One replica resolving resolves it for all, until the other posts it firing again.
    let (status, body) = am.post_alerts(&alert(
        "Dup",
        replica_b_start,
        Utc::now() - chrono::Duration::seconds(1),
        "from b",
    ));
    assert_eq!(status, 200, "{body}");
    assert!(am.alerts_matching("Dup").is_empty());

    let (status, body) = post(&url, &alert("Dup", replica_a_start, a_ends, "from a")).await;
    assert_eq!(status, 200, "{body}");
    let back = am
        .wait_until(DEADLINE, |alerts| {
            alerts.iter().any(|a| a["labels"]["alertname"] == "Dup")
        })
        .await;
    assert_eq!(back.len(), 1, "{back:#?}");
    assert_eq!(back[0]["fingerprint"], merged["fingerprint"]);
    assert_eq!(
        time_of(&back[0], "startsAt"),
        replica_a_start.trunc_subsecs(3)
    );
}
