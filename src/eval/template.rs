//! The Jinja environment lm-eval renders its templates with (`lm_eval/utils.py`:
//! `Environment(loader=BaseLoader, undefined=StrictUndefined, keep_trailing_newline=True)`), on
//! minijinja: strict undefined values, trailing newline kept, Python-style output of values
//! (`True`, `None`, `['a', 'b']`) and the Python `str`/`list`/`dict` methods lm-eval's templates
//! call (`.strip()`, `.index()`, `.split()`, `.join()`, ...), with Python's semantics.

use crate::pycompat::repr::{repr as py_repr, str as py_str, str_repr as py_str_repr};
use crate::pycompat::text;
use minijinja::value::{Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State, UndefinedBehavior};

/// Instructions one render may execute (nested loops over a hostile range run out of fuel).
pub const TEMPLATE_FUEL: u64 = 10_000_000;
/// Largest value one `{{ ... }}` may print.
pub const MAX_PRINTED_BYTES: usize = 16 << 20;
/// How much a template's `{% set %}` statements together may multiply a string's length (the
/// product over them of 1 + their `~`/`+` operators): string concatenation is not bounded by
/// fuel, so `{% set s = s ~ s %}` written 31 times would build gigabytes.
pub const MAX_SET_GROWTH: u64 = 1024;

/// A minijinja environment configured like lm-eval's, with fuel and output limits.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_fuel(Some(TEMPLATE_FUEL));
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    let syntax = minijinja::syntax::SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .build()
        .expect("default delimiters");
    env.set_syntax(syntax);
    env.set_unknown_method_callback(python_method);
    env.set_formatter(|out, _state, value| {
        let s = py_str(value);
        if s.len() > MAX_PRINTED_BYTES {
            return Err(Error::new(ErrorKind::InvalidOperation, format!("a printed value of {} bytes exceeds {MAX_PRINTED_BYTES}", s.len())));
        }
        std::fmt::Write::write_str(out, &s).map_err(Error::from)
    });
    env.add_filter("strip", |s: String| text::strip(&s, None).to_string());
    env.add_filter("wikitext_detokenize", |s: String| super::data::wikitext_detokenize(&s));
    env.add_filter("join_str", |v: Value, sep: String| -> Result<String, Error> {
        join(&sep, &v)
    });
    env
}

/// Refuses a template source whose `{% set %}` statements could grow a string more than
/// [`MAX_SET_GROWTH`]-fold.
pub fn check_source(src: &str) -> Result<(), String> {
    let mut growth: u64 = 1;
    let mut rest = src;
    while let Some(i) = rest.find("{%") {
        let tag = &rest[i + 2..];
        let end = tag.find("%}").unwrap_or(tag.len());
        let body = tag[..end].trim_start_matches(['-', '+']).trim_start();
        if body.starts_with("set ") || body.starts_with("set\t") {
            let ops = body.matches(['~', '+']).count() as u64;
            growth = growth.saturating_mul(ops + 1);
            if growth > MAX_SET_GROWTH {
                return Err(format!("its {{% set %}} statements can grow a string more than {MAX_SET_GROWTH}-fold"));
            }
        }
        rest = &tag[end..];
    }
    Ok(())
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
            "strip" => Value::from(text::strip(&s, opt_chars(args).as_deref())),
            "lstrip" => Value::from(text::lstrip(&s, opt_chars(args).as_deref())),
            "rstrip" => Value::from(text::rstrip(&s, opt_chars(args).as_deref())),
            "upper" => Value::from(s.to_uppercase()),
            "lower" => Value::from(s.to_lowercase()),
            "capitalize" => Value::from(text::capitalize(&s)),
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
                    None if maxsplit < 0 => text::split_whitespace(&s).map(str::to_string).collect(),
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

    #[test]
    fn limits() {
        let loops = "{% for a in range(100) %}".repeat(6) + "x" + &"{% endfor %}".repeat(6);
        let e = render(&loops, serde_json::json!({})).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::OutOfFuel, "{e}");
        let doubling = "{% set s = 'ab' %}".to_string() + &"{% set s = s ~ s %}".repeat(31) + "{{ s }}";
        assert!(check_source(&doubling).unwrap_err().contains("set"));
        assert!(check_source("{% set p = 'a' + 'b' %}{{ p }}").is_ok());
    }
}
