#!/usr/bin/env python3
"""Reference logit dump from Hugging Face transformers in float32, in the format `pingce logits`
writes (docs/logit-dump.md), for `pingce compare REF CAND`.

    pip install -r tools/requirements.txt
    python3 tools/export_reference.py --model tests/fixtures/tiny-llama \
        --requests evals/samples/requests.jsonl --out ref.safetensors
    python3 tools/export_reference.py --model models/SmolLM2-135M-Instruct.Q4_1.gguf \
        --requests evals/samples/requests.jsonl --out ref.safetensors
    python3 tools/export_reference.py --model M --text FILE.txt --out ref.safetensors   # rolling windows

--model is a Hugging Face folder (config.json, *.safetensors, tokenizer.json) or a .gguf file, which
transformers loads with `from_pretrained(folder, gguf_file=name)`, dequantized to float32.

Requests are tokenized exactly as pingce (and lm-evaluation-harness's HFLM) does:
  * `tokenizer(s, add_special_tokens=False)`;
  * an empty context ("" exactly) becomes [prefix] with the continuation encoded alone, where prefix is
    the tokenizer's BOS id, else its EOS id (HFLM.prefix_token_id);
  * otherwise `_encode_pair`: trailing whitespace of the context (Python str.rstrip) moves to the
    continuation, whole = encode(context + continuation), context_enc = encode(context.rstrip()),
    continuation_enc = whole[len(context_enc):].
Each request is one forward pass (no batching, no padding) with eager attention, use_cache=False, on
the CPU with one thread; log_softmax in float32. The top-k is torch.topk (descending); the tail mass
ln(1 - sum exp(topk)) is computed in float64 exactly as pingce does (log1mexp of the log-sum-exp).
The file is written to a temporary file beside --out and renamed, so nothing half-written is left.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

FORMAT = "pingce-logits"
FORMAT_VERSION = 1
MAX_TOPK = 32


def sha256_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
            n += len(chunk)
    return h.hexdigest(), n


def model_files(model: Path) -> list[Path]:
    """The files pingce's Engine::load records for the same --model, in the same order."""
    if model.is_file():
        return [model]
    index = model / "model.safetensors.index.json"
    if index.exists():
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        weights = [model / n for n in names]
    else:
        weights = [model / "model.safetensors"]
    return weights + [model / "config.json", model / "tokenizer.json"]


def py_rstrip_len(s: str) -> int:
    return len(s.rstrip())


def log1mexp(x: float) -> float:
    """ln(1 - exp(x)); -inf for x >= 0."""
    if math.isnan(x):
        return math.nan
    if x >= 0.0:
        return -math.inf
    if x > -math.log(2.0):
        return math.log(-math.expm1(x))
    return math.log1p(-math.exp(x))


def tail_logmass(lps: np.ndarray) -> float:
    """ln(1 - sum exp(lp)) in float64, as pingce::conformance::tail_logmass."""
    v = lps.astype(np.float64)
    m = float(v.max()) if v.size else -math.inf
    if m == -math.inf:
        return 0.0
    lse = m + math.log(float(np.sum(np.exp(v - m))))
    return log1mexp(lse)


def read_requests(path: Path) -> list[dict]:
    out = []
    # Lines end at "\n" only (as Rust's BufRead::lines, which pingce uses): str.splitlines would also
    # split inside a JSON string holding U+2028 or U+001C.
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    for i, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError as e:
            raise SystemExit(f"error: {path}:{i}: not JSON ({e})")
        if not isinstance(r, dict) or set(r) - {"context", "continuation", "gold"} or not isinstance(r.get("context"), str) \
                or not isinstance(r.get("continuation"), str) or not isinstance(r.get("gold", False), bool):
            raise SystemExit(f'error: {path}:{i}: expected {{"context": string, "continuation": string}} (and optionally "gold": bool)')
        out.append(r)
    if not out:
        raise SystemExit(f"error: {path}: no requests (the file is empty)")
    return out


def rolling_windows(tokens: list[int], prefix: int, max_seq_len: int, context_len: int = 1) -> list[tuple[list[int], list[int]]]:
    """lm_eval.utils.get_rolling_token_windows followed by make_disjoint_window, as HFLM's
    loglikelihood_rolling calls them (and pingce's engine::requests::rolling_windows)."""
    assert 1 <= context_len <= max_seq_len
    if not tokens:
        return []
    pred_len = max_seq_len - context_len + 1
    n = len(tokens)
    first = min(max_seq_len, n)
    out = [([prefix] + tokens[: first - 1], tokens[:first])]
    predicted = first
    while predicted < n:
        wlen = min(n - predicted, pred_len)
        end = predicted + wlen
        out.append((tokens[end - max_seq_len - 1 : end - 1], tokens[end - wlen : end]))
        predicted += wlen
    return [(a[: len(a) - (len(b) - 1)], b) for a, b in out]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, type=Path, help="Hugging Face folder or .gguf file")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--requests", type=Path, help='JSONL of {"context", "continuation"} (optionally "gold": bool)')
    src.add_argument("--text", type=Path, help="a text file scored whole in lm-eval's rolling windows")
    ap.add_argument("--out", required=True, type=Path, help="output .safetensors")
    ap.add_argument("--top-k", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    k = a.top_k
    if not 1 <= k <= MAX_TOPK:
        raise SystemExit(f"error: --top-k {k}: must be 1..={MAX_TOPK}")

    torch.set_num_threads(a.threads)
    torch.use_deterministic_algorithms(True)

    input_path: Path = a.requests if a.requests is not None else a.text
    if a.requests is not None:
        requests = read_requests(a.requests)
        text = None
    else:
        requests = None
        with open(a.text, encoding="utf-8", newline="") as f:
            text = f.read()
        if not text:
            raise SystemExit(f"error: {a.text}: empty text")
    model_path: Path = a.model
    if model_path.is_file():
        d, name = str(model_path.parent), model_path.name
        tok = AutoTokenizer.from_pretrained(d, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, dtype=torch.float32, attn_implementation="eager")
        tok_source = "gguf metadata, rebuilt by transformers (AutoTokenizer gguf_file=)"
    elif model_path.is_dir():
        tok = AutoTokenizer.from_pretrained(str(model_path))
        model = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=torch.float32, attn_implementation="eager")
        tok_source = "tokenizer.json (AutoTokenizer)"
    else:
        raise SystemExit(f"error: --model {model_path}: no such file or folder")
    model.eval()
    assert all(p.dtype == torch.float32 for p in model.parameters())
    cfg = model.config
    vocab = int(cfg.vocab_size)
    max_length = int(cfg.max_position_embeddings)
    prefix = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    if prefix is None:
        raise SystemExit("error: the tokenizer has neither a BOS nor an EOS token to prefix an empty context")

    def enc(s: str) -> list[int]:
        return list(tok(s, add_special_tokens=False).input_ids)

    rows = {n: [] for n in ["target_logprob", "topk_ids", "topk_logprobs", "tail_logmass", "token_ids", "request_index", "position", "is_argmax"]}

    def score(ri: int, ids: list[int], first: int) -> None:
        """One forward pass over ids[:-1]; rows for the targets ids[first:]."""
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids[:-1]]), use_cache=False).logits[0].to(torch.float32)
        logp = torch.log_softmax(logits, dim=-1)
        for p in range(first, len(ids)):
            row = logp[p - 1]
            v, i = torch.topk(row, k)
            lps = v.numpy().astype(np.float32)
            tgt = ids[p]
            rows["target_logprob"].append(np.float32(row[tgt].item()))
            rows["topk_ids"].append(i.numpy().astype(np.int32))
            rows["topk_logprobs"].append(lps)
            rows["tail_logmass"].append(np.float32(tail_logmass(lps)))
            rows["token_ids"].append(tgt)
            rows["request_index"].append(ri)
            rows["position"].append(p)
            rows["is_argmax"].append(int(torch.argmax(row).item()) == tgt)

    if requests is not None:
        for ri, r in enumerate(requests):
            ctx, cont = r["context"], r["continuation"]
            if ctx == "":
                c, t = [prefix], enc(cont)
            else:
                n = py_rstrip_len(ctx)
                whole = enc(ctx + cont)
                c = enc(ctx[:n])
                t = whole[len(c):]
            if not t:
                raise SystemExit(f"error: {input_path}: request {ri + 1}: the continuation encodes to no tokens")
            if not c:
                raise SystemExit(f"error: {input_path}: request {ri + 1}: the context encodes to no tokens")
            if len(c) + len(t) > max_length + 1:
                raise SystemExit(f"error: {input_path}: request {ri + 1}: {len(c) + len(t)} tokens, longer than the model's context of {max_length}")
            score(ri, c + t, len(c))
        n_requests = len(requests)
    else:
        ids = enc(text)
        if not ids:
            raise SystemExit(f"error: {input_path}: the text encodes to no tokens")
        windows = rolling_windows(ids, prefix, max_length)
        for wi, (c, t) in enumerate(windows):
            score(wi, c + t, len(c))
        n_requests = len(windows)

    n = len(rows["target_logprob"])
    tensors = {
        "target_logprob": np.array(rows["target_logprob"], dtype=np.float32),
        "topk_ids": np.stack(rows["topk_ids"]).astype(np.int32),
        "topk_logprobs": np.stack(rows["topk_logprobs"]).astype(np.float32),
        "tail_logmass": np.array(rows["tail_logmass"], dtype=np.float32),
        "token_ids": np.array(rows["token_ids"], dtype=np.int32),
        "request_index": np.array(rows["request_index"], dtype=np.int32),
        "position": np.array(rows["position"], dtype=np.int32),
        "is_argmax": np.array(rows["is_argmax"], dtype=np.uint8),
    }
    if requests is not None:
        tensors["context_sha256"] = np.stack([np.frombuffer(hashlib.sha256(r["context"].encode("utf-8")).digest(), dtype=np.uint8) for r in requests])
    if requests is not None and any("gold" in r for r in requests):
        tensors["gold"] = np.array([int(r["gold"]) if "gold" in r else -1 for r in requests], dtype=np.int8)

    files = []
    for f in model_files(model_path):
        sha, size = sha256_file(f)
        files.append({"path": str(f), "sha256": sha, "bytes": size})
    in_sha, _ = sha256_file(input_path)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "producer": f"transformers {transformers.__version__} (torch {torch.__version__}, float32, eager attention, CPU)",
        "pingce_version": None,
        "model": {"path": str(model_path), "files": files, "vocab_size": vocab, "max_length": max_length},
        "tokenizer": {
            "source": tok_source,
            "class": type(tok).__name__,
            "vocab_size": len(tok),
            "bos_id": tok.bos_token_id,
            "eos_id": tok.eos_token_id,
            "prefix_token": prefix,
            "add_special_tokens": False,
        },
        "input": {"kind": "requests" if requests is not None else "text", "path": str(input_path), "sha256": in_sha},
        "adapter": f"CPU ({platform.machine()}, {platform.processor() or 'unknown'}), torch {a.threads} thread(s)",
        "top_k": k,
        "positions": n,
        "requests": n_requests,
        "extra": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "numpy": np.__version__,
            "dtype": "float32",
            "attn_implementation": "eager",
        },
    }
    out: Path = a.out
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    try:
        save_file(tensors, str(tmp), metadata={"manifest": json.dumps(manifest, ensure_ascii=False)})
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    print(f"wrote {out} ({n} positions in {n_requests} {'requests' if requests is not None else 'windows'}, top-{k})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
