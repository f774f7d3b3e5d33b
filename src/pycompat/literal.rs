//! `ast.literal_eval` for what lm-eval reads back from a rendered template: lists, strings and
//! ints, nested.

use serde_json::Value as Json;

/// A value a `doc_to_*` function returns in lm-eval.
#[derive(Clone, Debug, PartialEq)]
pub enum Py {
    Int(i64),
    Str(String),
    List(Vec<Py>),
    Other(Json),
}

/// Lists nested deeper than this are refused rather than parsed (no real prompt nests them; a
/// crafted answer of a million brackets must not overflow the stack).
pub const MAX_DEPTH: usize = 64;

impl Py {
    pub fn from_json(v: &Json) -> Py {
        match v {
            Json::String(s) => Py::Str(s.clone()),
            Json::Number(n) if n.is_i64() => Py::Int(n.as_i64().unwrap_or_default()),
            Json::Number(n) if n.is_u64() => Py::Int(n.as_u64().unwrap_or_default() as i64),
            Json::Array(a) => Py::List(a.iter().map(Py::from_json).collect()),
            other => Py::Other(other.clone()),
        }
    }

    /// A short rendering for error messages.
    pub fn describe(&self) -> String {
        match self {
            Py::Int(i) => i.to_string(),
            Py::Str(s) => format!("{s:?}"),
            Py::List(l) => format!("[{}]", l.iter().map(Py::describe).collect::<Vec<_>>().join(", ")),
            Py::Other(j) => j.to_string(),
        }
    }
}

/// Parses a Python literal made of lists, strings and ints; `None` if `s` is anything else (or
/// nests lists deeper than [`MAX_DEPTH`]).
pub fn parse(s: &str) -> Option<Py> {
    let c: Vec<char> = s.chars().collect();
    let mut i = 0;
    let v = value(&c, &mut i, 0)?;
    skip_ws(&c, &mut i);
    (i == c.len()).then_some(v)
}

fn skip_ws(c: &[char], i: &mut usize) {
    while *i < c.len() && c[*i].is_whitespace() {
        *i += 1;
    }
}

fn value(c: &[char], i: &mut usize, depth: usize) -> Option<Py> {
    skip_ws(c, i);
    match *c.get(*i)? {
        '[' => list(c, i, depth + 1),
        q @ ('\'' | '"') => string(c, i, q),
        _ => int(c, i),
    }
}

fn list(c: &[char], i: &mut usize, depth: usize) -> Option<Py> {
    if depth > MAX_DEPTH {
        return None;
    }
    *i += 1;
    let mut items = Vec::new();
    loop {
        skip_ws(c, i);
        if *c.get(*i)? == ']' {
            *i += 1;
            return Some(Py::List(items));
        }
        items.push(value(c, i, depth)?);
        skip_ws(c, i);
        match *c.get(*i)? {
            ',' => *i += 1,
            ']' => {}
            _ => return None,
        }
    }
}

fn string(c: &[char], i: &mut usize, q: char) -> Option<Py> {
    *i += 1;
    let mut out = String::new();
    loop {
        let ch = *c.get(*i)?;
        *i += 1;
        if ch == q {
            return Some(Py::Str(out));
        }
        if ch != '\\' {
            out.push(ch);
            continue;
        }
        let e = *c.get(*i)?;
        *i += 1;
        match e {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            '\\' | '\'' | '"' => out.push(e),
            'x' | 'u' | 'U' => {
                let n = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let hex: String = c.get(*i..*i + n)?.iter().collect();
                *i += n;
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
            }
            _ => return None,
        }
    }
}

fn int(c: &[char], i: &mut usize) -> Option<Py> {
    let start = *i;
    if c[*i] == '-' {
        *i += 1;
    }
    while *i < c.len() && c[*i].is_ascii_digit() {
        *i += 1;
    }
    let t: String = c[start..*i].iter().collect();
    t.parse().ok().map(Py::Int)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals() {
        assert_eq!(
            parse("['a', \"b'c\", 'd\\n']"),
            Some(Py::List(vec![Py::Str("a".into()), Py::Str("b'c".into()), Py::Str("d\n".into())]))
        );
        assert_eq!(parse("[1, -2]"), Some(Py::List(vec![Py::Int(1), Py::Int(-2)])));
        assert_eq!(parse("[a]"), None);
        assert_eq!(parse("99999999999999999999"), None);
    }

    #[test]
    fn deep_nesting_is_refused_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(1_000_000), "]".repeat(1_000_000));
        assert_eq!(parse(&deep), None);
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_some());
    }
}
