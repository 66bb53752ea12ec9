#include "scheduler/dashboard/top.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <thread>

#include "scheduler/dashboard/http_client.h"

namespace treepo::scheduler::dashboard {
namespace {

using nlohmann::json;

std::string Fmt(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, v);
  return buf;
}

std::string Bar(double fraction, int width) {
  fraction = std::clamp(fraction, 0.0, 1.0);
  const int full = static_cast<int>(fraction * width + 0.5);
  return "[" + std::string(static_cast<size_t>(full), '#') +
         std::string(static_cast<size_t>(width - full), '.') + "]";
}

std::string Cut(std::string s, int width) {
  if (width > 0 && static_cast<int>(s.size()) > width) s.resize(static_cast<size_t>(width));
  return s;
}

std::string Pad(std::string s, size_t n) {
  if (s.size() > n) s.resize(n);
  return s + std::string(n - s.size(), ' ');
}

}  // namespace

Status TopOptions::Validate() const {
  if (url.empty()) return InvalidArgument("top: give the dashboard's URL (--url) or a run (--run)");
  if (interval_ms < 100) return InvalidArgument("top: --interval-ms must be >= 100");
  if (iterations < 0) return InvalidArgument("top: --iterations must be >= 0");
  if (timeout_ms < 1) return InvalidArgument("top: timeout must be >= 1 ms");
  return OkStatus();
}

std::string FormatClusterTable(const json& c, int width) {
  std::string out;
  auto line = [&](const std::string& s) { out += Cut(s, width) + "\n"; };
  const json& s = c.at("scheduler");
  const json& rl = c.at("rl");
  std::string head = "treepo " + c.value("run", std::string()) + "  up " +
                     Fmt("%.0fs", c.value("uptime_s", 0.0)) + "  workers " +
                     std::to_string(s.value("live_workers", 0)) + " live  queue " +
                     std::to_string(s.value("queue_depth", 0)) + "  in flight " +
                     std::to_string(s.value("in_flight", 0)) + "  " +
                     Fmt("%.1f tasks/s", s.value("tasks_per_s", 0.0)) + "  " +
                     Fmt("%.0f tok/s", s.value("tokens_per_s", 0.0)) + "  weights v" +
                     std::to_string(s.value("weight_version", 0));
  line(head);
  if (rl.value("active", false)) {
    line("step " + std::to_string(rl.value("step", -1) + 1) + "/" +
         std::to_string(rl.value("steps_total", 0)) + "  reward " +
         Fmt("%+.3f", rl.value("reward_mean", 0.0)) + "  accuracy " +
         Fmt("%.3f", rl.value("accuracy", 0.0)) + "  step " +
         Fmt("%.1fs", rl.value("step_s", 0.0)) + "  learner " +
         Fmt("%.2fs", rl.value("learner_step_s", 0.0)) + "  sync " +
         Fmt("%.2fs", rl.value("weight_sync_s", 0.0)));
  }
  line("");
  line(
      "ID  WORKER        STATE   VER  KV USE                       TASKS/S  TOK/S   INFL  "
      "HEARTBEAT");
  for (const json& w : c.at("workers")) {
    const double cap = std::max(1.0, w.value("pages_capacity", 0.0));
    const double used = w.value("pages_used", 0.0);
    std::string row = Pad(std::to_string(w.value("id", 0)), 4) +
                      Pad(w.value("name", std::string()), 14) +
                      Pad(w.value("state", std::string()), 8) +
                      Pad("v" + std::to_string(w.value("weight_version", 0)), 5) +
                      Bar(used / cap, 16) + Pad(Fmt(" %3.0f%%", 100.0 * used / cap), 13) +
                      Pad(Fmt("%.1f", w.value("tasks_per_s", 0.0)), 9) +
                      Pad(Fmt("%.0f", w.value("tokens_per_s", 0.0)), 8) +
                      Pad(std::to_string(w.value("in_flight_tasks", 0)), 6) +
                      Fmt("%.1fs ago", w.value("heartbeat_age_ms", 0.0) / 1000.0);
    line(row);
  }
  if (!c.at("learners").empty()) {
    line("");
    for (const json& l : c.at("learners")) {
      line("learner " + l.value("name", std::string()) + " #" + std::to_string(l.value("id", 0)) +
           "  rank " + std::to_string(l.value("rank", 0)) + "/" +
           std::to_string(l.value("world_size", 1)) + "  step " +
           Fmt("%.2fs", l.value("step_s", 0.0)) + "  sync " + Fmt("%.2fs", l.value("sync_s", 0.0)));
    }
  }
  if (c.contains("events") && !c.at("events").empty()) {
    line("");
    const json& ev = c.at("events");
    const size_t first = ev.size() > 5 ? ev.size() - 5 : 0;
    for (size_t i = first; i < ev.size(); ++i) {
      line("  " + Pad(ev[i].value("kind", std::string()), 8) + ev[i].value("text", std::string()));
    }
  }
  return out;
}

Status RunTop(const TopOptions& o, const std::atomic<bool>* stop) {
  TREEPO_RETURN_IF_ERROR(o.Validate());
  std::string base = o.url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  for (int i = 0; o.iterations == 0 || i < o.iterations; ++i) {
    if (stop != nullptr && stop->load()) return OkStatus();
    if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(o.interval_ms));
    Result<HttpResponse> r = HttpGet(base + "/api/cluster", o.token, o.timeout_ms);
    if (!r.ok()) {
      return r.status().WithContext(i == 0 ? "top: cannot reach the dashboard"
                                           : "top: the dashboard stopped answering (run over?)");
    }
    if (r->status != 200) {
      return Unavailable("top: " + base + "/api/cluster answered " + std::to_string(r->status) +
                         ": " + r->body.substr(0, 300));
    }
    json c = json::parse(r->body, nullptr, false);
    if (c.is_discarded() || !c.is_object() || !c.contains("scheduler") || !c.contains("workers") ||
        !c.contains("learners") || !c.contains("rl")) {
      return InvalidArgument("top: " + base + "/api/cluster is not a treepo dashboard document");
    }
    const std::string table = FormatClusterTable(c, 120);
    if (o.clear_screen) {
      std::cout << "\x1b[H\x1b[2J" << table << std::flush;
    } else {
      std::cout << table << "\n" << std::flush;
    }
  }
  return OkStatus();
}

}  // namespace treepo::scheduler::dashboard
