#!/usr/bin/env python3
"""Render the chat messages OpenCompass's HuggingFacewithChatTemplate would send for
ceval_gen_5f30c7, cmmlu_gen_c13365 and mmlu_gen_4d595a (5 made-up dev docs + 1 test doc each),
with OpenCompass's own code: the dataset configs (exec'd), PromptTemplate,
BaseRetriever.generate_ice, PromptTemplate.generate_item (what generate_prompt_for_generate_task
calls), APITemplateParser.parse_template(mode='gen') with the model's default meta template, and
_convert_chat_messages. Heavy imports (torch, mmengine, datasets, the registries) are stubbed;
nothing of them is called on this path. Writes tests/fixtures/opencompass/chat_messages.json
(the messages before the tokenizer's chat template; see docs/opencompass-gen.md).

Usage: python3 -m venv /tmp/ocenv && /tmp/ocenv/bin/pip install --no-deps opencompass==0.5.4
       /tmp/ocenv/bin/python tools/render_oc_chat.py
"""
import sys, types, importlib.util, json, logging
from pathlib import Path
_spec = importlib.util.find_spec('opencompass')
ROOT = list(_spec.submodule_search_locations)[0]
def stub(name, **attrs):
    m = types.ModuleType(name); m.__dict__.update(attrs); sys.modules[name] = m; return m
class Reg:
    def register_module(self, *a, **k): return lambda f: f
stub('mmengine'); stub('mmengine.config', ConfigDict=dict, Config=dict); stub('mmengine.device', is_npu_available=lambda: False)
stub('datasets', Dataset=object, DatasetDict=dict); stub('mmengine.dist', is_main_process=lambda: True); stub('opencompass.utils.logging', get_logger=lambda *a, **k: logging.getLogger('oc'))
stub('torch')
reg = stub('opencompass.registry'); 
for n in ['TASKS','ICL_PROMPT_TEMPLATES','MODELS','TEXT_POSTPROCESSORS','ICL_RETRIEVERS']: setattr(reg, n, Reg())
pkg = stub('opencompass'); pkg.__path__ = [ROOT]
for sub in ['utils','models','openicl']:
    m = stub('opencompass.'+sub); m.__path__ = [f'{ROOT}/{sub}']
sys.modules['opencompass.utils'].get_logger = lambda *a, **k: logging.getLogger('oc')
def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path); m = importlib.util.module_from_spec(spec)
    sys.modules[name] = m; spec.loader.exec_module(m); return m
prompt = load('opencompass.utils.prompt', f'{ROOT}/utils/prompt.py')
load('opencompass.utils.types', f'{ROOT}/utils/types.py')
pt = load('opencompass.openicl.icl_prompt_template', f'{ROOT}/openicl/icl_prompt_template.py')
base = types.ModuleType('opencompass.models.base'); base.BaseModel = object; sys.modules['opencompass.models.base'] = base
base.LMTemplateParser = object
api = load('opencompass.models.base_api', f'{ROOT}/models/base_api.py')
ret = load('opencompass.openicl.icl_retriever.icl_base_retriever', f'{ROOT}/openicl/icl_retriever/icl_base_retriever.py')
hf = load('opencompass.models.huggingface_above_v4_33', f'{ROOT}/models/huggingface_above_v4_33.py')
PromptList = prompt.PromptList


def render(ice_cfg, prompt_cfg, ice_docs, doc, output_column):
    ice_t = pt.PromptTemplate(**ice_cfg)
    prompt_t = pt.PromptTemplate(**prompt_cfg) if prompt_cfg else None
    fake = types.SimpleNamespace(ice_separator='\n', ice_eos_token='\n', index_ds=ice_docs, dataset_reader=types.SimpleNamespace(output_column=output_column))
    ice = ret.BaseRetriever.generate_ice(fake, list(range(len(ice_docs))), ice_t)
    t = prompt_t or ice_t  # generate_prompt_for_generate_task
    p = t.generate_item(doc, output_field=output_column, output_field_replace_token='', ice_field_replace_token=ice)
    parsed = hf._get_meta_template(None).parse_template(p, mode='gen')
    return hf._convert_chat_messages([parsed])[0]

def load_config(path):
    # exec an OpenCompass dataset config with its imports stubbed (PromptTemplate stays a name)
    for mod, names in {'opencompass.openicl.icl_retriever': ['FixKRetriever', 'ZeroRetriever'],
                       'opencompass.openicl.icl_inferencer': ['GenInferencer'],
                       'opencompass.openicl.icl_evaluator': ['AccEvaluator', 'AccwithDetailsEvaluator'],
                       'opencompass.datasets': ['CEvalDataset', 'CMMLUDataset', 'MMLUDataset'],
                       'opencompass.utils.text_postprocessors': ['first_capital_postprocess', 'first_option_postprocess']}.items():
        m = sys.modules.get(mod) or stub(mod)
        for n in names: setattr(m, n, n)
    g = {}
    exec(open(path).read(), g)
    return g

CASES = {
  'ceval_gen_5f30c7': ('configs/datasets/ceval/ceval_gen_5f30c7.py', 'ceval_datasets', 'computer_network',
      [dict(question=f'示例题{i}', A='甲', B='乙', C='丙', D='丁', answer='ABCDA'[i]) for i in range(5)],
      dict(question='测试题', A='一', B='二', C='三', D='四', answer='C')),
  'cmmlu_gen_c13365': ('configs/datasets/cmmlu/cmmlu_gen_c13365.py', 'cmmlu_datasets', 'agronomy',
      [dict(question=f'示例题{i}', A='甲', B='乙', C='丙', D='丁', answer='ABCDA'[i]) for i in range(5)],
      dict(question='测试题', A='一', B='二', C='三', D='四', answer='C')),
  'mmlu_gen_4d595a': ('configs/datasets/mmlu/mmlu_gen_4d595a.py', 'mmlu_datasets', 'college_biology',
      [dict(input=f'Example {i}?', A='w', B='x', C='y', D='z', target='ABCDA'[i]) for i in range(5)],
      dict(input='Test?', A='p', B='q', C='r', D='s', target='C')),
}
out = {}
for name, (path, var, subject, ice_docs, doc) in CASES.items():
    g = load_config(f'{ROOT}/{path}')
    ds = [d for d in g[var] if d['name'] == subject][0]
    infer = ds['infer_cfg']
    def cfg(c):
        if not c: return None
        c = dict(c); c.pop('type'); return c
    col = ds['reader_cfg']['output_column']
    msgs = render(cfg(infer['ice_template']), cfg(infer.get('prompt_template')), ice_docs, doc, col)
    out[name] = {'subject': subject, 'fewshot_docs': ice_docs, 'doc': doc, 'messages': msgs}
version = open(f'{ROOT}/__init__.py').read().split("__version__ = ")[1].split("\n")[0].strip("'\"")
dest = Path(__file__).resolve().parent.parent / 'tests' / 'fixtures' / 'opencompass' / 'chat_messages.json'
dest.write_text(json.dumps({'opencompass_version': version, 'cases': out}, ensure_ascii=False, indent=1) + '\n')
print(f'{len(out)} cases -> {dest}')
