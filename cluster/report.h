// The run report: reads a training run directory and writes report.md plus a curve image
// (curves.png and curves.svg: reward mean and accuracy against step).
//
// Inputs in run_dir:
//   metrics.jsonl   one JSON object per line. Step lines carry "step" and any of
//                   "reward_mean", "accuracy", "tokens", "wall_s" (cumulative seconds);
//                   a line with "eval" (an object in EvalReportJson's schema) is an eval
//                   entry at that step. Lines that do not parse are skipped with a warning.
//   eval_base.json  EvalReportJson of the base model (optional)
//   eval_final.json EvalReportJson of the trained model (optional)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace treepo::cluster {

inline constexpr char kMetricsFile[] = "metrics.jsonl";
inline constexpr char kBaseEvalFile[] = "eval_base.json";
inline constexpr char kFinalEvalFile[] = "eval_final.json";
inline constexpr char kReportFile[] = "report.md";
inline constexpr char kCurvesPng[] = "curves.png";
inline constexpr char kCurvesSvg[] = "curves.svg";

// Writes report.md, curves.png and curves.svg into run_dir. kNotFound when run_dir has
// neither metrics.jsonl nor an eval file.
Status WriteReport(const std::string& run_dir);

// An 8-bit RGB image, row-major.
struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;  // width * height * 3
};

// PNG bytes of `image` (colour type 2, zlib stream of stored deflate blocks, CRC-checked).
std::vector<uint8_t> EncodePng(const RgbImage& image);

}  // namespace treepo::cluster
