//! Chat templates rendered as transformers' `apply_chat_template(messages, tokenize=False, ...)`
//! renders them (transformers 5.x `utils/chat_template_utils.py`):
//!
//! * Jinja environment: sandboxed, `trim_blocks` and `lstrip_blocks`, loop controls, a trailing
//!   newline of the template dropped, no auto-escaping;
//! * globals `raise_exception(msg)`, `strftime_now(fmt)` (here at a fixed, recorded date),
//!   `namespace`, `dict`; the `tojson` filter is Python's `json.dumps` (`ensure_ascii=False`,
//!   `indent`, `separators`, `sort_keys`); Python string/dict/list methods through
//!   `minijinja_contrib::pycompat`;
//! * variables: the tokenizer's named special tokens (`bos_token`, `eos_token`, `unk_token`,
//!   `sep_token`, `pad_token`, `cls_token`, `mask_token`, those that are set), then the caller's
//!   keyword arguments (e.g. `enable_thinking`, `date_string`) over them, then `messages`,
//!   `tools=None`, `documents=None` and `add_generation_prompt`;
//! * `continue_final_message`: the final message is rendered open-ended (transformers' tag trick).
//!
//! Sources: a Hugging Face folder (`chat_template.jinja`, else `tokenizer_config.json`'s
//! `chat_template`, a string or a list of `{name, template}`), GGUF metadata
//! (`tokenizer.chat_template`, `tokenizer.chat_template.<name>`), or a file given by the user.


use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use minijinja::value::{Serde, Value, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, UndefinedBehavior};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::pycompat::strftime::Date;

use super::gguf::Gguf;

/// One chat message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: impl Into<String>) -> Message {
        Message { role: role.to_string(), content: content.into() }
    }
}

/// What `apply_chat_template` is asked besides the messages.
#[derive(Clone, Debug, Default)]
pub struct RenderOptions {
    pub add_generation_prompt: bool,
    /// Leave the final message open so the model continues it (transformers' `continue_final_message=True`).
    pub continue_final_message: bool,
    /// Extra template variables (`enable_thinking`, `date_string`, ...); they override special tokens.
    pub kwargs: serde_json::Map<String, serde_json::Value>,
}

/// The named special tokens transformers passes to every template (`special_tokens_map`).
pub const SPECIAL_TOKENS: [&str; 7] = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"];

/// A chat template with the special tokens it is rendered with.
pub struct ChatTemplate {
    source: String,
    text: String,
    special_tokens: Vec<(String, String)>,
    date: Date,
    env: Environment<'static>,
}

impl fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatTemplate").field("source", &self.source).field("sha256", &self.sha256()).finish()
    }
}

/// transformers' `AddedToken` or plain-string form of a special token in `tokenizer_config.json`.
fn token_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content").and_then(|c| c.as_str()).map(str::to_string),
        _ => None,
    }
}

/// The named special tokens set in a `tokenizer_config.json`.
pub fn special_tokens_of(config: &serde_json::Value) -> Vec<(String, String)> {
    SPECIAL_TOKENS.iter().filter_map(|k| config.get(*k).and_then(token_text).map(|t| (k.to_string(), t))).collect()
}

/// Picks the template called `name` (default "default") from `chat_template`'s list form.
fn pick_named(list: &[serde_json::Value], name: Option<&str>, source: &str) -> Result<String> {
    let want = name.unwrap_or("default");
    let mut names = vec![];
    for t in list {
        let n = t.get("name").and_then(|n| n.as_str()).unwrap_or_default();
        if n == want {
            if let Some(s) = t.get("template").and_then(|s| s.as_str()) {
                return Ok(s.to_string());
            }
        }
        names.push(n.to_string());
    }
    bail!("{source}: no chat template named {want:?} (it has {names:?})")
}

impl ChatTemplate {
    /// A template from its text; `source` names it in errors (a file path, or `FILE:key`).
    pub fn new(source: impl Into<String>, text: impl Into<String>, special_tokens: Vec<(String, String)>) -> Result<ChatTemplate> {
        let source = source.into();
        let text = text.into();
        let mut env = environment();
        // Jinja drops one trailing newline of the template (keep_trailing_newline=False); so does minijinja.
        env.add_template_owned(source.clone(), text.clone()).map_err(|e| anyhow!("{source}: chat template does not compile: {}", describe(&e)))?;
        let mut t = ChatTemplate { source, text, special_tokens, date: Date::today(), env };
        t.install_strftime();
        Ok(t)
    }

    /// A model folder: `chat_template.jinja` (what transformers 4.43+ writes; named ones in
    /// `additional_chat_templates/<name>.jinja`), else `tokenizer_config.json`'s `chat_template`.
    /// Special tokens come from `tokenizer_config.json`.
    pub fn from_model_dir(dir: &Path, name: Option<&str>) -> Result<ChatTemplate> {
        let cfg_path = dir.join("tokenizer_config.json");
        let cfg: serde_json::Value = match std::fs::read_to_string(&cfg_path) {
            Ok(s) => serde_json::from_str(&s).with_context(|| format!("{}: not valid JSON", cfg_path.display()))?,
            Err(_) => serde_json::Value::Null,
        };
        let special = special_tokens_of(&cfg);
        let jinja = match name {
            Some(n) if n != "default" => dir.join("additional_chat_templates").join(format!("{n}.jinja")),
            _ => dir.join("chat_template.jinja"),
        };
        if jinja.is_file() {
            let text = std::fs::read_to_string(&jinja).with_context(|| format!("reading {}", jinja.display()))?;
            return ChatTemplate::new(jinja.display().to_string(), text, special);
        }
        let source = cfg_path.display().to_string();
        let text = match cfg.get("chat_template") {
            Some(serde_json::Value::String(s)) if name.is_none_or(|n| n == "default") => s.clone(),
            Some(serde_json::Value::String(_)) => bail!("{source}: has a single chat template, none named {:?}", name.unwrap_or_default()),
            Some(serde_json::Value::Array(list)) => pick_named(list, name, &source)?,
            Some(_) => bail!("{source}: chat_template is neither a string nor a list of {{name, template}}"),
            None => bail!("{}: the model has no chat template (no chat_template.jinja, no chat_template in tokenizer_config.json)", dir.display()),
        };
        ChatTemplate::new(format!("{source}:chat_template"), text, special)
    }

    /// GGUF metadata `tokenizer.chat_template` (or `tokenizer.chat_template.<name>`); special
    /// tokens are the vocabulary entries of `tokenizer.ggml.{bos,eos,unknown,seperator,padding}_token_id`.
    pub fn from_gguf(gguf: &Gguf, name: Option<&str>) -> Result<ChatTemplate> {
        let key = match name {
            Some(n) if n != "default" => format!("tokenizer.chat_template.{n}"),
            _ => "tokenizer.chat_template".to_string(),
        };
        let source = format!("{}:{key}", gguf.path.display());
        let text = gguf.get(&key).and_then(|v| v.as_str()).with_context(|| format!("{source}: no such string in the GGUF metadata"))?;
        ChatTemplate::new(source, text, gguf_special_tokens(gguf))
    }

    /// The chat template of a model as pingce loads it: a GGUF file's metadata, or a Hugging Face
    /// folder's files. With `file` (`--chat-template FILE`), that file's text with the model's
    /// special tokens (read where the model has them).
    pub fn for_model(model: &Path, name: Option<&str>, file: Option<&Path>) -> Result<ChatTemplate> {
        let special = || -> Vec<(String, String)> {
            if model.is_file() {
                Gguf::open(model).map(|g| gguf_special_tokens(&g)).unwrap_or_default()
            } else {
                std::fs::read_to_string(model.join("tokenizer_config.json"))
                    .ok()
                    .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
                    .map(|c| special_tokens_of(&c))
                    .unwrap_or_default()
            }
        };
        match file {
            Some(f) => ChatTemplate::from_file(f, special()),
            None if model.is_file() => ChatTemplate::from_gguf(&Gguf::open(model)?, name),
            None => ChatTemplate::from_model_dir(model, name),
        }
    }

    /// A template file given by the user (`--chat-template FILE`), with the model's special tokens.
    pub fn from_file(path: &Path, special_tokens: Vec<(String, String)>) -> Result<ChatTemplate> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading chat template {}", path.display()))?;
        ChatTemplate::new(path.display().to_string(), text, special_tokens)
    }

    /// Renders `strftime_now` at this date (midnight) instead of today; record it to reproduce prompts.
    pub fn with_date(mut self, date: Date) -> ChatTemplate {
        self.date = date;
        self.install_strftime();
        self
    }

    fn install_strftime(&mut self) {
        let date = self.date;
        self.env.add_function("strftime_now", move |format: String| -> Result<String, Error> {
            date.strftime(&format).map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))
        });
    }

    /// Where the template came from (file path, or `FILE:metadata key`).
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The date `strftime_now` renders.
    pub fn date(&self) -> Date {
        self.date
    }

    pub fn special_tokens(&self) -> &[(String, String)] {
        &self.special_tokens
    }

    /// Value of a named special token (`"bos_token"`), if the tokenizer sets it.
    pub fn special_token(&self, name: &str) -> Option<&str> {
        self.special_tokens.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// sha256 (lower-case hex) of the template text, for manifests.
    pub fn sha256(&self) -> String {
        Sha256::digest(self.text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The conversation as transformers' `apply_chat_template(..., tokenize=False)` renders it.
    pub fn render(&self, messages: &[Message], opts: &RenderOptions) -> Result<String> {
        const TAG: &str = "CONTINUE_FINAL_MESSAGE_TAG ";
        let mut messages = messages.to_vec();
        let mut final_message = String::new();
        if opts.continue_final_message {
            if opts.add_generation_prompt {
                bail!("continue_final_message and add_generation_prompt are not compatible");
            }
            let last = messages.last_mut().context("continue_final_message is set but the conversation is empty")?;
            if !self.text.contains("content") {
                bail!("{}: continue_final_message needs the template to read the message \"content\"", self.source);
            }
            final_message = last.content.clone();
            last.content.push_str(TAG);
        }
        // Special tokens, then the caller's keyword arguments over them, then the fixed variables.
        let mut ctx: BTreeMap<String, Value> = self.special_tokens.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect();
        for (k, v) in &opts.kwargs {
            ctx.insert(k.clone(), Value::from(Serde(v)));
        }
        // Serialized field by field, so a message is the map {"role", "content"} in that order.
        let msgs: Vec<Value> = messages.iter().map(|m| Value::from(Serde(m))).collect();
        ctx.insert("messages".into(), Value::from(msgs));
        ctx.insert("tools".into(), Value::from(()));
        ctx.insert("documents".into(), Value::from(()));
        ctx.insert("add_generation_prompt".into(), Value::from(opts.add_generation_prompt));
        let tmpl = self.env.get_template(&self.source).map_err(|e| anyhow!("{}: {}", self.source, describe(&e)))?;
        let rendered = tmpl.render(Value::from(ctx)).map_err(|e| anyhow!("{}: {}", self.source, describe(&e)))?;
        if !opts.continue_final_message {
            return Ok(rendered);
        }
        if !rendered.contains(py_strip(&final_message)) || !rendered.contains(TAG.trim_end()) {
            bail!("{}: continue_final_message is set but the final message does not appear in the rendered chat", self.source);
        }
        let at = rendered.rfind(TAG.trim_end()).unwrap_or(0);
        Ok(if rendered[at..].starts_with(TAG) { rendered[..at].to_string() } else { py_rstrip(&rendered[..at]).to_string() })
    }
}

/// Python's `str.strip()` whitespace (Unicode whitespace plus the ASCII separators \x1c-\x1f).
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

fn py_rstrip(s: &str) -> &str {
    s.trim_end_matches(is_py_space)
}

/// An error with its template line and its causes (raise_exception's message stays verbatim).
fn describe(e: &Error) -> String {
    let mut s = match (e.kind(), e.detail()) {
        (ErrorKind::InvalidOperation, Some(d)) if e.name().is_some() => format!("{d} (line {})", e.line().unwrap_or(0)),
        _ => e.to_string(),
    };
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        s.push_str(&format!(": {c}"));
        cause = c.source();
    }
    s
}

/// Special tokens of a GGUF vocabulary, under transformers' names.
fn gguf_special_tokens(gguf: &Gguf) -> Vec<(String, String)> {
    let tokens = gguf.get("tokenizer.ggml.tokens").and_then(|v| v.as_array()).unwrap_or(&[]);
    let keys = [("bos_token", "bos"), ("eos_token", "eos"), ("unk_token", "unknown"), ("sep_token", "seperator"), ("pad_token", "padding")];
    keys.iter()
        .filter_map(|(name, k)| {
            let id = gguf.get(&format!("tokenizer.ggml.{k}_token_id"))?.as_u64()? as usize;
            Some((name.to_string(), tokens.get(id)?.as_str()?.to_string()))
        })
        .collect()
}

/// Python's `str(value)` where a template prints a value (`None`, `True`, `False`).
fn formatter(out: &mut minijinja::Output, state: &mut minijinja::State, v: &Value) -> Result<(), Error> {
    match v.kind() {
        ValueKind::None => out.write_str("None").map_err(Error::from),
        ValueKind::Bool => out.write_str(if v.is_true() { "True" } else { "False" }).map_err(Error::from),
        _ => minijinja::escape_formatter(out, state, v),
    }
}

/// The Jinja environment transformers compiles chat templates in.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    let syntax = minijinja::syntax::SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build().expect("default delimiters");
    env.set_syntax(syntax);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.set_formatter(formatter);
    env.add_filter("tojson", crate::pycompat::json::tojson);
    env.add_function("raise_exception", |msg: String| -> Result<Value, Error> { Err(Error::new(ErrorKind::InvalidOperation, msg)) });
    env
}
