//! The report's content in order, as headings, paragraphs, tables and plots; [`super::html`] and
//! [`super::markdown`] render the same sections, so the two files never disagree.

use super::{manifest_fields, svg, Report, Score};

pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

pub enum Block {
    Heading(u8, String),
    Text(String),
    Table(Table),
    /// SVG markup (HTML only).
    Plot(String),
}

fn fmt_score(s: &Option<Score>) -> (String, String) {
    match s {
        None => ("–".into(), "".into()),
        Some(s) => {
            let ci = match (s.lo, s.hi) {
                (Some(lo), Some(hi)) => format!("[{lo:.4}, {hi:.4}]"),
                _ => "–".into(),
            };
            (format!("{:.4}", s.value), ci)
        }
    }
}

pub fn blocks(r: &Report) -> Vec<Block> {
    use Block::*;
    let mut b = vec![Heading(1, "pingce evaluation report".into())];
    b.push(Text(format!(
        "{} run(s): {}. Intervals are 95%: Wilson score intervals for accuracy-type metrics (acc, acc_norm, mc1, exact_match, contains), mean ± 1.96·stderr for mc2, none for perplexities. Paired comparisons: paired bootstrap ({} resamples, seed {}) and exact McNemar tests, Holm-corrected across the comparison table, α = {}.",
        r.runs.len(),
        r.runs.iter().map(|x| x.name()).collect::<Vec<_>>().join(", "),
        r.resamples,
        r.seed,
        super::compare::ALPHA
    )));
    // Scores.
    b.push(Heading(2, "Scores".into()));
    let mut header = vec!["task / group".to_string(), "metric".into()];
    for run in &r.runs {
        header.push(run.name());
        header.push("95% interval".into());
    }
    header.push("n".into());
    let mut rows = Vec::new();
    let subject_tasks: Vec<String> = r.subjects.iter().flat_map(|s| s.subjects.iter().map(move |x| format!("{}_{x}", s.group))).collect();
    for row in r.rows.iter().filter(|row| row.is_group || !subject_tasks.contains(&row.name)) {
        let name = if row.is_group { format!("{} (micro)", row.name) } else { row.name.clone() };
        let mut cells = vec![name, row.metric.clone()];
        for s in &row.scores {
            let (v, ci) = fmt_score(s);
            cells.push(v);
            cells.push(ci);
        }
        cells.push(row.scores.iter().flatten().map(|s| s.n.to_string()).collect::<std::collections::BTreeSet<_>>().into_iter().collect::<Vec<_>>().join(" / "));
        rows.push(cells);
        if row.is_group {
            let mut cells = vec![format!("{} (macro)", row.name), row.metric.clone()];
            for m in &row.macro_ {
                cells.push(m.map_or("–".into(), |v| format!("{v:.4}")));
                cells.push("–".into());
            }
            cells.push("".into());
            rows.push(cells);
        }
    }
    b.push(Table(self::Table { header, rows }));
    b.push(Text("Groups: micro is the size-weighted mean over the group's items (lm-eval), macro the plain mean of its tasks' scores (OpenCompass). The subtasks of groups with many subtasks are in their per-subject tables below.".into()));
    b.push(Plot(svg::bars(r)));
    // Comparisons.
    b.push(Heading(2, "Paired comparisons".into()));
    let c = &r.comparisons;
    if c.pairs.is_empty() {
        b.push(Text("No pair of runs shares comparable items.".into()));
    } else {
        let header = ["A", "B", "task / group", "metric", "n", "mean A", "mean B", "A − B", "bootstrap 95% interval", "A only / B only", "McNemar p", "Holm p", "verdict"].map(String::from).to_vec();
        let rows = c
            .pairs
            .iter()
            .map(|p| {
                vec![
                    r.runs[p.a].label.clone(),
                    r.runs[p.b].label.clone(),
                    p.name.clone(),
                    p.metric.clone(),
                    p.n.to_string(),
                    format!("{:.4}", p.mean_a),
                    format!("{:.4}", p.mean_b),
                    format!("{:+.4}", p.diff),
                    format!("[{:+.4}, {:+.4}]", p.lo, p.hi),
                    format!("{} / {}", p.a_only, p.b_only),
                    format!("{:.4}", p.p),
                    format!("{:.4}", p.p_holm),
                    p.verdict.clone(),
                ]
            })
            .collect();
        b.push(Table(self::Table { header, rows }));
        b.push(Plot(svg::differences(&c.pairs, r)));
    }
    if !c.apart.is_empty() {
        b.push(Heading(3, "Not compared".into()));
        b.push(Text("These are shown apart, never compared: their items are not the same.".into()));
        let rows = c.apart.iter().map(|a| vec![r.runs[a.a].name(), r.runs[a.b].name(), a.what.clone(), a.reason.clone()]).collect();
        b.push(Table(self::Table { header: ["A", "B", "what", "reason"].map(String::from).to_vec(), rows }));
    }
    // Per-subject tables.
    for (i, sub) in r.subjects.iter().enumerate() {
        b.push(Heading(2, format!("{} per subject ({})", sub.group, sub.metric)));
        b.push(Plot(svg::heatmap(sub, r, &format!("plot-heatmap-{i}"))));
        let mut header = vec!["subject".to_string()];
        header.extend(r.runs.iter().map(|x| x.name()));
        let rows = sub.subjects.iter().zip(&sub.values).map(|(s, vs)| std::iter::once(s.clone()).chain(vs.iter().map(|v| v.map_or("–".into(), |v| format!("{v:.4}")))).collect()).collect();
        b.push(Table(self::Table { header, rows }));
    }
    // Manifests.
    b.push(Heading(2, "Runs".into()));
    for run in &r.runs {
        b.push(Heading(3, run.name()));
        let rows = manifest_fields(run).into_iter().map(|(k, v)| vec![k, v]).collect();
        b.push(Table(self::Table { header: vec!["field".into(), "value".into()], rows }));
    }
    b.push(Text(format!("Made by pingce {} ({}).", crate::VERSION, crate::GIT_COMMIT)));
    b
}
