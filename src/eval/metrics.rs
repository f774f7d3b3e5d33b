//! Metrics and their standard errors, as lm-evaluation-harness computes them
//! (`lm_eval/api/metrics.py`, the multiple-choice branch of `Task.process_results`, TruthfulQA's
//! `process_results_mc2`, and the `exact_match` options of gsm8k).

use regex::Regex;

/// A metric a task's `metric_list` names (lm-eval's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Acc,
    AccNorm,
    /// TruthfulQA MC1: accuracy with one true answer (the `acc` column).
    Mc1,
    Mc2,
    ExactMatch,
    /// pingce's own (lm-eval has no such built-in): 1 when the (filtered) response contains the
    /// target, after exact_match's normalisation options.
    Contains,
    WordPerplexity,
    BytePerplexity,
    BitsPerByte,
}

impl Metric {
    /// The name lm-eval reports it under.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Acc => "acc",
            Metric::AccNorm => "acc_norm",
            Metric::Mc1 => "mc1",
            Metric::Mc2 => "mc2",
            Metric::ExactMatch => "exact_match",
            Metric::Contains => "contains",
            Metric::WordPerplexity => "word_perplexity",
            Metric::BytePerplexity => "byte_perplexity",
            Metric::BitsPerByte => "bits_per_byte",
        }
    }
}

/// The index of the first maximum, as `np.argmax`.
pub fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

/// Multiple-choice metrics of one document from the log-likelihood of each choice.
#[derive(Clone, Debug, PartialEq)]
pub struct ChoiceScores {
    pub pred: usize,
    pub pred_norm: usize,
    pub acc: f64,
    pub acc_norm: f64,
}

/// lm-eval: `pred = argmax(lls)`, `acc = pred in gold`; acc_norm divides each log-likelihood by
/// the character length of its choice string (`len(choice)`, without the target delimiter).
pub fn choice_scores(lls: &[f64], choices: &[String], gold: &[usize]) -> ChoiceScores {
    let pred = argmax(lls);
    let normed: Vec<f64> = lls.iter().zip(choices).map(|(l, c)| l / c.chars().count() as f64).collect();
    let pred_norm = argmax(&normed);
    ChoiceScores {
        pred,
        pred_norm,
        acc: gold.contains(&pred) as u8 as f64,
        acc_norm: gold.contains(&pred_norm) as u8 as f64,
    }
}

/// TruthfulQA mc2: the normalised probability mass of the true answers; `labels` are 1 for true
/// answers, which come first (lm-eval splits at the first 0).
pub fn mc2(lls: &[f64], labels: &[u8]) -> f64 {
    let split = labels.iter().position(|&l| l == 0).unwrap_or(labels.len());
    let p: Vec<f64> = lls.iter().map(|l| l.exp()).collect();
    let total: f64 = p.iter().sum();
    p[..split].iter().map(|x| x / total).sum()
}

/// lm-eval's exact_match (HF `evaluate` semantics): optional regexes removed from both strings,
/// then case and punctuation folding, then equality.
pub fn exact_match(pred: &str, target: &str, ignore_case: bool, ignore_punctuation: bool, regexes_to_ignore: &[Regex]) -> f64 {
    let norm = |s: &str| normalise(s, ignore_case, ignore_punctuation, regexes_to_ignore);
    (norm(pred) == norm(target)) as u8 as f64
}

/// exact_match's normalisation: regexes removed, then case and ASCII punctuation folded.
fn normalise(s: &str, ignore_case: bool, ignore_punctuation: bool, regexes_to_ignore: &[Regex]) -> String {
    let mut s = s.to_string();
    for r in regexes_to_ignore {
        s = r.replace_all(&s, "").into_owned();
    }
    if ignore_case {
        s = s.to_lowercase();
    }
    if ignore_punctuation {
        s.retain(|c| !c.is_ascii_punctuation());
    }
    s
}

/// pingce's `contains`: 1 when the normalised `pred` contains the normalised, non-empty
/// `target` (the normalisation of [`exact_match`]).
pub fn contains(pred: &str, target: &str, ignore_case: bool, ignore_punctuation: bool, regexes_to_ignore: &[Regex]) -> f64 {
    let norm = |s: &str| normalise(s, ignore_case, ignore_punctuation, regexes_to_ignore);
    let t = norm(target);
    (!t.is_empty() && norm(pred).contains(&t)) as u8 as f64
}

/// Mean and lm-eval's `mean_stderr`: sample standard deviation (ddof 1) / sqrt(n).
pub fn mean_stderr(v: &[f64]) -> (f64, Option<f64>) {
    let n = v.len() as f64;
    if v.is_empty() {
        return (f64::NAN, None);
    }
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (mean, None);
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, Some((var / n).sqrt()))
}

/// Perplexity-style metrics over documents: each contributes (log-likelihood, weight), where the
/// weight is its word count or UTF-8 byte count (lm-eval's `weighted_perplexity`, `bits_per_byte`).
pub fn weighted_perplexity(items: &[(f64, f64)]) -> f64 {
    let ll: f64 = items.iter().map(|x| x.0).sum();
    let w: f64 = items.iter().map(|x| x.1).sum();
    (-ll / w).exp()
}

pub fn bits_per_byte(items: &[(f64, f64)]) -> f64 {
    let ll: f64 = items.iter().map(|x| x.0).sum();
    let w: f64 = items.iter().map(|x| x.1).sum();
    -ll / w / std::f64::consts::LN_2
}

/// Group aggregation across tasks: the size-weighted mean (lm-eval's micro average) with the
/// pooled standard error (`pooled_sample_stderr`), and the plain mean of task scores (the macro
/// average OpenCompass reports).
pub struct GroupScore {
    pub micro: f64,
    pub micro_stderr: Option<f64>,
    pub macro_: f64,
    pub n: usize,
}

/// `parts` are (score, stderr, n) per task.
pub fn group(parts: &[(f64, Option<f64>, usize)]) -> GroupScore {
    let n: usize = parts.iter().map(|p| p.2).sum();
    let micro = parts.iter().map(|p| p.0 * p.2 as f64).sum::<f64>() / n as f64;
    let macro_ = parts.iter().map(|p| p.0).sum::<f64>() / parts.len() as f64;
    // lm-eval pooled_sample_stderr: sqrt(Σ (n_i - 1) s_i² n_i / (N - k)) / sqrt(N) with s_i the
    // per-task stderr times sqrt(n_i), i.e. pooled variance of the samples.
    let k = parts.len() as f64;
    let micro_stderr = if parts.iter().all(|p| p.1.is_some()) && n as f64 > k {
        let pooled: f64 = parts.iter().map(|p| (p.2 as f64 - 1.0) * p.1.unwrap().powi(2) * p.2 as f64).sum::<f64>() / (n as f64 - k);
        Some((pooled / n as f64).sqrt())
    } else {
        None
    };
    GroupScore { micro, micro_stderr, macro_, n }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiple_choice() {
        let s = choice_scores(&[-5.0, -2.0, -2.0, -9.0], &["a".into(), "bbbb".into(), "cc".into(), "d".into()], &[2]);
        assert_eq!((s.pred, s.acc), (1, 0.0)); // first of equal maxima
        assert_eq!((s.pred_norm, s.acc_norm), (1, 0.0)); // -0.5 > -1.0
        let s = choice_scores(&[-4.0, -3.0], &["aaaa".into(), "b".into()], &[0]);
        assert_eq!((s.pred, s.pred_norm, s.acc_norm), (1, 0, 1.0));
    }

    #[test]
    fn mc2_mass_of_true_answers() {
        let lls = [(0.5f64).ln(), (0.25f64).ln(), (0.25f64).ln()];
        assert!((mc2(&lls, &[1, 1, 0]) - 0.75).abs() < 1e-12);
    }

    #[test]
    fn exact_match_gsm8k_options() {
        let ignore = [Regex::new(",").unwrap(), Regex::new(r"\$").unwrap(), Regex::new("(?s).*#### ").unwrap(), Regex::new(r"\.$").unwrap()];
        assert_eq!(exact_match("$1,234.", "The answer #### 1234", true, false, &ignore), 1.0);
        assert_eq!(exact_match("12", "13", true, false, &ignore), 0.0);
    }

    #[test]
    fn gsm8k_filters() {
        let strict = Filter { name: "strict-match".into(), filter: vec![FilterStep::Regex { regex_pattern: r"#### (\-?[0-9\.\,]+)".into(), group_select: 0, fallback: "[invalid]".into() }, FilterStep::TakeFirst] };
        let flex = Filter { name: "flexible-extract".into(), filter: vec![FilterStep::Regex { regex_pattern: r"(-?[$0-9.,]{2,})|(-?[0-9]+)".into(), group_select: -1, fallback: "[invalid]".into() }, FilterStep::TakeFirst] };
        assert_eq!(strict.apply("so 3 + 4 = 7\n#### 7").unwrap(), "7");
        assert_eq!(strict.apply("the answer is 7").unwrap(), "[invalid]");
        assert_eq!(flex.apply("costs $12 then 5 more").unwrap(), "5");
        assert_eq!(flex.apply("no digits").unwrap(), "[invalid]");
    }

    #[test]
    fn contains_target() {
        assert_eq!(contains("答案是：合格。", "合格", false, false, &[]), 1.0);
        assert_eq!(contains("The answer is PASS", "pass", true, false, &[]), 1.0);
        assert_eq!(contains("The answer is PASS", "pass", false, false, &[]), 0.0);
        assert_eq!(contains("anything", "", false, false, &[]), 0.0);
    }

    #[test]
    fn stderr_and_groups() {
        let (m, se) = mean_stderr(&[1.0, 0.0, 1.0, 1.0]);
        assert_eq!(m, 0.75);
        assert!((se.unwrap() - 0.25).abs() < 1e-12); // s = 0.5, / sqrt(4)
        let g = group(&[(1.0, Some(0.0), 2), (0.0, Some(0.0), 6)]);
        assert_eq!((g.micro, g.macro_, g.n), (0.25, 0.5, 8));
        assert!((weighted_perplexity(&[(-2.0, 1.0), (-2.0, 1.0)]) - 2f64.exp()).abs() < 1e-12);
    }
}

/// One step of an answer filter (lm-eval `filter_list[].filter[]`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "function", rename_all = "snake_case", deny_unknown_fields)]
pub enum FilterStep {
    /// lm-eval RegexFilter: `re.findall(regex_pattern, response)`; `group_select` indexes the
    /// matches (negative from the end); a match with groups takes its first non-empty group; no
    /// match gives `fallback`.
    Regex {
        #[serde(default = "default_regex")]
        regex_pattern: String,
        #[serde(default)]
        group_select: i64,
        #[serde(default = "invalid")]
        fallback: String,
    },
    /// lm-eval take_first: keep the first response (pingce generates one per request).
    TakeFirst,
    /// OpenCompass `first_capital_postprocess`: the first upper-case character, or "".
    FirstCapital,
    /// OpenCompass `first_option_postprocess(text, options, cushion)`: its ordered answer
    /// patterns; "" when none matches.
    FirstOption {
        #[serde(default = "abcd")]
        options: String,
        #[serde(default = "yes")]
        cushion: bool,
    },
}

fn abcd() -> String {
    "ABCD".into()
}

fn yes() -> bool {
    true
}

/// lm-eval RegexFilter's default pattern.
fn default_regex() -> String {
    r"#### (\-?[0-9\.\,]+)".into()
}

fn invalid() -> String {
    "[invalid]".into()
}

/// A named filter pipeline (e.g. gsm8k's "strict-match" and "flexible-extract").
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub name: String,
    pub filter: Vec<FilterStep>,
}

impl Filter {
    pub fn apply(&self, text: &str) -> anyhow::Result<String> {
        let mut s = text.to_string();
        for step in &self.filter {
            match step {
                FilterStep::FirstCapital => s = super::postprocess::first_capital_postprocess(&s),
                FilterStep::FirstOption { options, cushion } => s = super::postprocess::first_option_postprocess(&s, options, *cushion).map_err(|e| anyhow::anyhow!("filter {}: {e}", self.name))?,
                _ => {}
            }
            if let FilterStep::Regex { regex_pattern, group_select, fallback } = step {
                let re = Regex::new(regex_pattern).map_err(|e| anyhow::anyhow!("filter {}: bad regex {regex_pattern:?}: {e}", self.name))?;
                // Python findall: the whole match, or with groups the group tuple, of which lm-eval
                // keeps the first non-empty element (else the fallback).
                let matches: Vec<Option<String>> = re
                    .captures_iter(&s)
                    .map(|c| {
                        if c.len() > 1 {
                            (1..c.len()).filter_map(|i| c.get(i)).map(|m| m.as_str()).find(|m| !m.is_empty()).map(String::from)
                        } else {
                            Some(c[0].to_string())
                        }
                    })
                    .collect();
                let idx = if *group_select < 0 { matches.len() as i64 + group_select } else { *group_select };
                s = match matches.get(idx.max(0) as usize).filter(|_| idx >= 0) {
                    Some(Some(m)) => m.trim().to_string(),
                    _ => fallback.clone(),
                };
            }
        }
        Ok(s)
    }
}
