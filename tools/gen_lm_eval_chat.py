#!/usr/bin/env python3
"""What lm-evaluation-harness sends a model under --apply_chat_template (with and without
--fewshot_as_multiturn and --system_instruction), for a few of pingce's sample tasks:
tests/fixtures/lm_eval_chat/<case>.json. tests/chat_templates.rs rebuilds every context from
the recorded pieces with pingce's src/eval/chat.rs and ChatTemplate and compares byte for byte.

Tasks are built exactly as tools/render_lm_eval.py builds them (lm-eval's own YAMLs over
evals/samples). The chat template is Qwen2.5-Instruct's (tests/fixtures/chat_templates/) in a tokenizer
built in memory; `chat_template` is HFLM.apply_chat_template's body, copied verbatim (including the
retry without system messages when the template raises). The pieces each context is assembled from
(description, few-shot question/answer texts, the question) are recorded by wrapping
ConfigurableTask.build_qa_turn, so the Rust test needs no task loader.

Usage:
    /tmp/fxenv/bin/pip install --no-deps lm-eval==0.4.13 && /tmp/fxenv/bin/pip install datasets requests word2number sacrebleu
    /tmp/fxenv/bin/pip install transformers==5.23.0 tokenizers==0.23.3 jinja2==3.1.6
    /tmp/fxenv/bin/python tools/gen_lm_eval_chat.py
"""

import json
import sys
from pathlib import Path

import jinja2
import lm_eval
from lm_eval.api.task import ConfigurableTask

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_chat_templates  # noqa: E402
import render_lm_eval  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "lm_eval_chat"
TEMPLATE_DIR = ROOT / "tests" / "fixtures" / "chat_templates" / "qwen2.5-instruct"
SYSTEM = "You are a helpful assistant. Answer with the letter or number only."
DOCS_PER_CASE = 3

# (render_lm_eval case, num_fewshot, seed)
RUNS = [("arc_easy", 2, 1234), ("mmlu_astronomy", 2, 1234), ("gsm8k", 2, 99)]


class FakeHFLM:
    """Only what fewshot_context needs from lm_eval.models.huggingface.HFLM."""

    def __init__(self, tokenizer, chat_template_args=None):
        self.tokenizer = tokenizer
        self.chat_template_args = chat_template_args or {}

    def apply_chat_template(self, chat_history, add_generation_prompt=True):
        # lm_eval/models/huggingface.py HFLM.apply_chat_template (0.4.13), verbatim.
        try:
            chat_templated = self.tokenizer.apply_chat_template(
                chat_history,
                tokenize=False,
                add_generation_prompt=add_generation_prompt,
                continue_final_message=not add_generation_prompt,
                **self.chat_template_args,
            )
        except jinja2.exceptions.TemplateError:
            chat_history = [msg for msg in chat_history if msg["role"] != "system"]
            chat_templated = self.tokenizer.apply_chat_template(
                chat_history,
                tokenize=False,
                add_generation_prompt=add_generation_prompt,
                continue_final_message=not add_generation_prompt,
                **self.chat_template_args,
            )
        return chat_templated


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    template = (TEMPLATE_DIR / "chat_template.jinja").read_text(encoding="utf-8")
    special = json.loads((TEMPLATE_DIR / "tokenizer_config.json").read_text(encoding="utf-8"))
    special = {k: v for k, v in special.items() if k.endswith("_token")}
    lm = FakeHFLM(gen_chat_templates.tokenizer(template, special))

    turns = []
    original = ConfigurableTask.build_qa_turn

    def recording(self, *, q=None, c=None, a=None, gen_prefix=None, tgt_delim=" ", few_delim="\n\n"):
        answer = None
        if a is not None and a != "":
            answer = c[a] if (c and isinstance(a, int)) else a[0] if isinstance(a, list) else a
        turns.append({"q": q, "a": answer, "gen_prefix": gen_prefix, "tgt_delim": tgt_delim, "few_delim": few_delim})
        return original(self, q=q, c=c, a=a, gen_prefix=gen_prefix, tgt_delim=tgt_delim, few_delim=few_delim)

    ConfigurableTask.build_qa_turn = recording

    for name, n, seed in RUNS:
        yaml_rel, splits, overrides, _ = render_lm_eval.CASES[name]
        for multiturn in (False, True):
            for system in (None, SYSTEM):
                task = render_lm_eval.build(yaml_rel, splits, overrides)
                task.set_config(key="num_fewshot", value=n)
                task.set_fewshot_seed(seed=seed)
                docs = []
                for doc_id, doc in list(task.eval_docs_iter())[:DOCS_PER_CASE] if hasattr(task, "eval_docs_iter") else list(enumerate(task.eval_docs))[:DOCS_PER_CASE]:
                    turns.clear()
                    ctx = task.fewshot_context(
                        doc, n, system_instruction=system, apply_chat_template=True,
                        fewshot_as_multiturn=multiturn, chat_template=lm.apply_chat_template,
                        gen_prefix=task.doc_to_prefix(doc),
                    )
                    reqs = task.construct_requests(doc, ctx, metadata=(name, doc_id, 1), apply_chat_template=True, chat_template=lm.apply_chat_template)
                    reqs = reqs if isinstance(reqs, list) else [reqs]
                    *shots, question = turns
                    docs.append({
                        "doc_id": doc_id,
                        "description": task.resolve_field(doc, task.config.description) or "",
                        "fewshot": [[t["q"], t["a"]] for t in shots],
                        "fewshot_target_delimiter": shots[0]["tgt_delim"] if shots else task.config.target_delimiter,
                        "fewshot_delimiter": shots[0]["few_delim"] if shots else task.config.fewshot_delimiter,
                        "question": question["q"],
                        "gen_prefix": question["gen_prefix"],
                        "context": ctx,
                        "continuations": [r.arguments[1] for r in reqs] if task.OUTPUT_TYPE == "multiple_choice" else [],
                    })
                fixture = {
                    "task": name,
                    "lm_eval_version": "0.4.13",
                    "chat_template": "qwen2.5-instruct",
                    "output_type": task.OUTPUT_TYPE,
                    "num_fewshot": n,
                    "seed": seed,
                    "fewshot_as_multiturn": multiturn,
                    "system_instruction": system,
                    "target_delimiter": task.config.target_delimiter,
                    "task_gen_prefix": task.config.gen_prefix,
                    "docs": docs,
                }
                tag = f"{name}.{n}shot{'.multiturn' if multiturn else ''}{'.system' if system else ''}"
                (OUT / f"{tag}.json").write_text(json.dumps(fixture, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
                print(f"{tag}: {len(docs)} docs")


if __name__ == "__main__":
    main()
