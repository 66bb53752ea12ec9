// tokenizer.json "post_processor" for single sequences, reduced to the ids it puts before and
// after the encoded text (TemplateProcessing's "single" template, BertProcessing and
// RobertaProcessing's cls/sep, Sequence of those; ByteLevel adds nothing). Applied only when
// special tokens are requested.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "common/status.h"

namespace treepo::model::hf {

struct PostProcessor {
  std::vector<int32_t> prefix;
  std::vector<int32_t> suffix;
};

Result<PostProcessor> MakePostProcessor(const nlohmann::json& spec);

}  // namespace treepo::model::hf
