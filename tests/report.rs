//! `pingce report` as a reader sees it: two small runs on fixture models and a third that is not
//! comparable; the HTML's structure is checked here, and where Debian's `chromium` is installed
//! it is loaded headless: a screenshot is taken, and a console error, a missing plot or an empty
//! table fails the test. Nothing is installed at run time.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn pingce(args: &[&str]) {
    let o = Command::new(env!("CARGO_BIN_EXE_pingce")).args(args).current_dir(root()).output().unwrap();
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|c| Command::new(c).arg("--version").output().map(|o| o.status.success()).unwrap_or(false))
}

/// Every `<table>` has a header and at least one row with a non-empty cell.
fn check_tables(html: &str) {
    let tables: Vec<&str> = html.split("<table>").skip(1).map(|t| t.split("</table>").next().unwrap()).collect();
    assert!(tables.len() >= 5, "{} tables", tables.len());
    for t in tables {
        assert!(t.contains("<th>"), "a table without a header");
        let cells: Vec<&str> = t.split("<td>").skip(1).map(|c| c.split("</td>").next().unwrap()).collect();
        assert!(cells.iter().any(|c| !c.trim().is_empty()), "an empty table: {}", &t[..t.len().min(300)]);
    }
}

fn check_html(html: &str) {
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    assert!(!html.contains("<script"), "the report needs no scripts");
    for bad in ["src=\"http", "href=\"http", "@import", "url("] {
        assert!(!html.contains(bad), "the report fetches something: {bad}");
    }
    for id in ["plot-scores", "plot-differences", "plot-heatmap-0"] {
        assert!(html.contains(&format!("<svg id=\"{id}\"")), "plot {id} missing");
    }
    assert!(html.matches("class=\"bar\"").count() >= 6, "score bars missing");
    assert!(html.matches("class=\"whisker\"").count() >= 6, "interval whiskers missing");
    assert!(html.matches("class=\"cell\"").count() >= 2 * 52, "heat map cells missing");
    assert!(html.contains("class=\"diff\""), "paired differences missing");
    check_tables(html);
}

#[test]
fn report_of_two_runs_reads_well() {
    let dir = std::env::temp_dir().join(format!("pingce-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let p = |x: &str| dir.join(x).to_str().unwrap().to_string();
    let (a, b, c, out) = (p("a"), p("b"), p("c"), p("out"));
    let tasks = ["--tasks", "arc_easy,piqa,ceval-valid", "--limit", "6"];
    pingce(&[&["eval", "--model", "tests/fixtures/tiny-llama", "--output", &a][..], &tasks].concat());
    pingce(&[&["eval", "--model", "tests/fixtures/tiny-qwen2", "--output", &b][..], &tasks].concat());
    pingce(&["eval", "--model", "tests/fixtures/tiny-qwen2", "--tasks", "arc_easy", "--limit", "3", "--output", &c]);
    pingce(&["report", &a, &b, &c, "--output", &out]);
    let html = std::fs::read_to_string(dir.join("out/report.html")).unwrap();
    let md = std::fs::read_to_string(dir.join("out/report.md")).unwrap();
    check_html(&html);
    // The comparable pair is compared, with a verdict and a Holm p-value per row; the runs with a
    // different --limit are shown apart with the reason.
    for text in [&html, &md] {
        assert!(text.contains("ceval-valid (micro)") && text.contains("Holm p") && text.contains("verdict"), "comparison table missing");
        assert!(text.contains("different limit: 6 vs 3"), "the incomparable run must be shown apart with its reason");
        assert!(text.contains("seed 20240607") && text.contains("Wilson"), "method and seed must be recorded");
        assert!(text.contains("ceval-valid per subject") && text.contains("sha256") && text.contains("pingce version"));
    }
    assert!(md.contains("| A | B | ceval-valid (micro) | acc |"), "{md}");
    // The report is deterministic.
    let out2 = p("out2");
    pingce(&["report", &a, &b, &c, "--output", &out2]);
    assert_eq!(std::fs::read(dir.join("out2/report.html")).unwrap(), html.as_bytes());
    match chromium() {
        None => eprintln!("chromium is not installed: skipped loading the report in a browser (the HTML structure was checked)"),
        Some(bin) => in_browser(bin, &dir.join("out/report.html"), &dir.join("shot.png")),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn in_browser(bin: &str, html: &Path, shot: &Path) {
    let url = format!("file://{}", html.display());
    let base = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr", "--v=0"];
    let o = Command::new(bin).args(base).arg(format!("--screenshot={}", shot.display())).arg("--window-size=1200,2000").arg(&url).output().unwrap();
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "chromium failed: {log}");
    let png = std::fs::read(shot).expect("no screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "screenshot of {} bytes", png.len());
    let o = Command::new(bin).args(base).arg("--dump-dom").arg(&url).output().unwrap();
    let dom = String::from_utf8_lossy(&o.stdout);
    let log = format!("{log}\n{}", String::from_utf8_lossy(&o.stderr));
    // Console messages are logged as `CONSOLE(line)] "..."` or `Console: ...`; a failed load as
    // `Failed to load resource`.
    for line in log.lines() {
        let l = line.to_lowercase();
        assert!(!(l.contains("console") && (l.contains("error") || l.contains("uncaught"))), "console error: {line}");
        assert!(!l.contains("failed to load resource") && !l.contains("uncaught"), "{line}");
    }
    // The DOM the browser built holds the plots and the tables.
    check_html(&dom.replace("<html lang=\"en\"><head>", "<!DOCTYPE html>\n<html lang=\"en\"><head>"));
    eprintln!("loaded in {bin}: screenshot {} ({} bytes)", shot.display(), png.len());
}
