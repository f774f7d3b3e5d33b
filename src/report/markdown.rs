//! report.md: the HTML report's text and tables (its plots are in report.html).

use super::sections::{blocks, Block};
use super::Report;

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub fn render(r: &Report) -> String {
    let mut s = String::new();
    for b in blocks(r) {
        match b {
            Block::Heading(level, t) => s += &format!("{} {t}\n\n", "#".repeat(level as usize)),
            Block::Text(t) => s += &format!("{t}\n\n"),
            Block::Table(t) => {
                s += &format!("| {} |\n", t.header.iter().map(|h| cell(h)).collect::<Vec<_>>().join(" | "));
                s += &format!("|{}\n", "---|".repeat(t.header.len()));
                for row in &t.rows {
                    s += &format!("| {} |\n", row.iter().map(|h| cell(h)).collect::<Vec<_>>().join(" | "));
                }
                s += "\n";
            }
            Block::Plot(_) => s += "_(plot in report.html)_\n\n",
        }
    }
    s
}
