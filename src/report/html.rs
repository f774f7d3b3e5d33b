//! report.html: one self-contained file — inline CSS and SVG, no scripts, nothing fetched.

use super::sections::{blocks, Block};
use super::svg::esc;
use super::Report;

const CSS: &str = "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'Noto Sans','Noto Sans CJK SC',sans-serif;margin:24px auto;max-width:1150px;color:#1b1b1b;padding:0 12px}\
h1{font-size:24px;margin:0 0 8px}h2{font-size:19px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}\
table{border-collapse:collapse;margin:8px 0 14px;font-size:12.5px}th,td{border:1px solid #d6d6d6;padding:3px 7px;text-align:left;vertical-align:top}\
th{background:#f3f5f8}tr:nth-child(even) td{background:#fafafa}td{font-variant-numeric:tabular-nums}\
.plot{overflow-x:auto;margin:6px 0 12px}svg .t{font:11px system-ui,sans-serif;fill:#222}p{max-width:950px}";

pub fn render(r: &Report) -> String {
    let mut s = format!("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>pingce report</title>\n<style>{CSS}</style>\n</head>\n<body>\n");
    for b in blocks(r) {
        match b {
            Block::Heading(level, t) => s += &format!("<h{level}>{}</h{level}>\n", esc(&t)),
            Block::Text(t) => s += &format!("<p>{}</p>\n", esc(&t)),
            Block::Table(t) => {
                s += "<table>\n<thead><tr>";
                for h in &t.header {
                    s += &format!("<th>{}</th>", esc(h));
                }
                s += "</tr></thead>\n<tbody>\n";
                for row in &t.rows {
                    s += "<tr>";
                    for c in row {
                        s += &format!("<td>{}</td>", esc(c));
                    }
                    s += "</tr>\n";
                }
                s += "</tbody>\n</table>\n";
            }
            Block::Plot(svg) => s += &format!("<div class=\"plot\">{svg}</div>\n"),
        }
    }
    s += "</body>\n</html>\n";
    s
}
