#include "cluster/report.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "cluster/eval_job.h"
#include "common/atomic_file.h"
#include "common/log.h"

namespace treepo::cluster {

namespace fs = std::filesystem;

// ---- PNG ------------------------------------------------------------------------------------

namespace {

uint32_t Crc32(const uint8_t* data, size_t n, uint32_t crc = 0) {
  static const std::array<uint32_t, 256> kTable = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = kTable[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

void PutU32(std::vector<uint8_t>* out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out->push_back(static_cast<uint8_t>(v >> s));
}

void PutChunk(std::vector<uint8_t>* out, const char type[4], const std::vector<uint8_t>& data) {
  PutU32(out, static_cast<uint32_t>(data.size()));
  const size_t start = out->size();
  out->insert(out->end(), type, type + 4);
  out->insert(out->end(), data.begin(), data.end());
  PutU32(out, Crc32(out->data() + start, out->size() - start));
}

}  // namespace

std::vector<uint8_t> EncodePng(const RgbImage& image) {
  // Raw scanlines, each led by filter byte 0.
  std::vector<uint8_t> raw;
  const size_t row = static_cast<size_t>(image.width) * 3;
  raw.reserve((row + 1) * image.height);
  for (int y = 0; y < image.height; ++y) {
    raw.push_back(0);
    raw.insert(raw.end(), image.pixels.begin() + y * row, image.pixels.begin() + (y + 1) * row);
  }
  // zlib stream of stored deflate blocks, then Adler-32.
  std::vector<uint8_t> z = {0x78, 0x01};
  size_t pos = 0;
  do {
    const size_t len = std::min<size_t>(65535, raw.size() - pos);
    z.push_back(pos + len == raw.size() ? 1 : 0);
    z.push_back(static_cast<uint8_t>(len));
    z.push_back(static_cast<uint8_t>(len >> 8));
    z.push_back(static_cast<uint8_t>(~len));
    z.push_back(static_cast<uint8_t>(~len >> 8));
    z.insert(z.end(), raw.begin() + pos, raw.begin() + pos + len);
    pos += len;
  } while (pos < raw.size());
  uint32_t a = 1, b = 0;
  for (uint8_t c : raw) {
    a = (a + c) % 65521;
    b = (b + a) % 65521;
  }
  PutU32(&z, (b << 16) | a);

  std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  std::vector<uint8_t> ihdr;
  PutU32(&ihdr, static_cast<uint32_t>(image.width));
  PutU32(&ihdr, static_cast<uint32_t>(image.height));
  ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});  // 8-bit, RGB, deflate, filter 0, no interlace
  PutChunk(&png, "IHDR", ihdr);
  PutChunk(&png, "IDAT", z);
  PutChunk(&png, "IEND", {});
  return png;
}

// ---- raster drawing -------------------------------------------------------------------------

namespace {

struct Rgb {
  uint8_t r, g, b;
};
constexpr Rgb kWhite{255, 255, 255}, kBlack{0, 0, 0}, kGrid{225, 225, 225}, kBlue{31, 119, 180},
    kOrange{230, 110, 20}, kGreen{40, 160, 60}, kPurple{140, 70, 170};

// 5x7 glyphs: 7 rows of 5 bits (bit 4 = left column).
struct Glyph {
  char c;
  std::array<uint8_t, 7> rows;
};
constexpr Glyph kFont[] = {
    {'0', {14, 17, 19, 21, 25, 17, 14}}, {'1', {4, 12, 4, 4, 4, 4, 14}},
    {'2', {14, 17, 1, 2, 4, 8, 31}},     {'3', {31, 2, 4, 2, 1, 17, 14}},
    {'4', {2, 6, 10, 18, 31, 2, 2}},     {'5', {31, 16, 30, 1, 1, 17, 14}},
    {'6', {6, 8, 16, 30, 17, 17, 14}},   {'7', {31, 1, 2, 4, 8, 8, 8}},
    {'8', {14, 17, 17, 14, 17, 17, 14}}, {'9', {14, 17, 17, 15, 1, 2, 12}},
    {'.', {0, 0, 0, 0, 0, 12, 12}},      {'-', {0, 0, 0, 31, 0, 0, 0}},
    {'@', {14, 17, 23, 21, 23, 16, 14}}, {'(', {2, 4, 8, 8, 8, 4, 2}},
    {')', {8, 4, 2, 2, 2, 4, 8}},        {'A', {14, 17, 17, 31, 17, 17, 17}},
    {'C', {14, 17, 16, 16, 16, 17, 14}}, {'D', {28, 18, 17, 17, 17, 18, 28}},
    {'E', {31, 16, 16, 30, 16, 16, 31}}, {'G', {14, 17, 16, 23, 17, 17, 15}},
    {'I', {14, 4, 4, 4, 4, 4, 14}},      {'J', {7, 2, 2, 2, 2, 18, 12}},
    {'K', {17, 18, 20, 24, 20, 18, 17}}, {'L', {16, 16, 16, 16, 16, 16, 31}},
    {'M', {17, 27, 21, 21, 17, 17, 17}}, {'N', {17, 17, 25, 21, 19, 17, 17}},
    {'O', {14, 17, 17, 17, 17, 17, 14}}, {'P', {30, 17, 17, 30, 16, 16, 16}},
    {'R', {30, 17, 17, 30, 20, 18, 17}}, {'S', {15, 16, 16, 14, 1, 1, 30}},
    {'T', {31, 4, 4, 4, 4, 4, 4}},       {'U', {17, 17, 17, 17, 17, 17, 14}},
    {'V', {17, 17, 17, 17, 17, 10, 4}},  {'W', {17, 17, 17, 21, 21, 21, 10}},
    {'Y', {17, 17, 10, 4, 4, 4, 4}},     {'F', {31, 16, 16, 30, 16, 16, 16}},
    {'B', {30, 17, 17, 30, 17, 17, 30}}, {'H', {17, 17, 17, 31, 17, 17, 17}},
};

class Canvas {
 public:
  Canvas(int w, int h) { img_ = {w, h, std::vector<uint8_t>(size_t(w) * h * 3, 255)}; }
  void Set(int x, int y, Rgb c) {
    if (x < 0 || y < 0 || x >= img_.width || y >= img_.height) return;
    uint8_t* p = &img_.pixels[(size_t(y) * img_.width + x) * 3];
    p[0] = c.r, p[1] = c.g, p[2] = c.b;
  }
  void Rect(int x0, int y0, int x1, int y1, Rgb c) {
    for (int y = y0; y <= y1; ++y)
      for (int x = x0; x <= x1; ++x) Set(x, y, c);
  }
  // A line `w` pixels thick.
  void Line(double x0, double y0, double x1, double y1, Rgb c, int w = 2) {
    const int n = static_cast<int>(std::max(std::abs(x1 - x0), std::abs(y1 - y0))) + 1;
    for (int i = 0; i <= n; ++i) {
      const double t = static_cast<double>(i) / n;
      const int x = static_cast<int>(std::lround(x0 + t * (x1 - x0)));
      const int y = static_cast<int>(std::lround(y0 + t * (y1 - y0)));
      Rect(x - w / 2, y - w / 2, x + (w - 1) / 2, y + (w - 1) / 2, c);
    }
  }
  // Upper-case text at scale 2 (lower case is drawn as upper case); returns its width.
  int Text(int x, int y, const std::string& s, Rgb c, bool measure_only = false) {
    constexpr int kScale = 2;
    int cx = x;
    for (char ch : s) {
      const char u = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      for (const Glyph& g : kFont) {
        if (g.c != u || measure_only) continue;
        for (int r = 0; r < 7; ++r)
          for (int col = 0; col < 5; ++col)
            if (g.rows[r] & (16 >> col))
              Rect(cx + col * kScale, y + r * kScale, cx + col * kScale + kScale - 1,
                   y + r * kScale + kScale - 1, c);
      }
      cx += 6 * kScale;
    }
    return cx - x;
  }
  const RgbImage& image() const { return img_; }

 private:
  RgbImage img_;
};

struct Series {
  std::string name;
  Rgb color;
  std::vector<std::pair<double, double>> points;  // (step, value)
  bool markers = false;
};

std::string Fmt(double v, int decimals) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

// A panel with axes, grid, tick labels and the series, in the box (x0, y0)-(x1, y1).
void Panel(Canvas* cv, std::ostringstream* svg, int x0, int y0, int x1, int y1,
           const std::string& title, const std::vector<Series>& series, double xmin, double xmax) {
  double ymin = 1e300, ymax = -1e300;
  for (const Series& s : series)
    for (auto [x, y] : s.points) ymin = std::min(ymin, y), ymax = std::max(ymax, y);
  if (ymin > ymax) ymin = 0, ymax = 1;
  if (ymax - ymin < 1e-9) ymin -= 0.5, ymax += 0.5;
  const double pad = 0.05 * (ymax - ymin);
  ymin -= pad, ymax += pad;
  if (xmax - xmin < 1e-9) xmin -= 1, xmax += 1;
  auto px = [&](double x) { return x0 + (x - xmin) / (xmax - xmin) * (x1 - x0); };
  auto py = [&](double y) { return y1 - (y - ymin) / (ymax - ymin) * (y1 - y0); };

  for (int i = 0; i <= 4; ++i) {
    const double yv = ymin + (ymax - ymin) * i / 4, xv = xmin + (xmax - xmin) * i / 4;
    const int gy = static_cast<int>(py(yv)), gx = static_cast<int>(px(xv));
    cv->Line(x0, gy, x1, gy, kGrid, 1);
    cv->Line(gx, y0, gx, y1, kGrid, 1);
    const std::string yl = Fmt(yv, 2), xl = Fmt(xv, 0);
    cv->Text(x0 - 8 - cv->Text(0, 0, yl, kBlack, true), gy - 7, yl, kBlack);
    cv->Text(gx - cv->Text(0, 0, xl, kBlack, true) / 2, y1 + 8, xl, kBlack);
    *svg << "<line x1='" << x0 << "' y1='" << gy << "' x2='" << x1 << "' y2='" << gy
         << "' stroke='#e1e1e1'/><text x='" << x0 - 6 << "' y='" << gy + 4
         << "' text-anchor='end' font-size='12'>" << yl << "</text><text x='" << gx << "' y='"
         << y1 + 18 << "' text-anchor='middle' font-size='12'>" << xl << "</text>\n";
  }
  cv->Line(x0, y0, x0, y1, kBlack, 1);
  cv->Line(x0, y1, x1, y1, kBlack, 1);
  cv->Text(x0, y0 - 22, title, kBlack);
  *svg << "<rect x='" << x0 << "' y='" << y0 << "' width='" << x1 - x0 << "' height='" << y1 - y0
       << "' fill='none' stroke='black'/><text x='" << x0 << "' y='" << y0 - 8
       << "' font-size='14'>" << title << "</text>\n";
  int legend_x = x1;
  for (const Series& s : series) {
    if (s.points.empty()) continue;
    const int w = cv->Text(0, 0, s.name, s.color, true);
    legend_x -= w + 30;
    cv->Rect(legend_x, y0 - 16, legend_x + 14, y0 - 12, s.color);
    cv->Text(legend_x + 20, y0 - 22, s.name, s.color);
    char hex[8];
    std::snprintf(hex, sizeof(hex), "#%02x%02x%02x", s.color.r, s.color.g, s.color.b);
    *svg << "<text x='" << legend_x + 20 << "' y='" << y0 - 8 << "' font-size='12' fill='" << hex
         << "'>" << s.name << "</text>\n<polyline fill='none' stroke='" << hex << "' points='";
    for (size_t i = 0; i < s.points.size(); ++i) {
      const double ax = px(s.points[i].first), ay = py(s.points[i].second);
      *svg << ax << "," << ay << " ";
      if (i > 0) cv->Line(px(s.points[i - 1].first), py(s.points[i - 1].second), ax, ay, s.color);
      if (s.markers || s.points.size() == 1) cv->Rect(ax - 3, ay - 3, ax + 3, ay + 3, s.color);
    }
    *svg << "'/>\n";
  }
}

struct RunMetrics {
  std::vector<std::pair<double, double>> reward, accuracy, eval_accuracy, eval_pass1;
  std::vector<std::pair<double, EvalReport>> evals;  // every eval line, by step
  int64_t steps = 0, tokens = 0;
  double wall_s = 0.0;
};

Result<RunMetrics> ReadMetrics(const std::string& path) {
  RunMetrics m;
  std::ifstream f(path);
  if (!f) return NotFound("cannot open " + path);
  std::string line;
  int line_no = 0;
  while (std::getline(f, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("step") || !j["step"].is_number()) {
      spdlog::warn("report: {}:{}: skipped (not an object with a numeric step)", path, line_no);
      continue;
    }
    const double step = j["step"].get<double>();
    m.steps = std::max<int64_t>(m.steps, static_cast<int64_t>(step));
    auto num = [&](const char* key, double* out) {
      if (!j.contains(key) || !j[key].is_number()) return false;
      *out = j[key].get<double>();
      return true;
    };
    double v;
    if (j.contains("eval") && j["eval"].is_object()) {
      const auto& e = j["eval"];
      EvalReport r;
      if (e.contains("accuracy") && e["accuracy"].is_number()) {
        r.accuracy = e["accuracy"].get<double>();
        m.eval_accuracy.push_back({step, r.accuracy});
      }
      if (e.contains("samples") && e["samples"].is_number()) r.samples = e["samples"].get<int>();
      for (auto [key, field] : {std::pair{"pass_at_1", &EvalReport::pass_at_1},
                                std::pair{"maj_at_k", &EvalReport::maj_at_k},
                                std::pair{"pass_at_k", &EvalReport::pass_at_k}}) {
        if (e.contains(key) && e[key].is_number()) r.*field = e[key].get<double>();
      }
      if (r.samples > 0) m.eval_pass1.push_back({step, r.pass_at_1});
      m.evals.push_back({step, r});
      continue;
    }
    if (num("reward_mean", &v)) m.reward.push_back({step, v});
    if (num("accuracy", &v)) m.accuracy.push_back({step, v});
    if (num("tokens", &v)) m.tokens += static_cast<int64_t>(v);
    if (num("wall_s", &v)) m.wall_s = std::max(m.wall_s, v);
  }
  return m;
}

std::string Pct(double v) { return Fmt(100.0 * v, 1) + "%"; }

void EvalRow(std::ostringstream& md, const char* name, const EvalReport* base,
             const EvalReport* fin, double EvalReport::*field, bool pct) {
  md << "| " << name << " | ";
  for (const EvalReport* r : {base, fin}) {
    md << (r ? (pct ? Pct(r->*field) : Fmt(r->*field, 1)) : std::string("-")) << " | ";
  }
  if (base && fin && pct) md << Fmt(100.0 * (fin->*field - base->*field), 1) << " pts";
  md << " |\n";
}

}  // namespace

Status WriteReport(const std::string& run_dir) {
  const fs::path dir(run_dir);
  const bool have_metrics = fs::exists(dir / kMetricsFile);
  std::optional<EvalReport> base, fin;
  if (fs::exists(dir / kBaseEvalFile)) {
    TREEPO_ASSIGN_OR_RETURN(base, ReadEvalReport((dir / kBaseEvalFile).string()));
  }
  if (fs::exists(dir / kFinalEvalFile)) {
    TREEPO_ASSIGN_OR_RETURN(fin, ReadEvalReport((dir / kFinalEvalFile).string()));
  }
  if (!have_metrics && !base && !fin) {
    return NotFound("report: " + run_dir + " has no metrics.jsonl and no eval files");
  }
  RunMetrics m;
  if (have_metrics) {
    TREEPO_ASSIGN_OR_RETURN(m, ReadMetrics((dir / kMetricsFile).string()));
  }
  auto by_step = [](const auto& a, const auto& b) { return a.first < b.first; };
  std::stable_sort(m.eval_accuracy.begin(), m.eval_accuracy.end(), by_step);
  std::stable_sort(m.eval_pass1.begin(), m.eval_pass1.end(), by_step);
  std::stable_sort(m.evals.begin(), m.evals.end(), by_step);

  // Curves.
  constexpr int kW = 900, kH = 640;
  Canvas cv(kW, kH);
  std::ostringstream svg;
  svg << "<svg xmlns='http://www.w3.org/2000/svg' width='" << kW << "' height='" << kH
      << "' font-family='sans-serif'>\n<rect width='100%' height='100%' fill='white'/>\n";
  double xmin = 1e300, xmax = -1e300;
  for (const auto* s : {&m.reward, &m.accuracy, &m.eval_accuracy, &m.eval_pass1})
    for (auto [x, y] : *s) xmin = std::min(xmin, x), xmax = std::max(xmax, x);
  if (xmin > xmax) xmin = 0, xmax = 1;
  Panel(&cv, &svg, 90, 50, kW - 30, 280, "reward mean", {{"reward", kBlue, m.reward, false}}, xmin,
        xmax);
  Panel(&cv, &svg, 90, 360, kW - 30, 590, "accuracy",
        {{"train", kOrange, m.accuracy, false},
         {"eval greedy", kGreen, m.eval_accuracy, true},
         {"eval pass@1", kPurple, m.eval_pass1, true}},
        xmin, xmax);
  cv.Text(kW / 2 - 24, kH - 24, "step", kBlack);
  svg << "<text x='" << kW / 2 << "' y='" << kH - 12
      << "' text-anchor='middle' font-size='14'>step</text>\n</svg>\n";
  const std::vector<uint8_t> png = EncodePng(cv.image());
  TREEPO_RETURN_IF_ERROR(
      WriteFileAtomically((dir / kCurvesPng).string(),
                          std::string_view(reinterpret_cast<const char*>(png.data()), png.size())));
  TREEPO_RETURN_IF_ERROR(WriteFileAtomically((dir / kCurvesSvg).string(), svg.str()));

  // report.md.
  std::ostringstream md;
  md << "# treepo run report\n\nRun directory: `" << run_dir << "`\n\n";
  const EvalReport* b = base ? &*base : nullptr;
  const EvalReport* f = fin ? &*fin : nullptr;
  if (b || f) {
    const int k = f ? f->samples : b->samples;
    const std::string ks = std::to_string(k);
    md << "## Evaluation (" << (f ? f->source : b->source) << ", "
       << (f ? f->problems : b->problems) << " problems)\n\n"
       << "| metric | base | final | change |\n|---|---|---|---|\n";
    EvalRow(md, "accuracy (greedy)", b, f, &EvalReport::accuracy, true);
    EvalRow(md, ("Maj@" + ks + " (T=1)").c_str(), b, f, &EvalReport::maj_at_k, true);
    EvalRow(md, ("pass@" + ks + " (T=1)").c_str(), b, f, &EvalReport::pass_at_k, true);
    EvalRow(md, "pass@1 (T=1)", b, f, &EvalReport::pass_at_1, true);
    EvalRow(md, "mean response tokens", b, f, &EvalReport::mean_response_tokens, false);
    EvalRow(md, "eval time (s)", b, f, &EvalReport::wall_s, false);
    md << "\n";
  }
  if (have_metrics) {
    md << "## Training\n\n| quantity | value |\n|---|---|\n"
       << "| steps | " << m.steps << " |\n"
       << "| wall time | " << Fmt(m.wall_s, 1) << " s |\n"
       << "| tokens | " << m.tokens << " |\n";
    if (!m.reward.empty()) {
      md << "| reward mean (first -> last) | " << Fmt(m.reward.front().second, 3) << " -> "
         << Fmt(m.reward.back().second, 3) << " |\n";
    }
    if (!m.accuracy.empty()) {
      md << "| train accuracy (first -> last) | " << Pct(m.accuracy.front().second) << " -> "
         << Pct(m.accuracy.back().second) << " |\n";
    }
    md << "\n";
  }
  if (m.evals.size() > 2) {
    const int k = m.evals.back().second.samples;
    md << "## Held-out accuracy by step\n\n| step | greedy |";
    if (k > 0) md << " pass@1 (T=1) | Maj@" << k << " | pass@" << k << " |";
    md << "\n|---|---|" << (k > 0 ? "---|---|---|" : "") << "\n";
    for (const auto& [step, r] : m.evals) {
      md << "| " << static_cast<int64_t>(step) << " | " << Pct(r.accuracy) << " |";
      if (k > 0)
        md << " " << Pct(r.pass_at_1) << " | " << Pct(r.maj_at_k) << " | " << Pct(r.pass_at_k)
           << " |";
      md << "\n";
    }
    md << "\n";
  }
  md << "![reward and accuracy against step](" << kCurvesPng << ")\n\n(vector copy: `" << kCurvesSvg
     << "`)\n";
  return WriteFileAtomically((dir / kReportFile).string(), md.str());
}

}  // namespace treepo::cluster
