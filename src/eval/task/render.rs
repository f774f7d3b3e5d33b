//! lm-eval's `doc_to_text`, `doc_to_target`, `doc_to_choice`, description and labels of one
//! document: a template that names a field returns the field; otherwise it is rendered with
//! Jinja and, where lm-eval does, read back as an int or a Python literal.

use anyhow::{anyhow, Result};
use serde_json::Value as Json;

use super::{Task, TemplateSpec};
use crate::eval::{template, Doc};
use crate::pycompat::literal::{self, Py};

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_digit())
}

/// A single `{{ expr }}` template: the expression.
fn single_expression(t: &str) -> Option<&str> {
    let inner = t.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    (!inner.contains("{{") && !inner.contains("}}") && !inner.contains("{%")).then_some(inner.trim())
}

impl Task {
    pub(super) fn err(&self, key: &str, doc_id: usize, e: impl std::fmt::Display) -> anyhow::Error {
        anyhow!("{}: task `{}`, {key}, doc {doc_id}: {e}", self.file.display(), self.name)
    }

    /// Render a Jinja template against `doc`; unknown fields are errors naming the field.
    pub(super) fn render(&self, key: &str, src: &str, doc: &Doc, doc_id: usize) -> Result<String> {
        let env = template::environment();
        let tmpl = env.template_from_str(src).map_err(|e| self.err(key, doc_id, e))?;
        // Render first: a template may test a missing field (`answer is defined`); only when
        // rendering fails is a missing field named as the cause.
        tmpl.render(minijinja::Value::from(minijinja::value::Serde(doc))).map_err(|e| {
            match self.check_fields(key, tmpl.undeclared_variables(false), doc, doc_id) {
                Err(named) if e.kind() == minijinja::ErrorKind::UndefinedError => named,
                _ => self.err(key, doc_id, format!("{e:#}")),
            }
        })
    }

    pub(super) fn check_fields(&self, key: &str, vars: std::collections::HashSet<String>, doc: &Doc, doc_id: usize) -> Result<()> {
        let mut missing: Vec<String> = vars.into_iter().filter(|v| !doc.contains_key(v)).collect();
        missing.sort();
        if let Some(m) = missing.first() {
            return Err(self.err(
                key,
                doc_id,
                format!(
                    "template references unknown field `{m}` (the document has: {})",
                    doc.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        Ok(())
    }

    pub(super) fn eval_expr(&self, key: &str, expr: &str, doc: &Doc, doc_id: usize) -> Result<Py> {
        let env = template::environment();
        let e = env.compile_expression(expr).map_err(|e| self.err(key, doc_id, e))?;
        self.check_fields(key, e.undeclared_variables(false), doc, doc_id)?;
        let v = e
            .eval(minijinja::Value::from(minijinja::value::Serde(doc)))
            .map_err(|e| self.err(key, doc_id, format!("{e:#}")))?;
        let j = serde_json::to_value(&v).map_err(|e| self.err(key, doc_id, e))?;
        Ok(Py::from_json(&j))
    }

    pub(super) fn doc_to_text(&self, doc: &Doc, doc_id: usize) -> Result<Py> {
        self.doc_to_text_with(&self.config.doc_to_text, doc, doc_id)
    }

    /// `doc_to_text` with another template (`fewshot_config.doc_to_text`).
    pub(super) fn doc_to_text_with(&self, spec: &TemplateSpec, doc: &Doc, doc_id: usize) -> Result<Py> {
        match spec {
            TemplateSpec::Int(i) => Ok(Py::Int(*i)),
            TemplateSpec::Text(s) if doc.contains_key(s) => Ok(Py::from_json(&doc[s])),
            TemplateSpec::Text(s) => {
                let r = self.render("doc_to_text", s, doc, doc_id)?;
                Ok(if is_digits(&r) && self.config.doc_to_choice.is_some() {
                    Py::Int(r.parse().map_err(|e| self.err("doc_to_text", doc_id, e))?)
                } else {
                    Py::Str(r)
                })
            }
            TemplateSpec::List(_) => Err(self.err("doc_to_text", doc_id, "must be a string or an int")),
        }
    }

    pub(super) fn doc_to_target(&self, doc: &Doc, doc_id: usize) -> Result<Py> {
        self.doc_to_target_with(&self.config.doc_to_target, doc, doc_id)
    }

    /// `doc_to_target` with another template (`fewshot_config.doc_to_target`).
    pub(super) fn doc_to_target_with(&self, spec: &TemplateSpec, doc: &Doc, doc_id: usize) -> Result<Py> {
        match spec {
            TemplateSpec::Int(i) => Ok(Py::Int(*i)),
            TemplateSpec::List(l) => Ok(Py::List(l.iter().cloned().map(Py::Str).collect())),
            TemplateSpec::Text(s) if doc.contains_key(s) => Ok(Py::from_json(&doc[s])),
            TemplateSpec::Text(s) => {
                let r = self.render("doc_to_target", s, doc, doc_id)?;
                if is_digits(&r) && self.config.doc_to_choice.is_some() {
                    return Ok(Py::Int(r.parse().map_err(|e| self.err("doc_to_target", doc_id, e))?));
                }
                if r.len() >= 2 && r.starts_with('[') && r.ends_with(']') {
                    if let Some(v) = literal::parse(&r) {
                        return Ok(v);
                    }
                }
                Ok(Py::Str(r))
            }
        }
    }

    pub(super) fn doc_to_choice(&self, doc: &Doc, doc_id: usize) -> Result<Option<Vec<String>>> {
        let Some(spec) = &self.config.doc_to_choice else { return Ok(None) };
        let v = match spec {
            TemplateSpec::List(l) => return Ok(Some(l.clone())),
            TemplateSpec::Int(_) => return Err(self.err("doc_to_choice", doc_id, "must be a list or a template")),
            TemplateSpec::Text(s) if doc.contains_key(s) => Py::from_json(&doc[s]),
            TemplateSpec::Text(s) => match single_expression(s) {
                Some(e) => self.eval_expr("doc_to_choice", e, doc, doc_id)?,
                None => {
                    let r = self.render("doc_to_choice", s, doc, doc_id)?;
                    literal::parse(&r).ok_or_else(|| {
                        self.err("doc_to_choice", doc_id, format!("{r:?} is not a Python list literal"))
                    })?
                }
            },
        };
        match v {
            Py::List(items) => items
                .into_iter()
                .map(|x| match x {
                    Py::Str(s) => Ok(s),
                    other => Err(self.err("doc_to_choice", doc_id, format!("choice {} is not a string", other.describe()))),
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            other => Err(self.err("doc_to_choice", doc_id, format!("{} is not a list", other.describe()))),
        }
    }

    pub(super) fn description(&self, doc: &Doc, doc_id: usize) -> Result<String> {
        let d = &self.config.description;
        if d.is_empty() {
            return Ok(String::new());
        }
        if let Some(v) = doc.get(d) {
            return match v {
                Json::String(s) => Ok(s.clone()),
                other => Ok(other.to_string()),
            };
        }
        self.render("description", d, doc, doc_id)
    }

    /// Whether `doc_to_text` returns an int for the first doc (lm-eval's `multiple_input`).
    pub(super) fn multiple_input(&self, docs: &[Doc]) -> Result<bool> {
        match docs.first() {
            Some(d) if self.config.doc_to_choice.is_some() => Ok(matches!(self.doc_to_text(d, 0)?, Py::Int(_))),
            _ => Ok(false),
        }
    }
    pub(super) fn gold_indices(&self, t: &Py, choices: &[String], doc_id: usize) -> Result<Vec<usize>> {
        let one = |x: &Py| -> Result<usize> {
            match x {
                Py::Int(i) if *i >= 0 && (*i as usize) < choices.len() => Ok(*i as usize),
                Py::Str(s) if choices.contains(s) => Ok(choices.iter().position(|c| c == s).unwrap()),
                other => Err(self.err(
                    "doc_to_target",
                    doc_id,
                    format!("answer {} is outside the {} choices {choices:?}", other.describe(), choices.len()),
                )),
            }
        };
        match t {
            Py::List(l) => l.iter().map(one).collect(),
            x => Ok(vec![one(x)?]),
        }
    }

    pub(super) fn labels(&self, doc: &Doc, doc_id: usize, n: usize, gold: &[usize]) -> Result<Vec<u8>> {
        let Some(src) = &self.config.doc_to_labels else {
            return Ok((0..n).map(|i| u8::from(gold.contains(&i))).collect());
        };
        let v = match single_expression(src) {
            Some(e) => self.eval_expr("doc_to_labels", e, doc, doc_id)?,
            None if doc.contains_key(src) => Py::from_json(&doc[src]),
            None => return Err(self.err("doc_to_labels", doc_id, "must be a field name or `{{ expression }}`")),
        };
        let labels: Option<Vec<u8>> = match &v {
            Py::List(l) => l.iter().map(|x| match x { Py::Int(0) => Some(0), Py::Int(1) => Some(1), _ => None }).collect(),
            _ => None,
        };
        match labels {
            Some(l) if l.len() == n => Ok(l),
            _ => Err(self.err("doc_to_labels", doc_id, format!("{} is not a list of {n} 0/1 labels", v.describe()))),
        }
    }
}
