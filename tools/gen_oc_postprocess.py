#!/usr/bin/env python3
"""Run OpenCompass's own answer post-processors over a table of typical model answers and write
tests/fixtures/opencompass/postprocess.json; tests/oc_postprocess.rs checks that pingce's
src/eval/postprocess.rs gives the same output for every row.

The functions come from the real `opencompass/utils/text_postprocessors.py` of the installed
wheel. Its only project import is `opencompass.registry.TEXT_POSTPROCESSORS` (which pulls in
mmengine), so that module is stubbed with a no-op registry and the file is loaded by path; the
package's `utils/__init__.py` (heavy imports) is never run.

Usage (offline from PyPI is fine, nothing else is downloaded):
    python3 -m venv /tmp/ocenv && /tmp/ocenv/bin/pip install --no-deps opencompass==0.5.4
    /tmp/ocenv/bin/python tools/gen_oc_postprocess.py
"""

import importlib.util
import json
import os
import sys
import types
from pathlib import Path


def load_text_postprocessors():
    spec = importlib.util.find_spec("opencompass")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        sys.exit("opencompass is not installed (pip install --no-deps opencompass==0.5.4)")
    root = Path(list(spec.submodule_search_locations)[0])

    class Registry:
        def register_module(self, *args, **kwargs):
            return lambda f: f

    registry = types.ModuleType("opencompass.registry")
    registry.TEXT_POSTPROCESSORS = Registry()
    sys.modules["opencompass.registry"] = registry
    path = root / "utils" / "text_postprocessors.py"
    mspec = importlib.util.spec_from_file_location("oc_text_postprocessors", path)
    mod = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(mod)
    version = (root / "__init__.py").read_text().split("__version__ = ")[1].split("\n")[0].strip("'\"")
    return mod, version


# Raw answers as chat models write them: Chinese and English, bare letters, explanations, markdown,
# thinking traces, listings, lowercase and full-width letters, no option at all, edge whitespace.
TEXTS = [
    "B",
    "B.",
    " C ",
    "\n\nD\n",
    "A. 1984",
    "答案是B",
    "答案是 B",
    "答案：C",
    "答案: D",
    "答案:A",
    "答案为 C。",
    "答案选D",
    "答案应该是A",
    "答案应该选 B",
    "答案选项应该是C",
    "答案选项为：D",
    "答案选项 (**B**)",
    "答案是: A",
    "选项A和B中，正确答案为 D。",
    "正确答案是C。因为题干说明了……",
    "根据题意，A项错误，B项错误，C项正确，故选C。",
    "故选B",
    "只有选项C是对的",
    "只有A不正确",
    "说法不正确的是 D",
    "B是正确的",
    "C 是正确答案",
    "选项 D 正确",
    "所以答 A",
    "所以B。",
    "因此C",
    "显然D。",
    "综上，B",
    "分析：这道题考查的是地理知识。\n\nA. 错误\nB. 错误\nC. 正确\nD. 错误\n\n答案：C",
    "让我们一步一步思考。首先排除A，因为它与事实不符；其次B也不对。最终答案是D。",
    "我认为是B，但也可能是C。",
    "这道题我不确定。",
    "以上选项都不对",
    "答案是：\n\nB",
    "答案是（B）",
    "答案是 **C**",
    "答案：Ｂ",
    "答案是ｃ",
    "正确选项为：A",
    "The answer is (C).",
    "The answer is C",
    "The answer is: D",
    "the answer is b",
    "The answer is **A**",
    "The correct answer is B.",
    "The correct answer is option D",
    "The answer is option (A)",
    "The answer to the question is C.",
    "**Answer: B**",
    "Answer: C",
    "ANSWER: D",
    "answer: a",
    "answer: b. Because ...",
    "Final answer: A",
    "Therefore, the correct answer is $\\boxed{C}$.",
    "So the correct option is \\boxed{D}",
    "The correct answer option is: \\boxed{A}",
    "I think the answer is A, but B is also plausible.",
    "Both A and B are wrong; C is right.",
    "Let's analyze each option.\nA. Incorrect, because ...\nB. Incorrect.\nC. Correct.\nD. Incorrect.\nTherefore the answer is C.",
    "A. Paris\nB. London\nC. Berlin\nD. Rome",
    "Option B is correct.",
    "(B)",
    "[C]",
    "D)",
    "A: The mitochondria",
    "<think>\nThe question asks about X. Option A seems right, but let me check B.\nB fits better.\n</think>\n\nThe answer is B.",
    "<think>Hmm, A or C? I'll go with C.</think>\nC",
    "<think>\n嗯，题目问的是……A不对，B也不对。\n</think>\n\n答案是D",
    "Okay, so I need to figure out which option is correct. Let me think.\n\nAfter considering, the answer is A.",
    "None of the options is correct.",
    "I don't know.",
    "",
    "   ",
    "42",
    "The answer is 42.",
    "Answer: E",
    "The answer is E.",
    "a",
    "b)",
    "Ｃ",
    "Ｄ．正确",
    "答案是Ⓐ",
    "1. B",
    "1.C",
    "1. The first step is to read the question.",
    "Step 1: A is wrong. Step 2: B is wrong. Step 3: So C.",
    "Based on the passage, it is clearly B",
    "It is B, since the others are false.",
    "My choice: D",
    "选B",
    "选择：C",
    "我选择 A。",
    "本题选D。",
    "正确答案：B",
    "故答案为：A。",
    "即B",
    "，故C。",
    "因此答案应为D",
    "综上所述，答案是 C 。",
    "The answer is\n(B)",
    "the correct answer is:  (D)",
    "THE ANSWER IS A",
    "Answer:\nB",
    "answer : c",
    "Correct answer:** C **",
    "Among A, B, C and D, only D holds.",
    "All of A, B and C are true, so the answer is D.",
    "Is it A? No. B? No. C!",
    "I choose option c.",
    "xyz\nA",
    "What About B",
    "Answer-A",
    "答案是 “B”",
    "答案是：选项C",
    "答案选项是: D",
    "The answer is (A) and (B).",
    "\u3000答案：B\u3000",
    "答案:\u00a0C",
    "答案\u001cD",
    "\u001cB\u001c",
    "The answer is:\u2003D",
]

# Option sets other than ABCD that a config may pass.
OPTION_SETS = ["ABCD", "ABCDE", "ABCDEFGHIJ"]


def main():
    mod, version = load_text_postprocessors()
    rows = []
    for text in TEXTS:
        rows.append({"function": "first_capital_postprocess", "text": text,
                     "expected": mod.first_capital_postprocess(text)})
        rows.append({"function": "last_capital_postprocess", "text": text,
                     "expected": mod.last_capital_postprocess(text)})
        for options in OPTION_SETS:
            for cushion in (True, False):
                if options != "ABCD" and not cushion:
                    continue
                rows.append({"function": "first_option_postprocess", "text": text,
                             "options": options, "cushion": cushion,
                             "expected": mod.first_option_postprocess(text, options, cushion)})
    out = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "opencompass" / "postprocess.json"
    os.makedirs(out.parent, exist_ok=True)
    doc = {
        "source": "opencompass/utils/text_postprocessors.py",
        "opencompass_version": version,
        "python": sys.version.split()[0],
        "rows": rows,
    }
    out.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n")
    print(f"{len(TEXTS)} texts, {len(rows)} rows -> {out}")


if __name__ == "__main__":
    main()
