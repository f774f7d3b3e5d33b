//! The report's plots as inline SVG (no scripts, no fonts or images fetched): score bars with
//! 95% interval whiskers, a per-subject heat map across runs, and paired differences with their
//! bootstrap intervals.

use std::fmt::Write;

use super::compare::Pair;
use super::{Report, Row, Subjects};

pub const PALETTE: [&str; 8] = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1", "#edc948", "#9c755f"];

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

pub fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// The rows the bar chart shows: accuracy-type scores of standalone tasks and of groups (the
/// subtasks of many-subtask groups are in the heat map instead).
pub fn bar_rows(r: &Report) -> Vec<&Row> {
    let subject_tasks: Vec<String> = r.subjects.iter().flat_map(|s| s.subjects.iter().map(move |x| format!("{}_{x}", s.group))).collect();
    r.rows.iter().filter(|row| super::is_accuracy(&row.metric) && (row.is_group || !subject_tasks.contains(&row.name))).collect()
}

/// Horizontal bars, one per run and row, on 0..1, with whiskers at the interval.
pub fn bars(r: &Report) -> String {
    let rows = bar_rows(r);
    let k = r.runs.len().max(1);
    let (label_w, plot_w, bar_h, gap) = (260.0, 560.0, 14.0, 10.0);
    let row_h = bar_h * k as f64 + gap;
    let top = 28.0;
    let h = top + row_h * rows.len() as f64 + 30.0;
    let w = label_w + plot_w + 70.0;
    let x = |v: f64| label_w + v.clamp(0.0, 1.0) * plot_w;
    let mut s = format!(r#"<svg id="plot-scores" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="Scores with 95% intervals">"#);
    for (i, run) in r.runs.iter().enumerate() {
        let lx = label_w + i as f64 * 170.0;
        let _ = write!(s, r#"<rect x="{lx}" y="6" width="12" height="12" fill="{}"/><text x="{}" y="16" class="t">{}</text>"#, colour(i), lx + 16.0, esc(&run.name()));
    }
    for t in 0..=4 {
        let v = t as f64 / 4.0;
        let _ = write!(s, r##"<line x1="{0}" y1="{top}" x2="{0}" y2="{1}" stroke="#ddd"/><text x="{0}" y="{2}" class="t" text-anchor="middle">{v:.2}</text>"##, x(v), h - 24.0, h - 10.0);
    }
    for (ri, row) in rows.iter().enumerate() {
        let y0 = top + ri as f64 * row_h;
        let label = if row.is_group { format!("{} (micro) · {}", row.name, row.metric) } else { format!("{} · {}", row.name, row.metric) };
        let _ = write!(s, r#"<text x="{}" y="{}" class="t" text-anchor="end">{}</text>"#, label_w - 6.0, y0 + row_h / 2.0, esc(&label));
        for (i, sc) in row.scores.iter().enumerate() {
            let Some(sc) = sc else { continue };
            let y = y0 + i as f64 * bar_h;
            let _ = write!(s, r#"<rect class="bar" x="{label_w}" y="{y}" width="{:.2}" height="{}" fill="{}"><title>{}: {:.4}</title></rect>"#, x(sc.value) - label_w, bar_h - 2.0, colour(i), esc(&r.runs[i].name()), sc.value);
            if let (Some(lo), Some(hi)) = (sc.lo, sc.hi) {
                let yc = y + (bar_h - 2.0) / 2.0;
                let _ = write!(s, r##"<path class="whisker" d="M{:.2} {yc}H{:.2}M{:.2} {}V{}M{:.2} {}V{}" stroke="#222" fill="none"/>"##, x(lo), x(hi), x(lo), yc - 4.0, yc + 4.0, x(hi), yc - 4.0, yc + 4.0);
            }
        }
    }
    s.push_str("</svg>");
    s
}

/// Heat map: subjects down, runs across, cell colour by score (white 0 → blue 1).
pub fn heatmap(sub: &Subjects, r: &Report, id: &str) -> String {
    let (label_w, cell_w, cell_h, top) = (230.0, 150.0, 16.0, 34.0);
    let w = label_w + cell_w * r.runs.len() as f64 + 10.0;
    let h = top + cell_h * sub.subjects.len() as f64 + 10.0;
    let mut s = format!(r#"<svg id="{id}" class="heatmap" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{} per subject">"#, esc(&sub.group));
    for (i, run) in r.runs.iter().enumerate() {
        let _ = write!(s, r#"<text x="{}" y="24" class="t" text-anchor="middle">{}</text>"#, label_w + cell_w * (i as f64 + 0.5), esc(&run.name()));
    }
    for (si, name) in sub.subjects.iter().enumerate() {
        let y = top + si as f64 * cell_h;
        let _ = write!(s, r#"<text x="{}" y="{}" class="t" text-anchor="end">{}</text>"#, label_w - 6.0, y + cell_h - 4.0, esc(name));
        for (i, v) in sub.values[si].iter().enumerate() {
            let x = label_w + i as f64 * cell_w;
            let (fill, text) = match v {
                Some(v) => {
                    let t = v.clamp(0.0, 1.0);
                    let c = |lo: f64, hi: f64| (lo + (hi - lo) * t).round() as u8;
                    (format!("#{:02x}{:02x}{:02x}", c(247.0, 8.0), c(251.0, 48.0), c(255.0, 107.0)), format!("{v:.3}"))
                }
                None => ("#eeeeee".into(), "–".into()),
            };
            let ink = if v.unwrap_or(0.0) > 0.55 { "#fff" } else { "#111" };
            let _ = write!(s, r##"<rect class="cell" x="{x}" y="{y}" width="{cell_w}" height="{cell_h}" fill="{fill}" stroke="#fff"/><text x="{}" y="{}" class="t" fill="{ink}" text-anchor="middle">{text}</text>"##, x + cell_w / 2.0, y + cell_h - 4.0);
        }
    }
    s.push_str("</svg>");
    s
}

/// Paired differences A − B with their bootstrap intervals, around a zero line.
pub fn differences(pairs: &[Pair], r: &Report) -> String {
    let (label_w, plot_w, row_h, top) = (300.0, 480.0, 20.0, 20.0);
    let span = pairs.iter().flat_map(|p| [p.lo.abs(), p.hi.abs(), p.diff.abs()]).filter(|v| v.is_finite()).fold(0.05f64, f64::max);
    let w = label_w + plot_w + 200.0;
    let h = top + row_h * pairs.len() as f64 + 30.0;
    let x = |v: f64| label_w + (v / span + 1.0) / 2.0 * plot_w;
    let mut s = format!(r#"<svg id="plot-differences" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="Paired differences with 95% bootstrap intervals">"#);
    for v in [-span, -span / 2.0, 0.0, span / 2.0, span] {
        let stroke = if v == 0.0 { "#888" } else { "#e4e4e4" };
        let _ = write!(s, r#"<line x1="{0:.2}" y1="{top}" x2="{0:.2}" y2="{1}" stroke="{stroke}"/><text x="{0:.2}" y="{2}" class="t" text-anchor="middle">{v:+.3}</text>"#, x(v), h - 24.0, h - 10.0);
    }
    for (i, p) in pairs.iter().enumerate() {
        let y = top + i as f64 * row_h + row_h / 2.0;
        let label = format!("{} − {} · {}", r.runs[p.a].label, r.runs[p.b].label, p.name);
        let signif = p.verdict != "no significant difference";
        let col = if signif { "#c0392b" } else { "#555" };
        let _ = write!(s, r#"<text x="{}" y="{}" class="t" text-anchor="end">{}</text>"#, label_w - 6.0, y + 4.0, esc(&label));
        if p.lo.is_finite() {
            let _ = write!(s, r#"<line class="ci" x1="{:.2}" y1="{y}" x2="{:.2}" y2="{y}" stroke="{col}" stroke-width="2"/>"#, x(p.lo), x(p.hi));
        }
        let _ = write!(
            s,
            r#"<circle class="diff" cx="{:.2}" cy="{y}" r="4" fill="{col}"><title>{:+.4} [{:+.4}, {:+.4}]</title></circle><text x="{}" y="{}" class="t">{:+.3} · p_Holm {:.3}</text>"#,
            x(p.diff),
            p.diff,
            p.lo,
            p.hi,
            label_w + plot_w + 10.0,
            y + 4.0,
            p.diff,
            p.p_holm
        );
    }
    s.push_str("</svg>");
    s
}
