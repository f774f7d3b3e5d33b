//! lm-evaluation-harness prompts under `--apply_chat_template` (with `--system_instruction` and
//! `--fewshot_as_multiturn`), as lm-eval 0.4.13 assembles them (`ConfigurableTask.fewshot_context`,
//! `build_qa_turn`, `lm_eval.api.utils.multiturn_to_singleturn`, `HFLM.apply_chat_template`), as a
//! pure function of already-rendered pieces:
//!
//! * the system message is `system_instruction` and the task `description` joined by the
//!   few-shot delimiter (only when neither has whitespace at the seam; absent when both are empty);
//! * each few-shot example is a user turn (its question, followed by the target delimiter when
//!   flattened) and an assistant turn (`gen_prefix answer`, followed by the few-shot delimiter);
//! * the question is a last user turn; with a `gen_prefix` the prefix becomes an assistant turn
//!   that the model continues (`add_generation_prompt=False`, `continue_final_message=True`),
//!   otherwise the template's generation prompt is added;
//! * without `fewshot_as_multiturn` all user/assistant turns collapse into one user message (the
//!   plain-text prompt), keeping a trailing assistant `gen_prefix` turn separate.
//!
//! Multiple-choice continuations lose their target delimiter under a chat template
//! ([`continuation_delimiter`]), and the HF backend never doubles a BOS the template already
//! wrote ([`add_special_tokens`]).

use anyhow::Result;

use crate::model::chat_template::{ChatTemplate, Message, RenderOptions};

/// How a run renders prompts through the model's chat template (lm-eval's
/// `--apply_chat_template`, `--system_instruction`, `--fewshot_as_multiturn`).
#[derive(Clone, Debug)]
pub struct ChatOptions {
    pub template: std::sync::Arc<ChatTemplate>,
    pub system_instruction: Option<String>,
    pub multiturn: bool,
    /// Extra template variables (lm-eval's `chat_template_args`, e.g. `enable_thinking`).
    pub kwargs: serde_json::Map<String, serde_json::Value>,
}

impl ChatOptions {
    /// What a run records of these options (results.json and the resume check).
    pub fn describe(&self) -> serde_json::Value {
        let d = self.template.date();
        serde_json::json!({
            "template_source": self.template.source(),
            "template_sha256": self.template.sha256(),
            "date": format!("{:04}-{:02}-{:02}", d.year, d.month, d.day),
            "system_instruction": self.system_instruction,
            "fewshot_as_multiturn": self.multiturn,
            "chat_template_args": self.kwargs,
        })
    }
}

use crate::pycompat::text::is_space as is_py_space;

/// lm-eval's `requires_delimiter`: neither side has whitespace at the seam (and the prefix is non-empty).
fn requires_delimiter(prefix: &str, suffix: &str) -> bool {
    match (prefix.chars().last(), suffix.chars().next()) {
        (Some(p), Some(s)) => !(is_py_space(p) || is_py_space(s)),
        (Some(p), None) => !is_py_space(p),
        (None, _) => false,
    }
}

/// lm-eval's `maybe_delimit`: `prefix + delimiter + suffix`, without the delimiter when either
/// side has whitespace at the seam; just the other one when one is empty.
pub fn maybe_delimit(prefix: Option<&str>, suffix: Option<&str>, delimiter: &str) -> String {
    match (prefix.filter(|p| !p.is_empty()), suffix.filter(|s| !s.is_empty())) {
        (None, s) => s.unwrap_or_default().to_string(),
        (Some(p), None) => p.to_string(),
        (Some(p), Some(s)) if requires_delimiter(p, s) => format!("{p}{delimiter}{s}"),
        (Some(p), Some(s)) => format!("{p}{s}"),
    }
}

/// One lm-eval `Message`: a turn plus the delimiter it is followed by when turns are flattened to text.
struct Turn {
    role: &'static str,
    content: String,
    delimiter: String,
}

/// The pieces of one lm-eval prompt, already rendered from the task's templates.
#[derive(Clone, Debug, Default)]
pub struct ChatPrompt {
    /// `--system_instruction`.
    pub system_instruction: Option<String>,
    /// The task's `description`, rendered for this document ("" if none).
    pub description: String,
    /// Few-shot examples: (question text, answer text), answers already resolved from choices.
    pub fewshot: Vec<(String, String)>,
    /// Target delimiter of the few-shot examples (the task's, unless `fewshot_config` overrides it).
    pub fewshot_target_delimiter: String,
    /// Few-shot delimiter; also joins system instruction and description.
    pub fewshot_delimiter: String,
    /// `gen_prefix` of the few-shot examples, if any.
    pub fewshot_gen_prefix: Option<String>,
    /// The document's question (`doc_to_text`).
    pub question: String,
    /// The task's target delimiter (used after the question only before a `gen_prefix`).
    pub target_delimiter: String,
    /// The task's `gen_prefix` for this document, if any.
    pub gen_prefix: Option<String>,
    /// `--fewshot_as_multiturn`.
    pub multiturn: bool,
}

/// lm-eval's `build_qa_turn`: a user turn, and an assistant turn with the answer or the gen_prefix.
fn qa_turn(q: &str, answer: Option<&str>, gen_prefix: Option<&str>, tgt_delim: &str, few_delim: &str) -> Vec<Turn> {
    let gen_prefix = gen_prefix.filter(|g| !g.is_empty());
    let has_answer = answer.is_some_and(|a| !a.is_empty());
    let user_delim = match gen_prefix {
        None if has_answer => tgt_delim,
        Some(g) if requires_delimiter(q, g) => tgt_delim,
        _ => "",
    };
    let mut turns = vec![Turn { role: "user", content: q.to_string(), delimiter: user_delim.to_string() }];
    if has_answer {
        turns.push(Turn { role: "assistant", content: maybe_delimit(gen_prefix, answer, " "), delimiter: few_delim.to_string() });
    } else if let Some(g) = gen_prefix {
        turns.push(Turn { role: "assistant", content: g.to_string(), delimiter: String::new() });
    }
    turns
}

/// lm-eval's `multiturn_to_singleturn`: everything but the system turn and a trailing assistant
/// turn is concatenated as text into one user message (the last part without its delimiter).
fn single_turn(turns: Vec<Turn>) -> Vec<Message> {
    let mut turns = turns.into_iter().peekable();
    let system = turns.next_if(|t| t.role == "system");
    let mut rest: Vec<Turn> = turns.collect();
    let tail = if rest.last().is_some_and(|t| t.role == "assistant") { rest.pop() } else { None };
    if let Some(last) = rest.last_mut() {
        last.delimiter.clear();
    }
    let user: String = rest.iter().map(|t| format!("{}{}", t.content, t.delimiter)).collect();
    system
        .map(|s| Message::new("system", s.content))
        .into_iter()
        .chain([Message::new("user", user)])
        .chain(tail.map(|t| Message::new("assistant", t.content)))
        .collect()
}

impl ChatPrompt {
    /// The chat messages lm-eval hands to the chat template.
    pub fn messages(&self) -> Vec<Message> {
        let mut turns = vec![];
        let system = maybe_delimit(self.system_instruction.as_deref(), Some(&self.description), &self.fewshot_delimiter);
        if !system.is_empty() {
            turns.push(Turn { role: "system", content: system, delimiter: String::new() });
        }
        for (q, a) in &self.fewshot {
            turns.extend(qa_turn(q, Some(a), self.fewshot_gen_prefix.as_deref(), &self.fewshot_target_delimiter, &self.fewshot_delimiter));
        }
        turns.extend(qa_turn(&self.question, None, self.gen_prefix.as_deref(), &self.target_delimiter, ""));
        if self.multiturn {
            turns.into_iter().map(|t| Message::new(t.role, t.content)).collect()
        } else {
            single_turn(turns)
        }
    }

    /// Whether lm-eval asks for the generation prompt: only without a `gen_prefix` (with one, the
    /// prefix turn is continued instead).
    pub fn add_generation_prompt(&self) -> bool {
        self.gen_prefix.as_deref().is_none_or(str::is_empty)
    }

    /// The context string lm-eval scores or generates from.
    pub fn render(&self, template: &ChatTemplate, kwargs: &serde_json::Map<String, serde_json::Value>) -> Result<String> {
        apply_chat_template(template, &self.messages(), self.add_generation_prompt(), kwargs)
    }
}

/// lm-eval `HFLM.apply_chat_template`: `continue_final_message` is the opposite of
/// `add_generation_prompt`, and when the template raises (e.g. "system role not supported") it is
/// rendered again without the system messages. `kwargs` are the model's `chat_template_args`
/// (`enable_thinking`).
pub fn apply_chat_template(
    template: &ChatTemplate,
    messages: &[Message],
    add_generation_prompt: bool,
    kwargs: &serde_json::Map<String, serde_json::Value>,
) -> Result<String> {
    let opts = RenderOptions { add_generation_prompt, continue_final_message: !add_generation_prompt, kwargs: kwargs.clone() };
    template.render(messages, &opts).or_else(|_| {
        let without_system: Vec<Message> = messages.iter().filter(|m| m.role != "system").cloned().collect();
        template.render(&without_system, &opts)
    })
}

/// The delimiter before each multiple-choice continuation: under a chat template it is "",
/// unless the task has a `gen_prefix` that does not end in whitespace (then the task's own).
pub fn continuation_delimiter<'a>(target_delimiter: &'a str, task_gen_prefix: Option<&str>) -> &'a str {
    match task_gen_prefix {
        Some(g) if !g.is_empty() && !g.ends_with(is_py_space) => target_delimiter,
        _ => "",
    }
}

/// lm-eval `HFLM.tok_encode`'s `add_special_tokens`: the caller's explicit choice, else the model's
/// `add_bos_token` setting, else the tokenizer's default (`None`) -- except that a text already
/// starting with the prefix token's text (BOS, or EOS when there is no BOS) is encoded without
/// special tokens, so a BOS the chat template wrote is never doubled.
pub fn add_special_tokens(explicit: Option<bool>, add_bos_token: Option<bool>, text: &str, prefix_token_text: Option<&str>) -> Option<bool> {
    if explicit.is_none() && prefix_token_text.is_some_and(|p| text.starts_with(p)) {
        return Some(false);
    }
    explicit.or(add_bos_token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maybe_delimit_like_lm_eval() {
        assert_eq!(maybe_delimit(Some("Sys"), Some("Desc"), "\n\n"), "Sys\n\nDesc");
        assert_eq!(maybe_delimit(Some("Sys\n"), Some("Desc"), "\n\n"), "Sys\nDesc");
        assert_eq!(maybe_delimit(None, Some("Desc"), "\n\n"), "Desc");
        assert_eq!(maybe_delimit(Some("Sys"), Some(""), "\n\n"), "Sys");
        assert_eq!(maybe_delimit(None, None, " "), "");
    }

    #[test]
    fn gen_prefix_is_an_assistant_turn_to_continue() {
        let p = ChatPrompt {
            fewshot: vec![("Q1".into(), "A1".into())],
            fewshot_target_delimiter: " ".into(),
            fewshot_delimiter: "\n\n".into(),
            fewshot_gen_prefix: Some("Answer:".into()),
            question: "Q2".into(),
            target_delimiter: " ".into(),
            gen_prefix: Some("Answer:".into()),
            ..Default::default()
        };
        assert_eq!(p.messages(), vec![Message::new("user", "Q1 Answer: A1\n\nQ2"), Message::new("assistant", "Answer:")]);
        assert!(!p.add_generation_prompt());
        let m = ChatPrompt { multiturn: true, ..p };
        let want = ["user:Q1", "assistant:Answer: A1", "user:Q2", "assistant:Answer:"];
        assert_eq!(m.messages().iter().map(|m| format!("{}:{}", m.role, m.content)).collect::<Vec<_>>(), want);
    }

    #[test]
    fn continuation_delimiter_under_chat() {
        assert_eq!(continuation_delimiter(" ", None), "");
        assert_eq!(continuation_delimiter(" ", Some("Answer:")), " ");
        assert_eq!(continuation_delimiter(" ", Some("Answer: ")), "");
    }

    #[test]
    fn bos_is_never_doubled() {
        let bos = Some("<|begin_of_text|>");
        assert_eq!(add_special_tokens(None, None, "<|begin_of_text|><|start_header_id|>", bos), Some(false));
        assert_eq!(add_special_tokens(None, Some(true), "<|begin_of_text|>x", bos), Some(false));
        assert_eq!(add_special_tokens(None, Some(true), "<|im_start|>user", Some("<|endoftext|>")), Some(true));
        assert_eq!(add_special_tokens(None, None, "<|im_start|>user", Some("<|endoftext|>")), None);
        assert_eq!(add_special_tokens(Some(true), None, "<|begin_of_text|>x", bos), Some(true));
    }
}
