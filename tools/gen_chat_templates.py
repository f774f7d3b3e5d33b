#!/usr/bin/env python3
"""Render conversations through real chat templates with transformers' own apply_chat_template,
and write the expected strings that tests/chat_templates.rs compares with pingce's ChatTemplate.

Each model is a folder tests/fixtures/chat_templates/<model>/ holding
  chat_template.jinja     the real template text (copied from llama.cpp's models/templates, see README)
  tokenizer_config.json   the model's special tokens (what transformers passes to the template)
  expected.json           written here: conversations, options and transformers' renderings

The tokenizer is built in memory (a one-word WordLevel vocabulary plus the special tokens), so
nothing is downloaded: apply_chat_template(tokenize=False) only needs the template and the special
tokens map. strftime_now (Llama 3.x "Today Date") is pinned by replacing the `datetime` that
transformers' chat_template_utils calls with one whose now() is FIXED_NOW (midnight of FIXED_DATE);
pingce's ChatTemplate gets the same date with `with_date`.

Usage:
    python3 -m venv /tmp/ctenv && /tmp/ctenv/bin/pip install transformers==5.23.0 tokenizers==0.23.3 jinja2==3.1.6
    /tmp/ctenv/bin/python tools/gen_chat_templates.py [--import LLAMA_CPP/models/templates]
"""

import datetime as _dt
import json
import shutil
import sys
from pathlib import Path

import jinja2
import tokenizers
import transformers
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast
from transformers.utils import chat_template_utils

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "chat_templates"
FIXED_DATE = "2025-03-07"
FIXED_NOW = _dt.datetime(2025, 3, 7, 0, 0, 0)

# folder: (llama.cpp models/templates file, special tokens as in the model's tokenizer_config.json, kwargs variants)
MODELS = {
    "qwen2.5-instruct": ("Qwen-Qwen2.5-7B-Instruct.jinja", {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}, [{}]),
    "qwen3": ("Qwen-Qwen3-0.6B.jinja", {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}, [{"enable_thinking": True}, {"enable_thinking": False}]),
    "llama-3.2-instruct": ("meta-llama-Llama-3.2-3B-Instruct.jinja", {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}, [{}, {"date_string": "26 Jul 2024"}]),
    "deepseek-v3.1": ("deepseek-ai-DeepSeek-V3.1.jinja", {"bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<｜end▁of▁sentence｜>"}, [{}, {"thinking": True}]),
    "glm-4.6": ("GLM-4.6.jinja", {"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}, [{}, {"enable_thinking": False}]),
}

SYS = {"role": "system", "content": "You are a careful assistant. Answer briefly."}
CONVERSATIONS = {
    "system_user": [SYS, {"role": "user", "content": "What is the capital of France?"}],
    "user_only": [{"role": "user", "content": "  Name three primes.  \n"}],
    "multi_turn": [
        SYS,
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello. How can I help?"},
        {"role": "user", "content": "Add 2 and 3."},
    ],
    "ends_with_assistant": [
        {"role": "user", "content": "Add 2 and 3."},
        {"role": "assistant", "content": "<think>\n2+3=5\n</think>\n\nThe answer is 5."},
    ],
    "chinese": [
        {"role": "system", "content": "你是一个乐于助人的助手。"},
        {"role": "user", "content": "中国的首都是哪里？请用一句话回答。"},
    ],
    "fewshot_multiturn": [
        {"role": "system", "content": "The following are multiple choice questions (with answers) about astronomy."},
        {"role": "user", "content": "Question: Which planet is largest?\nA. Mars\nB. Jupiter\nAnswer:"},
        {"role": "assistant", "content": "B"},
        {"role": "user", "content": "Question: What is closest to the Sun?\nA. Mercury\nB. Venus\nAnswer:"},
        {"role": "assistant", "content": "A"},
        {"role": "user", "content": "Question: Which star is nearest to Earth?\nA. Sirius\nB. The Sun\nAnswer:"},
    ],
}
# (conversation, add_generation_prompt, continue_final_message)
CASES = [
    ("system_user", True, False),
    ("system_user", False, False),
    ("user_only", True, False),
    ("multi_turn", True, False),
    ("multi_turn", False, False),
    ("ends_with_assistant", False, False),
    ("ends_with_assistant", False, True),
    ("chinese", True, False),
    ("fewshot_multiturn", True, False),
]


class FixedDatetime(_dt.datetime):
    @classmethod
    def now(cls, tz=None):
        return FIXED_NOW


def tokenizer(template, special):
    vocab = {"<unk>": 0}
    for t in special.values():
        vocab.setdefault(t, len(vocab))
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    return PreTrainedTokenizerFast(tokenizer_object=tok, chat_template=template, **special)


def main():
    args = sys.argv[1:]
    if args[:1] == ["--import"]:
        for name, (src, special, _) in MODELS.items():
            (OUT / name).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(args[1]) / src, OUT / name / "chat_template.jinja")
            cfg = dict(special, tokenizer_class="PreTrainedTokenizerFast")
            (OUT / name / "tokenizer_config.json").write_text(json.dumps(cfg, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    chat_template_utils.datetime = FixedDatetime
    for name, (src, special, variants) in MODELS.items():
        d = OUT / name
        template = (d / "chat_template.jinja").read_text(encoding="utf-8")
        tok = tokenizer(template, special)
        cases = []
        for kwargs in variants:
            for conv, agp, cont in CASES:
                try:
                    text = tok.apply_chat_template(
                        CONVERSATIONS[conv], tokenize=False, add_generation_prompt=agp, continue_final_message=cont, **kwargs
                    )
                except (ValueError, jinja2.TemplateError) as e:
                    print(f"{name} {conv} agp={agp} cont={cont} {kwargs}: skipped ({str(e)[:80]})")
                    continue
                cases.append({"conversation": conv, "add_generation_prompt": agp, "continue_final_message": cont, "kwargs": kwargs, "expected": text})
        fixture = {
            "source": src,
            "versions": {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__, "jinja2": jinja2.__version__},
            "date": FIXED_DATE,
            "conversations": CONVERSATIONS,
            "cases": cases,
        }
        (d / "expected.json").write_text(json.dumps(fixture, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        print(f"{d.relative_to(ROOT)}: {len(cases)} renderings")


if __name__ == "__main__":
    main()
