//! The plot: cumulative `Issued` over time, with the rate-limit bound as a straight line.
//! Plain SVG written by hand, so the benchmark needs no plotting library.

use std::fmt::Write;

/// One line: its legend, seconds from the first create to each request's `Issued`, a colour.
pub struct Series<'a> {
    pub label: &'a str,
    pub issued_s: &'a [f64],
    pub colour: &'a str,
}

/// The first series is the operator's: `issued_s`, seconds from the first create to each
/// request's `Issued`; `bound_s`: when the rate limit lets the last of `total` requests
/// through at the soonest; `others`: more lines on the same axes (the bare client's).
pub fn issued_over_time(issued_s: &[f64], total: usize, bound_s: f64, title: &str) -> String {
    issued_over_time_with(issued_s, &[], total, bound_s, title)
}

pub fn issued_over_time_with(
    issued_s: &[f64],
    others: &[Series<'_>],
    total: usize,
    bound_s: f64,
    title: &str,
) -> String {
    let (w, h) = (720.0, 420.0);
    let (left, right, top, bottom) = (70.0, 20.0, 40.0, 50.0);
    let sorted = |s: &[f64]| {
        let mut times = s.to_vec();
        times.sort_by(f64::total_cmp);
        times
    };
    let times = sorted(issued_s);
    let latest = others
        .iter()
        .flat_map(|s| s.issued_s.iter().copied())
        .chain(times.iter().copied())
        .fold(0.0, f64::max);
    let t_max = latest.max(bound_s).max(1e-3) * 1.05;
    let n_max = (total.max(1)) as f64;
    let x = |t: f64| left + (w - left - right) * t / t_max;
    let y = |n: f64| h - bottom - (h - top - bottom) * n / n_max;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>"#,
        w / 2.0,
        escape(title)
    );
    // Axes, ticks and grid.
    let _ = writeln!(
        svg,
        r#"<path d="M{l} {t} V{b} H{r}" stroke="black" fill="none"/>"#,
        l = left,
        t = top,
        b = h - bottom,
        r = w - right
    );
    for i in 0..=5 {
        let t = t_max * f64::from(i) / 5.0;
        let n = n_max * f64::from(i) / 5.0;
        let _ = writeln!(
            svg,
            r##"<line x1="{x0}" y1="{top}" x2="{x0}" y2="{b}" stroke="#ddd"/><text x="{x0}" y="{ty}" text-anchor="middle">{t:.1}</text>"##,
            x0 = x(t),
            b = h - bottom,
            ty = h - bottom + 16.0
        );
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{y0}" x2="{r}" y2="{y0}" stroke="#ddd"/><text x="{tx}" y="{ty}" text-anchor="end">{n:.0}</text>"##,
            y0 = y(n),
            r = w - right,
            tx = left - 6.0,
            ty = y(n) + 4.0
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">seconds since the first create</text>"#,
        (left + w - right) / 2.0,
        h - 12.0
    );
    let _ = writeln!(
        svg,
        r#"<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">requests Issued</text>"#,
        (top + h - bottom) / 2.0,
        (top + h - bottom) / 2.0
    );
    // The rate-limit bound: `total` requests spread evenly over `bound_s`.
    let _ = writeln!(
        svg,
        r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#d62728" stroke-dasharray="6 4" stroke-width="2"/>"##,
        x(0.0),
        y(0.0),
        x(bound_s),
        y(n_max)
    );
    // Cumulative Issued, as step lines.
    let step_line = |times: &[f64]| {
        let mut path = format!("M{:.1} {:.1}", x(0.0), y(0.0));
        for (i, t) in times.iter().enumerate() {
            let _ = write!(path, " H{:.1} V{:.1}", x(*t), y((i + 1) as f64));
        }
        path
    };
    for series in others {
        let _ = writeln!(
            svg,
            r##"<path d="{}" stroke="{}" stroke-width="2" fill="none"/>"##,
            step_line(&sorted(series.issued_s)),
            series.colour
        );
    }
    let _ = writeln!(
        svg,
        r##"<path d="{}" stroke="#1f77b4" stroke-width="2" fill="none"/>"##,
        step_line(&times)
    );
    // Legend.
    let (lx, ly) = (left + 16.0, top + 14.0);
    let _ = writeln!(
        svg,
        r##"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="#1f77b4" stroke-width="2"/><text x="{}" y="{}">operator: requests Issued</text>"##,
        lx + 24.0,
        lx + 30.0,
        ly + 4.0
    );
    let _ = writeln!(
        svg,
        r##"<line x1="{lx}" y1="{}" x2="{}" y2="{}" stroke="#d62728" stroke-dasharray="6 4" stroke-width="2"/><text x="{}" y="{}">rate-limit bound ({} in {bound_s:.1} s)</text>"##,
        ly + 18.0,
        lx + 24.0,
        ly + 18.0,
        lx + 30.0,
        ly + 22.0,
        total
    );
    for (i, series) in others.iter().enumerate() {
        let ly = ly + 36.0 + 18.0 * i as f64;
        let _ = writeln!(
            svg,
            r##"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{}" stroke-width="2"/><text x="{}" y="{}">{}</text>"##,
            lx + 24.0,
            series.colour,
            lx + 30.0,
            ly + 4.0,
            escape(series.label)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
