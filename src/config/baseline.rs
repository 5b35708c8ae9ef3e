//! The `baseline` section (top level, and a signal's own override): where the window that
//! relative conditions compare with ends (`end`, fixed, or `offset`, moving) and how long it is
//! (`window`). A pipeline pins `end` when the upgrade starts, as `UPGRADE_GATE__BASELINE__END`.

use std::time::Duration;

use serde::Deserialize;

use super::problems::At;
use super::read::parse_duration;
use crate::engine::baseline::{Anchor, BaselineSpec};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBaseline {
    end: Option<String>,
    offset: Option<String>,
    window: Option<String>,
}

/// A baseline section as validated, each key unset where it says nothing, so that a signal's
/// section can be laid over the top-level one.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct BaselineSettings {
    end: Option<i64>,
    offset: Option<Duration>,
    window: Option<Duration>,
}

impl BaselineSettings {
    /// Reads a raw section, reporting each problem at `at` under `baseline.`.
    pub(super) fn validate(raw: RawBaseline, at: At) -> BaselineSettings {
        let end = raw.end.and_then(|text| {
            let time = chrono::DateTime::parse_from_rfc3339(text.trim()).map_err(|e| {
                format!("{text:?} is not an RFC 3339 time such as 2026-12-01T09:00:00Z: {e}")
            });
            at.key("baseline.end").check(time).map(|t| t.timestamp())
        });
        let positive = |key: &'static str, text: Option<String>, why: &str| {
            let key = at.key(key);
            let d = key.check(parse_duration(text.as_deref()?))?;
            let whole = humantime::format_duration(d);
            key.require(
                d >= Duration::from_secs(1) && d.subsec_nanos() == 0,
                format!("{whole} must be a whole number of seconds, at least 1s ({why})"),
            )
            .then_some(d)
        };
        BaselineSettings {
            end,
            offset: positive(
                "baseline.offset",
                raw.offset,
                "at 0 each step would be compared with itself",
            ),
            window: positive(
                "baseline.window",
                raw.window,
                "a baseline is the mean over this window",
            ),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.end.is_none() && self.offset.is_none() && self.window.is_none()
    }

    /// The baseline of a signal whose own section is `self`, under the top-level `top`. The
    /// anchor is taken whole from the signal when it names one (`end`, else `offset`), else from
    /// the top level, else the default (`offset: 1d`): `end` wins over `offset` at each level. The
    /// window is the signal's, else the top level's, else one hour.
    pub(super) fn over(self, top: BaselineSettings) -> BaselineSpec {
        let anchor =
            |s: BaselineSettings| s.end.map(Anchor::Fixed).or(s.offset.map(Anchor::Moving));
        BaselineSpec {
            anchor: anchor(self)
                .or(anchor(top))
                .unwrap_or(BaselineSpec::DEFAULT.anchor),
            window: self
                .window
                .or(top.window)
                .unwrap_or(BaselineSpec::DEFAULT.window),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::problems::Problems;
    use super::*;

    fn settings(end: Option<&str>, offset: Option<&str>, window: Option<&str>) -> BaselineSettings {
        let problems = Problems::default();
        let s = BaselineSettings::validate(
            RawBaseline {
                end: end.map(Into::into),
                offset: offset.map(Into::into),
                window: window.map(Into::into),
            },
            problems.at("f.yaml"),
        );
        let errors = problems.into_vec();
        assert!(errors.is_empty(), "{errors:?}");
        s
    }

    #[test]
    fn a_signal_overrides_the_top_level_anchor_whole() {
        let top = settings(Some("2026-12-01T09:00:00Z"), None, Some("30m"));
        let moving = settings(None, Some("1h"), None).over(top);
        assert_eq!(moving.anchor, Anchor::Moving(Duration::from_secs(3600)));
        assert_eq!(moving.window, Duration::from_secs(1800), "window inherited");
        let inherited = BaselineSettings::default().over(top);
        assert_eq!(inherited.anchor, Anchor::Fixed(1_796_115_600));
        assert_eq!(
            BaselineSettings::default().over(BaselineSettings::default()),
            BaselineSpec::DEFAULT
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let problems = Problems::default();
        BaselineSettings::validate(
            RawBaseline {
                end: Some("yesterday".into()),
                offset: Some("0".into()),
                window: Some("0s".into()),
            },
            problems.at("f.yaml"),
        );
        let errors = problems.into_vec();
        let keys: Vec<_> = errors.iter().map(|p| p.key.as_deref().unwrap()).collect();
        assert_eq!(keys, ["baseline.end", "baseline.offset", "baseline.window"]);
    }
}
