//! The Jinja environment lm-eval renders its templates with (`lm_eval/utils.py`:
//! `Environment(loader=BaseLoader, undefined=StrictUndefined, keep_trailing_newline=True)`), on
//! minijinja: strict undefined values, trailing newline kept, Python-style output of values
//! (`True`, `None`, `['a', 'b']`) and the Python `str`/`list`/`dict` methods lm-eval's templates
//! call (`.strip()`, `.index()`, `.split()`, `.join()`, ...), with Python's semantics.

use crate::engine::requests::python_is_space;
use minijinja::value::{Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State, UndefinedBehavior};

/// A minijinja environment configured like lm-eval's.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    let syntax = minijinja::syntax::SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .build()
        .expect("default delimiters");
    env.set_syntax(syntax);
    env.set_unknown_method_callback(python_method);
    env.set_formatter(|out, _state, value| {
        std::fmt::Write::write_str(out, &py_str(value)).map_err(Error::from)
    });
    env.add_filter("strip", |s: String| python_strip(&s, None).to_string());
    env.add_filter("wikitext_detokenize", |s: String| super::wikitext_detokenize(&s));
    env.add_filter("join_str", |v: Value, sep: String| -> Result<String, Error> {
        join(&sep, &v)
    });
    env
}

/// Python's `str(value)` for what a template outputs.
pub fn py_str(v: &Value) -> String {
    match v.kind() {
        ValueKind::String => v.as_str().unwrap_or_default().to_string(),
        _ => py_repr(v),
    }
}

/// Python's `repr(value)` for strings, numbers, booleans, None, lists and dicts.
pub fn py_repr(v: &Value) -> String {
    match v.kind() {
        ValueKind::Undefined => String::new(),
        ValueKind::None => "None".into(),
        ValueKind::Bool => if v.is_true() { "True" } else { "False" }.into(),
        ValueKind::Number => {
            if let Some(i) = v.as_i64() {
                i.to_string()
            } else {
                let f = f64::try_from(v.clone()).unwrap_or(f64::NAN);
                if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e16 {
                    format!("{f:.1}")
                } else {
                    format!("{f}")
                }
            }
        }
        ValueKind::String => py_str_repr(v.as_str().unwrap_or_default()),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<String> = v
                .try_iter()
                .map(|it| it.map(|x| py_repr(&x)).collect())
                .unwrap_or_default();
            format!("[{}]", items.join(", "))
        }
        ValueKind::Map => {
            let items: Vec<String> = v
                .try_iter()
                .map(|it| {
                    it.map(|k| {
                        let val = v.get_item(&k).unwrap_or_default();
                        format!("{}: {}", py_repr(&k), py_repr(&val))
                    })
                    .collect()
                })
                .unwrap_or_default();
            format!("{{{}}}", items.join(", "))
        }
        _ => v.to_string(),
    }
}

/// `repr(str)`: single quotes unless the text has `'` and no `"`.
pub fn py_str_repr(s: &str) -> String {
    let q = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(q);
    out
}

/// `str.strip([chars])` with Python's whitespace.
pub fn python_strip<'a>(s: &'a str, chars: Option<&str>) -> &'a str {
    match chars {
        None => s.trim_matches(python_is_space),
        Some(cs) => s.trim_matches(|c| cs.contains(c)),
    }
}

fn arg_str(args: &[Value], i: usize, method: &str) -> Result<String, Error> {
    args.get(i)
        .and_then(|a| a.as_str())
        .map(str::to_string)
        .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, format!("{method}() needs a string argument")))
}

fn opt_chars(args: &[Value]) -> Option<String> {
    args.first().filter(|a| !a.is_none()).and_then(|a| a.as_str()).map(str::to_string)
}

fn join(sep: &str, items: &Value) -> Result<String, Error> {
    let mut parts = Vec::new();
    for x in items.try_iter()? {
        match x.as_str() {
            Some(s) => parts.push(s.to_string()),
            None => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("join(): sequence item is not a string: {}", py_repr(&x)),
                ))
            }
        }
    }
    Ok(parts.join(sep))
}

fn value_error(msg: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg)
}

/// Python methods on strings, lists and dicts (minijinja's unknown-method callback).
fn python_method(_state: &mut State, value: &Value, method: &str, args: &[Value]) -> Result<Value, Error> {
    if let Some(s) = value.as_str() {
        let s = s.to_string();
        return Ok(match method {
            "strip" => Value::from(python_strip(&s, opt_chars(args).as_deref())),
            "lstrip" => Value::from(match opt_chars(args) {
                None => s.trim_start_matches(python_is_space).to_string(),
                Some(cs) => s.trim_start_matches(|c| cs.contains(c)).to_string(),
            }),
            "rstrip" => Value::from(match opt_chars(args) {
                None => s.trim_end_matches(python_is_space).to_string(),
                Some(cs) => s.trim_end_matches(|c| cs.contains(c)).to_string(),
            }),
            "upper" => Value::from(s.to_uppercase()),
            "lower" => Value::from(s.to_lowercase()),
            "capitalize" => Value::from(super::python_capitalize(&s)),
            "startswith" => Value::from(s.starts_with(&arg_str(args, 0, method)?)),
            "endswith" => Value::from(s.ends_with(&arg_str(args, 0, method)?)),
            "replace" => {
                let (a, b) = (arg_str(args, 0, method)?, arg_str(args, 1, method)?);
                match args.get(2).and_then(Value::as_i64) {
                    Some(n) if n >= 0 => Value::from(s.replacen(&a, &b, n as usize)),
                    _ => Value::from(s.replace(&a, &b)),
                }
            }
            "index" | "find" => {
                let sub = arg_str(args, 0, method)?;
                match s.find(&sub) {
                    Some(b) => Value::from(s[..b].chars().count()),
                    None if method == "find" => Value::from(-1),
                    None => return Err(value_error(format!("substring {} not found", py_str_repr(&sub)))),
                }
            }
            "count" => Value::from(s.matches(&arg_str(args, 0, method)?).count()),
            "isdigit" => Value::from(!s.is_empty() && s.chars().all(|c| c.is_ascii_digit())),
            "split" | "rsplit" => {
                let sep = opt_chars(args);
                let maxsplit = args.get(1).and_then(Value::as_i64).unwrap_or(-1);
                let parts: Vec<String> = match sep {
                    Some(sep) if sep.is_empty() => return Err(value_error("empty separator".into())),
                    Some(sep) if maxsplit < 0 => s.split(sep.as_str()).map(str::to_string).collect(),
                    Some(sep) if method == "split" => {
                        s.splitn(maxsplit as usize + 1, sep.as_str()).map(str::to_string).collect()
                    }
                    Some(sep) => {
                        let mut v: Vec<String> =
                            s.rsplitn(maxsplit as usize + 1, sep.as_str()).map(str::to_string).collect();
                        v.reverse();
                        v
                    }
                    None if maxsplit < 0 => s.split(python_is_space).filter(|p| !p.is_empty()).map(str::to_string).collect(),
                    None => return Err(value_error("split(None, maxsplit) is not supported".into())),
                };
                Value::from(parts)
            }
            "join" => Value::from(join(&s, args.first().ok_or_else(|| value_error("join() needs a list".into()))?)?),
            _ => return Err(Error::from(ErrorKind::UnknownMethod)),
        });
    }
    match (value.kind(), method) {
        (ValueKind::Seq, "index") => {
            let x = args.first().ok_or_else(|| value_error("index() needs an argument".into()))?;
            for (i, item) in value.try_iter()?.enumerate() {
                if &item == x {
                    return Ok(Value::from(i));
                }
            }
            Err(value_error(format!("{} is not in list", py_repr(x))))
        }
        (ValueKind::Seq, "count") => {
            let x = args.first().ok_or_else(|| value_error("count() needs an argument".into()))?;
            Ok(Value::from(value.try_iter()?.filter(|i| i == x).count()))
        }
        (ValueKind::Map, "keys") => Ok(Value::from(value.try_iter()?.collect::<Vec<_>>())),
        (ValueKind::Map, "values") => Ok(Value::from(
            value.try_iter()?.map(|k| value.get_item(&k).unwrap_or_default()).collect::<Vec<_>>(),
        )),
        (ValueKind::Map, "items") => Ok(Value::from(
            value
                .try_iter()?
                .map(|k| Value::from(vec![k.clone(), value.get_item(&k).unwrap_or_default()]))
                .collect::<Vec<_>>(),
        )),
        (ValueKind::Map, "get") => {
            let k = args.first().ok_or_else(|| value_error("get() needs a key".into()))?;
            let v = value.get_item(k)?;
            Ok(if v.is_undefined() { args.get(1).cloned().unwrap_or(Value::from(())) } else { v })
        }
        _ => Err(Error::from(ErrorKind::UnknownMethod)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(t: &str, ctx: serde_json::Value) -> Result<String, Error> {
        environment().render_str(t, Value::from(minijinja::value::Serde(&ctx)))
    }

    #[test]
    fn python_like() {
        let ctx = serde_json::json!({"q": "  hi \u{1c}", "l": ["A", "B"], "s": "ab_cd", "n": null, "b": true});
        assert_eq!(render("{{q.strip()}}|{{l.index('B')}}|{{l}}", ctx.clone()).unwrap(), "hi|1|['A', 'B']");
        assert_eq!(render("{{s[s.index('_') + 1:]}}|{{s[:s.index('_')]}}", ctx.clone()).unwrap(), "cd|ab");
        assert_eq!(render("{{n}} {{b}} {{', '.join(l)}}", ctx.clone()).unwrap(), "None True A, B");
        assert_eq!(render("{{ 'x' + s }}\n", ctx.clone()).unwrap(), "xab_cd\n");
        assert_eq!(render("{{ ['A','B'].index(l[1]) }}", ctx.clone()).unwrap(), "1");
        assert!(render("{{ missing }}", ctx.clone()).is_err());
        assert!(render("{{ l.index('Z') }}", ctx.clone()).is_err());
        assert_eq!(render("{% set p = 'a\nb' %}{{p + '!'}}", ctx).unwrap(), "a\nb!");
    }
}
