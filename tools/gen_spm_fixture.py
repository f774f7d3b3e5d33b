#!/usr/bin/env python3
"""Generate tests/fixtures/spm/: a tiny SentencePiece BPE vocabulary stored the way llama.cpp stores
a llama (Llama 2 / Mistral) tokenizer in GGUF metadata, plus reference token ids.

    pip install -r tools/requirements.txt && python3 tools/gen_spm_fixture.py

Offline and deterministic (sentencepiece trained on one thread on an inline corpus).

Output:
    tiny-spm.model   the trained SentencePiece model (a few KB; kept so the references can be
                     re-derived without retraining)
    tiny-spm.gguf    GGUF v3 holding only metadata: general.architecture = "llama" and the
                     tokenizer.ggml.* keys exactly as convert_hf_to_gguf.py's
                     _set_vocab_sentencepiece writes them (no tensors)
    reference.json   per string: ids from (a) sentencepiece itself, (b) transformers'
                     LlamaTokenizer converted from the .model (legacy=False and legacy=True),
                     (c) transformers' tokenizer loaded from the GGUF; and each one's decode
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import gguf  # noqa: E402
import sentencepiece as spm  # noqa: E402
import tokenizers  # noqa: E402
import transformers  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "spm"
VOCAB_SIZE = 512

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello world! Hello there, how are you doing today?",
    "A language model assigns a probability to every sequence of tokens.",
    "We evaluate the model on a held-out set and report the accuracy.",
    "The kernel reads the input buffer, multiplies it by the weights and writes the output.",
    "She said that the weather would be fine, but it rained all afternoon.",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100 2024 3.14159 1e-5 65536",
    "In 1969, 3 astronauts flew 384400 km to the Moon and back.",
    "今天天气很好，我们去公园散步吧。",
    "机器学习模型需要大量的数据来训练。",
    "你好，世界！这是一个测试。",
    "def add(a, b):\n    return a + b\n",
    "for i in range(10):\n    if i % 2 == 0:\n        print(i)\n",
    "fn main() {\n    let x = vec![1, 2, 3];\n    println!(\"{:?}\", x);\n}\n",
    "@compute @workgroup_size(64)\nfn main(@builtin(global_invocation_id) id: vec3<u32>) {\n    out[id.x] = a[id.x] * b[id.x];\n}\n",
    "struct Params {\n    n: u32,\n    scale: f32,\n}\n",
    "    indented line\n\tTabbed line\n",
    "the the the and and of of to to in in is is it it that that",
    "tokenizer tokens tokenize tokenized evaluation evaluate evaluating",
]
# Repeat so the common English pieces win merges over one-off Chinese pairs.
TRAIN_TEXT = "\n".join(CORPUS * 3 + CORPUS[:8] * 5)

STRINGS = [
    "Hello world",
    "Hello world!",
    "The quick brown fox jumps over the lazy dog.",
    "hello",
    " Hello",
    "  Hello",
    "Hello ",
    "Hello  world",
    "Hello   world   ",
    " ",
    "   ",
    "",
    "a",
    "line one\nline two",
    "\n",
    "\n\nparagraph",
    "\tTabbed\ttext",
    "def add(a, b):\n    return a + b\n",
    "for i in range(10):\n        print(i)",
    "今天天气很好",
    "你好，世界！",
    "机器学习 and English mixed 模型",
    "日本語のテキスト",
    "😀",
    "emoji 🚀 rocket 🎉!",
    "café naïve résumé",
    "Ünïcödé ß ø å",
    "€100 — “quoted” ‘text’ …",
    "12345",
    "3.14159 and 2024-06-01",
    "0",
    "1e-5 65536 0x1F",
    "<s>",
    "<s>Hello",
    "Hello <s> world",
    "</s>",
    "<unk>",
    "<0x41>",
    "▁already▁spaced",
    "fn main() {\n    let x = vec![1, 2, 3];\n}",
    "ÿ\u00a0non-breaking space",
    "tab\there  and\r\nCRLF",
    "evaluation tokenizer tokenized",
]

# llama.cpp's gguf.TokenType / SentencePieceTokenTypes.
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


def train(prefix: Path) -> None:
    """The trainer settings of Llama 2's tokenizer.model (normalizer_spec/trainer_spec), scaled down."""
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text(TRAIN_TEXT, encoding="utf-8")
        spm.SentencePieceTrainer.train(
            input=str(corpus),
            model_prefix=str(prefix),
            model_type="bpe",
            vocab_size=VOCAB_SIZE,
            byte_fallback=True,
            character_coverage=1.0,
            split_digits=True,
            allow_whitespace_only_pieces=True,
            remove_extra_whitespaces=False,
            normalization_rule_name="identity",
            add_dummy_prefix=True,
            split_by_unicode_script=True,
            split_by_whitespace=True,
            max_sentence_length=4192,
            unk_id=0,
            bos_id=1,
            eos_id=2,
            pad_id=-1,
            unk_surface=" \u2047 ",
            num_threads=1,
            input_sentence_size=0,
            shuffle_input_sentence=False,
            minloglevel=2,
        )


def write_gguf(sp: spm.SentencePieceProcessor, path: Path) -> None:
    """convert_hf_to_gguf.py's TextModel._create_vocab_sentencepiece + _set_vocab_sentencepiece
    (tokenizer.ggml.* keys) and gguf.SpecialVocab for a Llama tokenizer_config.json
    (add_bos_token true, add_eos_token false); no hparams or tensors."""
    tokens, scores, types = [], [], []
    for i in range(sp.vocab_size()):
        tokens.append(sp.IdToPiece(i).encode("utf-8"))
        scores.append(sp.GetScore(i))
        t = NORMAL
        if sp.IsUnknown(i):
            t = UNKNOWN
        elif sp.IsControl(i):
            t = CONTROL
        elif sp.IsUnused(i):
            t = UNUSED
        elif sp.IsByte(i):
            t = BYTE
        types.append(t)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    # The converter writes add_space_prefix only when the model's normalizer_spec.add_dummy_prefix is
    # false; Llama-family files from newer converters carry it as true. The reader defaults to true.
    w.add_add_space_prefix(True)
    w.add_bos_token_id(sp.bos_id())
    w.add_eos_token_id(sp.eos_id())
    w.add_unk_token_id(sp.unk_id())
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def hf_from_model(model: Path, legacy: bool):
    """LlamaTokenizer converted from the SentencePiece .model (LlamaConverter)."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "tokenizer.model").write_bytes(model.read_bytes())
        (d / "tokenizer_config.json").write_text(
            json.dumps({"tokenizer_class": "LlamaTokenizer", "legacy": legacy, "add_bos_token": True, "add_eos_token": False})
        )
        tok = transformers.LlamaTokenizer.from_pretrained(str(d), legacy=legacy, from_slow=True)
        return tok


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    model = OUT / "tiny-spm.model"
    with tempfile.TemporaryDirectory() as tmp:
        prefix = Path(tmp) / "tiny-spm"
        train(prefix)
        # The trainer records the (temporary) corpus and output paths; fix them for byte-identical reruns.
        from sentencepiece import sentencepiece_model_pb2 as pb

        proto = pb.ModelProto()
        proto.ParseFromString(prefix.with_suffix(".model").read_bytes())
        del proto.trainer_spec.input[:]
        proto.trainer_spec.input.append("corpus.txt")
        proto.trainer_spec.model_prefix = "tiny-spm"
        model.write_bytes(proto.SerializeToString())
    sp = spm.SentencePieceProcessor(model_file=str(model))
    gguf_path = OUT / "tiny-spm.gguf"
    write_gguf(sp, gguf_path)

    refs = {"sentencepiece": (lambda s: sp.encode(s), lambda ids: sp.decode(ids))}
    for legacy in (False, True):
        tok = hf_from_model(model, legacy)
        refs[f"hf_model_legacy_{str(legacy).lower()}"] = (
            lambda s, t=tok: t.encode(s, add_special_tokens=False),
            lambda ids, t=tok: t.decode(ids),
        )
    gguf_error = None
    try:
        tok = transformers.AutoTokenizer.from_pretrained(str(OUT), gguf_file=gguf_path.name)
        refs["hf_gguf"] = (lambda s, t=tok: t.encode(s, add_special_tokens=False), lambda ids, t=tok: t.decode(ids))
        hf_gguf_class = type(tok).__name__
        hf_gguf_backend = json.loads(tok.backend_tokenizer.to_str())
    except Exception as e:  # recorded, not fatal: sentencepiece is then the reference
        gguf_error = f"{type(e).__name__}: {e}"
        print("transformers could not load the GGUF tokenizer:", gguf_error, file=sys.stderr)

    cases = []
    for s in STRINGS:
        case = {"text": s}
        for name, (enc, dec) in refs.items():
            ids = list(enc(s))
            case[name] = {"ids": ids, "decode": dec(ids)}
        cases.append(case)

    names = list(refs)
    agree = {}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            agree[f"{a} == {b}"] = [c["text"] for c in cases if c[a]["ids"] != c[b]["ids"]]
    meta = {
        "versions": {
            "sentencepiece": spm.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "gguf": gguf.__version__ if hasattr(gguf, "__version__") else "0.19.0",
        },
        "vocab_size": sp.vocab_size(),
        "references": {
            "sentencepiece": "SentencePieceProcessor.encode(text) (no BOS/EOS); decode(ids)",
            "hf_model_legacy_false": "LlamaTokenizer.from_pretrained(dir with tokenizer.model, legacy=False, from_slow=True)"
            ".encode(text, add_special_tokens=False); decode(ids)",
            "hf_model_legacy_true": "same with legacy=True",
            "hf_gguf": "AutoTokenizer.from_pretrained(dir, gguf_file='tiny-spm.gguf').encode(text, add_special_tokens=False); decode(ids)",
        },
        "hf_gguf_error": gguf_error,
        "hf_gguf_class": hf_gguf_class if gguf_error is None else None,
        "hf_gguf_pipeline": None
        if gguf_error is not None
        else {k: hf_gguf_backend.get(k) for k in ("normalizer", "pre_tokenizer", "decoder")},
        "disagreements": agree,
    }
    (OUT / "reference.json").write_text(
        json.dumps({"meta": meta, "cases": cases}, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    for k, v in agree.items():
        print(f"{k}: {len(v)} differ {v}")
    for p in sorted(OUT.iterdir()):
        print(p.relative_to(ROOT), p.stat().st_size, "bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
