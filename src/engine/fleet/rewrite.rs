//! A query written for one cluster, made to answer for a fleet at once.
//!
//! Packs stay written for a single cluster. In fleet mode every query's syntax tree is rewritten
//! so that one query answers for every listed cluster, series by series, as the original would
//! against each cluster's own Prometheus: the fleet label joins every grouping (`by`, `on`), an
//! aggregation without grouping is grouped by it, and every selector is limited to the listed
//! clusters. What cannot keep clusters apart is refused rather than blended, because a blended
//! answer judges one cluster by another's series.

use promql_parser::label::{Labels, Matcher};
use promql_parser::parser::token::T_EQL_REGEX;
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{
    AggregateExpr, BinModifier, BinaryExpr, Call, Expr, LabelModifier, NumberLiteral, ParenExpr,
    SubqueryExpr, UnaryExpr, VectorMatchCardinality, VectorSelector,
};

/// Why a query cannot be answered per cluster; the message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("invalid PromQL: {0}")]
    Syntax(String),
    #[error("{0}() drops every label, so the clusters' series cannot be told apart")]
    DropsLabels(&'static str),
    #[error("{0}() answers for the whole store, not per cluster")]
    WholeStore(&'static str),
    #[error("`without ({label})` merges the clusters' series")]
    Without { label: String },
    #[error("`ignoring ({label})` matches one cluster's series with another's")]
    Ignoring { label: String },
    #[error("{function}() writes the {label} label, which names the cluster")]
    Overwrites {
        function: &'static str,
        label: String,
    },
    #[error("count_values(\"{label}\", ...) writes the {label} label, which names the cluster")]
    CountValuesLabel { label: String },
    #[error("an extension expression cannot be rewritten per cluster")]
    Extension,
    #[error("no cluster is listed to limit the selectors to")]
    NoClusters,
}

/// The fleet label and the clusters one query answers for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope<'a> {
    pub label: &'a str,
    pub clusters: &'a [String],
}

/// `query` rewritten for the clusters of `scope`, as PromQL text.
pub fn rewrite_query(query: &str, scope: &Scope) -> Result<String, Refusal> {
    let expr = promql_parser::parser::parse(query).map_err(|e| Refusal::Syntax(e.trim().into()))?;
    Ok(rewrite(expr, scope)?.to_string())
}

/// The syntax tree of one cluster's query, rewritten to answer for every cluster of `scope`.
pub fn rewrite(expr: Expr, scope: &Scope) -> Result<Expr, Refusal> {
    let matcher = cluster_matcher(scope)?;
    Rewriter {
        label: scope.label,
        matcher,
    }
    .expr(expr)
}

/// `<label>=~"a|b|c"`, each cluster escaped so that its name matches itself only.
fn cluster_matcher(scope: &Scope) -> Result<Matcher, Refusal> {
    if scope.clusters.is_empty() {
        return Err(Refusal::NoClusters);
    }
    let regex = scope
        .clusters
        .iter()
        .map(|c| regex_escape(c))
        .collect::<Vec<_>>()
        .join("|");
    Matcher::new_matcher(T_EQL_REGEX, scope.label.to_string(), regex).map_err(Refusal::Syntax)
}

/// Escapes what both RE2 (Prometheus) and Rust's regex read as syntax.
fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

struct Rewriter<'a> {
    label: &'a str,
    matcher: Matcher,
}

impl Rewriter<'_> {
    fn expr(&self, expr: Expr) -> Result<Expr, Refusal> {
        Ok(match expr {
            Expr::Aggregate(a) => Expr::Aggregate(self.aggregate(a)?),
            Expr::Unary(u) => Expr::Unary(UnaryExpr {
                expr: self.boxed(u.expr)?,
            }),
            Expr::Binary(b) => Expr::Binary(self.binary(b)?),
            Expr::Paren(p) => Expr::Paren(ParenExpr {
                expr: self.boxed(p.expr)?,
            }),
            Expr::Subquery(s) => Expr::Subquery(SubqueryExpr {
                expr: self.boxed(s.expr)?,
                ..s
            }),
            e @ (Expr::NumberLiteral(_) | Expr::StringLiteral(_)) => e,
            Expr::VectorSelector(vs) => Expr::VectorSelector(self.selector(vs)),
            Expr::MatrixSelector(mut ms) => {
                ms.vs = self.selector(ms.vs);
                Expr::MatrixSelector(ms)
            }
            Expr::Call(c) => Expr::Call(self.call(c)?),
            Expr::Extension(_) => return Err(Refusal::Extension),
        })
    }

    /// Rewrites in the box it came in, to spare an allocation per node.
    fn boxed(&self, mut expr: Box<Expr>) -> Result<Box<Expr>, Refusal> {
        let taken = std::mem::replace(&mut *expr, Expr::NumberLiteral(NumberLiteral { val: 0.0 }));
        *expr = self.expr(taken)?;
        Ok(expr)
    }

    /// Every alternative of the selector (`{a="x" or b="y"}`) is limited to the clusters. Plain
    /// matchers are kept in the order they are rendered in, so the text parses back to this tree.
    fn selector(&self, mut vs: VectorSelector) -> VectorSelector {
        if vs.matchers.or_matchers.is_empty() {
            vs.matchers.matchers.push(self.matcher.clone());
            vs.matchers.matchers.sort_by_cached_key(|m| m.to_string());
        } else {
            for group in &mut vs.matchers.or_matchers {
                group.push(self.matcher.clone());
            }
        }
        vs
    }

    fn aggregate(&self, a: AggregateExpr) -> Result<AggregateExpr, Refusal> {
        if a.op.to_string() == "count_values" {
            if let Some(Expr::StringLiteral(s)) = a.param.as_deref() {
                if s.val == self.label {
                    return Err(Refusal::CountValuesLabel {
                        label: self.label.into(),
                    });
                }
            }
        }
        let modifier = match a.modifier {
            None => LabelModifier::Include(Labels::new(vec![self.label])),
            Some(LabelModifier::Include(labels)) => LabelModifier::Include(self.with_label(labels)),
            Some(LabelModifier::Exclude(labels)) => {
                if labels.labels.iter().any(|l| l == self.label) {
                    return Err(Refusal::Without {
                        label: self.label.into(),
                    });
                }
                LabelModifier::Exclude(labels)
            }
        };
        let param = a.param.map(|p| self.boxed(p)).transpose()?;
        Ok(AggregateExpr {
            op: a.op,
            expr: self.boxed(a.expr)?,
            param,
            modifier: Some(modifier),
        })
    }

    fn with_label(&self, mut labels: Labels) -> Labels {
        if !labels.labels.iter().any(|l| l == self.label) {
            labels.labels.push(self.label.to_string());
        }
        labels
    }

    /// Between two vectors, matching must keep clusters apart: `on` gains the label, `ignoring`
    /// must not name it, and a `group_left/right` list drops it when `on` now holds it
    /// (Prometheus refuses a label in both). Without a modifier, matching on every label already
    /// includes it; with a scalar side there is no matching at all.
    fn binary(&self, b: BinaryExpr) -> Result<BinaryExpr, Refusal> {
        let between_vectors = is_vector(&b.lhs) && is_vector(&b.rhs);
        let modifier = match b.modifier {
            Some(m) if between_vectors => Some(self.matching(m)?),
            other => other,
        };
        Ok(BinaryExpr {
            op: b.op,
            lhs: self.boxed(b.lhs)?,
            rhs: self.boxed(b.rhs)?,
            modifier,
        })
    }

    fn matching(&self, mut m: BinModifier) -> Result<BinModifier, Refusal> {
        match m.matching.take() {
            Some(LabelModifier::Include(labels)) => {
                m.matching = Some(LabelModifier::Include(self.with_label(labels)));
                let without_label = |mut l: Labels| {
                    l.labels.retain(|x| x != self.label);
                    l
                };
                m.card = match m.card {
                    VectorMatchCardinality::ManyToOne(l) => {
                        VectorMatchCardinality::ManyToOne(without_label(l))
                    }
                    VectorMatchCardinality::OneToMany(l) => {
                        VectorMatchCardinality::OneToMany(without_label(l))
                    }
                    card => card,
                };
            }
            Some(LabelModifier::Exclude(labels)) => {
                if labels.labels.iter().any(|l| l == self.label) {
                    return Err(Refusal::Ignoring {
                        label: self.label.into(),
                    });
                }
                m.matching = Some(LabelModifier::Exclude(labels));
            }
            None => {}
        }
        Ok(m)
    }

    fn call(&self, mut c: Call) -> Result<Call, Refusal> {
        let name = c.func.name;
        match name {
            "scalar" | "vector" => return Err(Refusal::DropsLabels(name)),
            "absent" | "absent_over_time" => return Err(Refusal::WholeStore(name)),
            "label_replace" | "label_join" => {
                if let Some(Expr::StringLiteral(dst)) = c.args.args.get(1).map(|a| &**a) {
                    if dst.val == self.label {
                        return Err(Refusal::Overwrites {
                            function: name,
                            label: self.label.into(),
                        });
                    }
                }
            }
            _ => {}
        }
        let args = std::mem::take(&mut c.args.args);
        c.args.args = args
            .into_iter()
            .map(|a| self.boxed(a))
            .collect::<Result<_, _>>()?;
        Ok(c)
    }
}

fn is_vector(expr: &Expr) -> bool {
    matches!(expr.value_type(), ValueType::Vector | ValueType::Matrix)
}

#[cfg(test)]
mod tests;
