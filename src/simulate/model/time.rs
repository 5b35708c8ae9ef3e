//! Time in the simulator: the scenario's [`Window`], and quantities that are piecewise constant
//! in time ([`Shape`]) with their integrals, from which counters and histograms are computed.
//!
//! Counters are functions of time whose rate may change during the trouble (the integral of a
//! piecewise constant rate, floored when written), so they never go down; histograms likewise sum
//! their observations segment by segment (see [`super::writer::Writer::histogram`]).

/// The scenario's timeline, unix seconds: its trouble is placed at fractions of this window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: i64,
    pub end: i64,
}

impl Window {
    pub fn new(start: i64, end: i64) -> Window {
        assert!(end >= start, "a window ends after it starts");
        Window { start, end }
    }

    /// The time at `fraction` of the window (0 its start, 1 its end).
    pub fn at(self, fraction: f64) -> i64 {
        self.start + (fraction * (self.end - self.start) as f64) as i64
    }
}

/// A piecewise constant quantity of time: `base`, and `during` from `span.0` to `span.1`.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub base: f64,
    pub during: f64,
    pub span: (i64, i64),
}

impl Shape {
    pub fn flat(v: f64) -> Shape {
        Shape {
            base: v,
            during: v,
            span: (0, 0),
        }
    }

    /// `base`, and `during` inside `span` when there is a `during`.
    pub fn changed(base: f64, during: Option<f64>, span: (i64, i64)) -> Shape {
        match during {
            Some(during) => Shape { base, during, span },
            None => Shape::flat(base),
        }
    }

    /// Seconds of [since, t] outside and inside the span.
    pub fn split(self, since: i64, t: i64) -> (f64, f64) {
        let elapsed = (t - since).max(0);
        let inside = (t.min(self.span.1) - since.max(self.span.0)).clamp(0, elapsed);
        ((elapsed - inside) as f64, inside as f64)
    }

    /// The integral over [since, t] (a rate's count).
    pub fn integral(self, since: i64, t: i64) -> f64 {
        let (outside, inside) = self.split(since, t);
        self.base * outside + self.during * inside
    }

    /// When the quantity is first non-zero: `since` if `base` is, else the span's start.
    pub fn first_nonzero(self, since: i64) -> Option<i64> {
        if self.base > 0.0 {
            Some(since)
        } else if self.during > 0.0 && self.span.1 > self.span.0 {
            Some(self.span.0.max(since))
        } else {
            None
        }
    }
}

/// A counter worth `start` at `since`, growing by `rate`, absent before.
pub fn grows(since: i64, start: f64, rate: Shape) -> impl Fn(i64) -> Option<f64> {
    move |t| (t >= since).then(|| start + rate.integral(since, t))
}
