"""Token ids lm-eval's HF backend scores for chat-templated multiple-choice requests.

Builds a tokenizer-only fixture (tests/fixtures/chat_tokens): the tiny Qwen2 test tokenizer
(tests/fixtures/tiny-qwen2/tokenizer.json) with Qwen2.5's chat special tokens <|im_start|> and
<|im_end|> added and Qwen2.5-Instruct's chat template in tokenizer_config.json. Then, for the
contexts lm-eval 0.4.13 rendered for arc_easy under --apply_chat_template
(tests/fixtures/lm_eval_chat/arc_easy.*.json), it encodes each (context, continuation) pair with
lm-eval's own `TemplateLM._encode_pair` and `loglikelihood` empty-context rule, and a `tok_encode`
that is `HFLM.tok_encode` (lm_eval/models/huggingface.py, 0.4.13) line for line: the tokenizer's
default special tokens unless the text starts with the prefix token's text (HFLM cannot be
imported without torch, so its method is reproduced here; the helpers are lm-eval's).

    python3 tools/gen_chat_tokens.py   (transformers 5.23.0, lm_eval 0.4.13; no torch needed)
"""
import json
import pathlib

from lm_eval.api.model import TemplateLM
from lm_eval.models.utils import _add_special_kwargs, has_bos_prefix
from transformers import AutoTokenizer

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "chat_tokens"


def build_fixture():
    tok = json.loads((ROOT / "tests/fixtures/tiny-qwen2/tokenizer.json").read_text())
    n = len(tok["model"]["vocab"]) + len(tok["added_tokens"])
    for i, t in enumerate(["<|im_start|>", "<|im_end|>"]):
        tok["added_tokens"].append({"id": n + i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True})
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False))
    cfg = json.loads((ROOT / "tests/fixtures/tiny-qwen2/tokenizer_config.json").read_text())
    cfg["chat_template"] = (ROOT / "tests/fixtures/chat_templates/qwen2.5-instruct/chat_template.jinja").read_text()
    cfg["eos_token"] = "<|im_end|>"
    cfg["bos_token"] = None
    (OUT / "tokenizer_config.json").write_text(json.dumps(cfg, ensure_ascii=False, indent=1))


class LM(TemplateLM):
    """The parts of HFLM that turn a request into tokens (causal backend, add_bos_token=None)."""

    backend = "causal"
    add_bos_token = None

    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    @property
    def prefix_token_id(self):  # HFLM.prefix_token_id without a custom one
        return self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.tokenizer.eos_token_id

    @property
    def eot_token_id(self):
        return self.tokenizer.eos_token_id

    def tok_encode(self, string, add_special_tokens=None, left_truncate_len=None, **kwargs):
        special_tokens_kwargs = _add_special_kwargs(add_special_tokens, self.add_bos_token)
        if add_special_tokens is None and has_bos_prefix(string, self.tokenizer.decode(self.prefix_token_id)):
            special_tokens_kwargs["add_special_tokens"] = False
        return self.tokenizer.encode(string, **special_tokens_kwargs)

    def _loglikelihood_tokens(self, *a, **k):
        raise NotImplementedError

    def loglikelihood_rolling(self, *a, **k):
        raise NotImplementedError

    def generate_until(self, *a, **k):
        raise NotImplementedError


def main():
    build_fixture()
    lm = LM(AutoTokenizer.from_pretrained(OUT))
    cases = []
    for f in sorted((ROOT / "tests/fixtures/lm_eval_chat").glob("arc_easy.*.json")):
        fx = json.loads(f.read_text())
        for d in fx["docs"]:
            for cont in d["continuations"]:
                ctx = d["context"]
                # TemplateLM.loglikelihood: an empty context becomes the prefix token.
                c, t = ([lm.prefix_token_id], lm.tok_encode(cont)) if ctx == "" else lm._encode_pair(ctx, cont)
                cases.append({"file": f.name, "doc_id": d["doc_id"], "context": ctx, "continuation": cont, "context_tokens": c, "continuation_tokens": t})
    (OUT / "expected.json").write_text(json.dumps({"transformers": __import__("transformers").__version__, "lm_eval": "0.4.13", "cases": cases}, ensure_ascii=False, indent=0))
    print(f"{len(cases)} requests")


if __name__ == "__main__":
    main()
