//! The task YAML schema: lm-evaluation-harness's `TaskConfig` keys (`lm_eval/config/task.py`) plus
//! pingce's local-file `dataset`, `subtasks`, `group`, `fewshot_seed`, `doc_to_labels`,
//! `doc_to_count_text` and `process_docs`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value as Json;

pub use crate::eval::bank::{AnswerFormat, ChoiceColumns, Encoding, Fields};
use crate::eval::data::{Format, ProcessDocs};
pub use crate::eval::metrics::{Filter as FilterConfig, FilterStep, Metric};

/// How a task scores a document (lm-eval's `output_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputType {
    MultipleChoice,
    Loglikelihood,
    LoglikelihoodRolling,
    GenerateUntil,
}

/// lm-eval's default `fewshot_random_seed`.
pub const DEFAULT_FEWSHOT_SEED: u64 = 1234;

/// A template key: a string (field name or Jinja template), an int, or a list.
#[derive(Clone, Debug, serde::Serialize, Deserialize)]
#[serde(untagged)]
pub enum TemplateSpec {
    Int(i64),
    Text(String),
    List(Vec<String>),
}

#[derive(Clone, Debug, Default, serde::Serialize, Deserialize)]
#[serde(untagged)]
pub enum StringOrList {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl StringOrList {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            StringOrList::None => vec![],
            StringOrList::One(s) => vec![s.clone()],
            StringOrList::Many(v) => v.clone(),
        }
    }
}

#[derive(Clone, Debug, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    pub format: Format,
    /// Split name → file glob relative to the data directory.
    pub files: BTreeMap<String, String>,
    #[serde(default)]
    pub options: BTreeMap<String, Json>,
    /// Text encoding of `jsonl`, `csv` and `tsv` files: `utf-8` (default) or `gbk`.
    #[serde(default)]
    pub encoding: Encoding,
    /// Question-bank columns of `jsonl`, `csv` and `tsv` rows (see [`crate::eval::bank`]).
    #[serde(default)]
    pub fields: Option<Fields>,
    /// Set by the per-category split of a bank (not a YAML key): only rows of this category.
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sampler {
    #[default]
    Default,
    FirstN,
}

#[derive(Clone, Debug, Default, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FewshotConfig {
    #[serde(default)]
    pub sampler: Sampler,
    /// Few-shot documents written in the YAML (lm-eval's inline `samples`), used instead of a split.
    #[serde(default)]
    pub samples: Option<Vec<serde_json::Map<String, Json>>>,
    /// How a few-shot example's question is rendered, if not as the evaluated ones (`doc_to_text`).
    #[serde(default)]
    pub doc_to_text: Option<TemplateSpec>,
    /// How a few-shot example's answer is rendered, if not as the target (`doc_to_target`).
    #[serde(default)]
    pub doc_to_target: Option<TemplateSpec>,
}

/// pingce: tasks defined for chat models (OpenCompass's generation protocol).
#[derive(Clone, Debug, Default, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskChat {
    /// The task is refused without `--apply-chat-template`.
    #[serde(default)]
    pub required: bool,
    /// Few-shot examples as user/assistant turns whatever `--fewshot-as-multiturn` says.
    #[serde(default)]
    pub fewshot_as_multiturn: bool,
}

#[derive(Clone, Debug, Default, serde::Serialize, Deserialize)]
pub struct GenerationKwargs {
    #[serde(default)]
    pub until: Option<StringOrList>,
    #[serde(default)]
    pub max_gen_toks: Option<usize>,
    #[serde(default)]
    pub do_sample: Option<bool>,
    #[serde(default)]
    pub temperature: Option<f64>,
}

#[derive(Clone, Debug, serde::Serialize, Deserialize)]
pub struct MetricConfig {
    pub metric: Metric,
    #[serde(default)]
    pub aggregation: Option<String>,
    #[serde(default)]
    pub higher_is_better: Option<bool>,
    /// Metric arguments (e.g. exact_match's `ignore_case`, `regexes_to_ignore`).
    #[serde(flatten)]
    pub options: BTreeMap<String, Json>,
}

fn default_target_delimiter() -> String {
    " ".into()
}
fn default_fewshot_delimiter() -> String {
    "\n\n".into()
}
fn default_seed() -> u64 {
    DEFAULT_FEWSHOT_SEED
}

/// A task YAML, after `subtasks` expansion.
#[derive(Clone, Debug, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    pub task: String,
    #[serde(default, alias = "tag", alias = "groups")]
    pub group: StringOrList,
    #[serde(default)]
    pub task_alias: Option<String>,
    pub dataset: DatasetConfig,
    #[serde(default)]
    pub training_split: Option<String>,
    #[serde(default)]
    pub validation_split: Option<String>,
    #[serde(default)]
    pub test_split: Option<String>,
    #[serde(default)]
    pub fewshot_split: Option<String>,
    #[serde(default)]
    pub fewshot_config: FewshotConfig,
    #[serde(default)]
    pub num_fewshot: Option<usize>,
    #[serde(default = "default_seed")]
    pub fewshot_seed: u64,
    #[serde(default)]
    pub description: String,
    pub doc_to_text: TemplateSpec,
    pub doc_to_target: TemplateSpec,
    #[serde(default)]
    pub doc_to_choice: Option<TemplateSpec>,
    #[serde(default)]
    pub doc_to_labels: Option<String>,
    #[serde(default)]
    pub doc_to_count_text: Option<String>,
    #[serde(default = "default_target_delimiter")]
    pub target_delimiter: String,
    #[serde(default = "default_fewshot_delimiter")]
    pub fewshot_delimiter: String,
    pub output_type: OutputType,
    #[serde(default)]
    pub generation_kwargs: Option<GenerationKwargs>,
    #[serde(default)]
    pub filter_list: Vec<FilterConfig>,
    #[serde(default)]
    pub metric_list: Vec<MetricConfig>,
    #[serde(default)]
    pub process_docs: Option<ProcessDocs>,
    #[serde(default)]
    pub metadata: Option<Json>,
    /// lm-eval's Hugging Face dataset names: recorded, not read (pingce reads `dataset`).
    #[serde(default)]
    pub dataset_path: Option<String>,
    #[serde(default)]
    pub dataset_name: Option<String>,
    /// Generations per request; only 1 is supported.
    #[serde(default)]
    pub repeats: Option<usize>,
    /// pingce: chat-model requirements (see [`TaskChat`]).
    #[serde(default)]
    pub chat: Option<TaskChat>,
}

