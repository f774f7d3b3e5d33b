#!/usr/bin/env python3
"""tests/fixtures/spm/special.json: the ids transformers' GGUF tokenizer gives the strings of
reference.json when it adds its special tokens (`encode(text)`, add_special_tokens left True), as
lm-eval's HF backend encodes contexts. tiny-spm.gguf says `tokenizer.ggml.add_bos_token = true`,
so transformers (5.23) puts `<s>` first through a TemplateProcessing post-processor.

    pip install -r tools/requirements.txt && python3 tools/gen_spm_special.py
"""

import json
import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
import tokenizers  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

DIR = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "spm"
ref = json.loads((DIR / "reference.json").read_text(encoding="utf-8"))
tok = AutoTokenizer.from_pretrained(str(DIR), gguf_file="tiny-spm.gguf")
out = {
    "meta": {
        "versions": {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__},
        "reference": "AutoTokenizer.from_pretrained(dir, gguf_file='tiny-spm.gguf').encode(text)",
        "add_bos_token": tok.add_bos_token,
        "add_eos_token": tok.add_eos_token,
    },
    "cases": [{"text": c["text"], "ids": tok.encode(c["text"])} for c in ref["cases"]],
}
(DIR / "special.json").write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
print(f"{len(out['cases'])} cases")
