//! The report's pictures, drawn with plotters' SVG backend: one timeline per phase and one plot
//! per signal that was not ok. Text stays text (`<text>` elements the browser sets in its own
//! sans-serif), so no font file is read or embedded.
//!
//! Colours are Okabe and Ito's, which colour-blind readers tell apart, and no state relies on
//! colour alone: each band carries a pattern and, where it fits, its name; each line is named in
//! the legend and drawn solid or dashed.

use chrono::DateTime;
use plotters::coord::combinators::{BindKeyPoints, WithKeyPoints};
use plotters::coord::types::{RangedCoordf64, RangedCoordi64};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::model::{Band, PhaseStory, Point, SignalStory, Span, State};
use crate::engine::text::fmt_number;
use crate::engine::threshold::{Bound, Direction, Threshold};

pub const WIDTH: u32 = 960;
const TIMELINE_HEIGHT: u32 = 70;
const SIGNAL_HEIGHT: u32 = 260;
/// Points drawn per line at most; longer windows keep the worst value of each bucket.
const MAX_POINTS: usize = 720;

// Okabe–Ito.
const GREEN: RGBColor = RGBColor(0x00, 0x9E, 0x73);
const VERMILLION: RGBColor = RGBColor(0xD5, 0x5E, 0x00);
const YELLOW: RGBColor = RGBColor(0xF0, 0xE4, 0x42);
const ORANGE: RGBColor = RGBColor(0xE6, 0x9F, 0x00);
const BLUE: RGBColor = RGBColor(0x00, 0x72, 0xB2);
const GREY: RGBColor = RGBColor(0x99, 0x99, 0x99);
const INK: RGBColor = RGBColor(0x22, 0x22, 0x22);

pub fn state_colour(state: State) -> RGBColor {
    match state {
        State::Go => GREEN,
        State::Soak => YELLOW,
        State::NoGo => VERMILLION,
        State::Unknown => GREY,
    }
}

/// Tick labels: the day too past a day and a half, seconds too under ten minutes.
fn hhmm(span: Span) -> impl Fn(&i64) -> String {
    let format = match span.to - span.from {
        s if s > 36 * 3600 => "%d %H:%M",
        s if s < 600 => "%H:%M:%S",
        _ => "%H:%M",
    };
    move |t: &i64| {
        DateTime::from_timestamp(*t, 0)
            .map(|t| t.format(format).to_string())
            .unwrap_or_default()
    }
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

fn x_range(span: Span) -> std::ops::Range<i64> {
    span.from..span.to + span.step_secs
}

/// Tick spacings a reader counts in, shortest first.
const TICKS: [i64; 17] = [
    1, 5, 10, 15, 30, 60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 604800,
];

/// The time axis, ticked on round UTC times (every 10 minutes, every hour, ...), at most ten.
fn time_axis(span: Span) -> WithKeyPoints<RangedCoordi64> {
    let range = x_range(span);
    let (from, to) = (range.start, range.end);
    let every = TICKS
        .iter()
        .copied()
        .find(|t| (to - from) / t <= 10)
        .unwrap_or(TICKS[TICKS.len() - 1]);
    let first = from.div_euclid(every) * every + if from % every == 0 { 0 } else { every };
    let ticks = (0..)
        .map(|i| first + i * every)
        .take_while(|t| *t <= to)
        .collect();
    range.with_key_points(ticks)
}

/// A phase's bands: colour, a pattern per state and the state's name where the band is wide
/// enough for it.
pub fn timeline(span: Span, phase: &PhaseStory) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, TIMELINE_HEIGHT)).into_drawing_area();
        let _ = draw_timeline(&root, span, &phase.bands);
        let _ = root.present();
    }
    svg
}

fn draw_timeline(
    root: &Area<'_>,
    span: Span,
    bands: &[Band],
) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(root)
        .margin_left(8)
        .margin_right(16)
        .x_label_area_size(22)
        .y_label_area_size(60)
        .build_cartesian_2d(time_axis(span), 0f64..1f64)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .y_labels(0)
        .x_label_formatter(&hhmm(span))
        .x_label_style(("sans-serif", 14))
        .draw()?;
    for band in bands {
        chart.draw_series(std::iter::once(Rectangle::new(
            [(band.from, 0.0), (band.to, 1.0)],
            state_colour(band.state).filled(),
        )))?;
        chart.draw_series(
            pattern(band, span)
                .into_iter()
                .map(|line| PathElement::new(line, INK.mix(0.55).stroke_width(1))),
        )?;
        // The name on a white tag, readable over any colour and pattern, where it fits; placed
        // in pixels, which a band of a few seconds has more of than seconds.
        let label = band.state.as_str().to_uppercase();
        let (left, top) = chart.backend_coord(&(band.from, 0.75));
        let (right, bottom) = chart.backend_coord(&(band.to, 0.25));
        let width = 10 * label.len() as i32 + 8;
        if right - left > width + 8 {
            let (x, y) = (left + 4, top);
            root.draw(&Rectangle::new(
                [(x, y), (x + width, bottom)],
                WHITE.filled(),
            ))?;
            let style = ("sans-serif", 16).into_font().color(&INK);
            root.draw(&Text::new(label, (x + 4, y + 3), style))?;
        }
    }
    Ok(())
}

/// The lines that mark a band's state without its colour: none for go, one diagonal for soak,
/// a cross for no-go, horizontal dashes for unknown; about one mark per 12 pixels.
fn pattern(band: &Band, span: Span) -> Vec<Vec<(i64, f64)>> {
    let range = x_range(span);
    let per_mark = (range.end - range.start) as f64 / (WIDTH as f64 / 12.0);
    let (x0, x1) = (band.from as f64, band.to as f64);
    let marks = (((x1 - x0) / per_mark).ceil() as usize).max(1);
    let width = (x1 - x0) / marks as f64;
    (0..marks)
        .flat_map(|i| {
            let a = (x0 + i as f64 * width).round() as i64;
            let b = (x0 + (i + 1) as f64 * width).round() as i64;
            let mid = (x0 + (i as f64 + 0.5) * width).round() as i64;
            match band.state {
                State::Go => vec![],
                State::Soak => vec![vec![(a, 0.0), (b, 1.0)]],
                State::NoGo => vec![vec![(a, 0.0), (b, 1.0)], vec![(a, 1.0), (b, 0.0)]],
                State::Unknown => vec![vec![(a, 0.5), (mid, 0.5)]],
            }
        })
        .collect()
}

/// The worst value of each bucket of points, so that a long window keeps its peaks.
fn thin(points: &[Point], direction: Direction) -> Vec<Point> {
    let size = points.len().div_ceil(MAX_POINTS).max(1);
    points
        .chunks(size)
        .map(|bucket| {
            let mut worst = bucket[0];
            for p in bucket {
                let beats = match (p.value, worst.value) {
                    (Some(v), Some(w)) => direction.worse(v, w),
                    (Some(_), None) => true,
                    _ => false,
                };
                if beats {
                    worst = Point { at: worst.at, ..*p };
                }
            }
            worst
        })
        .collect()
}

/// Runs of points with a value, as line segments: a gap in the data is a gap in the line.
/// A run of (time, value) points drawn as one line.
type Line = Vec<(i64, f64)>;

fn segments(points: &[Point], value: impl Fn(&Point) -> Option<f64>) -> Vec<Line> {
    let mut out: Vec<Line> = vec![Vec::new()];
    for p in points {
        match value(p) {
            Some(v) if v.is_finite() => out.last_mut().expect("one").push((p.at, v)),
            _ if out.last().is_some_and(|s| !s.is_empty()) => out.push(Vec::new()),
            _ => {}
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// The value a threshold's first condition stands at for a point, resolved on its baseline.
fn line_at(threshold: &Threshold, baseline: Option<f64>) -> Option<f64> {
    let condition = threshold.conditions().first()?;
    match condition.bound {
        Bound::Absolute(v) => Some(v),
        Bound::Times(k) => baseline.map(|b| b * k),
        Bound::Plus(k) => baseline.map(|b| b + k),
    }
}

/// A signal's worst value over the window, its warn and fail lines, its baseline, and the
/// stretches where it was not ok shaded.
pub fn signal(span: Span, story: &SignalStory) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, SIGNAL_HEIGHT)).into_drawing_area();
        let _ = draw_signal(&root, span, story);
        let _ = root.present();
    }
    svg
}

fn draw_signal(
    root: &Area<'_>,
    span: Span,
    story: &SignalStory,
) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    root.fill(&WHITE)?;
    let points = thin(&story.points, story.direction);
    let value = segments(&points, |p| p.value);
    let baseline = segments(&points, |p| p.baseline);
    let lines: Vec<(&str, Vec<Line>)> = [("warn", &story.warn), ("fail", &story.fail)]
        .into_iter()
        .filter_map(|(name, t)| {
            let t = t.as_ref()?;
            Some((name, segments(&points, |p| line_at(t, p.baseline))))
        })
        .collect();
    let ys = value
        .iter()
        .chain(&baseline)
        .chain(lines.iter().flat_map(|(_, l)| l))
        .flatten()
        .map(|(_, y)| *y);
    let (lo, hi) = ys.fold((0f64, f64::MIN), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let hi = if hi <= lo {
        lo + 1.0
    } else {
        hi + (hi - lo) * 0.1
    };
    let mut chart = ChartBuilder::on(root)
        .margin(8)
        .margin_right(16)
        .x_label_area_size(22)
        .y_label_area_size(60)
        .build_cartesian_2d(time_axis(span), lo..hi)?;
    chart
        .configure_mesh()
        .light_line_style(INK.mix(0.06))
        .bold_line_style(INK.mix(0.12))
        .y_labels(5)
        .x_label_formatter(&hhmm(span))
        .y_label_formatter(&|y| fmt_number(*y))
        .label_style(("sans-serif", 14))
        .draw()?;
    for (from, to) in &story.troubled {
        chart.draw_series(std::iter::once(Rectangle::new(
            [(*from, lo), (*to, hi)],
            VERMILLION.mix(0.12).filled(),
        )))?;
    }
    if !story.troubled.is_empty() {
        chart
            .draw_series(std::iter::empty::<PathElement<(i64, f64)>>())?
            .label("not ok (shaded)")
            .legend(|(x, y)| {
                Rectangle::new([(x, y - 5), (x + 20, y + 5)], VERMILLION.mix(0.2).filled())
            });
    }
    for (name, segs) in &lines {
        let (colour, dashed) = if *name == "fail" {
            (VERMILLION, false)
        } else {
            (ORANGE, true)
        };
        let threshold = if *name == "fail" {
            &story.fail
        } else {
            &story.warn
        };
        let label = format!(
            "{name} {}",
            threshold
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default()
        );
        draw_line(&mut chart, segs, colour.stroke_width(2), dashed, label)?;
    }
    if !baseline.is_empty() {
        draw_line(
            &mut chart,
            &baseline,
            INK.stroke_width(1),
            true,
            "baseline".into(),
        )?;
    }
    draw_line(
        &mut chart,
        &value,
        BLUE.stroke_width(2),
        false,
        "worst series".into(),
    )?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(INK.mix(0.3))
        .label_font(("sans-serif", 15))
        .draw()?;
    Ok(())
}

type Chart<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<WithKeyPoints<RangedCoordi64>, RangedCoordf64>>;

fn draw_line(
    chart: &mut Chart<'_, '_>,
    segments: &[Vec<(i64, f64)>],
    style: ShapeStyle,
    dashed: bool,
    label: String,
) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    for (i, seg) in segments.iter().enumerate() {
        let drawn = if dashed {
            chart.draw_series(DashedLineSeries::new(seg.iter().copied(), 6, 4, style))?
        } else {
            chart.draw_series(LineSeries::new(seg.iter().copied(), style))?
        };
        if i == 0 {
            drawn.label(label.clone()).legend(move |(x, y)| {
                let end = if dashed { x + 8 } else { x + 20 };
                PathElement::new(vec![(x, y), (end, y)], style)
            });
        }
    }
    Ok(())
}
