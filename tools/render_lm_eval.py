#!/usr/bin/env python3
"""Render pingce's sample documents (evals/samples) through lm-evaluation-harness itself and
write what it would send to a model: tests/fixtures/lm_eval_prompts/<case>.json.

Each task is lm-eval's own YAML from the installed package (loaded with lm-eval's YAML loader, so
`include:` and `!function` resolve to its Python code), built as `ConfigurableTask` with the
samples as a `custom_dataset`, with only the split names changed to the ones pingce's YAML
evaluates (documented in each evals/*.yaml). Then, exactly as `lm_eval.evaluator` does:
`set_config("num_fewshot", n)`, `set_fewshot_seed(seed)`, `build_all_requests()`, and every
Instance's `arguments` are written out. tests/eval_tasks.rs renders the same docs with pingce and
compares byte for byte.

The sample files are read by small readers written here independently of pingce's Rust readers
(normalising to the Hugging Face field names), so the comparison also checks the readers.

Usage (offline is fine: nothing is downloaded):
    python3 -m venv /tmp/fxenv && /tmp/fxenv/bin/pip install lm-eval==0.4.13
    /tmp/fxenv/bin/python tools/render_lm_eval.py
"""

import csv
import glob
import json
import os
import sys
from pathlib import Path

import datasets
import lm_eval
from lm_eval.api.task import ConfigurableTask
from lm_eval.tasks._yaml_loader import load_yaml

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "evals" / "samples"
OUT = ROOT / "tests" / "fixtures" / "lm_eval_prompts"
TASKS = Path(lm_eval.__file__).parent / "tasks"
LETTERS = "ABCD"


# ---------------------------------------------------------------- readers (HF field names)
def read_csv(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def mmlu(path):
    subject = os.path.basename(path).rsplit("_", 1)[0]
    return [
        {"question": r[0], "subject": subject, "choices": r[1:5], "answer": LETTERS.index(r[5])}
        for r in read_csv(path)
    ]


def ceval(path):
    rows = read_csv(path)
    assert rows[0] == ["id", "question", "A", "B", "C", "D", "answer", "explanation"]
    keys = rows[0]
    return [dict(zip(keys, [int(r[0])] + r[1:])) for r in rows[1:]]


def cmmlu(path):
    rows = read_csv(path)
    assert rows[0] == ["", "Question", "A", "B", "C", "D", "Answer"]
    return [dict(zip(rows[0][1:], r[1:])) for r in rows[1:]]


def jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def arc(path):
    return [
        {
            "id": o["id"],
            "question": o["question"]["stem"],
            "choices": {
                "text": [c["text"] for c in o["question"]["choices"]],
                "label": [c["label"] for c in o["question"]["choices"]],
            },
            "answerKey": o["answerKey"],
        }
        for o in jsonl(path)
    ]


def hellaswag(path):
    out = []
    for o in jsonl(path):
        if "ctx_a" not in o:
            # Same split rule as pingce's reader: ctx_b = lowercase tail after the last ". ".
            ctx = o["ctx"]
            i = ctx.rfind(". ")
            if i >= 0 and ctx[i + 2 : i + 3].islower():
                o["ctx_a"], o["ctx_b"] = ctx[: i + 1], ctx[i + 2 :]
            else:
                o["ctx_a"], o["ctx_b"] = ctx, ""
        o["label"] = str(o["label"])
        out.append(o)
    return out


def winogrande(path):
    return [
        {k: o[k] for k in ["sentence", "option1", "option2", "answer"]} for o in jsonl(path)
    ]


def piqa(path):
    labels = [int(x) for x in open(path[: -len(".jsonl")] + "-labels.lst").read().split()]
    return [dict(o, label=l) for o, l in zip(jsonl(path), labels, strict=True)]


def boolq(path):
    out = []
    for i, o in enumerate(jsonl(path)):
        passage, question = o["query"][len("Passage: ") :].rsplit("\nQuestion: ", 1)
        out.append({"question": question.removesuffix("?"), "passage": passage, "idx": i, "label": o["gold"]})
    return out


def truthfulqa(path):
    def targets(d):
        return {"choices": list(d.keys()), "labels": list(d.values())}

    data = json.load(open(path, encoding="utf-8"))
    return [
        {"question": o["question"], "mc1_targets": targets(o["mc1_targets"]), "mc2_targets": targets(o["mc2_targets"])}
        for o in data
    ]


def wikitext(path):
    # EleutherAI/wikitext_document_level's _generate_examples.
    pages, ret = [], []
    for line in open(path, encoding="utf-8").read().split("\n"):
        rline = line.replace("= = =", "===").replace("= =", "==").strip()
        if rline.startswith("= ") and rline.strip().endswith(" ="):
            page = "\n".join(ret)
            if page.strip():
                pages.append({"page": page})
            ret = []
        ret.append(line)
    pages.append({"page": "\n".join(ret)})
    return pages


def split(reader, pattern):
    files = sorted(glob.glob(str(SAMPLES / pattern)))
    return [d for f in files for d in reader(f)]


# ---------------------------------------------------------------- cases
# name: (lm-eval YAML, {split: (reader, glob)}, split overrides as in evals/*.yaml, [(num_fewshot, seed)])
def subj(family, s):
    return {
        "mmlu": (f"mmlu/default/mmlu_{s}.yaml", {"validation": (mmlu, f"mmlu/val/{s}_val.csv"), "dev": (mmlu, f"mmlu/dev/{s}_dev.csv")}, {"test_split": "validation"}),
        "ceval": (f"ceval/ceval-valid_{s}.yaml", {"dev": (ceval, f"ceval/dev/{s}_dev.csv")}, {"test_split": "dev"}),
        "cmmlu": (f"cmmlu/cmmlu_{s}.yaml", {"dev": (cmmlu, f"cmmlu/dev/{s}.csv")}, {"test_split": "dev"}),
    }[family]


def arc_case(name):
    n = {"arc_easy": "Easy", "arc_challenge": "Challenge"}[name]
    return (
        f"arc/{name}.yaml",
        {"train": (arc, f"arc/ARC-{n}/ARC-{n}-Train.jsonl"), "validation": (arc, f"arc/ARC-{n}/ARC-{n}-Dev.jsonl")},
        {"test_split": "validation"},
    )


CASES = {
    "mmlu_astronomy": subj("mmlu", "astronomy") + ([(0, 1234), (5, 1234)],),
    "mmlu_college_biology": subj("mmlu", "college_biology") + ([(2, 1234)],),
    "ceval-valid_college_physics": subj("ceval", "college_physics") + ([(0, 1234), (3, 1234)],),
    "cmmlu_anatomy": subj("cmmlu", "anatomy") + ([(0, 1234), (4, 1234)],),
    "arc_easy": arc_case("arc_easy") + ([(0, 1234), (3, 1234), (2, 7)],),
    "arc_challenge": arc_case("arc_challenge") + ([(1, 1234)],),
    "hellaswag": ("hellaswag/hellaswag.yaml", {"train": (hellaswag, "hellaswag/hellaswag_train*.jsonl"), "validation": (hellaswag, "hellaswag/hellaswag_val*.jsonl")}, {}, [(0, 1234), (2, 1234)]),
    "piqa": ("piqa/piqa.yaml", {"train": (piqa, "piqa/train*.jsonl"), "validation": (piqa, "piqa/valid*.jsonl")}, {}, [(0, 1234), (1, 1234)]),
    "boolq": ("super_glue/boolq/default.yaml", {"validation": (boolq, "boolq/boolq_dev*.jsonl")}, {}, [(0, 1234)]),
    "winogrande": ("winogrande/default.yaml", {"train_s": (winogrande, "winogrande/train_s.jsonl")}, {"test_split": "train_s", "fewshot_split": "train_s"}, [(0, 1234), (2, 1234)]),
    "truthfulqa_mc1": ("truthfulqa/truthfulqa_mc1.yaml", {"validation": (truthfulqa, "truthfulqa/*.json")}, {}, [(0, 1234)]),
    "truthfulqa_mc2": ("truthfulqa/truthfulqa_mc2.yaml", {"validation": (truthfulqa, "truthfulqa/*.json")}, {}, [(0, 1234)]),
    "gsm8k": ("gsm8k/gsm8k.yaml", {"train": (lambda p: jsonl(p), "gsm8k/train.jsonl")}, {"test_split": "train"}, [(5, 1234), (2, 99)]),
    "wikitext": ("wikitext/wikitext.yaml", {"validation": (wikitext, "text/wikitext2_valid*.txt")}, {"test_split": "validation", "training_split": None}, [(0, 1234)]),
}


def build(yaml_rel, splits, overrides):
    cfg = load_yaml(TASKS / yaml_rel)
    for k in ["dataset_path", "dataset_name", "dataset_kwargs"]:
        cfg.pop(k, None)
    data = datasets.DatasetDict({name: datasets.Dataset.from_list(split(reader, pat)) for name, (reader, pat) in splits.items()})
    for k in ["training_split", "validation_split", "test_split"]:
        if cfg.get(k) is not None and cfg[k] not in data:
            cfg[k] = None
    cfg.update(overrides)
    cfg["custom_dataset"] = lambda **kw: data
    return ConfigurableTask(config=cfg)


def instances(task):
    out = []
    for inst in task.instances:
        args = list(inst.arguments)
        if inst.request_type == "generate_until":
            args[1] = {k: v for k, v in args[1].items() if k in ("until", "max_gen_toks")}
        out.append({"doc_id": inst.doc_id, "idx": inst.idx, "request_type": inst.request_type, "arguments": args})
    return out


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    only = set(sys.argv[1:])
    for name, (yaml_rel, splits, overrides, runs) in CASES.items():
        if only and name not in only:
            continue
        for n, seed in runs:
            task = build(yaml_rel, splits, overrides)
            task.set_config(key="num_fewshot", value=n)
            task.set_fewshot_seed(seed=seed)
            task.build_all_requests(rank=0, world_size=1)
            fixture = {
                "task": name,
                "lm_eval_version": lm_eval.__version__ if hasattr(lm_eval, "__version__") else "0.4.13",
                "lm_eval_yaml": yaml_rel,
                "overrides": overrides,
                "num_fewshot": n,
                "seed": seed,
                "requests": instances(task),
            }
            path = OUT / f"{name}.{n}shot.seed{seed}.json"
            path.write_text(json.dumps(fixture, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
            print(f"{path.relative_to(ROOT)}: {len(fixture['requests'])} requests")


if __name__ == "__main__":
    main()
