//! Documents into [`Item`]s, as lm-eval's `build_all_requests` and `construct_requests` do.

use anyhow::{anyhow, bail, Result};
use serde_json::Value as Json;

use super::{OutputType, Task};
use crate::eval::chat::{continuation_delimiter, ChatOptions, ChatPrompt};
use crate::eval::item::{Item, ItemKind};
use crate::eval::Doc;
use crate::pycompat::literal::Py;
use crate::pycompat::{text, PyRandom};

/// What comes before a document's question: plain text (description and few-shot turns), or the
/// pieces of a chat prompt that the question completes.
enum Prefix<'a> {
    Text(String),
    Chat(Box<ChatPrompt>, &'a ChatOptions),
}

impl Prefix<'_> {
    /// The prompt with `question` appended.
    fn context(&self, question: &str) -> Result<String> {
        match self {
            Prefix::Text(p) => Ok(format!("{p}{question}")),
            Prefix::Chat(prompt, opts) => {
                let mut prompt = prompt.as_ref().clone();
                prompt.question = question.to_string();
                prompt.render(&opts.template, &opts.kwargs)
            }
        }
    }

    /// The delimiter before a multiple-choice continuation ("" under a chat template).
    fn target_delimiter<'t>(&self, task: &'t str) -> &'t str {
        match self {
            Prefix::Text(_) => task,
            Prefix::Chat(..) => continuation_delimiter(task, None),
        }
    }

    /// The plain-text prefix (chat prompts are refused for per-choice contexts before this).
    fn text(&self) -> &str {
        match self {
            Prefix::Text(p) => p,
            Prefix::Chat(..) => "",
        }
    }
}

impl Task {
    /// The normalisers of a rolling item's log-likelihood (also in [`ItemKind::Rolling`]), as
    /// lm-eval's `process_results`:
    /// `(len(re.split(r"\s+", t)), len(t.encode("utf-8")))` of the text named by
    /// `doc_to_count_text` (wikitext: the original `page`), else of the scored text.
    pub fn rolling_counts(&self, item: &Item) -> Result<(usize, usize)> {
        let counted = match (&self.config.doc_to_count_text, &item.kind) {
            (Some(f), _) if item.doc.contains_key(f) => match &item.doc[f] {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            },
            (Some(t), _) => self.render("doc_to_count_text", t, &item.doc, item.doc_id)?,
            (None, ItemKind::Rolling { text, .. }) => text.clone(),
            (None, _) => bail!("task `{}`: item {} is not a rolling item", self.name, item.doc_id),
        };
        Ok((text::count_words(&counted), counted.len()))
    }

    /// Render every document into an [`Item`], as lm-eval's `build_all_requests` does (in order,
    /// one few-shot generator for the whole task). `num_fewshot`: `None` takes the task's own
    /// (or 0).
    pub fn items(&self, docs: &[Doc], fewshot_pool: &[Doc], num_fewshot: Option<usize>, seed: u64) -> Result<Vec<Item>> {
        self.items_with(docs, fewshot_pool, num_fewshot, seed, None)
    }

    /// [`Task::items`], with prompts rendered through a chat template when `chat` is given
    /// (lm-eval's `--apply_chat_template`).
    pub fn items_with(&self, docs: &[Doc], fewshot_pool: &[Doc], num_fewshot: Option<usize>, seed: u64, chat: Option<&ChatOptions>) -> Result<Vec<Item>> {
        let c = &self.config;
        let n = num_fewshot.or(c.num_fewshot).unwrap_or(0);
        let mut rng = PyRandom::new(seed);
        let exclude_self = c.fewshot_split == c.test_split;
        let multiple_input = self.multiple_input(docs)?;
        let mut items = Vec::with_capacity(docs.len());
        if chat.is_some() && multiple_input {
            bail!("task `{}`: a chat template with per-choice contexts (lm-eval's multiple inputs, e.g. WinoGrande) is not supported", self.name);
        }
        for (doc_id, doc) in docs.iter().enumerate() {
            let description = self.description(doc, doc_id)?;
            let shots = self.sample_fewshot(&mut rng, fewshot_pool, n, exclude_self.then_some(doc))?;
            let prefix = match chat {
                None => {
                    let mut prefix = description;
                    for fs in &shots {
                        prefix.push_str(&self.fewshot_turn(fs, doc_id, multiple_input).map_err(|e| anyhow!("{e:#} (a few-shot example)"))?);
                    }
                    Prefix::Text(prefix)
                }
                Some(opts) => {
                    let fewshot = shots
                        .iter()
                        .map(|fs| self.fewshot_pair(fs, doc_id, multiple_input))
                        .collect::<Result<Vec<_>>>()
                        .map_err(|e| anyhow!("{e:#} (a few-shot example)"))?;
                    let prompt = ChatPrompt {
                        system_instruction: opts.system_instruction.clone(),
                        description,
                        fewshot,
                        fewshot_target_delimiter: c.target_delimiter.clone(),
                        fewshot_delimiter: c.fewshot_delimiter.clone(),
                        fewshot_gen_prefix: None,
                        question: String::new(),
                        target_delimiter: c.target_delimiter.clone(),
                        gen_prefix: None,
                        multiturn: opts.multiturn,
                    };
                    Prefix::Chat(Box::new(prompt), opts)
                }
            };
            let item = self.item(doc_id, doc, &prefix, multiple_input)?;
            items.push(item);
        }
        Ok(items)
    }

    fn item(&self, doc_id: usize, doc: &Doc, prefix: &Prefix, multiple_input: bool) -> Result<Item> {
        let c = &self.config;
        let doc = doc.clone();
        let text = || -> Result<String> {
            match self.doc_to_text(&doc, doc_id)? {
                Py::Str(s) => Ok(s),
                other => Err(self.err("doc_to_text", doc_id, format!("{} is not a string", other.describe()))),
            }
        };
        let kind = match c.output_type {
            OutputType::MultipleChoice => {
                let choices = self.doc_to_choice(&doc, doc_id)?.unwrap_or_default();
                if multiple_input {
                    let gold = match self.doc_to_text(&doc, doc_id)? {
                        Py::Int(i) if i >= 0 && (i as usize) < choices.len() => vec![i as usize],
                        other => return Err(self.err("doc_to_text", doc_id, format!("gold {} is outside the {} choices", other.describe(), choices.len()))),
                    };
                    let target = match self.doc_to_target(&doc, doc_id)? {
                        Py::Str(s) => s,
                        Py::Int(i) => i.to_string(),
                        other => return Err(self.err("doc_to_target", doc_id, format!("{} is not a string", other.describe()))),
                    };
                    let prefix = prefix.text();
                    let contexts = choices.iter().map(|ch| format!("{prefix}{ch}")).collect();
                    let kind = ItemKind::ChoiceContexts {
                        contexts,
                        continuation: format!("{}{target}", c.target_delimiter),
                        choices,
                        gold,
                    };
                    return Ok(Item { doc_id, doc, context: prefix.to_string(), kind });
                }
                let target = self.doc_to_target(&doc, doc_id)?;
                let gold = self.gold_indices(&target, &choices, doc_id)?;
                let labels = self.labels(&doc, doc_id, choices.len(), &gold)?;
                let gold = if c.doc_to_labels.is_some() {
                    labels.iter().enumerate().filter(|(_, l)| **l == 1).map(|(i, _)| i).collect()
                } else {
                    gold
                };
                ItemKind::Choices {
                    continuations: choices.iter().map(|ch| format!("{}{ch}", prefix.target_delimiter(&c.target_delimiter))).collect(),
                    choices,
                    gold,
                    labels,
                }
            }
            OutputType::Loglikelihood => {
                let continuation = match self.doc_to_target(&doc, doc_id)? {
                    Py::Str(s) => s,
                    other => return Err(self.err("doc_to_target", doc_id, format!("{} is not a string", other.describe()))),
                };
                ItemKind::Continuation { continuation }
            }
            OutputType::LoglikelihoodRolling => {
                let text = match self.doc_to_target(&doc, doc_id)? {
                    Py::Str(s) => s,
                    other => return Err(self.err("doc_to_target", doc_id, format!("{} is not a string", other.describe()))),
                };
                let mut item = Item { doc_id, doc, context: String::new(), kind: ItemKind::Rolling { text, words: 0, bytes: 0 } };
                let (w, b) = self.rolling_counts(&item)?;
                if let ItemKind::Rolling { words, bytes, .. } = &mut item.kind {
                    (*words, *bytes) = (w, b);
                }
                return Ok(item);
            }
            OutputType::GenerateUntil => {
                let target = match (self.doc_to_target(&doc, doc_id)?, self.doc_to_choice(&doc, doc_id)?) {
                    (Py::Int(i), Some(ch)) => ch.get(i as usize).cloned().ok_or_else(|| {
                        self.err("doc_to_target", doc_id, format!("index {i} is outside the {} choices", ch.len()))
                    })?,
                    (Py::Str(s), _) => s,
                    (Py::Int(i), None) => i.to_string(),
                    (other, _) => return Err(self.err("doc_to_target", doc_id, format!("{} is not a string", other.describe()))),
                };
                let g = c.generation_kwargs.clone().unwrap_or_default();
                ItemKind::Generate {
                    until: g.until.map(|u| u.to_vec()).unwrap_or_else(|| vec![c.fewshot_delimiter.clone()]),
                    max_gen_toks: g.max_gen_toks.unwrap_or(crate::engine::requests::DEFAULT_MAX_GEN_TOKS),
                    target,
                }
            }
        };
        Ok(Item { doc_id, context: prefix.context(&text()?)?, doc, kind })
    }
}
