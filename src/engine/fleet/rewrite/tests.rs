use super::*;

const LABEL: &str = "cluster";

fn clusters() -> Vec<String> {
    vec!["c1".into(), "prod.euw1".into()]
}

fn fleet(query: &str) -> Result<String, Refusal> {
    let clusters = clusters();
    let scope = Scope {
        label: LABEL,
        clusters: &clusters,
    };
    let text = rewrite_query(query, &scope)?;
    // What is rendered parses back to the very tree that was rendered.
    let tree = rewrite(promql_parser::parser::parse(query).unwrap(), &scope)?;
    assert_eq!(promql_parser::parser::parse(&text).unwrap(), tree, "{text}");
    Ok(text)
}

/// The same query, whatever the order of matchers and the spacing.
fn same(a: &str, b: &str) {
    let parse = |q: &str| promql_parser::parser::parse(q).unwrap().to_string();
    assert_eq!(parse(a), parse(b), "\n  got:  {a}\n  want: {b}");
}

const SEL: &str = r#"cluster=~"c1|prod\\.euw1""#;

#[test]
fn selectors_are_limited_to_the_listed_clusters_escaped() {
    let got = fleet("up").unwrap();
    assert!(got.contains(r#"cluster=~"c1|prod\\.euw1""#), "{got}");
    same(&got, &format!("up{{{SEL}}}"));
    same(
        &fleet(r#"rate(http_requests_total{code=~"5.."}[5m])"#).unwrap(),
        &format!(r#"rate(http_requests_total{{code=~"5..",{SEL}}}[5m])"#),
    );
}

#[test]
fn every_alternative_of_an_or_selector_is_limited() {
    let got = fleet(r#"{job="a" or job="b"}"#).unwrap();
    assert_eq!(got.matches("cluster=~").count(), 2, "{got}");
}

#[test]
fn aggregations_gain_the_label_nested_or_not() {
    same(
        &fleet("sum(rate(x[5m]))").unwrap(),
        &format!("sum by (cluster) (rate(x{{{SEL}}}[5m]))"),
    );
    same(
        &fleet("max by (node) (sum by (node, pod) (x))").unwrap(),
        &format!("max by (node, cluster) (sum by (node, pod, cluster) (x{{{SEL}}}))"),
    );
    same(
        &fleet("sum by (cluster, job) (x)").unwrap(),
        &format!("sum by (cluster, job) (x{{{SEL}}})"),
    );
    same(
        &fleet("sum without (pod) (x)").unwrap(),
        &format!("sum without (pod) (x{{{SEL}}})"),
    );
    same(
        &fleet("topk(3, x)").unwrap(),
        &format!("topk by (cluster) (3, x{{{SEL}}})"),
    );
    same(
        &fleet("quantile by (job) (0.9, x)").unwrap(),
        &format!("quantile by (job, cluster) (0.9, x{{{SEL}}})"),
    );
    same(
        &fleet(r#"count_values("version", x)"#).unwrap(),
        &format!(r#"count_values by (cluster) ("version", x{{{SEL}}})"#),
    );
    same(
        &fleet("histogram_quantile(0.99, sum by (le) (rate(b[5m])))").unwrap(),
        &format!("histogram_quantile(0.99, sum by (le, cluster) (rate(b{{{SEL}}}[5m])))"),
    );
}

#[test]
fn vector_matching_keeps_clusters_apart() {
    same(
        &fleet("a / on (job) b").unwrap(),
        &format!("a{{{SEL}}} / on (job, cluster) b{{{SEL}}}"),
    );
    same(
        &fleet("a / on () group_left sum(b)").unwrap(),
        &format!("a{{{SEL}}} / on (cluster) group_left () sum by (cluster) (b{{{SEL}}})"),
    );
    same(
        &fleet("a * on (node) group_left (role, cluster) b").unwrap(),
        &format!("a{{{SEL}}} * on (node, cluster) group_left (role) b{{{SEL}}}"),
    );
    same(
        &fleet("a / ignoring (code) group_right b").unwrap(),
        &format!("a{{{SEL}}} / ignoring (code) group_right () b{{{SEL}}}"),
    );
    same(
        &fleet("a and on (job) b").unwrap(),
        &format!("a{{{SEL}}} and on (job, cluster) b{{{SEL}}}"),
    );
    same(
        &fleet("a > bool 0.5").unwrap(),
        &format!("a{{{SEL}}} > bool 0.5"),
    );
    same(
        &fleet("sum(a) / 2 + time()").unwrap(),
        &format!("sum by (cluster) (a{{{SEL}}}) / 2 + time()"),
    );
}

#[test]
fn subqueries_offsets_and_at_modifiers_are_kept() {
    same(
        &fleet("max_over_time(sum(rate(x[1m]))[10m:1m] offset 5m)").unwrap(),
        &format!("max_over_time(sum by (cluster) (rate(x{{{SEL}}}[1m]))[10m:1m] offset 5m)"),
    );
    same(
        &fleet("x @ 1700000000 offset 1h").unwrap(),
        &format!("x{{{SEL}}} @ 1700000000 offset 1h"),
    );
    same(
        &fleet("rate(x[5m] @ end())").unwrap(),
        &format!("rate(x{{{SEL}}}[5m] @ end())"),
    );
    same(
        &fleet("-(sum(x))").unwrap(),
        &format!("-(sum by (cluster) (x{{{SEL}}}))"),
    );
}

#[test]
fn what_cannot_keep_clusters_apart_is_refused_with_its_reason() {
    let refused = |q: &str| fleet(q).unwrap_err().to_string();
    assert!(refused("scalar(sum(x))").contains("scalar()"));
    assert!(refused("vector(1)").contains("vector()"));
    assert!(refused("x > scalar(y)").contains("scalar()"));
    assert!(refused("absent(up{job=\"a\"})").contains("absent()"));
    assert!(refused("absent_over_time(up[5m])").contains("absent_over_time()"));
    assert!(refused("sum without (cluster) (x)").contains("without (cluster)"));
    assert!(refused("a / ignoring (cluster) b").contains("ignoring (cluster)"));
    let r = refused(r#"label_replace(x, "cluster", "$1", "node", "(.*)")"#);
    assert!(
        r.contains("label_replace()") && r.contains("cluster"),
        "{r}"
    );
    assert!(refused(r#"label_join(x, "cluster", "-", "a")"#).contains("label_join()"));
    assert!(refused(r#"count_values("cluster", x)"#).contains("count_values"));
    assert!(refused("sum(").starts_with("invalid PromQL"));
    let none = Scope {
        label: LABEL,
        clusters: &[],
    };
    assert_eq!(rewrite_query("up", &none), Err(Refusal::NoClusters));
}

#[test]
fn another_label_name_is_used_throughout() {
    let clusters = vec!["a".to_string()];
    let scope = Scope {
        label: "k8s_cluster",
        clusters: &clusters,
    };
    same(
        &rewrite_query("sum(x) / on () group_left sum(y)", &scope).unwrap(),
        r#"sum by (k8s_cluster) (x{k8s_cluster=~"a"}) / on (k8s_cluster) group_left () sum by (k8s_cluster) (y{k8s_cluster=~"a"})"#,
    );
    assert!(rewrite_query("sum by (cluster) (x)", &scope).is_ok());
}
