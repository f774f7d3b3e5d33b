//! `pingce safety run` and `pingce safety judge`: answers to the drawn questions through the
//! model's chat template, then a judge model's verdicts, each resumable (one checksummed JSONL
//! line per finished item, appended and synced: [`crate::eval::samples_file`]) and shardable
//! (`--shard i/N` takes the items whose index `% N == i`; each shard writes its own file).
//!
//! Files in the output folder: `manifest.json` (or `manifest.shard-i-of-N.json`: seed, draw
//! sizes, bank digests, chat template, drawn ids and items), `answers.jsonl` (or
//! `answers.shard-i-of-N.jsonl`), `judge.json` and `judge*.jsonl` (the judge's verdicts).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::bank::{Bank, Item};
use super::draw::{draw, DrawSizes};
use super::score::{parse_qwen3guard, parse_with_regex, Verdict};
use super::Kind;
use crate::engine::{Engine, UntilRequest};
use crate::eval::chat::{apply_chat_template, ChatOptions};
use crate::eval::samples_file;
use crate::model::chat_template::{ChatTemplate, Message, RenderOptions};

/// `--shard i/N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    pub fn parse(s: &str) -> Result<Shard, String> {
        let (i, n) = s.split_once('/').ok_or("expected i/N, e.g. 0/4")?;
        let (index, count): (usize, usize) = (i.trim().parse().map_err(|_| "i must be a number")?, n.trim().parse().map_err(|_| "N must be a number")?);
        if count == 0 || index >= count {
            return Err(format!("{s}: need 0 ≤ i < N"));
        }
        Ok(Shard { index, count })
    }

    pub fn has(&self, doc: usize) -> bool {
        doc % self.count == self.index
    }

    /// `stem.jsonl`, or `stem.shard-i-of-N.jsonl` when sharded.
    pub fn file(&self, stem: &str, ext: &str) -> String {
        if self.count == 1 {
            format!("{stem}.{ext}")
        } else {
            format!("{stem}.shard-{}-of-{}.{ext}", self.index, self.count)
        }
    }
}

/// What a run is: its identity is compared on resume.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub pingce_version: String,
    pub git_commit: String,
    pub model: String,
    pub seed: u64,
    pub draw: DrawSizes,
    /// (file, sha256) of each bank.
    pub banks: Vec<(String, String)>,
    pub chat: serde_json::Value,
    pub max_gen_toks: usize,
    /// Drawn ids per kind, in item order.
    pub drawn: BTreeMap<String, Vec<String>>,
    /// Kinds drawn smaller than asked (the bank had fewer items).
    pub short_draws: Vec<String>,
    /// The drawn items; an item's index here is its `doc_id`.
    pub items: Vec<Item>,
}

impl Manifest {
    fn identity(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap();
        let o = v.as_object_mut().unwrap();
        o.remove("pingce_version");
        o.remove("git_commit");
        v
    }
}

/// Draws every kind from a bank.
pub fn draw_all(bank: &Bank, sizes: &DrawSizes, seed: u64) -> (Vec<Item>, BTreeMap<String, Vec<String>>, Vec<String>) {
    let mut items = vec![];
    let mut drawn = BTreeMap::new();
    let mut short = vec![];
    for k in Kind::ALL {
        let want = sizes.of(k);
        let got = draw(&bank.items, k, want, seed);
        if got.len() < want {
            short.push(format!("{}: {} drawn of {want} asked (the bank has {})", k.name(), got.len(), got.len()));
        }
        drawn.insert(k.name().to_string(), got.iter().map(|i| i.id.clone()).collect());
        items.extend(got.into_iter().cloned());
    }
    (items, drawn, short)
}

/// One finished answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub doc_id: u64,
    pub id: String,
    pub kind: Kind,
    pub risk: Option<String>,
    pub topic: Option<String>,
    pub answer: String,
    pub stop: String,
    pub tokens: usize,
}

/// Everything `safety run` needs besides the engine.
pub struct RunConfig {
    pub model: String,
    pub banks: Vec<PathBuf>,
    pub seed: u64,
    pub draw: DrawSizes,
    pub shard: Shard,
    pub max_gen_toks: usize,
    pub chat: ChatOptions,
    pub output: PathBuf,
}

/// Loads the banks, refusing malformed rows (see `pingce safety check`).
pub fn load_banks(paths: &[PathBuf]) -> Result<Bank> {
    let bank = super::bank::load(paths)?;
    if !bank.malformed.is_empty() {
        let list: Vec<String> = bank.malformed.iter().map(|m| format!("  {m}")).collect();
        bail!("{} malformed bank rows (fix them; `pingce safety check` lists them):\n{}", list.len(), list.join("\n"));
    }
    Ok(bank)
}

/// The manifest a run would write (banks loaded and drawn).
pub fn plan(cfg: &RunConfig) -> Result<Manifest> {
    let bank = load_banks(&cfg.banks)?;
    let (items, drawn, short_draws) = draw_all(&bank, &cfg.draw, cfg.seed);
    Ok(Manifest {
        pingce_version: crate::VERSION.into(),
        git_commit: crate::GIT_COMMIT.into(),
        model: cfg.model.clone(),
        seed: cfg.seed,
        draw: cfg.draw.clone(),
        banks: bank.files,
        chat: cfg.chat.describe(),
        max_gen_toks: cfg.max_gen_toks,
        drawn,
        short_draws,
        items,
    })
}

/// Writes the manifest, or checks that the one on disk is the same run.
fn settle_manifest(dir: &Path, name: &str, m: &Manifest) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for other in manifests(dir)? {
        let old = read_manifest_file(&other)?;
        if old.identity() != m.identity() {
            bail!(
                "{} belongs to another run (seed, draw sizes, banks, model, chat template or date differ); use another --output, or the same arguments (--chat-date fixes the template's date)",
                other.display()
            );
        }
    }
    let path = dir.join(name);
    if !path.exists() {
        samples_file::write_atomic(&path, &serde_json::to_string_pretty(m)?)?;
    }
    Ok(())
}

fn manifests(dir: &Path) -> Result<Vec<PathBuf>> {
    files_like(dir, "manifest", "json")
}

/// Files `stem.ext` and `stem.shard-*.ext` in `dir`, sorted.
pub fn files_like(dir: &Path, stem: &str, ext: &str) -> Result<Vec<PathBuf>> {
    let mut out = vec![];
    let Ok(rd) = std::fs::read_dir(dir) else { return Ok(out) };
    for e in rd {
        let name = e?.file_name().to_string_lossy().to_string();
        if name == format!("{stem}.{ext}") || (name.starts_with(&format!("{stem}.shard-")) && name.ends_with(&format!(".{ext}"))) {
            out.push(dir.join(name));
        }
    }
    out.sort();
    Ok(out)
}

fn read_manifest_file(p: &Path) -> Result<Manifest> {
    serde_json::from_str(&std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?).with_context(|| format!("{}: not a pingce safety manifest", p.display()))
}

/// The run's manifest (every shard's must agree).
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let ms = manifests(dir)?;
    let Some(first) = ms.first() else { bail!("{}: no manifest.json (run `pingce safety run` first)", dir.display()) };
    let m = read_manifest_file(first)?;
    for p in &ms[1..] {
        if read_manifest_file(p)?.identity() != m.identity() {
            bail!("{} and {} describe different runs", first.display(), p.display());
        }
    }
    Ok(m)
}

fn read_records(dir: &Path, stem: &str, n: usize) -> Result<BTreeMap<u64, serde_json::Value>> {
    let ids: HashSet<u64> = (0..n as u64).collect();
    let mut out = BTreeMap::new();
    for f in files_like(dir, stem, "jsonl")? {
        for r in samples_file::read(&f, &ids)? {
            let id = r["doc_id"].as_u64().unwrap_or_default();
            if out.insert(id, r).is_some() {
                bail!("{}: doc_id {id} is also in another shard's file", f.display());
            }
        }
    }
    Ok(out)
}

/// Every finished answer of a run, by doc_id.
pub fn read_answers(dir: &Path, m: &Manifest) -> Result<BTreeMap<u64, Answer>> {
    read_records(dir, "answers", m.items.len())?.into_iter().map(|(k, v)| Ok((k, serde_json::from_value(v)?))).collect()
}

/// The prompt of an item: its dialogue (after the system instruction, if any) through the chat
/// template with the generation prompt.
pub fn prompt(chat: &ChatOptions, item: &Item) -> Result<String> {
    let mut msgs = vec![];
    if let Some(s) = chat.system_instruction.as_ref().filter(|_| item.messages.first().is_none_or(|m| m.role != "system")) {
        msgs.push(Message::new("system", s.clone()));
    }
    msgs.extend(item.messages.iter().cloned());
    apply_chat_template(&chat.template, &msgs, true, &chat.kwargs)
}

fn stop_name(s: crate::engine::StopReason) -> &'static str {
    match s {
        crate::engine::StopReason::Eos => "eos",
        crate::engine::StopReason::StopString => "stop_string",
        crate::engine::StopReason::MaxTokens => "max_tokens",
    }
}

/// Answers every drawn item of this shard that is not finished yet. Returns (done before, done now).
pub fn run(engine: &mut Engine, cfg: &RunConfig) -> Result<(usize, usize)> {
    let m = plan(cfg)?;
    for s in &m.short_draws {
        eprintln!("warning: {s}");
    }
    settle_manifest(&cfg.output, &cfg.shard.file("manifest", "json"), &m)?;
    let path = cfg.output.join(cfg.shard.file("answers", "jsonl"));
    let ids: HashSet<u64> = (0..m.items.len() as u64).collect();
    let done: HashSet<u64> = samples_file::read(&path, &ids)?.iter().filter_map(|r| r["doc_id"].as_u64()).collect();
    let todo: Vec<usize> = (0..m.items.len()).filter(|&d| cfg.shard.has(d) && !done.contains(&(d as u64))).collect();
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path).with_context(|| format!("opening {}", path.display()))?;
    for chunk in todo.chunks(engine.opts.batch_size.max(1)) {
        let reqs: Vec<UntilRequest> =
            chunk.iter().map(|&d| Ok(UntilRequest { context: prompt(&cfg.chat, &m.items[d])?, until: vec![], max_gen_toks: cfg.max_gen_toks })).collect::<Result<_>>()?;
        let gens = engine.generate_until(&reqs)?;
        let recs: Vec<serde_json::Value> = chunk
            .iter()
            .zip(gens)
            .map(|(&d, g)| {
                let it = &m.items[d];
                serde_json::to_value(Answer {
                    doc_id: d as u64,
                    id: it.id.clone(),
                    kind: it.kind,
                    risk: it.risk.clone(),
                    topic: it.topic.clone(),
                    answer: g.text,
                    stop: stop_name(g.stop).into(),
                    tokens: g.tokens.len(),
                })
                .unwrap()
            })
            .collect();
        samples_file::append(&mut file, &recs)?;
    }
    Ok((done.len(), todo.len()))
}

/// How a judge is asked and how its answer is read.
pub enum JudgeMode {
    /// Qwen3Guard-Gen: the judge's own chat template over [history…, user question, assistant
    /// answer], rendered as its model card does (no generation prompt added by the caller), and
    /// `Safety:` / `Categories:` / `Refusal:` parsed.
    Qwen3Guard { template: Box<ChatTemplate> },
    /// Any judge: a Jinja prompt template (variables `question`, `answer`, `messages`, `risk`,
    /// `kind`, `topic`) whose output is the whole prompt text, and a regex with named groups
    /// `safety`, `refusal`, `categories`.
    Template { source: String, text: String, answer_regex: regex::Regex },
}

pub struct JudgeConfig {
    pub model: String,
    pub mode: JudgeMode,
    pub max_gen_toks: usize,
    pub shard: Shard,
    pub output: PathBuf,
}

impl JudgeConfig {
    fn describe(&self) -> serde_json::Value {
        match &self.mode {
            JudgeMode::Qwen3Guard { template } => json!({"model": self.model, "mode": "qwen3guard", "template_sha256": template.sha256(), "max_gen_toks": self.max_gen_toks}),
            JudgeMode::Template { source, text, answer_regex } => json!({
                "model": self.model, "mode": "template", "template": source,
                "template_sha256": crate::digest::sha256_hex(text.as_bytes()),
                "answer_regex": answer_regex.as_str(), "max_gen_toks": self.max_gen_toks,
            }),
        }
    }
}

/// A judge's record of one answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Judged {
    pub doc_id: u64,
    pub id: String,
    /// The judge's raw output.
    pub raw: String,
    pub verdict: Verdict,
}

/// Renders a judge prompt from a Jinja template.
pub fn render_judge_template(text: &str, item: &Item, answer: &str) -> Result<String> {
    let mut env = minijinja::Environment::new();
    env.set_fuel(Some(1_000_000));
    minijinja_contrib::add_to_environment(&mut env);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    let t = env.template_from_str(text).context("judge prompt template")?;
    Ok(t.render(minijinja::context! {
        question => item.question(), answer => answer, messages => minijinja::Value::from(minijinja::value::Serde(&item.messages)), risk => item.risk.clone(),
        kind => item.kind.name(), topic => item.topic.clone(),
    })?)
}

/// The judge's prompt for one answer.
pub fn judge_prompt(mode: &JudgeMode, item: &Item, answer: &str) -> Result<String> {
    match mode {
        JudgeMode::Qwen3Guard { template } => {
            let mut msgs: Vec<Message> = item.messages.iter().filter(|m| m.role != "system").cloned().collect();
            msgs.push(Message::new("assistant", answer));
            template.render(&msgs, &RenderOptions { add_generation_prompt: false, continue_final_message: false, kwargs: Default::default() })
        }
        JudgeMode::Template { text, .. } => render_judge_template(text, item, answer),
    }
}

pub fn parse_judge(mode: &JudgeMode, raw: &str) -> Verdict {
    match mode {
        JudgeMode::Qwen3Guard { .. } => parse_qwen3guard(raw),
        JudgeMode::Template { answer_regex, .. } => parse_with_regex(answer_regex, raw),
    }
}

/// Runs the judge on every finished answer of this shard not judged yet. Returns (before, now).
pub fn judge(engine: &mut Engine, cfg: &JudgeConfig) -> Result<(usize, usize)> {
    let m = read_manifest(&cfg.output)?;
    let answers = read_answers(&cfg.output, &m)?;
    let desc = cfg.describe();
    let jpath = cfg.output.join("judge.json");
    match std::fs::read_to_string(&jpath) {
        Ok(s) => {
            let old: serde_json::Value = serde_json::from_str(&s).with_context(|| format!("reading {}", jpath.display()))?;
            if old != desc {
                bail!("{} records another judge ({old}); move the judge files away to judge again", jpath.display());
            }
        }
        Err(_) => samples_file::write_atomic(&jpath, &serde_json::to_string_pretty(&desc)?)?,
    }
    let path = cfg.output.join(cfg.shard.file("judge", "jsonl"));
    let ids: HashSet<u64> = (0..m.items.len() as u64).collect();
    let done: HashSet<u64> = samples_file::read(&path, &ids)?.iter().filter_map(|r| r["doc_id"].as_u64()).collect();
    let todo: Vec<&Answer> = answers.values().filter(|a| cfg.shard.has(a.doc_id as usize) && !done.contains(&a.doc_id)).collect();
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path).with_context(|| format!("opening {}", path.display()))?;
    for chunk in todo.chunks(engine.opts.batch_size.max(1)) {
        let reqs: Vec<UntilRequest> = chunk
            .iter()
            .map(|a| Ok(UntilRequest { context: judge_prompt(&cfg.mode, &m.items[a.doc_id as usize], &a.answer)?, until: vec![], max_gen_toks: cfg.max_gen_toks }))
            .collect::<Result<_>>()?;
        let gens = engine.generate_until(&reqs)?;
        let recs: Vec<serde_json::Value> = chunk
            .iter()
            .zip(gens)
            .map(|(a, g)| serde_json::to_value(Judged { doc_id: a.doc_id, id: a.id.clone(), verdict: parse_judge(&cfg.mode, &g.text), raw: g.text }).unwrap())
            .collect();
        samples_file::append(&mut file, &recs)?;
    }
    Ok((done.len(), todo.len()))
}

/// Every judge record of a run, by doc_id.
pub fn read_judged(dir: &Path, m: &Manifest) -> Result<BTreeMap<u64, Judged>> {
    read_records(dir, "judge", m.items.len())?.into_iter().map(|(k, v)| Ok((k, serde_json::from_value(v)?))).collect()
}
