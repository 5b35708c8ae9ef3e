use super::*;
use crate::config::load;

/// The fleet of the issue: three waves, one cluster in a backend of its own.
fn fleet() -> FleetConfig {
    let wave = |name: &str, clusters: &[&str]| Wave {
        name: name.into(),
        clusters: clusters.iter().map(|c| c.to_string()).collect(),
        soak: Duration::ZERO,
    };
    let prometheus = load(None).unwrap().prometheus;
    FleetConfig {
        label: "cluster".into(),
        presence: "up".into(),
        waves: vec![
            wave("canary", &["dev-euw1"]),
            wave("staging", &["stg-euw1", "stg-use1"]),
            wave("prod", &["prod-euw1", "prod-apne2"]),
        ],
        backends: vec![Backend {
            name: "apne2".into(),
            prometheus,
            clusters: vec!["prod-apne2".into()],
        }],
    }
}

#[test]
fn each_store_is_queried_for_its_own_clusters() {
    let fleet = fleet();
    let scopes = fleet.scopes();
    assert_eq!(scopes.len(), 2);
    assert_eq!(scopes[0].backend, None);
    assert_eq!(
        scopes[0].clusters,
        ["dev-euw1", "stg-euw1", "stg-use1", "prod-euw1"]
    );
    assert_eq!(scopes[1].backend, Some("apne2"));
    assert_eq!(scopes[1].clusters, ["prod-apne2"]);
}

/// Every query of the default pack is rewritten: the result parses, every selector is limited to
/// the store's clusters and every aggregation and every `on (...)` groups by the label.
#[test]
fn every_default_pack_query_is_rewritten_with_the_label_everywhere() {
    use promql_parser::parser::{parse, Expr};
    use promql_parser::util::{walk_expr, ExprVisitor};

    struct Holds<'a> {
        label: &'a str,
        regex: &'a str,
        missing: Vec<String>,
    }
    impl ExprVisitor for Holds<'_> {
        type Error = ();
        fn pre_visit(&mut self, e: &Expr) -> Result<bool, ()> {
            let selector = match e {
                Expr::VectorSelector(vs) => Some(vs),
                Expr::MatrixSelector(ms) => Some(&ms.vs),
                _ => None,
            };
            if let Some(vs) = selector {
                let limited = vs.matchers.matchers.iter().any(|m| {
                    m.name == self.label && m.value == self.regex && m.op.to_string() == "=~"
                });
                if !limited {
                    self.missing.push(format!("selector {vs}"));
                }
            }
            if let Expr::Binary(b) = e {
                let matching = b.modifier.as_ref().and_then(|m| m.matching.as_ref());
                if let Some(promql_parser::parser::LabelModifier::Include(l)) = matching {
                    if !l.labels.iter().any(|l| l == self.label) {
                        self.missing.push(format!("on () of {e}"));
                    }
                }
            }
            if let Expr::Aggregate(a) = e {
                let grouped = match &a.modifier {
                    Some(promql_parser::parser::LabelModifier::Include(l)) => {
                        l.labels.iter().any(|l| l == self.label)
                    }
                    Some(promql_parser::parser::LabelModifier::Exclude(l)) => {
                        !l.labels.iter().any(|l| l == self.label)
                    }
                    None => false,
                };
                if !grouped {
                    self.missing.push(format!("aggregation {e}"));
                }
            }
            Ok(true)
        }
    }

    let pack = load(None).unwrap().pack;
    assert!(
        pack.signals.len() >= 10,
        "the default pack: {}",
        pack.signals.len()
    );
    let fleet = fleet();
    for scope in fleet.scopes() {
        let regex = scope.clusters.join("|");
        for signal in &pack.signals {
            let text = fleet
                .rewrite(&signal.query, &scope)
                .unwrap_or_else(|r| panic!("{}: {r}", signal.name));
            let tree = parse(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", signal.name));
            assert_eq!(parse(&tree.to_string()).unwrap(), tree, "{text}");
            let mut holds = Holds {
                label: "cluster",
                regex: &regex,
                missing: Vec::new(),
            };
            walk_expr(&mut holds, &tree).unwrap();
            assert!(
                holds.missing.is_empty(),
                "{}: {:?}\n{text}",
                signal.name,
                holds.missing
            );
        }
    }
}
