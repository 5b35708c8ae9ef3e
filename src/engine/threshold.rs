//! Thresholds: the `warn` and `fail` expressions of a signal, such as `"> 0.05"` or `"< 0.99"`.
//!
//! The operator also gives the direction in which a value gets worse, which is what lets the
//! evaluator pick the worst series and order offenders without a separate setting.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// Comparison operator of a threshold, in PromQL's spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl Op {
    fn symbol(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
}

/// Which way a value gets worse. `==` and `!=` have no order, so they are treated as
/// higher-is-worse for picking the series to show first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    HigherIsWorse,
    LowerIsWorse,
}

impl Direction {
    /// True when `a` is strictly worse than `b`.
    pub fn worse(self, a: f64, b: f64) -> bool {
        match self {
            Direction::HigherIsWorse => a > b,
            Direction::LowerIsWorse => a < b,
        }
    }
}

/// A parsed `warn` or `fail` expression: the condition under which a sample breaches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    pub op: Op,
    pub value: f64,
}

/// Why a threshold expression could not be parsed; shown to the user next to file, signal and key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThresholdError {
    #[error("empty threshold; expected an operator and a number such as \"> 0.5\"")]
    Empty,
    #[error("{0:?} does not start with one of the operators > >= < <= == !=")]
    MissingOperator(String),
    #[error("{0:?} is not a finite number")]
    BadNumber(String),
}

impl Threshold {
    /// True when `sample` breaches this threshold. NaN never breaches: the evaluator treats it as
    /// missing data before it gets here.
    pub fn breached_by(&self, sample: f64) -> bool {
        match self.op {
            Op::Gt => sample > self.value,
            Op::Ge => sample >= self.value,
            Op::Lt => sample < self.value,
            Op::Le => sample <= self.value,
            Op::Eq => sample == self.value,
            Op::Ne => sample != self.value,
        }
    }

    pub fn direction(&self) -> Direction {
        match self.op {
            Op::Lt | Op::Le => Direction::LowerIsWorse,
            Op::Gt | Op::Ge | Op::Eq | Op::Ne => Direction::HigherIsWorse,
        }
    }

    /// Whether `self` (a warn threshold) fires no later than `fail` as the value gets worse.
    /// A warn that is stricter than its fail would report `fail` without ever passing `warn`,
    /// which is always a typo in a pack.
    pub fn is_not_stricter_than(&self, fail: &Threshold) -> bool {
        if self.direction() != fail.direction() {
            return false;
        }
        match (self.op, fail.op) {
            (Op::Eq | Op::Ne, _) | (_, Op::Eq | Op::Ne) => true,
            _ => match self.direction() {
                Direction::HigherIsWorse => self.value <= fail.value,
                Direction::LowerIsWorse => self.value >= fail.value,
            },
        }
    }
}

impl FromStr for Threshold {
    type Err = ThresholdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err(ThresholdError::Empty);
        }
        // Two-character operators first so that ">=" is not read as ">" followed by "=1".
        const OPS: [(&str, Op); 6] = [
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            (">", Op::Gt),
            ("<", Op::Lt),
        ];
        let (op, rest) = OPS
            .iter()
            .find_map(|(sym, op)| s.strip_prefix(sym).map(|rest| (*op, rest.trim())))
            .ok_or_else(|| ThresholdError::MissingOperator(s.to_string()))?;
        let value: f64 = rest
            .parse()
            .map_err(|_| ThresholdError::BadNumber(rest.to_string()))?;
        if !value.is_finite() {
            return Err(ThresholdError::BadNumber(rest.to_string()));
        }
        Ok(Threshold { op, value })
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.op.symbol(), self.value)
    }
}

impl Serialize for Threshold {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Threshold {
        s.parse().unwrap()
    }

    #[test]
    fn parses_every_operator_with_and_without_spaces() {
        assert_eq!(
            t("> 0.5"),
            Threshold {
                op: Op::Gt,
                value: 0.5
            }
        );
        assert_eq!(
            t(">=1"),
            Threshold {
                op: Op::Ge,
                value: 1.0
            }
        );
        assert_eq!(
            t("  < 0.99 "),
            Threshold {
                op: Op::Lt,
                value: 0.99
            }
        );
        assert_eq!(
            t("<= -3"),
            Threshold {
                op: Op::Le,
                value: -3.0
            }
        );
        assert_eq!(
            t("== 0"),
            Threshold {
                op: Op::Eq,
                value: 0.0
            }
        );
        assert_eq!(
            t("!= 1e3"),
            Threshold {
                op: Op::Ne,
                value: 1000.0
            }
        );
    }

    #[test]
    fn rejects_bad_expressions_with_a_reason() {
        assert_eq!("".parse::<Threshold>(), Err(ThresholdError::Empty));
        assert!(matches!(
            "0.5".parse::<Threshold>(),
            Err(ThresholdError::MissingOperator(_))
        ));
        assert!(matches!(
            "=> 1".parse::<Threshold>(),
            Err(ThresholdError::MissingOperator(_))
        ));
        assert!(matches!(
            "> abc".parse::<Threshold>(),
            Err(ThresholdError::BadNumber(_))
        ));
        assert!(matches!(
            "> NaN".parse::<Threshold>(),
            Err(ThresholdError::BadNumber(_))
        ));
        assert!(matches!(
            "> inf".parse::<Threshold>(),
            Err(ThresholdError::BadNumber(_))
        ));
        assert!(matches!(
            ">".parse::<Threshold>(),
            Err(ThresholdError::BadNumber(_))
        ));
    }

    #[test]
    fn breach_is_strict_or_inclusive_as_written() {
        assert!(!t("> 1").breached_by(1.0));
        assert!(t(">= 1").breached_by(1.0));
        assert!(t("< 0.99").breached_by(0.5));
        assert!(!t("< 0.99").breached_by(0.99));
        assert!(t("<= 0.99").breached_by(0.99));
        assert!(t("== 0").breached_by(0.0));
        assert!(t("!= 0").breached_by(2.0));
        assert!(!t("> 1").breached_by(f64::NAN));
    }

    #[test]
    fn direction_follows_the_operator() {
        assert_eq!(t("> 1").direction(), Direction::HigherIsWorse);
        assert_eq!(t("< 1").direction(), Direction::LowerIsWorse);
        assert!(Direction::LowerIsWorse.worse(0.1, 0.2));
        assert!(Direction::HigherIsWorse.worse(0.2, 0.1));
    }

    #[test]
    fn warn_must_not_be_stricter_than_fail() {
        assert!(t("> 0.5").is_not_stricter_than(&t("> 1")));
        assert!(!t("> 2").is_not_stricter_than(&t("> 1")));
        assert!(t("< 0.99").is_not_stricter_than(&t("< 0.95")));
        assert!(!t("< 0.9").is_not_stricter_than(&t("< 0.95")));
        assert!(!t("< 0.9").is_not_stricter_than(&t("> 0.95")));
    }

    #[test]
    fn displays_as_written_normalised() {
        assert_eq!(t(">=0.5").to_string(), ">= 0.5");
        assert_eq!(serde_json::to_string(&t("< 1")).unwrap(), "\"< 1\"");
    }
}
