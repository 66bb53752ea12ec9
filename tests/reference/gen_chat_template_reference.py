#!/usr/bin/python3
"""Writes tests/data/chat_template_reference.json: chat templates rendered by jinja2 exactly
as Hugging Face's apply_chat_template sets it up (ImmutableSandboxedEnvironment with
trim_blocks, lstrip_blocks and loopcontrols; its tojson; raise_exception), for the
templates in tests/data/chat_templates/ and several conversations. The C++ test
common/model/hf_chat_template_test.cc compares byte for byte.

Run from the repository root: /usr/bin/python3 tests/reference/gen_chat_template_reference.py
(needs Debian's python3-jinja2)."""
import json
import os

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
TEMPLATES = os.path.join(ROOT, "tests", "data", "chat_templates")


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    # Hugging Face's replacement for jinja2's tojson (no HTML escaping).
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


SPECIAL = {
    "qwen2.5.jinja": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    "qwen3.jinja": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    "llama3.jinja": {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"},
    "llama3.1.jinja": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
}

TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather of a city, in \u00b0C.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}

CONVERSATIONS = [
    ("user only", [{"role": "user", "content": "What is 2 + 2?"}], {}),
    ("system and user", [{"role": "system", "content": "You are a careful mathematician."},
                         {"role": "user", "content": "Solve x^2 = 4. Put the final answer in \\boxed{}."}], {}),
    ("multi-turn", [{"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hi!"},
                    {"role": "assistant", "content": "Hello. How can I help?"},
                    {"role": "user", "content": "Name a prime."},
                    {"role": "assistant", "content": "7"},
                    {"role": "user", "content": "Another?"}], {}),
    ("ends with assistant", [{"role": "user", "content": "Say yes."},
                             {"role": "assistant", "content": "Yes."}], {}),
    ("whitespace and unicode", [{"role": "user", "content": "  caf\u00e9 \u4e2d\u6587 \U0001F600\n\n  tabs\there  \n"},
                                {"role": "assistant", "content": "\n ok \n"},
                                {"role": "user", "content": "line1\nline2"}], {}),
    ("thinking in history", [{"role": "user", "content": "1+1?"},
                             {"role": "assistant", "content": "<think>\nadd them\n</think>\n\n2"},
                             {"role": "user", "content": "2+2?"}], {}),
    ("empty system", [{"role": "system", "content": ""}, {"role": "user", "content": "x"}], {}),
    ("thinking off", [{"role": "user", "content": "Quick: 3*3?"}], {"enable_thinking": False}),
    ("date string", [{"role": "user", "content": "Date?"}], {"date_string": "01 Dec 2026"}),
    ("tools", [{"role": "system", "content": "Use tools."},
               {"role": "user", "content": "Weather in Paris?"}], {"tools": [TOOL]}),
]


def main():
    env = environment()
    cases = []
    for name in sorted(os.listdir(TEMPLATES)):
        if not name.endswith(".jinja"):
            continue
        with open(os.path.join(TEMPLATES, name), encoding="utf-8") as f:
            template = env.from_string(f.read())
        for title, messages, extra in CONVERSATIONS:
            for gen in (False, True):
                kwargs = dict(SPECIAL[name])
                kwargs.update(extra)
                try:
                    text = template.render(messages=messages, add_generation_prompt=gen, **kwargs)
                    error = None
                except jinja2.exceptions.TemplateError as e:
                    text, error = None, str(e)
                cases.append({"template": name, "title": title, "messages": messages,
                              "add_generation_prompt": gen, "special_tokens": SPECIAL[name],
                              "extra": extra, "rendered": text, "error": error})
    out = os.path.join(ROOT, "tests", "data", "chat_template_reference.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"generator": "tests/reference/gen_chat_template_reference.py",
                   "jinja2": jinja2.__version__, "cases": cases}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {len(cases)} cases to {out}")


if __name__ == "__main__":
    main()
