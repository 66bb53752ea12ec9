// Encodes a text file with transformers.js (@lenml/tokenizers) and a tokenizer.json, and
// prints {"seconds", "ids"} as JSON: the reference side of hf_tokenizer_bench.
// Usage: node hf_tokenizer_bench.mjs NODE_MODULES_DIR TOKENIZER_DIR TEXT_FILE
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import path from "node:path";

const [modules, dir, file] = process.argv.slice(2);
const require = createRequire(path.join(modules, "x.js"));
const { TokenizerLoader } = require("@lenml/tokenizers");
const tok = TokenizerLoader.fromPreTrained({
  tokenizerJSON: JSON.parse(readFileSync(path.join(dir, "tokenizer.json"), "utf8")),
  tokenizerConfig: JSON.parse(readFileSync(path.join(dir, "tokenizer_config.json"), "utf8")),
});
const text = readFileSync(file, "utf8");
const t0 = process.hrtime.bigint();
const ids = tok.encode(text, { add_special_tokens: false });
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
console.log(JSON.stringify({ seconds, ids }));
