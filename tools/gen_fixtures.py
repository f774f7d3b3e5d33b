#!/usr/bin/env python3
"""Generate the tiny model fixtures under tests/fixtures/.

    pip install -r tools/requirements.txt && python3 tools/gen_fixtures.py

Everything is produced locally and deterministically (fixed seeds, single
CPU thread, deterministic torch algorithms); no network access is needed.

Output (one folder per model, see tests/fixtures/README.md):
    tiny-llama/   LlamaForCausalLM,   float32,  llama3 rope scaling, untied
    tiny-mistral/ MistralForCausalLM, float16,  sliding_window 8
    tiny-qwen2/   Qwen2ForCausalLM,   bfloat16, 2 shards, tied, linear rope
    tiny-qwen3/   Qwen3ForCausalLM,   float32,  head_dim 20 != hidden/heads
each holding config.json, generation_config.json, tokenizer.json,
tokenizer_config.json, model*.safetensors (+ index for qwen2), reference.json.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

# Never touch the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import safetensors  # noqa: E402
import tokenizers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors import safe_open  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures"

EOT = "<|endoftext|>"
VOCAB_TARGET = 448
MAX_POS = 256
GEN_NEW_TOKENS = 16

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

# --------------------------------------------------------------------------
# 1. Tokenizer
# --------------------------------------------------------------------------

CORPUS = [
    # English prose
    "The quick brown fox jumps over the lazy dog. The dog did not mind at all, "
    "because it was a very lazy dog and the sun was warm on the grass.",
    "Once upon a time there was a little village near the sea. Every morning the "
    "fishermen went out in their boats, and every evening they came back with "
    "baskets full of fish. The children ran down to the beach to meet them.",
    "In the beginning the model knows nothing. It reads the text one token at a "
    "time and tries to predict the next token. When it is wrong, it changes its "
    "weights a little, and after many steps it becomes better at the task.",
    "Evaluation is the process of measuring how well a language model performs. "
    "We compute the log probability of each token given the previous tokens, and "
    "we compare the greedy prediction with the reference answer.",
    "She said that the weather would be nice tomorrow, so they planned a picnic "
    "in the park with sandwiches, apples, cheese and a bottle of cold water.",
    "Question: What is the capital of France?\nAnswer: Paris is the capital of France.\n"
    "Question: How many legs does a spider have?\nAnswer: A spider has eight legs.\n",
    # Chinese
    "今天天气很好，我们一起去公园散步吧。公园里有很多人，有的在跑步，有的在下棋。",
    "从前有一座山，山里有一座庙，庙里有一个老和尚在给小和尚讲故事。",
    "语言模型的评测需要可重复的结果。我们计算每个词元的对数概率，并比较贪心解码的输出。",
    "北京是中国的首都。上海是一个很大的城市。我们喜欢学习新的知识，也喜欢和朋友一起吃饭。",
    "你好，世界！今天是星期一，明天是星期二。我有三本书和两支笔。",
    # Python code
    "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n",
    "import os\nimport sys\n\n\ndef main(argv):\n    if len(argv) < 2:\n        print(\"usage: main <path>\")\n"
    "        return 1\n    with open(argv[1]) as f:\n        for line in f:\n            print(line.strip())\n"
    "    return 0\n\n\nif __name__ == \"__main__\":\n    sys.exit(main(sys.argv))\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n"
    "        self.items.append(item)\n\n    def pop(self):\n        return self.items.pop()\n\n"
    "    def __len__(self):\n        return len(self.items)\n",
    "result = [x * x for x in range(10) if x % 2 == 0]\nprint(result)  # [0, 4, 16, 36, 64]\n"
    "data = {\"name\": \"test\", \"value\": 42, \"items\": [1, 2, 3]}\n",
    # digits, punctuation and whitespace runs
    "0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 100 1000 2024 3.14159 2.71828 -1 +1 1e-5 0x1F",
    "Total: 1,234.56 + 7,890.12 = 9,124.68; ratio 45% (n=128), score 0.875 +/- 0.012",
    "a    b        c\t\td\n\n\ne  \n  f   \t  g",
    "    indented line\n        more indented\n\t\ttabs\n\n\n\nblank lines above",
    "!!! ??? ... --- === *** ### @@@ $$$ %%% ^^^ &&& ((( ))) [[[ ]]] {{{ }}} <<< >>> ~~~ ||| ;;; :::",
    "Phone: 555-0199, date 2024-03-15, time 12:45:30, version v1.2.3, id #4521",
]

TEXTS = [
    "The cat sat on the mat, and the dog slept by the door.",
    "今天我们去海边看日出，然后一起吃早饭。",
    "def square_sum(xs):\n    total = 0\n    for x in xs:\n        total += x * x\n    return total\n",
    "Price: $1,299.99 -- 42%   off!!!\n\n\tItems:  7  (x_1, y_2);  pi = 3.14159...   [ok]",
    "Hello, 世界! 1 + 1 = 2.",
    # long text: must be 150..200 tokens (longer than the mistral sliding window)
    "Every evening the old fisherman walked along the beach and counted the boats that came "
    "back from the sea. Some nights there were twelve, some only seven. The children asked him "
    "why. He said: the sea keeps its own accounts. 他每天都在海边散步。 They wrote the numbers "
    "in a book: 12, 7, 0, 9.",
]

GEN_PROMPTS = [
    "Once upon a time",
    "def add(a, b):\n",
    "我们今天",
]


def build_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    # Like GPT-2: a ByteLevel post-processor only fixes offsets, it adds no tokens.
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_TARGET,
        min_frequency=2,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 3, trainer=trainer, length=len(CORPUS) * 3)
    assert tok.token_to_id(EOT) == 0, "<|endoftext|> must be id 0"
    return tok


TOKENIZER_CONFIG = {
    "tokenizer_class": "PreTrainedTokenizerFast",
    "bos_token": EOT,
    "eos_token": EOT,
    "unk_token": EOT,
    "add_bos_token": False,
    "add_eos_token": False,
    "clean_up_tokenization_spaces": False,
    "model_max_length": MAX_POS,
    "added_tokens_decoder": {
        "0": {
            "content": EOT,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
    },
}

# --------------------------------------------------------------------------
# 2. Models
# --------------------------------------------------------------------------


def common_cfg(vocab: int) -> dict:
    return dict(
        vocab_size=vocab,
        num_hidden_layers=2,
        max_position_embeddings=MAX_POS,
        bos_token_id=0,
        eos_token_id=0,
        hidden_act="silu",
        attention_dropout=0.0,
        use_cache=True,
    )


def model_specs(vocab: int) -> list[dict]:
    c = common_cfg(vocab)
    return [
        dict(
            name="tiny-llama",
            seed=1001,
            model_cls=LlamaForCausalLM,
            config=LlamaConfig(
                **c,
                hidden_size=72,
                intermediate_size=100,
                num_attention_heads=6,
                num_key_value_heads=2,
                rms_norm_eps=1e-5,
                tie_word_embeddings=False,
                attention_bias=False,
                mlp_bias=False,
                rope_parameters={
                    "rope_type": "llama3",
                    "rope_theta": 10000.0,
                    "factor": 8.0,
                    "low_freq_factor": 1.0,
                    "high_freq_factor": 4.0,
                    "original_max_position_embeddings": 64,
                },
            ),
            dtype=torch.float32,
            shards=1,
        ),
        dict(
            name="tiny-mistral",
            seed=1002,
            model_cls=MistralForCausalLM,
            config=MistralConfig(
                **c,
                hidden_size=60,
                intermediate_size=90,
                num_attention_heads=5,
                num_key_value_heads=1,
                head_dim=12,
                rms_norm_eps=1e-5,
                tie_word_embeddings=False,
                sliding_window=8,
                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
            ),
            dtype=torch.float16,
            shards=1,
        ),
        dict(
            name="tiny-qwen2",
            seed=1003,
            model_cls=Qwen2ForCausalLM,
            config=Qwen2Config(
                **c,
                hidden_size=64,
                intermediate_size=88,
                num_attention_heads=4,
                num_key_value_heads=2,
                rms_norm_eps=1e-6,
                tie_word_embeddings=True,
                use_sliding_window=False,
                rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0},
            ),
            dtype=torch.bfloat16,
            shards=2,
        ),
        dict(
            name="tiny-qwen3",
            seed=1004,
            model_cls=Qwen3ForCausalLM,
            config=Qwen3Config(
                **c,
                hidden_size=56,
                intermediate_size=76,
                num_attention_heads=4,
                num_key_value_heads=2,
                head_dim=20,
                rms_norm_eps=1e-6,
                tie_word_embeddings=False,
                attention_bias=False,
                use_sliding_window=False,
                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
            ),
            dtype=torch.float32,
            shards=1,
        ),
    ]


def randomize_(model: torch.nn.Module, cfg, seed: int) -> None:
    """Large-ish deterministic init so that next-token distributions are peaked.

    Rules (std in units of 1/sqrt(fan_in)): q/k 1.3, v/o 1.0, gate/up 1.5, down 1.0,
    lm_head 4.0 (logit std ~4), input embeddings N(0,1) (N(0, 3.5^2/H) when tied),
    RMSNorm weights ~ 1 + 0.15 N(0,1) (q_norm/k_norm ~ 1.4 + 0.2 N(0,1)), biases N(0, 0.3^2).
    """
    g = torch.Generator().manual_seed(seed)
    hidden = cfg.hidden_size
    tied = bool(cfg.tie_word_embeddings)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            fan_in = p.shape[-1] if p.dim() == 2 else None
            if name.endswith("embed_tokens.weight"):
                mean, std = 0.0, (3.5 / math.sqrt(hidden) if tied else 1.0)
            elif name.endswith("lm_head.weight"):
                mean, std = 0.0, 4.0 / math.sqrt(hidden)
            elif name.endswith(("q_norm.weight", "k_norm.weight")):
                mean, std = 1.4, 0.2
            elif name.endswith("norm.weight"):  # input/post_attention layernorm, final norm
                mean, std = 1.0, 0.15
            elif name.endswith(".bias"):
                mean, std = 0.0, 0.3
            elif name.endswith(("q_proj.weight", "k_proj.weight")):
                mean, std = 0.0, 1.3 / math.sqrt(fan_in)
            elif name.endswith(("gate_proj.weight", "up_proj.weight")):
                mean, std = 0.0, 1.5 / math.sqrt(fan_in)
            elif name.endswith(("v_proj.weight", "o_proj.weight", "down_proj.weight")):
                mean, std = 0.0, 1.0 / math.sqrt(fan_in)
            else:
                raise RuntimeError(f"no init rule for {name}")
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float32) * std + mean)


def round_trip_(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """Replace every f32 weight by its value after a cast to the storage dtype."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(dtype).to(torch.float32))


# --------------------------------------------------------------------------
# 3. Reference outputs
# --------------------------------------------------------------------------


def f32(x) -> float:
    """Exact value of a float32 as a Python float (repr round-trips to the same f32)."""
    return float(np.float32(x))


@torch.no_grad()
def score_text(model, ids: list[int]) -> dict:
    x = torch.tensor([ids], dtype=torch.long)
    logits = model(input_ids=x, use_cache=False).logits[0].to(torch.float32)  # [n, V]
    pred = logits[:-1]
    lp = torch.log_softmax(pred, dim=-1)
    tgt = torch.tensor(ids[1:], dtype=torch.long)
    logprobs = lp.gather(1, tgt[:, None])[:, 0]
    greedy = pred.argmax(-1)
    top5 = torch.topk(lp, 5, dim=-1)
    top2 = torch.topk(pred, 2, dim=-1).values
    margins = top2[:, 0] - top2[:, 1]
    return {
        "logprobs": [f32(v) for v in logprobs.tolist()],
        "greedy_is": [bool(a == b) for a, b in zip(greedy.tolist(), ids[1:])],
        "top5_ids": top5.indices.tolist(),
        "top5_logprobs": [[f32(v) for v in row] for row in top5.values.tolist()],
        "margins": [f32(v) for v in margins.tolist()],
    }


@torch.no_grad()
def greedy_generate(model, prompt_ids: list[int]) -> tuple[list[int], list[float], list[float]]:
    """Greedy decode via HF generate (KV cache), cross-checked with a no-cache loop."""
    gen_cfg = copy.deepcopy(model.generation_config)
    gen_cfg.do_sample = False
    gen_cfg.num_beams = 1
    gen_cfg.eos_token_id = None
    gen_cfg.pad_token_id = 0
    gen_cfg.bos_token_id = 0
    gen_cfg.max_new_tokens = GEN_NEW_TOKENS
    gen_cfg.min_new_tokens = None
    gen_cfg.temperature = None
    gen_cfg.top_k = None
    gen_cfg.top_p = None
    x = torch.tensor([prompt_ids], dtype=torch.long)
    out = model.generate(
        input_ids=x,
        attention_mask=torch.ones_like(x),
        generation_config=gen_cfg,
        output_logits=True,
        return_dict_in_generate=True,
    )
    new_ids = out.sequences[0, len(prompt_ids):].tolist()
    assert len(new_ids) == GEN_NEW_TOKENS, new_ids
    # Reference values come from a no-cache loop (full recompute each step, same code
    # path as score_text); generate() (KV cache, lm_head on the last row only) is only
    # cross-checked: its logits may differ from these by a few float32 ULPs.
    seq = list(prompt_ids)
    margins, new_logprobs = [], []
    for i in range(GEN_NEW_TOKENS):
        step = model(input_ids=torch.tensor([seq]), use_cache=False).logits[0, -1].to(torch.float32)
        nxt = int(step.argmax())
        assert nxt == new_ids[i], f"generate() vs no-cache greedy differ at step {i}"
        cached = out.logits[i][0].to(torch.float32)
        assert (cached - step).abs().max() < 1e-4, "KV-cache logits drifted"
        t2 = torch.topk(step, 2).values
        margins.append(f32(t2[0] - t2[1]))
        new_logprobs.append(f32(torch.log_softmax(step, -1)[nxt]))
        seq.append(nxt)
    return new_ids, margins, new_logprobs


def build_reference(model, hf_tok) -> dict:
    texts = []
    for text in TEXTS:
        ids = hf_tok(text, add_special_tokens=False).input_ids
        texts.append({"text": text, "ids": ids, **score_text(model, ids)})
    gens = []
    for prompt in GEN_PROMPTS:
        pids = hf_tok(prompt, add_special_tokens=False).input_ids
        new_ids, margins, new_logprobs = greedy_generate(model, pids)
        gens.append({"prompt": prompt, "prompt_ids": pids, "new_ids": new_ids, "margins": margins,
                     "new_logprobs": new_logprobs})
    return {
        "generator": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "safetensors": safetensors.__version__,
            "numpy": np.__version__,
        },
        "texts": texts,
        "generations": gens,
    }


def dump_json(obj, indent: int = 0) -> str:
    """JSON with lists of scalars kept on one line (small diffs, readable)."""
    pad = "  " * indent
    pad1 = "  " * (indent + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{pad1}{json.dumps(k, ensure_ascii=False)}: {dump_json(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list):
        if all(not isinstance(v, (dict, list)) for v in obj):
            return "[" + ", ".join(json.dumps(v, ensure_ascii=False) for v in obj) + "]"
        items = [pad1 + dump_json(v, indent + 1) for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    if isinstance(obj, float):
        assert math.isfinite(obj), obj
        return repr(obj)
    return json.dumps(obj, ensure_ascii=False)


# --------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------


def check_rope(name: str, model, cfg) -> None:
    inv = model.model.rotary_emb.inv_freq.to(torch.float32)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    theta = cfg.rope_parameters["rope_theta"]
    plain = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    rt = cfg.rope_parameters["rope_type"]
    if rt == "default":
        assert torch.equal(inv, plain), name
    elif rt == "linear":
        assert torch.equal(inv, plain / cfg.rope_parameters["factor"]), name
    elif rt == "llama3":
        assert not torch.equal(inv, plain), "llama3 rope scaling was not applied"
        ratio = (plain / inv).tolist()
        # head_dim 12, orig ctx 64: index 0 untouched, index 1 smoothed, indices 2.. divided by 8
        assert abs(ratio[0] - 1.0) < 1e-6 and 1.0 < ratio[1] < 8.0, ratio
        assert all(abs(r - 8.0) < 1e-5 for r in ratio[2:]), ratio
    print(f"  [{name}] rope {rt}: inv_freq = {[f'{v:.6g}' for v in inv.tolist()]}")


@torch.no_grad()
def check_sliding_window(model, ids: list[int]) -> None:
    cfg = model.config
    w = cfg.sliding_window
    assert w == 8 and len(ids) > 2 * w
    x = torch.tensor([ids])
    out = model(input_ids=x, use_cache=False, output_attentions=True)
    # eager attention probabilities are exactly 0 outside the window
    n = len(ids)
    qi = torch.arange(n)[:, None]
    kj = torch.arange(n)[None, :]
    expected = (qi - kj >= 0) & (qi - kj < w)
    for layer_attn in out.attentions:
        allowed = layer_attn[0] > 0  # [heads, n, n]
        assert torch.equal(allowed, expected.expand_as(allowed)), "unexpected window semantics"
    # and it changes the outputs w.r.t. full causal attention
    full = copy.deepcopy(model)
    full.config.sliding_window = None
    for layer in full.model.layers:
        if hasattr(layer.self_attn, "sliding_window"):
            layer.self_attn.sliding_window = None
    logits_full = full(input_ids=x, use_cache=False).logits[0]
    d = (out.logits[0] - logits_full).abs().max(-1).values
    assert torch.all(d[:w] == 0), "positions < window must be identical"
    assert d[w:].max() > 1e-2, "sliding window did not change outputs"
    print(f"  [tiny-mistral] sliding window {w}: attends j iff 0 <= i-j < {w}; "
          f"max |dlogit| vs full attention = {float(d.max()):.3g} (first at pos {int((d > 0).nonzero()[0])})")


def file_sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()[:16]


ALLOWED = {
    "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
    "reference.json", "model.safetensors", "model.safetensors.index.json",
    "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
}

DTYPE_NAMES = {torch.float32: ("F32", "float32"), torch.float16: ("F16", "float16"),
               torch.bfloat16: ("BF16", "bfloat16")}


def save_model(spec: dict, model, d: Path) -> None:
    dtype = spec["dtype"]
    m = copy.deepcopy(model).to(dtype)
    if spec["shards"] == 1:
        m.save_pretrained(d, safe_serialization=True)
    else:
        total = sum(p.numel() * p.element_size() for p in m.state_dict().values()
                    if p.data_ptr() != m.lm_head.weight.data_ptr() or not spec["config"].tie_word_embeddings)
        # smallest max_shard_size (in 5% steps of the total) that gives exactly 2 shards
        for frac in range(50, 100, 5):
            with tempfile.TemporaryDirectory() as tmp:
                m.save_pretrained(tmp, safe_serialization=True, max_shard_size=int(total * frac / 100))
                if "model-00001-of-00002.safetensors" in os.listdir(tmp):
                    for f in os.listdir(tmp):
                        shutil.copy(Path(tmp) / f, d / f)
                    break
        else:
            raise RuntimeError("could not get exactly two shards")
    files = sorted(os.listdir(d))
    if spec["shards"] == 1:
        assert "model.safetensors" in files, files
    else:
        assert "model-00001-of-00002.safetensors" in files and "model-00002-of-00002.safetensors" in files, files
        assert "model.safetensors.index.json" in files, files


def check_saved(spec: dict, d: Path) -> None:
    files = set(os.listdir(d))
    assert files <= ALLOWED, files - ALLOWED
    cfg = json.loads((d / "config.json").read_text())
    st_dtype, cfg_dtype = DTYPE_NAMES[spec["dtype"]]
    assert cfg.get("dtype", cfg.get("torch_dtype")) == cfg_dtype, cfg
    assert cfg["architectures"] == [spec["model_cls"].__name__], cfg
    shard_files = sorted(f for f in files if f.endswith(".safetensors"))
    names = {}
    total = 0
    for f in shard_files:
        with safe_open(d / f, framework="pt") as sf:
            for k in sf.keys():
                t = sf.get_slice(k)
                assert t.get_dtype() == st_dtype, (k, t.get_dtype())
                shape = t.get_shape()
                total += int(np.prod(shape)) * {"F32": 4, "F16": 2, "BF16": 2}[st_dtype]
                names[k] = f
    if spec["config"].tie_word_embeddings:
        assert "lm_head.weight" not in names
    else:
        assert "lm_head.weight" in names
    assert "model.embed_tokens.weight" in names and "model.norm.weight" in names
    if spec["shards"] > 1:
        idx = json.loads((d / "model.safetensors.index.json").read_text())
        assert idx["weight_map"] == names, "index weight_map mismatch"
        assert idx["metadata"]["total_size"] == total, (idx["metadata"], total)
        assert len(set(names.values())) == 2


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


def main() -> int:
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"tokenizers {tokenizers.__version__}, safetensors {safetensors.__version__}, numpy {np.__version__}")
    OUT.mkdir(parents=True, exist_ok=True)

    # ---- tokenizer
    tok = build_tokenizer()
    vocab = tok.get_vocab_size()
    assert 400 <= vocab <= 500, vocab
    tok_dir = Path(tempfile.mkdtemp(prefix="pingce-tok-"))
    tok.save(str(tok_dir / "tokenizer.json"))
    (tok_dir / "tokenizer_config.json").write_text(dump_json(TOKENIZER_CONFIG) + "\n", encoding="utf-8")
    hf_tok = PreTrainedTokenizerFast(tokenizer_file=str(tok_dir / "tokenizer.json"))
    auto_tok = AutoTokenizer.from_pretrained(str(tok_dir))
    raw = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    for text in TEXTS + GEN_PROMPTS + CORPUS:
        a = hf_tok(text, add_special_tokens=False).input_ids
        assert a == hf_tok(text).input_ids, "tokenizer adds special tokens"
        assert a == auto_tok(text).input_ids == raw.encode(text).ids, text
        assert raw.decode(a) == text, "byte-level round trip failed"
    assert auto_tok.bos_token == auto_tok.eos_token == EOT and auto_tok.eos_token_id == 0
    lens = [len(hf_tok(t, add_special_tokens=False).input_ids) for t in TEXTS]
    assert 150 <= lens[-1] <= 200, f"long text has {lens[-1]} tokens"
    print(f"tokenizer: vocab {vocab}, text lengths {lens}")

    summary = []
    for spec in model_specs(vocab):
        name = spec["name"]
        d = OUT / name
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        print(f"== {name}")

        torch.manual_seed(spec["seed"])
        cfg = spec["config"]
        model = spec["model_cls"]._from_config(cfg, dtype=torch.float32, attn_implementation="eager")
        randomize_(model, cfg, spec["seed"])
        round_trip_(model, spec["dtype"])
        model.eval()
        assert model.config._attn_implementation == "eager"
        check_rope(name, model, model.config)
        if name == "tiny-mistral":
            check_sliding_window(model, hf_tok(TEXTS[-1], add_special_tokens=False).input_ids)

        ref = build_reference(model, hf_tok)
        save_model(spec, model, d)
        shutil.copy(tok_dir / "tokenizer.json", d / "tokenizer.json")
        shutil.copy(tok_dir / "tokenizer_config.json", d / "tokenizer_config.json")
        (d / "reference.json").write_text(dump_json(ref) + "\n", encoding="utf-8")
        check_saved(spec, d)
        summary.append((spec, ref))

    # ---- verify: reload every folder from disk and recompute
    print("== verification (reload from disk)")
    total_bytes = 0
    ok = True
    for spec, ref in summary:
        d = OUT / spec["name"]
        m = AutoModelForCausalLM.from_pretrained(str(d), dtype=torch.float32, attn_implementation="eager")
        m.eval()
        assert type(m) is spec["model_cls"], type(m)
        assert all(p.dtype == torch.float32 for p in m.parameters())
        t = PreTrainedTokenizerFast(tokenizer_file=str(d / "tokenizer.json"))
        disk_ref = json.loads((d / "reference.json").read_text(encoding="utf-8"))
        max_diff = 0.0
        for entry in disk_ref["texts"]:
            assert t(entry["text"], add_special_tokens=False).input_ids == entry["ids"]
            got = score_text(m, entry["ids"])
            diff = max(abs(a - b) for a, b in zip(got["logprobs"], entry["logprobs"]))
            max_diff = max(max_diff, diff)
            assert got["greedy_is"] == entry["greedy_is"] and got["top5_ids"] == entry["top5_ids"]
        for g in disk_ref["generations"]:
            new_ids, _, new_lp = greedy_generate(m, g["prompt_ids"])
            assert new_ids == g["new_ids"], spec["name"]
            max_diff = max(max_diff, max(abs(a - b) for a, b in zip(new_lp, g["new_logprobs"])))
        ok &= max_diff < 1e-6
        size = sum(f.stat().st_size for f in d.iterdir())
        total_bytes += size
        text_m = [v for e in ref["texts"] for v in e["margins"]]
        gen_m = [v for g in ref["generations"] for v in g["margins"]]
        small = sum(v < 1e-3 for v in text_m + gen_m)
        greedy_frac = np.mean([v for e in ref["texts"] for v in e["greedy_is"]])
        wsize = sum(f.stat().st_size for f in d.iterdir() if f.suffix == ".safetensors")
        print(f"  {spec['name']:13s} dir {size / 1024:7.1f} KiB (weights {wsize / 1024:6.1f} KiB)  "
              f"reload max|dlogprob| {max_diff:.1e}  min margin text {min(text_m):.2e} gen {min(gen_m):.2e}  "
              f"margins<1e-3: {small}/{len(text_m) + len(gen_m)}  greedy hit rate {greedy_frac:.2f}")
        for f in sorted(d.iterdir()):
            print(f"      {f.name:36s} {f.stat().st_size:8d}  {file_sha(f)}")
    print(f"total fixture size: {total_bytes / 1024:.1f} KiB")
    shutil.rmtree(tok_dir)
    assert total_bytes < 3 * 1024 * 1024
    if not ok:
        print("FAILED: reloaded model does not reproduce reference logprobs", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
