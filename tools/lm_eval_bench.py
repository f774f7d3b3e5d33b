#!/usr/bin/env python3
"""The reference a user without a GPU would otherwise pick: `pingce bench --mc-suite`'s suite run
through lm-evaluation-harness 0.4.13 + transformers float32 on this machine's CPU.

    pip install -r tools/requirements.txt          # torch, transformers, gguf, accelerate, lm-eval
    python3 tools/lm_eval_bench.py ../shared/datasets [models/SmolLM2-135M-Instruct.Q4_1.gguf] [--batch-size 16]

Same items as `pingce bench --mc-suite DATA_DIR` (src/cli/bench.rs, SUITE): the first 200 documents
of ARC-Challenge `validation`, HellaSwag `validation`, MMLU `validation` (subjects in the order of
evals/mmlu.yaml until 200) and C-Eval `dev` (subjects in the order of evals/ceval-valid.yaml until
200), zero-shot. Each task is lm-eval's own YAML built as a `ConfigurableTask` over the local files
(tools/render_lm_eval.py's readers), the requests are lm-eval's, and the model is lm-eval's `HFLM`
loading the GGUF through transformers (dequantized to float32). Timed: `HFLM.loglikelihood` over all
requests of the suite (what the model does); request building and model loading are reported apart.
Prints one JSON object (items, seconds, items_per_s, acc per task) like `pingce bench --json`'s
`mc_suite`, so the two can be compared side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import render_lm_eval as r  # noqa: E402  (lm-eval's YAML loading and the dataset readers)

import torch  # noqa: E402
import transformers  # noqa: E402
from lm_eval.models.huggingface import HFLM  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ITEMS = 200


def subjects(yaml_name):
    """Subject names in the order the pingce task file lists them."""
    out = []
    for line in (ROOT / "evals" / yaml_name).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("- {subject:"):
            out.append(line.split("subject:", 1)[1].split(",", 1)[0].strip())
    return out


def suite(data):
    """(suite member, [(lm-eval YAML, {split: (reader, glob)}, overrides)]) in pingce's order."""
    r.SAMPLES = Path(data)
    mmlu = [(f"mmlu/default/mmlu_{s}.yaml", {"validation": (r.mmlu, f"mmlu/val/{s}_val.csv"), "dev": (r.mmlu, f"mmlu/dev/{s}_dev.csv")}, {"test_split": "validation"}) for s in subjects("mmlu.yaml")]
    ceval = [(f"ceval/ceval-valid_{s}.yaml", {"dev": (r.ceval, f"ceval/dev/{s}_dev.csv")}, {"test_split": "dev"}) for s in subjects("ceval-valid.yaml")]
    arc = ("arc/arc_challenge.yaml", {"validation": (r.arc, "arc/ARC-Challenge/ARC-Challenge-Dev.jsonl")}, {"test_split": "validation"})
    hs = ("hellaswag/hellaswag.yaml", {"validation": (r.hellaswag, "hellaswag/hellaswag_val*.jsonl")}, {})
    return [("arc_challenge", [arc]), ("hellaswag", [hs]), ("mmlu", mmlu), ("ceval-valid", ceval)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("model", nargs="?", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--items", type=int, default=ITEMS, help="documents per suite member (a smoke run: fewer)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    t0 = time.perf_counter()
    tasks = []  # (member, task, docs)
    for member, parts in suite(a.data):
        left = a.items
        for yaml_rel, splits, overrides in parts:
            if left == 0:
                break
            if not any(r.split(rd, pat) for rd, pat in splits.values()):
                continue
            task = r.build(yaml_rel, splits, overrides)
            task.set_config(key="num_fewshot", value=0)
            task.build_all_requests(rank=0, world_size=1, limit=left)
            n = len({i.doc_id for i in task.instances})
            left -= n
            tasks.append((member, task, n))
        if left:
            sys.exit(f"{member}: only {a.items - left} of {a.items} documents under {a.data}")
    requests = [i for _, t, _ in tasks for i in t.instances]
    built = time.perf_counter() - t0

    model = Path(a.model).resolve()
    t0 = time.perf_counter()
    lm = HFLM(pretrained=str(model.parent), gguf_file=model.name, dtype="float32", device="cpu", batch_size=a.batch_size)
    loaded = time.perf_counter() - t0

    t0 = time.perf_counter()
    answers = lm.loglikelihood(requests)
    seconds = time.perf_counter() - t0

    for inst, ans in zip(requests, answers):
        inst.resps.append(ans)
    acc = {}
    for member, task, _ in tasks:
        task.apply_filters()
        by_doc = {}
        for inst in task.instances:
            by_doc.setdefault(inst.doc_id, []).append(inst)
        hits = acc.setdefault(member, [0, 0])
        for doc_id, insts in by_doc.items():
            insts.sort(key=lambda i: i.idx)
            res = task.process_results(insts[0].doc, [i.filtered_resps["none"] for i in insts])
            hits[0] += res["acc"]
            hits[1] += 1
    items = sum(n for _, _, n in tasks)
    print(json.dumps({
        "harness": "lm-evaluation-harness 0.4.13 HFLM",
        "transformers": transformers.__version__, "torch": torch.__version__, "threads": a.threads,
        "batch_size": a.batch_size, "cpu": platform.processor() or platform.machine(),
        "requests": len(requests), "items": items, "seconds": seconds, "items_per_s": items / seconds,
        "build_requests_s": built, "load_model_s": loaded,
        "acc": {m: h / n for m, (h, n) in acc.items()},
    }, indent=1))


if __name__ == "__main__":
    main()
