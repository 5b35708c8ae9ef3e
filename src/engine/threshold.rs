//! Thresholds: the `warn` and `fail` expressions of a signal, such as `"> 0.05"`, `"< 0.99"` or
//! `"> baseline * 3"`, one condition or a list of them (breached when any condition is).
//!
//! The operator also gives the direction in which a value gets worse, which is what lets the
//! evaluator pick the worst series and order offenders without a separate setting. A relative
//! condition compares a series with its own baseline (see [`super::baseline`]); without one it is
//! never breached here, and the signal's `no_baseline` policy decides instead.

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

    fn holds(self, sample: f64, bound: f64) -> bool {
        match self {
            Op::Gt => sample > bound,
            Op::Ge => sample >= bound,
            Op::Lt => sample < bound,
            Op::Le => sample <= bound,
            Op::Eq => sample == bound,
            Op::Ne => sample != bound,
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

/// What a condition compares a sample with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// A fixed number: `> 0.5`.
    Absolute(f64),
    /// The series' baseline times a factor: `> baseline * 1.5`.
    Times(f64),
    /// The series' baseline plus a number (negative for `baseline - K`): `> baseline + 0.2`.
    Plus(f64),
}

impl Bound {
    /// The number a sample is compared with, when it can be known.
    fn resolve(self, baseline: Option<f64>) -> Option<f64> {
        match self {
            Bound::Absolute(v) => Some(v),
            Bound::Times(k) => baseline.map(|b| b * k),
            Bound::Plus(k) => baseline.map(|b| b + k),
        }
    }
}

/// One condition: an operator and what the sample is compared with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Condition {
    pub op: Op,
    pub bound: Bound,
}

impl Condition {
    /// True when `sample` breaches this condition. NaN never breaches (the evaluator treats it as
    /// missing data before it gets here), nor does a relative condition without a baseline.
    pub fn breached_by(&self, sample: f64, baseline: Option<f64>) -> bool {
        self.bound
            .resolve(baseline)
            .is_some_and(|bound| self.op.holds(sample, bound))
    }

    pub fn is_relative(&self) -> bool {
        !matches!(self.bound, Bound::Absolute(_))
    }

    pub fn direction(&self) -> Direction {
        match self.op {
            Op::Lt | Op::Le => Direction::LowerIsWorse,
            Op::Gt | Op::Ge | Op::Eq | Op::Ne => Direction::HigherIsWorse,
        }
    }

    /// Whether `self` (a warn condition) fires no later than `fail` as the value gets worse, when
    /// both are of the same kind; conditions of different kinds cannot be compared.
    fn is_not_stricter_than(&self, fail: &Condition) -> bool {
        if self.direction() != fail.direction() {
            return false;
        }
        if matches!(self.op, Op::Eq | Op::Ne) || matches!(fail.op, Op::Eq | Op::Ne) {
            return true;
        }
        let (w, f) = match (self.bound, fail.bound) {
            (Bound::Absolute(w), Bound::Absolute(f))
            | (Bound::Times(w), Bound::Times(f))
            | (Bound::Plus(w), Bound::Plus(f)) => (w, f),
            _ => return true,
        };
        match self.direction() {
            Direction::HigherIsWorse => w <= f,
            Direction::LowerIsWorse => w >= f,
        }
    }
}

/// A parsed `warn` or `fail` expression: one condition or several, breached when any is.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    conditions: Vec<Condition>,
    /// Written as a YAML list: shown and serialized as one too, even with one element.
    listed: bool,
}

/// Why a threshold expression could not be parsed; shown to the user next to file, signal and key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThresholdError {
    #[error("empty threshold; expected an operator and a number such as \"> 0.5\"")]
    Empty,
    #[error("empty list; give at least one condition such as \"> 0.5\"")]
    EmptyList,
    #[error("{0:?} does not start with one of the operators > >= < <= == !=")]
    MissingOperator(String),
    #[error("{0:?} is not a finite number (nor baseline * K, baseline + K or baseline - K)")]
    BadNumber(String),
    #[error("{0:?}: expected baseline * K, baseline + K or baseline - K")]
    BadOperand(String),
    #[error("{0:?}: a baseline factor must be a number above 0")]
    BadFactor(String),
    #[error("{0:?}: compare with a baseline using > >= < or <=, not == or !=")]
    BaselineEquality(String),
    #[error(
        "{0:?}: every condition of a list must point the same way (all > and >=, or all < and <=)"
    )]
    MixedDirections(String),
}

impl Threshold {
    /// A threshold of the conditions in a YAML list; they must all point the same way.
    pub fn any_of(texts: &[String]) -> Result<Threshold, ThresholdError> {
        let conditions = texts
            .iter()
            .map(|t| t.parse::<Condition>())
            .collect::<Result<Vec<_>, _>>()?;
        let Some(first) = conditions.first() else {
            return Err(ThresholdError::EmptyList);
        };
        if conditions
            .iter()
            .any(|c| c.direction() != first.direction())
        {
            return Err(ThresholdError::MixedDirections(texts.join(", ")));
        }
        Ok(Threshold {
            conditions,
            listed: true,
        })
    }

    pub fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    /// True when `sample` breaches any condition, given the series' baseline (if it has one).
    pub fn breached_by(&self, sample: f64, baseline: Option<f64>) -> bool {
        self.breached(sample, baseline).is_some()
    }

    /// The first condition that `sample` breaches, to name it in a reason.
    pub fn breached(&self, sample: f64, baseline: Option<f64>) -> Option<&Condition> {
        self.conditions
            .iter()
            .find(|c| c.breached_by(sample, baseline))
    }

    /// Whether any condition compares with the series' baseline.
    pub fn is_relative(&self) -> bool {
        self.conditions.iter().any(Condition::is_relative)
    }

    pub fn direction(&self) -> Direction {
        self.conditions[0].direction()
    }

    /// Whether `self` (a warn threshold) fires no later than `fail` as the value gets worse:
    /// both point the same way, and each warn condition is reached no later than each fail
    /// condition of its kind. A warn that is stricter than its fail would report `fail` without
    /// ever passing `warn`, which is always a typo in a pack.
    pub fn is_not_stricter_than(&self, fail: &Threshold) -> bool {
        self.conditions
            .iter()
            .all(|w| fail.conditions.iter().all(|f| w.is_not_stricter_than(f)))
    }
}

impl FromStr for Condition {
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
        let number = |text: &str| -> Result<f64, ThresholdError> {
            let text = text.trim();
            match text.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(v),
                _ => Err(ThresholdError::BadNumber(text.to_string())),
            }
        };
        let Some(relative) = rest.strip_prefix("baseline") else {
            return Ok(Condition {
                op,
                bound: Bound::Absolute(number(rest)?),
            });
        };
        if matches!(op, Op::Eq | Op::Ne) {
            return Err(ThresholdError::BaselineEquality(s.to_string()));
        }
        let relative = relative.trim_start();
        let bound = if let Some(k) = relative.strip_prefix('*') {
            let k = number(k)?;
            if k <= 0.0 {
                return Err(ThresholdError::BadFactor(s.to_string()));
            }
            Bound::Times(k)
        } else if let Some(k) = relative.strip_prefix('+') {
            Bound::Plus(number(k)?)
        } else if let Some(k) = relative.strip_prefix('-') {
            Bound::Plus(-number(k)?)
        } else {
            return Err(ThresholdError::BadOperand(rest.to_string()));
        };
        Ok(Condition { op, bound })
    }
}

impl FromStr for Threshold {
    type Err = ThresholdError;

    /// One condition, as a plain string in YAML.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Threshold {
            conditions: vec![s.parse()?],
            listed: false,
        })
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = self.op.symbol();
        match self.bound {
            Bound::Absolute(v) => write!(f, "{op} {v}"),
            Bound::Times(k) => write!(f, "{op} baseline * {k}"),
            Bound::Plus(k) if k < 0.0 => write!(f, "{op} baseline - {}", -k),
            Bound::Plus(k) => write!(f, "{op} baseline + {k}"),
        }
    }
}

impl fmt::Display for Threshold {
    /// `> 4 or > baseline * 3` for a list.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.conditions.iter().enumerate() {
            if i > 0 {
                f.write_str(" or ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl Serialize for Threshold {
    /// As written: a string for one condition, a list of strings for a list.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.listed {
            self.conditions.serialize(serializer)
        } else {
            self.conditions[0].serialize(serializer)
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Threshold {
        s.parse().unwrap()
    }

    fn c(s: &str) -> Condition {
        s.parse().unwrap()
    }

    fn abs(op: Op, value: f64) -> Condition {
        Condition {
            op,
            bound: Bound::Absolute(value),
        }
    }

    #[test]
    fn parses_every_operator_with_and_without_spaces() {
        assert_eq!(c("> 0.5"), abs(Op::Gt, 0.5));
        assert_eq!(c(">=1"), abs(Op::Ge, 1.0));
        assert_eq!(c("  < 0.99 "), abs(Op::Lt, 0.99));
        assert_eq!(c("<= -3"), abs(Op::Le, -3.0));
        assert_eq!(c("== 0"), abs(Op::Eq, 0.0));
        assert_eq!(c("!= 1e3"), abs(Op::Ne, 1000.0));
    }

    #[test]
    fn rejects_bad_expressions_with_a_reason() {
        assert_eq!("".parse::<Condition>(), Err(ThresholdError::Empty));
        assert!(matches!(
            "0.5".parse::<Condition>(),
            Err(ThresholdError::MissingOperator(_))
        ));
        assert!(matches!(
            "=> 1".parse::<Condition>(),
            Err(ThresholdError::MissingOperator(_))
        ));
        assert!(matches!(
            "> abc".parse::<Condition>(),
            Err(ThresholdError::BadNumber(_))
        ));
        assert!(matches!(
            "> NaN".parse::<Condition>(),
            Err(ThresholdError::BadNumber(_))
        ));
        assert!(matches!(
            "> inf".parse::<Condition>(),
            Err(ThresholdError::BadNumber(_))
        ));
        assert!(matches!(
            ">".parse::<Condition>(),
            Err(ThresholdError::BadNumber(_))
        ));
    }

    #[test]
    fn breach_is_strict_or_inclusive_as_written() {
        assert!(!t("> 1").breached_by(1.0, None));
        assert!(t(">= 1").breached_by(1.0, None));
        assert!(t("< 0.99").breached_by(0.5, None));
        assert!(!t("< 0.99").breached_by(0.99, None));
        assert!(t("<= 0.99").breached_by(0.99, None));
        assert!(t("== 0").breached_by(0.0, None));
        assert!(t("!= 0").breached_by(2.0, None));
        assert!(!t("> 1").breached_by(f64::NAN, None));
    }

    #[test]
    fn relative_conditions_compare_with_the_baseline() {
        assert_eq!(
            c("> baseline * 1.5"),
            Condition {
                op: Op::Gt,
                bound: Bound::Times(1.5)
            }
        );
        assert_eq!(c(">=baseline+0.2").bound, Bound::Plus(0.2));
        assert_eq!(c("< baseline - 0.1").bound, Bound::Plus(-0.1));
        assert!(c("> baseline * 3").breached_by(0.35, Some(0.1)));
        assert!(!c("> baseline * 3").breached_by(0.25, Some(0.1)));
        assert!(
            !c("> baseline * 3").breached_by(100.0, None),
            "no baseline, no breach"
        );
        assert!(c("< baseline - 0.1").breached_by(0.85, Some(0.99)));
        assert!(c("> baseline + 0.2").breached_by(0.31, Some(0.1)));
        assert_eq!(c("> baseline-0.5").to_string(), "> baseline - 0.5");
        assert_eq!(c("<=baseline*2").to_string(), "<= baseline * 2");
    }

    #[test]
    fn bad_relative_conditions_are_rejected() {
        for bad in [
            "> baseline * lots",
            "> baselin * 2",
            "> baseline",
            "> baseline / 2",
            "> baseline * 0",
            "> baseline * -1",
            "== baseline * 2",
            "> baseline * inf",
        ] {
            assert!(bad.parse::<Condition>().is_err(), "{bad}");
        }
        assert_eq!(
            Threshold::any_of(&[]).unwrap_err(),
            ThresholdError::EmptyList
        );
        assert!(matches!(
            Threshold::any_of(&["> 4".into(), "< baseline * 0.5".into()]),
            Err(ThresholdError::MixedDirections(_))
        ));
    }

    #[test]
    fn a_list_breaches_when_any_condition_does() {
        let fail = Threshold::any_of(&["> 4".into(), "> baseline * 3".into()]).unwrap();
        assert!(fail.breached_by(5.0, None));
        assert!(fail.breached_by(0.35, Some(0.1)));
        assert!(!fail.breached_by(0.25, Some(0.1)));
        assert_eq!(
            fail.breached(0.35, Some(0.1)).unwrap().to_string(),
            "> baseline * 3"
        );
        assert!(fail.is_relative());
        assert!(!t("> 4").is_relative());
        assert_eq!(fail.to_string(), "> 4 or > baseline * 3");
        assert_eq!(
            serde_json::to_string(&fail).unwrap(),
            r#"["> 4","> baseline * 3"]"#
        );
        let warn = Threshold::any_of(&["> 2".into(), "> baseline * 1.5".into()]).unwrap();
        assert!(warn.is_not_stricter_than(&fail));
        let too_strict = Threshold::any_of(&["> baseline * 4".into()]).unwrap();
        assert!(!too_strict.is_not_stricter_than(&fail));
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
