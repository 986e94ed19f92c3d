//! SVG charts of bench results, written directly (a bar chart of Mpps per subject, and a
//! line chart of Mpps over a log-scale size axis for sweeps) so that `nfcc bench --plot` needs
//! no plotting library and its output is plain text that diffs and snapshots well.

use std::fmt::Write;

/// Escapes text for SVG.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A horizontal bar chart: one bar per (label, value), longest bar scaled to the width, each
/// value written after its bar with `unit` ("Mpps", "ns").
pub fn bars(title: &str, unit: &str, bars: &[(String, f64)]) -> String {
    let (left, width, row) = (300.0, 420.0, 28.0);
    let height = 60.0 + row * bars.len() as f64;
    let max = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1e-9);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" font-family="sans-serif" font-size="13">"#,
        w = left + width + 90.0
    );
    let _ = writeln!(
        s,
        r#"<text x="10" y="22" font-size="15">{}</text>"#,
        esc(title)
    );
    for (i, (label, mpps)) in bars.iter().enumerate() {
        let y = 40.0 + row * i as f64;
        let w = width * mpps / max;
        let _ = writeln!(
            s,
            r#"<text x="{x}" y="{ty}" text-anchor="end">{}</text><rect x="{left}" y="{y}" width="{w:.1}" height="{h}" fill="{fill}"/><text x="{tx:.1}" y="{ty}">{mpps:.2} {unit}</text>"#,
            esc(label),
            x = left - 8.0,
            ty = y + 15.0,
            h = row - 8.0,
            fill = if i == 0 { "#2b6cb0" } else { "#a0aec0" },
            tx = left + w + 6.0,
        );
    }
    s.push_str("</svg>\n");
    s
}

/// A line chart of several series of (size, Mpps) over a log10 size axis.
pub fn lines(title: &str, series: &[(String, Vec<(f64, f64)>)]) -> String {
    let (x0, y0, w, h) = (60.0, 40.0, 520.0, 300.0);
    let pts = series.iter().flat_map(|s| s.1.iter());
    let (mut lo, mut hi, mut top) = (f64::MAX, f64::MIN, 0.0f64);
    for &(x, y) in pts {
        lo = lo.min(x.max(1.0).log10());
        hi = hi.max(x.max(1.0).log10());
        top = top.max(y);
    }
    if lo > hi {
        (lo, hi) = (0.0, 1.0);
    }
    let span = (hi - lo).max(1.0);
    let top = top.max(1e-9) * 1.1;
    let px = |x: f64| x0 + w * (x.max(1.0).log10() - lo) / span;
    let py = |y: f64| y0 + h - h * y / top;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="12">"#,
        x0 + w + 40.0,
        y0 + h + 70.0
    );
    let _ = writeln!(
        s,
        r#"<text x="10" y="22" font-size="15">{}</text>"#,
        esc(title)
    );
    let _ = writeln!(
        s,
        r##"<path d="M{x0} {y0} V{b} H{r}" stroke="#333" fill="none"/>"##,
        b = y0 + h,
        r = x0 + w
    );
    let mut decade = lo.floor();
    while decade <= hi {
        let x = x0 + w * (decade - lo) / span;
        let _ = writeln!(
            s,
            r#"<text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#,
            y0 + h + 16.0,
            10f64.powf(decade)
        );
        decade += 1.0;
    }
    for i in 0..=4 {
        let v = top * f64::from(i) / 4.0;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{v:.1}</text>"#,
            x0 - 6.0,
            py(v) + 4.0
        );
    }
    let colours = ["#2b6cb0", "#c05621", "#2f855a", "#6b46c1"];
    for (i, (name, points)) in series.iter().enumerate() {
        let c = colours[i % colours.len()];
        let d: Vec<String> = points
            .iter()
            .enumerate()
            .map(|(j, &(x, y))| {
                format!(
                    "{}{:.1} {:.1}",
                    if j == 0 { 'M' } else { 'L' },
                    px(x),
                    py(y)
                )
            })
            .collect();
        let _ = writeln!(
            s,
            r#"<path d="{}" stroke="{c}" stroke-width="2" fill="none"/>"#,
            d.join(" ")
        );
        for &(x, y) in points {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{c}"/>"#,
                px(x),
                py(y)
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{x0}" y="{:.1}" fill="{c}">{} (Mpps)</text>"#,
            y0 + h + 36.0 + 16.0 * i as f64,
            esc(name)
        );
    }
    s.push_str("</svg>\n");
    s
}
