//! OpenCompass answer post-processors (`opencompass/utils/text_postprocessors.py`, OpenCompass
//! 0.5.4): they turn a generated answer into the option letter that `AccEvaluator` compares with
//! the gold letter. An empty string means nothing was found (callers count it as unparsable).
//!
//! Python `re` is reproduced with the `regex` crate (no pattern here needs lookarounds or
//! backreferences, and `regex` reports the same leftmost-first match and groups as Python's
//! backtracking engine). The differences that matter are handled where the patterns are built:
//! * Python's `\s`/`\S` on `str` are `str.isspace()`, which also counts U+001C..U+001F; Rust's are
//!   Unicode White_Space. Patterns are rewritten to `[\s\x1C-\x1F]` (and the negation).
//! * Python's `$` also matches before a final `"\n"`; the text is stripped with `str.strip()`
//!   semantics before every search, so it never ends with one and `$` means end of text.
//! * `boxed{(...)}`: a `{` that starts no quantifier is a literal in Python, an error in `regex`;
//!   those braces are written escaped.

use crate::pycompat::text;
use regex::Regex;

/// `first_capital_postprocess` ("first-capital"): the first character for which Python's
/// `str.isupper()` holds (the Unicode Uppercase property, as `char::is_uppercase`).
pub fn first_capital_postprocess(text: &str) -> String {
    text.chars().find(|c| c.is_uppercase()).map(String::from).unwrap_or_default()
}

/// `last_capital_postprocess` ("last-capital"): the last uppercase character.
pub fn last_capital_postprocess(text: &str) -> String {
    text.chars().rev().find(|c| c.is_uppercase()).map(String::from).unwrap_or_default()
}

/// `first_option_postprocess(text, options, cushion)`. The patterns are compiled once per
/// (options, cushion) and kept for the process, so scoring many answers compiles them once.
pub fn first_option_postprocess(text: &str, options: &str, cushion: bool) -> anyhow::Result<String> {
    type Cache = std::sync::Mutex<std::collections::HashMap<(String, bool), std::sync::Arc<FirstOption>>>;
    static COMPILED: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    let cache = COMPILED.get_or_init(Default::default);
    let key = (options.to_string(), cushion);
    let found = cache.lock().unwrap().get(&key).cloned();
    let f = match found {
        Some(f) => f,
        None => {
            let f = std::sync::Arc::new(FirstOption::new(options, cushion)?);
            cache.lock().unwrap().insert(key, f.clone());
            f
        }
    };
    Ok(f.apply(text))
}

/// OpenCompass's ordered pattern list, as Python evaluates the f-strings (`§` stands for
/// `{options}`). The missing comma after `故选?...` in OpenCompass's list joins that pattern with
/// the next one; it is kept joined here, as Python runs it.
const PATTERNS: &[&str] = &[
    r"答案是?\s*([§])",
    r"答案是?\s*：\s*([§])",
    r"答案是?\s*:\s*([§])",
    r"答案选项应?该?是\s*([§])",
    r"答案选项应?该?为\s*([§])",
    r"答案应该?是\s*([§])",
    r"答案应该?选\s*([§])",
    r"答案选项为?\s*：\s*([§])",
    r"答案选项为?\s+\(?\*?\*?([§])\*?\*?\)?",
    r"答案选项是?\s*:\s*([§])",
    r"答案为\s*([§])",
    r"答案选\s*([§])",
    r"选择?\s*([§])",
    r"故选?\s*([§])只有选?项?\s?([§])\s?是?对",
    r"只有选?项?\s?([§])\s?是?错",
    r"只有选?项?\s?([§])\s?不?正确",
    r"只有选?项?\s?([§])\s?错误",
    r"说法不?对选?项?的?是\s?([§])",
    r"说法不?正确选?项?的?是\s?([§])",
    r"说法错误选?项?的?是\s?([§])",
    r"([§])\s?是正确的",
    r"([§])\s?是正确答案",
    r"选项\s?([§])\s?正确",
    r"所以答\s?([§])",
    r"所以\s?([§][.。$]?$)",
    r"所有\s?([§][.。$]?$)",
    r"[\s，：:,]([§])[。，,\.]?$",
    r"[\s，,：:][故即]([§])[。\.]?$",
    r"[\s，,：:]因此([§])[。\.]?$",
    r"[是为。]\s?([§])[。\.]?$",
    r"因此\s?([§])[。\.]?$",
    r"显然\s?([§])[。\.]?$",
    r"答案是\s?(\S+)(?:。|$)",
    r"答案应该是\s?(\S+)(?:。|$)",
    r"答案为\s?(\S+)(?:。|$)",
    r"(?i)ANSWER\s*:\s*([§])",
    r"[Tt]he answer is:?\s+\(?([§])\)?",
    r"[Tt]he answer is:?\s+\(?\*?\*?([§])\*?\*?\)?",
    r"[Tt]he answer is option:?\s+\(?([§])\)?",
    r"[Tt]he correct answer is:?\s+\(?([§])\)?",
    r"[Tt]he correct answer is option:?\s+\(?([§])\)?",
    r"[Tt]he correct answer is:?.*?boxed\{([§])\}",
    r"[Tt]he correct option is:?.*?boxed\{([§])\}",
    r"[Tt]he correct answer option is:?.*?boxed\{([§])\}",
    r"[Tt]he answer to the question is:?\s+\(?([§])\)?",
    r"^选项\s?([§])",
    r"^([§])\s?选?项",
    r"(\s|^)[§][\s。，,：:\.$]",
    r"1.\s?(.*?)$",
    r"1.\s?([§])[.。$]?$",
];

/// Appended when `cushion` is true: any option letter, preferably followed by a colon.
const CUSHION_PATTERNS: &[&str] = &[r"([§]):", r"([§])"];

/// Rewrite Python's `\s`/`\S` as Python's whitespace set (adds U+001C..U+001F).
fn python_whitespace(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut in_class = false;
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('s') if in_class => out.push_str(r"\s\x1C-\x1F"),
                Some('s') => out.push_str(r"[\s\x1C-\x1F]"),
                Some('S') => out.push_str(r"[^\s\x1C-\x1F]"),
                Some(e) => {
                    out.push('\\');
                    out.push(e);
                }
                None => out.push('\\'),
            },
            '[' if !in_class => {
                in_class = true;
                out.push(c);
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// `first_option_postprocess` with its patterns compiled for one option set.
#[derive(Clone, Debug)]
pub struct FirstOption {
    options: String,
    patterns: Vec<Regex>,
}

impl FirstOption {
    /// `options` is inserted into the character classes as OpenCompass inserts it (e.g.
    /// `"ABCD"`); it must be plain letters or digits (an error names it otherwise).
    pub fn new(options: &str, cushion: bool) -> anyhow::Result<Self> {
        if options.is_empty() || !options.chars().all(char::is_alphanumeric) {
            anyhow::bail!("first_option options {options:?}: expected letters or digits such as \"ABCD\"");
        }
        let tail: &[&str] = if cushion { CUSHION_PATTERNS } else { &[] };
        let patterns = PATTERNS
            .iter()
            .chain(tail)
            .map(|p| {
                let p = format!("(?s){}", python_whitespace(&p.replace('§', options)));
                Regex::new(&p).map_err(|e| anyhow::anyhow!("first_option options {options:?} give an invalid pattern {p:?}: {e}"))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(FirstOption { options: options.to_string(), patterns })
    }

    /// The first option found, or `""`. For each pattern in order: search the stripped text
    /// (DOTALL); on a match take group 1 if it is non-empty, else the whole match, and return
    /// the first option (in `options` order) it contains; otherwise go on to the next pattern.
    pub fn apply(&self, text: &str) -> String {
        let text = text::strip(text, None);
        for re in &self.patterns {
            let Some(caps) = re.captures(text) else { continue };
            let outputs = match caps.get(1) {
                Some(g) if !g.as_str().is_empty() => g.as_str(),
                _ => caps.get(0).map_or("", |m| m.as_str()),
            };
            if let Some(o) = self.options.chars().find(|&o| outputs.contains(o)) {
                return o.to_string();
            }
        }
        String::new()
    }
}

/// A post-processor as an OpenCompass config names it (`pred_postprocessor`).
#[derive(Clone, Debug)]
pub enum Postprocessor {
    FirstCapital,
    LastCapital,
    FirstOption(FirstOption),
}

impl Postprocessor {
    /// By function name or registry name (`first_capital_postprocess` / `first-capital`,
    /// `last_capital_postprocess` / `last-capital`, `first_option_postprocess` with its
    /// `options` and `cushion`, which OpenCompass defaults to true).
    pub fn from_name(name: &str, options: Option<&str>, cushion: Option<bool>) -> anyhow::Result<Self> {
        Ok(match name {
            "first_capital_postprocess" | "first-capital" => Postprocessor::FirstCapital,
            "last_capital_postprocess" | "last-capital" => Postprocessor::LastCapital,
            "first_option_postprocess" => {
                let options = options.ok_or_else(|| anyhow::anyhow!("first_option_postprocess needs `options`"))?;
                Postprocessor::FirstOption(FirstOption::new(options, cushion.unwrap_or(true))?)
            }
            _ => anyhow::bail!("unknown OpenCompass post-processor `{name}`"),
        })
    }

    pub fn apply(&self, text: &str) -> String {
        match self {
            Postprocessor::FirstCapital => first_capital_postprocess(text),
            Postprocessor::LastCapital => last_capital_postprocess(text),
            Postprocessor::FirstOption(f) => f.apply(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capitals() {
        assert_eq!(first_capital_postprocess("the answer is b, not C"), "C");
        assert_eq!(first_capital_postprocess("答案：Ｂ"), "Ｂ");
        assert_eq!(first_capital_postprocess("none"), "");
        assert_eq!(last_capital_postprocess("A or B"), "B");
    }

    #[test]
    fn whitespace_rewrite() {
        assert_eq!(python_whitespace(r"a\s?[\s,]\S\."), r"a[\s\x1C-\x1F]?[\s\x1C-\x1F,][^\s\x1C-\x1F]\.");
    }

    #[test]
    fn first_option_examples() {
        let f = FirstOption::new("ABCD", true).unwrap();
        assert_eq!(f.apply("答案是B"), "B");
        assert_eq!(f.apply("The answer is (C)."), "C");
        assert_eq!(f.apply("选项A和B中，正确答案为 D。"), "D");
        assert_eq!(f.apply("**Answer: B**"), "B");
        // (?i)ANSWER matches "a", which is not an option (they are case-sensitive): no answer.
        assert_eq!(f.apply("answer: a"), "");
        // No pattern but the cushion matches: the "A" of "Answer".
        assert_eq!(f.apply("Answer: E"), "A");
        assert_eq!(FirstOption::new("ABCD", false).unwrap().apply("Answer: E"), "");
        assert!(FirstOption::new("A|B", true).is_err());
        assert_eq!(first_option_postprocess("The answer is (C).", "ABCD", true).unwrap(), "C");
        assert!(Postprocessor::from_name("nope", None, None).is_err());
    }
}
