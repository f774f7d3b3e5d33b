//! Few-shot examples as lm-eval's samplers draw them (`lm_eval/api/samplers.py`:
//! `ContextSampler.sample`, `FirstNSampler`) and the turns they become (`build_qa_turn`).

use anyhow::{anyhow, bail, Result};

use super::{Sampler, Task};
use crate::eval::Doc;
use crate::pycompat::literal::Py;
use crate::pycompat::PyRandom;

impl Task {
    pub(super) fn sample_fewshot(
        &self,
        rng: &mut PyRandom,
        pool: &[Doc],
        n: usize,
        eval_doc: Option<&Doc>,
    ) -> Result<Vec<Doc>> {
        if n == 0 {
            return Ok(vec![]);
        }
        let fs_split = self.fewshot_split().unwrap_or("?");
        if pool.is_empty() {
            bail!(
                "task `{}`: {n} few-shot examples asked for, but the few-shot split `{fs_split}` has no documents",
                self.name
            );
        }
        let short = |have: usize| {
            anyhow!(
                "task `{}`: {n} few-shot examples asked for, but the few-shot split `{fs_split}` offers only {have}",
                self.name
            )
        };
        match self.config.fewshot_config.sampler {
            Sampler::FirstN => {
                let pool: Vec<&Doc> = pool.iter().filter(|d| Some(*d) != eval_doc).collect();
                if n > pool.len() {
                    return Err(short(pool.len()));
                }
                Ok(pool[..n].iter().map(|d| (*d).clone()).collect())
            }
            Sampler::Default => match eval_doc {
                None => rng.sample(pool, n).map_err(|_| short(pool.len())),
                Some(ev) => {
                    let drawn = rng.sample(pool, n + 1).map_err(|_| short(pool.len()))?;
                    let mut res: Vec<Doc> = drawn.into_iter().filter(|d| d != ev).take(n).collect();
                    if res.len() < n {
                        let rest: Vec<Doc> = pool.iter().filter(|d| *d != ev).cloned().collect();
                        res = rng.sample(&rest, n).map_err(|_| short(rest.len()))?;
                    }
                    Ok(res)
                }
            },
        }
    }

    /// `build_qa_turn` for a few-shot doc: `text + target_delimiter + answer + fewshot_delimiter`,
    /// or just `text` when the answer is `""`.
    pub(super) fn fewshot_turn(&self, doc: &Doc, doc_id: usize, multiple_input: bool) -> Result<String> {
        let c = &self.config;
        Ok(match self.fewshot_pair(doc, doc_id, multiple_input)? {
            (q, a) if a.is_empty() => q,
            (q, a) => format!("{q}{}{a}{}", c.target_delimiter, c.fewshot_delimiter),
        })
    }

    /// A few-shot document's question and answer texts (the answer `""` when its target is
    /// `""`), as `build_qa_turn` receives them.
    pub(super) fn fewshot_pair(&self, doc: &Doc, doc_id: usize, multiple_input: bool) -> Result<(String, String)> {
        let fc = &self.config.fewshot_config;
        let q = self.doc_to_text_with(fc.doc_to_text.as_ref().unwrap_or(&self.config.doc_to_text), doc, doc_id)?;
        let choices = self.doc_to_choice(doc, doc_id)?;
        let a = self.doc_to_target_with(fc.doc_to_target.as_ref().unwrap_or(&self.config.doc_to_target), doc, doc_id)?;
        let (q, choices) = if multiple_input {
            let Py::Int(i) = q else { return Err(self.err("doc_to_text", doc_id, "expected an int")) };
            let ch = choices.unwrap_or_default();
            let s = ch.get(i as usize).cloned().ok_or_else(|| {
                self.err("doc_to_text", doc_id, format!("index {i} is outside the {} choices", ch.len()))
            })?;
            (s, None)
        } else {
            match q {
                Py::Str(s) => (s, choices),
                other => return Err(self.err("doc_to_text", doc_id, format!("{} is not a string", other.describe()))),
            }
        };
        let answer = match &a {
            Py::Str(s) if s.is_empty() => return Ok((q, String::new())),
            Py::Int(i) if choices.as_ref().is_some_and(|c| !c.is_empty()) => {
                let ch = choices.as_ref().unwrap();
                ch.get(*i as usize).cloned().ok_or_else(|| {
                    self.err("doc_to_target", doc_id, format!("index {i} is outside the {} choices", ch.len()))
                })?
            }
            Py::List(l) => match l.first() {
                Some(Py::Str(s)) => s.clone(),
                _ => return Err(self.err("doc_to_target", doc_id, "a list target must start with a string")),
            },
            Py::Str(s) => s.clone(),
            other => return Err(self.err("doc_to_target", doc_id, format!("answer {} is not a string", other.describe()))),
        };
        Ok((q, answer))
    }
}
