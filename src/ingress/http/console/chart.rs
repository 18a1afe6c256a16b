//! A line chart as inline SVG, drawn on the server: a daily series as a line and the values
//! actually used as points, on one time axis. Presentation attributes only (the CSP allows no
//! inline style), and a text alternative for screen readers.

use chrono::NaiveDate;
use maud::{Markup, html};

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 240.0;
const PAD_LEFT: f64 = 64.0;
const PAD: f64 = 24.0;

/// Where a (day, value) lands in the plot area.
struct Scale {
    from: NaiveDate,
    days: f64,
    low: f64,
    high: f64,
}

impl Scale {
    fn x(&self, d: NaiveDate) -> f64 {
        let t = (d - self.from).num_days() as f64 / self.days.max(1.0);
        PAD_LEFT + t * (WIDTH - PAD_LEFT - PAD)
    }

    fn y(&self, v: f64) -> f64 {
        let span = (self.high - self.low).max(f64::EPSILON);
        HEIGHT - PAD - (v - self.low) / span * (HEIGHT - 2.0 * PAD)
    }
}

pub(super) fn line_with_points(
    title: &str,
    from: NaiveDate,
    to: NaiveDate,
    series: &[(NaiveDate, f64)],
    used: &[(NaiveDate, f64)],
) -> Markup {
    let values = series.iter().chain(used).map(|(_, v)| *v);
    let (low, high) = values.fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(v), h.max(v)));
    if low > high {
        return html! { p { (title) ": no rates in this period." } };
    }
    // A margin of 2 % around the values, so a flat series is not drawn on the frame.
    let margin = ((high - low) * 0.02).max(high.abs() * 0.001);
    let s = Scale {
        from,
        days: (to - from).num_days() as f64,
        low: low - margin,
        high: high + margin,
    };
    let line: Vec<String> = series
        .iter()
        .map(|(d, v)| format!("{:.1},{:.1}", s.x(*d), s.y(*v)))
        .collect();
    let summary = format!(
        "{title}: {} ECB reference rates from {from} to {to} (between {low:.6} and {high:.6}); \
         {} rate(s) used by the log",
        series.len(),
        used.len()
    );
    html! {
        figure class="chart" {
            svg xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (WIDTH) " " (HEIGHT) }
                width="100%" role="img" aria-label=(summary) data-series=(series.len()) data-used=(used.len()) {
                title { (summary) }
                line x1=(PAD_LEFT) y1=(HEIGHT - PAD) x2=(WIDTH - PAD) y2=(HEIGHT - PAD) stroke="#888" {}
                line x1=(PAD_LEFT) y1=(PAD) x2=(PAD_LEFT) y2=(HEIGHT - PAD) stroke="#888" {}
                text x="4" y=(s.y(high) + 4.0) font-size="11" { (format!("{high:.4}")) }
                text x="4" y=(s.y(low) + 4.0) font-size="11" { (format!("{low:.4}")) }
                text x=(PAD_LEFT) y=(HEIGHT - 6.0) font-size="11" { (from) }
                text x=(WIDTH - PAD) y=(HEIGHT - 6.0) font-size="11" text-anchor="end" { (to) }
                polyline class="ecb" points=(line.join(" ")) fill="none" stroke="#1d5fa8" stroke-width="1.5" {}
                @for (d, v) in used {
                    circle class="used" cx=(format!("{:.1}", s.x(*d))) cy=(format!("{:.1}", s.y(*v))) r="4"
                        fill="#c62828" { title { (d) ": " (v) } }
                }
            }
            figcaption { (title) ": ECB reference rate (line) and the rates the log used (points)" }
        }
    }
}

/// A small bar per value (deliveries per hour, oldest first), scaled to the largest.
pub(super) fn bars(label: &str, values: &[u64]) -> Markup {
    let (w, h) = (120.0, 28.0);
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let step = w / values.len().max(1) as f64;
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (w) " " (h) } width="120" height="28"
            role="img" aria-label=(label) class="bars" {
            title { (label) }
            line x1="0" y1=(h - 0.5) x2=(w) y2=(h - 0.5) stroke="#bbb" {}
            @for (i, v) in values.iter().enumerate() {
                @let bar = (*v as f64 / max) * (h - 2.0);
                rect x=(format!("{:.1}", i as f64 * step + 0.5)) y=(format!("{:.1}", h - 1.0 - bar))
                    width=(format!("{:.1}", (step - 1.0).max(1.0))) height=(format!("{bar:.1}")) fill="#1d5fa8" {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_land_inside_the_plot_and_higher_values_higher() {
        let d = |n| NaiveDate::from_ymd_opt(2017, 2, n).unwrap();
        let series = [(d(1), 1.05), (d(2), 1.07), (d(3), 1.06)];
        let used = [(d(2), 1.07)];
        let svg = line_with_points("USD → EUR", d(1), d(3), &series, &used).into_string();
        assert!(
            svg.contains("data-series=\"3\"") && svg.contains("data-used=\"1\""),
            "{svg}"
        );
        let s = Scale {
            from: d(1),
            days: 2.0,
            low: 1.0,
            high: 1.1,
        };
        assert!(s.y(1.07) < s.y(1.05), "SVG y grows downwards");
        assert!((PAD_LEFT..=WIDTH - PAD).contains(&s.x(d(3))));
        let empty = line_with_points("X", d(1), d(3), &[], &[]).into_string();
        assert!(empty.contains("no rates"));
    }
}
