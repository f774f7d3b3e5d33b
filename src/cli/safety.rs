//! `pingce safety`: filing safety assessments (TC260-003 / GB/T 45654-2025): check banks, draw
//! and answer, judge, export for manual review and import it back, measure agreement, report.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use pingce::eval::chat::ChatOptions;
use pingce::model::chat_template::{ChatTemplate, Date};
use pingce::safety::{bank, draw::DrawSizes, report, review, run, score::Patterns, Minimums};

use super::{CheckFailed, ModelArgs};

#[derive(Args)]
pub struct SafetyArgs {
    #[command(subcommand)]
    command: SafetyCommand,
}

#[derive(Subcommand)]
enum SafetyCommand {
    /// Check banks against the standard's minimums; list what is short and every malformed row.
    Check(CheckArgs),
    /// Draw from the banks with a seed and answer through the model's chat template (resumable).
    Run(RunArgs),
    /// Judge a run's answers with a local judge model (Qwen3Guard-Gen, or any with a prompt template).
    Judge(JudgeArgs),
    /// Write a review sheet (CSV, TSV or XLSX) with automatic labels and empty reviewer columns.
    Export(ExportArgs),
    /// Import a filled-in review sheet as the run's manual labels.
    Import(ImportArgs),
    /// Agreement (percent, Cohen's kappa) of the judge, keywords and phrases with the manual labels.
    Agree(ScoredDir),
    /// Qualified and refusal rates with Wilson intervals and verdicts: report.md, report.html, report.json.
    Report(ScoredDir),
}

#[derive(Args)]
struct CheckArgs {
    /// Bank files (.jsonl, .csv, .tsv, .xlsx).
    #[arg(required = true)]
    banks: Vec<PathBuf>,
}

/// The chat template of the model under test.
#[derive(Args)]
struct SafetyChatArgs {
    /// A Jinja file to use as the chat template instead of the model's.
    #[arg(long, value_name = "FILE")]
    chat_template: Option<PathBuf>,
    /// Pick one of the model's named chat templates.
    #[arg(long, value_name = "NAME")]
    chat_template_name: Option<String>,
    /// System message before each dialogue (unless the dialogue has its own).
    #[arg(long, value_name = "TEXT")]
    system_instruction: Option<String>,
    /// The date the template's strftime_now renders (YYYY-MM-DD; default today). Recorded.
    #[arg(long, value_name = "DATE")]
    chat_date: Option<String>,
    /// Extra template variables as a JSON object, e.g. '{"enable_thinking": false}'.
    #[arg(long, value_name = "JSON")]
    chat_template_args: Option<String>,
}

impl SafetyChatArgs {
    fn options(&self, model: &std::path::Path) -> Result<ChatOptions> {
        let mut template = ChatTemplate::for_model(model, self.chat_template_name.as_deref(), self.chat_template.as_deref())
            .context("a safety run answers through a chat template: the model has none, so give --chat-template FILE")?;
        if let Some(d) = &self.chat_date {
            template = template.with_date(Date::parse(d)?);
        }
        let kwargs = super::eval::chat_template_args(self.chat_template_args.as_deref())?;
        Ok(ChatOptions { template: std::sync::Arc::new(template), system_instruction: self.system_instruction.clone(), multiturn: true, kwargs })
    }
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Bank files (.jsonl, .csv, .tsv, .xlsx); repeatable.
    #[arg(long = "bank", required = true, num_args = 1..)]
    banks: Vec<PathBuf>,
    /// Draw seed (recorded in the manifest with the drawn ids).
    #[arg(long)]
    seed: u64,
    /// Output folder; rerunning into it resumes.
    #[arg(long)]
    output: PathBuf,
    /// Draw sizes (default: the standard's generated=1000,refuse=300,answer=300).
    #[arg(long, value_parser = DrawSizes::parse, default_value = "generated=1000,refuse=300,answer=300")]
    draw: DrawSizes,
    /// Answer only items whose index % N == i.
    #[arg(long, value_parser = run::Shard::parse, default_value = "0/1")]
    shard: run::Shard,
    /// Most new tokens per answer.
    #[arg(long, default_value_t = 512)]
    max_gen_toks: usize,
    #[command(flatten)]
    chat: SafetyChatArgs,
}

#[derive(Args)]
struct JudgeArgs {
    /// The judge model (--model), e.g. a Qwen3Guard-Gen folder.
    #[command(flatten)]
    model: ModelArgs,
    /// The run folder (answers are read from it, verdicts written into it).
    #[arg(long)]
    output: PathBuf,
    /// A Jinja prompt template for another judge (variables: question, answer, messages, risk,
    /// kind, topic); its output is the whole prompt. Default: Qwen3Guard-Gen's own chat template.
    #[arg(long, value_name = "FILE", requires = "judge_regex")]
    judge_template: Option<PathBuf>,
    /// With --judge-template: a regex over the judge's answer with named groups `safety`
    /// (safe/unsafe/controversial), `refusal` (yes/no) and optionally `categories`.
    #[arg(long, value_name = "REGEX")]
    judge_regex: Option<String>,
    /// Qwen3Guard mode: a chat template file for the judge instead of its own.
    #[arg(long, value_name = "FILE")]
    chat_template: Option<PathBuf>,
    #[arg(long, value_parser = run::Shard::parse, default_value = "0/1")]
    shard: run::Shard,
    /// Most new tokens per verdict.
    #[arg(long, default_value_t = 64)]
    max_gen_toks: usize,
}

/// A run folder and how its answers are scored automatically.
#[derive(Args)]
struct ScoredDir {
    /// The run folder.
    dir: PathBuf,
    /// Keyword list (one keyword or /regex/ per line, optional risk code and tab before it):
    /// a hit makes a generated-content answer unqualified.
    #[arg(long, value_name = "FILE")]
    keywords: Option<PathBuf>,
    /// Refusal phrase list (same format) instead of pingce's default Chinese/English list.
    #[arg(long, value_name = "FILE")]
    refusal_phrases: Option<PathBuf>,
    /// Count a judge's "Controversial" as qualified (default: unqualified).
    #[arg(long)]
    controversial_safe: bool,
}

impl ScoredDir {
    fn options(&self) -> Result<report::ScoreOptions> {
        Ok(report::ScoreOptions {
            keywords: self.keywords.as_deref().map(Patterns::load).transpose()?,
            refusals: match &self.refusal_phrases {
                Some(p) => Patterns::load(p)?,
                None => Patterns::default_refusals(),
            },
            controversial_unsafe: !self.controversial_safe,
        })
    }
}

#[derive(Args)]
struct ExportArgs {
    #[command(flatten)]
    scored: ScoredDir,
    /// The sheet to write: .csv (UTF-8 with BOM, opens in Excel), .tsv or .xlsx.
    #[arg(long)]
    to: PathBuf,
}

#[derive(Args)]
struct ImportArgs {
    /// The run folder.
    dir: PathBuf,
    /// The filled-in review sheet (.csv, .tsv or .xlsx).
    sheet: PathBuf,
}

pub fn run(a: SafetyArgs) -> Result<()> {
    match a.command {
        SafetyCommand::Check(c) => {
            let b = bank::load(&c.banks)?;
            let rep = bank::check(&b, &Minimums::default());
            print!("{}", bank::render_check(&rep));
            if !rep.ok() {
                return Err(CheckFailed(format!("the banks fall short of the standard: {} shortfalls, {} malformed rows", rep.short.len(), rep.malformed.len())).into());
            }
            Ok(())
        }
        SafetyCommand::Run(r) => {
            let path = r.model.path()?;
            let chat = r.chat.options(&path)?;
            let cfg = run::RunConfig {
                model: path.display().to_string(),
                banks: r.banks.clone(),
                seed: r.seed,
                draw: r.draw.clone(),
                shard: r.shard,
                max_gen_toks: r.max_gen_toks,
                chat,
                output: r.output.clone(),
            };
            run::plan(&cfg)?; // refuse malformed banks before loading the model
            let mut engine = r.model.engine()?;
            let (before, now) = run::run(&mut engine, &cfg)?;
            eprintln!("answered {now} items ({before} already done) into {}", r.output.display());
            Ok(())
        }
        SafetyCommand::Judge(j) => {
            let path = j.model.path()?;
            let mode = match (&j.judge_template, &j.judge_regex) {
                (Some(t), Some(re)) => run::JudgeMode::Template {
                    source: t.display().to_string(),
                    text: std::fs::read_to_string(t).with_context(|| format!("reading {}", t.display()))?,
                    answer_regex: regex::Regex::new(re).with_context(|| format!("--judge-regex {re:?}"))?,
                },
                (None, Some(_)) => bail!("--judge-regex goes with --judge-template"),
                _ => run::JudgeMode::Qwen3Guard { template: Box::new(ChatTemplate::for_model(&path, None, j.chat_template.as_deref())?) },
            };
            let cfg = run::JudgeConfig { model: path.display().to_string(), mode, max_gen_toks: j.max_gen_toks, shard: j.shard, output: j.output.clone() };
            let mut engine = j.model.engine()?;
            let (before, now) = run::judge(&mut engine, &cfg)?;
            eprintln!("judged {now} answers ({before} already done) into {}", j.output.display());
            Ok(())
        }
        SafetyCommand::Export(e) => {
            let (_, labels) = report::labels(&e.scored.dir, &e.scored.options()?)?;
            review::export(&labels, &e.to)?;
            eprintln!("wrote {} rows to {}", labels.len(), e.to.display());
            Ok(())
        }
        SafetyCommand::Import(i) => {
            let m = run::read_manifest(&i.dir)?;
            let ids: Vec<String> = m.items.iter().map(|it| it.id.clone()).collect();
            let labels = review::import(&i.sheet, &ids)?;
            review::save_manual(&i.dir, &labels)?;
            let n = labels.iter().filter(|l| l.qualified.is_some() || l.refused.is_some()).count();
            eprintln!("imported {n} labelled rows of {} into {}", labels.len(), i.dir.join("manual.jsonl").display());
            Ok(())
        }
        SafetyCommand::Agree(s) => {
            let o = s.options()?;
            let (_, labels) = report::labels(&s.dir, &o)?;
            let ag = report::agreements(&labels, &o);
            if ag.is_empty() {
                bail!("no item has both a manual label and an automatic one (import a review sheet first)");
            }
            for (name, a) in ag {
                println!("{name}: n={} agreement={:.1}% kappa={}", a.n, a.percent, a.kappa.map_or("undefined".into(), |k| format!("{k:.3}")));
            }
            Ok(())
        }
        SafetyCommand::Report(s) => {
            let o = s.options()?;
            let (m, labels) = report::labels(&s.dir, &o)?;
            let r = report::build(&m, &labels, &o);
            let md = report::markdown(&r);
            pingce::eval::samples_file::write_atomic(&s.dir.join("report.md"), &md)?;
            pingce::eval::samples_file::write_atomic(&s.dir.join("report.html"), &report::html(&r))?;
            pingce::eval::samples_file::write_atomic(&s.dir.join("report.json"), &serde_json::to_string_pretty(&r)?)?;
            print!("{md}");
            Ok(())
        }
    }
}
