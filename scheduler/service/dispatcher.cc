#include "scheduler/service/dispatcher.h"

#include <algorithm>
#include <cmath>
#include <tuple>
#include <unordered_map>

#include "common/log.h"

namespace treepo::scheduler {

Status DispatchLimits::Validate() const {
  if (policy != "cost" && policy != "wait" && policy != "recompute" && policy != "migrate") {
    return InvalidArgument("placement_policy must be cost, wait, recompute or migrate, not '" +
                           policy + "'");
  }
  if (move_min_gain_ms < 0) return InvalidArgument("move_min_gain_ms must be >= 0");
  if (!(move_min_gain_fraction >= 0) || !std::isfinite(move_min_gain_fraction)) {
    return InvalidArgument("move_min_gain_fraction must be a finite number >= 0");
  }
  if (!(assumed_link_bytes_per_s > 0) || !std::isfinite(assumed_link_bytes_per_s)) {
    return InvalidArgument("assumed_link_mb_per_s must be a finite number > 0");
  }
  if (!(link_latency_ms >= 0) || !std::isfinite(link_latency_ms)) {
    return InvalidArgument("link_latency_ms must be a finite number >= 0");
  }
  if (!(assumed_prefill_factor > 0) || !std::isfinite(assumed_prefill_factor)) {
    return InvalidArgument("assumed_prefill_factor must be a finite number > 0");
  }
  if (transfer_timeout_ms < 1) return InvalidArgument("transfer_timeout_ms must be >= 1");
  if (debug_migrate_every < 0) return InvalidArgument("debug_migrate_every must be >= 0");
  if (deadline_floor_ms < 0) return InvalidArgument("task_deadline_floor_ms must be >= 0");
  if (!(deadline_multiplier > 0) || !std::isfinite(deadline_multiplier)) {
    return InvalidArgument("task_deadline_multiplier must be a finite number > 0");
  }
  if (!(assumed_tokens_per_s > 0) || !std::isfinite(assumed_tokens_per_s)) {
    return InvalidArgument("assumed_tokens_per_s must be a finite number > 0");
  }
  if (measure_min_busy_ms < 0) return InvalidArgument("measure_min_busy_ms must be >= 0");
  if (max_missed_deadlines < 1) return InvalidArgument("max_missed_deadlines must be >= 1");
  if (max_task_deadline_misses < 1) {
    return InvalidArgument("max_task_deadline_misses must be >= 1");
  }
  return OkStatus();
}

Status LoadPlacementKeys(const Config& c, const std::string& prefix, DispatchLimits* l) {
  TREEPO_RETURN_IF_ERROR(c.Get(prefix + "placement_policy", &l->policy));
  TREEPO_RETURN_IF_ERROR(c.Get(prefix + "move_min_gain_ms", &l->move_min_gain_ms));
  TREEPO_RETURN_IF_ERROR(c.Get(prefix + "move_min_gain_fraction", &l->move_min_gain_fraction));
  double mb = l->assumed_link_bytes_per_s / 1e6;
  TREEPO_RETURN_IF_ERROR(c.Get(prefix + "assumed_link_mb_per_s", &mb));
  l->assumed_link_bytes_per_s = mb * 1e6;
  TREEPO_RETURN_IF_ERROR(c.Get(prefix + "link_latency_ms", &l->link_latency_ms));
  TREEPO_RETURN_IF_ERROR(c.Get(prefix + "assumed_prefill_factor", &l->assumed_prefill_factor));
  TREEPO_RETURN_IF_ERROR(c.Get(prefix + "transfer_timeout_ms", &l->transfer_timeout_ms));
  return c.Get(prefix + "debug_migrate_every", &l->debug_migrate_every);
}

Status LoadDeadlineKeys(const Config& c, const std::string& prefix, DispatchLimits* l) {
  TREEPO_RETURN_IF_ERROR(c.Get(prefix + "task_deadline_floor_ms", &l->deadline_floor_ms));
  TREEPO_RETURN_IF_ERROR(c.Get(prefix + "task_deadline_multiplier", &l->deadline_multiplier));
  TREEPO_RETURN_IF_ERROR(c.Get(prefix + "assumed_tokens_per_s", &l->assumed_tokens_per_s));
  TREEPO_RETURN_IF_ERROR(c.Get(prefix + "max_missed_deadlines", &l->max_missed_deadlines));
  return c.Get(prefix + "max_task_deadline_misses", &l->max_task_deadline_misses);
}

void HolderMap::Add(NodeId node, QueryId query, WorkerId worker, int64_t positions) {
  auto [it, added] = nodes_.try_emplace(node);
  Entry& e = it->second;
  if (added) e.order = next_order_++;
  if (added || e.query != query) by_query_[query].push_back(node);
  e.query = query;
  if (positions > 0) e.positions = positions;
  if (std::find(e.workers.begin(), e.workers.end(), worker) == e.workers.end()) {
    e.workers.push_back(worker);
  }
}

std::vector<WorkerId> HolderMap::Holders(NodeId node) const {
  auto it = nodes_.find(node);
  return it == nodes_.end() ? std::vector<WorkerId>{} : it->second.workers;
}

int64_t HolderMap::Positions(NodeId node) const {
  auto it = nodes_.find(node);
  return it == nodes_.end() ? 0 : it->second.positions;
}

QueryId HolderMap::QueryOf(NodeId node) const {
  auto it = nodes_.find(node);
  return it == nodes_.end() ? QueryId(0) : it->second.query;
}

void HolderMap::RemoveHolder(NodeId node, WorkerId worker) {
  auto it = nodes_.find(node);
  if (it == nodes_.end()) return;
  auto& ws = it->second.workers;
  ws.erase(std::remove(ws.begin(), ws.end(), worker), ws.end());
  if (ws.empty()) nodes_.erase(it);
}

std::vector<NodeId> HolderMap::HeldBy(WorkerId worker) const {
  std::vector<std::pair<uint64_t, NodeId>> held;
  for (const auto& [node, e] : nodes_) {
    if (std::find(e.workers.begin(), e.workers.end(), worker) != e.workers.end()) {
      held.emplace_back(e.order, node);
    }
  }
  std::sort(held.begin(), held.end());
  std::vector<NodeId> out;
  for (const auto& [order, node] : held) out.push_back(node);
  return out;
}

std::vector<WorkerId> HolderMap::Remove(NodeId node) {
  auto it = nodes_.find(node);
  if (it == nodes_.end()) return {};
  std::vector<WorkerId> out = std::move(it->second.workers);
  nodes_.erase(it);
  return out;
}

void HolderMap::ForgetWorker(WorkerId worker) {
  for (auto it = nodes_.begin(); it != nodes_.end();) {
    auto& ws = it->second.workers;
    ws.erase(std::remove(ws.begin(), ws.end(), worker), ws.end());
    it = ws.empty() ? nodes_.erase(it) : std::next(it);
  }
}

std::map<WorkerId, std::vector<NodeId>> HolderMap::RemoveQuery(QueryId query) {
  std::map<WorkerId, std::vector<NodeId>> out;
  auto q = by_query_.find(query);
  if (q == by_query_.end()) return out;
  for (NodeId node : q->second) {  // may name nodes already removed, or listed twice
    auto it = nodes_.find(node);
    if (it == nodes_.end() || it->second.query != query) continue;
    for (WorkerId w : it->second.workers) out[w].push_back(it->first);
    nodes_.erase(it);
  }
  by_query_.erase(q);
  for (auto& [w, nodes] : out) std::sort(nodes.begin(), nodes.end());
  return out;
}

Dispatcher::Dispatcher(WorkerRegistry* registry, const DispatchLimits& limits)
    : registry_(registry), limits_(limits) {}

void Dispatcher::Enqueue(protocols::SegmentTask task, int attempts) {
  Queued q;
  q.task = std::move(task);
  q.attempts = attempts;
  queue_.push_back(std::move(q));
}

int64_t Dispatcher::TaskPages(int64_t positions, int children, int64_t max_new_tokens,
                              int page_size, bool with_parent) {
  if (page_size < 1) return 0;
  const int64_t p = page_size;
  const int64_t parent = with_parent ? (positions + p - 1) / p : 0;
  const int64_t per_child = (positions + max_new_tokens + p - 1) / p - positions / p;
  return parent + static_cast<int64_t>(children) * per_child;
}

int64_t Dispatcher::NeedOn(const protocols::SegmentTask& task, WorkerId worker,
                           bool with_parent) const {
  const WorkerEntry* w = registry_->Find(worker);
  if (w == nullptr) return 0;
  const int64_t positions =
      std::max<int64_t>(0, static_cast<int64_t>(task.prefix_tokens.size()) - 1);
  return TaskPages(positions, static_cast<int>(task.child_node_ids.size()), task.max_new_tokens,
                   static_cast<int>(w->page_size), with_parent);
}

Dispatcher::PageBook& Dispatcher::Book(WorkerId worker) {
  auto [it, added] = pages_.try_emplace(worker);
  if (added) {
    // Until its first report: the pool it registered with, all free.
    const WorkerEntry* w = registry_->Find(worker);
    it->second.total = it->second.reported_free = w != nullptr ? w->page_capacity : 0;
  }
  return it->second;
}

std::optional<int64_t> Dispatcher::FreePages(WorkerId worker) const {
  auto it = pages_.find(worker);
  if (it == pages_.end()) {
    const WorkerEntry* w = registry_->Find(worker);
    if (w == nullptr || w->page_capacity == 0) return std::nullopt;
    return static_cast<int64_t>(w->page_capacity);  // nothing sent, nothing reported yet
  }
  const PageBook& b = it->second;
  if (b.total == 0 || b.no_reports) return std::nullopt;
  return b.reported_free - b.pending - b.reserved_imports - b.unseen_pages;
}

bool Dispatcher::Fits(WorkerId worker, int64_t pages) const {
  const std::optional<int64_t> free = FreePages(worker);
  return !free || pages <= *free;
}

void Dispatcher::OnPageReport(WorkerId worker, uint32_t total, uint32_t free,
                              uint64_t batches_seen) {
  PageBook& b = Book(worker);
  if (total == 0) {
    // A peer that reports no pages (an older worker): nothing to reconcile reservations with,
    // so its pages are not accounted (the engine still refuses what does not fit).
    b.no_reports = true;
    b.unseen.clear();
    b.unseen_pages = 0;
    return;
  }
  b.no_reports = false;
  b.total = total;
  if (batches_seen < b.batches_seen) return;  // an older report overtaken by a newer one
  b.batches_seen = batches_seen;
  b.reported_free = std::min<int64_t>(free, total);
  while (!b.unseen.empty() && b.unseen.front().first <= batches_seen) {
    b.unseen_pages -= b.unseen.front().second;
    b.unseen.pop_front();
  }
  if (b.reports_to_wait > 0) --b.reports_to_wait;
  int64_t& peak = peak_pages_[worker];
  peak = std::max<int64_t>(peak, static_cast<int64_t>(total) - b.reported_free);
}

double Dispatcher::WaitMs(WorkerId worker) const {
  auto it = in_flight_tokens_.find(worker);
  const int64_t tokens = it == in_flight_tokens_.end() ? 0 : it->second;
  return static_cast<double>(std::max<int64_t>(0, tokens)) * 1000.0 /
         PlacementTokensPerSecond(worker);
}

int64_t Dispatcher::TokensDone(WorkerId worker) const {
  auto it = tokens_done_.find(worker);
  return it == tokens_done_.end() ? 0 : it->second;
}

void Dispatcher::RecordPrefill(WorkerId worker, int64_t tokens, double ms) {
  if (tokens <= 0 || !(ms > 0) || !std::isfinite(ms)) return;
  auto& p = prefill_[worker];
  p.first += tokens;
  p.second += ms;
}

std::optional<double> Dispatcher::MeasuredPrefillTokensPerSecond(WorkerId worker) const {
  auto it = prefill_.find(worker);
  if (it != prefill_.end() && it->second.first >= 256 && it->second.second > 0) {
    return static_cast<double>(it->second.first) * 1000.0 / it->second.second;
  }
  if (std::optional<double> decode = MeasuredTokensPerSecond(worker)) {
    return *decode * limits_.assumed_prefill_factor;
  }
  return std::nullopt;
}

double Dispatcher::PrefillTokensPerSecond(WorkerId worker) const {
  if (std::optional<double> own = MeasuredPrefillTokensPerSecond(worker)) return *own;
  // Not measured yet: as fast as the fastest live worker that is (see PlacementTokensPerSecond).
  std::optional<double> fastest;
  for (const auto& [id, w] : registry_->workers()) {
    if (!w.alive) continue;
    if (std::optional<double> s = MeasuredPrefillTokensPerSecond(id);
        s && (!fastest || *s > *fastest)) {
      fastest = s;
    }
  }
  return fastest.value_or(limits_.assumed_tokens_per_s * limits_.assumed_prefill_factor);
}

double Dispatcher::LinkBytesPerSecond() const {
  if (link_.first >= (int64_t{1} << 16) && link_.second > 0) {
    return static_cast<double>(link_.first) * 1000.0 / link_.second;
  }
  return limits_.assumed_link_bytes_per_s;
}

int64_t Dispatcher::KvBytes(NodeId node, WorkerId holder) const {
  const WorkerEntry* w = registry_->Find(holder);
  if (w == nullptr || w->page_size == 0) return 0;
  const int64_t positions = holders_.Positions(node);
  return (positions + w->page_size - 1) / w->page_size * static_cast<int64_t>(w->page_bytes);
}

void Dispatcher::LiveWorkersInto(std::vector<const WorkerEntry*>* out) const {
  for (const auto& [id, w] : registry_->workers()) {
    if (w.alive) out->push_back(&w);
  }
}

std::optional<Dispatcher::Placement> Dispatcher::PlaceTask(const Queued& q,
                                                           const std::vector<WorkerId>& avoid) {
  auto avoided = [&](WorkerId id) {
    return std::find(avoid.begin(), avoid.end(), id) != avoid.end();
  };
  const NodeId parent = q.task.parent_node_id;
  if (parent.value() != 0 && arriving_.count(parent) > 0) return std::nullopt;  // coming
  const double positions =
      static_cast<double>(std::max<size_t>(1, q.task.prefix_tokens.size()) - 1);
  // Targets: live workers that take new tasks of this version (not draining, their weights
  // installed); a holder that is draining or on other weights can still send its KV away.
  std::vector<const WorkerEntry*> live;
  LiveWorkersInto(&live);
  std::erase_if(live, [&](const WorkerEntry* w) { return !w->TakesTasks(q.task.weight_version); });

  // The live holders of the parent, fastest first.
  const WorkerEntry* holder = nullptr;
  std::vector<WorkerId> holding;
  if (parent.value() != 0) {
    for (WorkerId id : holders_.Holders(parent)) {
      const WorkerEntry* w = registry_->Find(id);
      if (w == nullptr || !w->alive || avoided(id)) continue;
      holding.push_back(id);
      const bool fits = w->TakesTasks(q.task.weight_version) && Fits(id, NeedOn(q.task, id, false));
      const bool best_fits = holder != nullptr && holder->TakesTasks(q.task.weight_version) &&
                             Fits(holder->id, NeedOn(q.task, holder->id, false));
      if (holder == nullptr || (fits && !best_fits) ||
          (fits == best_fits && WaitMs(id) < WaitMs(holder->id))) {
        holder = w;
      }
    }
  }
  auto holds = [&](WorkerId id) {
    return std::find(holding.begin(), holding.end(), id) != holding.end();
  };

  if (holder != nullptr) {
    // A draining holder runs nothing new: its subtree moves (KV) or is recomputed elsewhere.
    const bool local_open = holder->TakesTasks(q.task.weight_version);
    const bool local_fits = local_open && Fits(holder->id, NeedOn(q.task, holder->id, false));
    const double local_ms = WaitMs(holder->id);
    // The cheapest move to another worker, if the policy allows one.
    struct Alt {
      const WorkerEntry* w = nullptr;
      double ms = 0;
    } migrate, recompute;
    const uint64_t task_id = q.task.task_id.value();
    const bool forced = limits_.debug_migrate_every > 0 && forced_.count(task_id) == 0 &&
                        ++placed_held_ % static_cast<uint64_t>(limits_.debug_migrate_every) == 0;
    for (const WorkerEntry* w : live) {
      if (holds(w->id) || avoided(w->id)) continue;
      const double wait = WaitMs(w->id);
      const bool can_migrate =
          !holder->peer_endpoint.empty() && !w->peer_endpoint.empty() && holder->page_bytes > 0;
      if (can_migrate && (forced || limits_.policy == "cost" || limits_.policy == "migrate") &&
          Fits(w->id, NeedOn(q.task, w->id, true))) {
        const double ms =
            wait + limits_.link_latency_ms +
            static_cast<double>(KvBytes(parent, holder->id)) * 1000.0 / LinkBytesPerSecond();
        if (migrate.w == nullptr || ms < migrate.ms) migrate = Alt{w, ms};
      }
      if (!forced && (limits_.policy == "cost" || limits_.policy == "recompute") &&
          Fits(w->id, NeedOn(q.task, w->id, true))) {
        const double ms = wait + positions * 1000.0 / PrefillTokensPerSecond(w->id);
        if (recompute.w == nullptr || ms < recompute.ms) recompute = Alt{w, ms};
      }
    }
    // Recompute or migrate: by the delay each imposes on all sequences, not only this task's.
    // A migration delays this task's children by the transfer; a recomputation also delays
    // every sequence in flight on the target by the prefill (continuous batching), and
    // computes the prefix twice. Recomputing wins only when it is cheaper by that measure and
    // by move_min_gain_ms.
    bool use_migrate = migrate.w != nullptr;
    if (use_migrate && recompute.w != nullptr) {
      const double children = static_cast<double>(q.task.child_node_ids.size());
      const double prefill_ms = positions * 1000.0 / PrefillTokensPerSecond(recompute.w->id);
      const double recompute_cost =
          children * recompute.ms + recompute.w->in_flight_sequences * prefill_ms;
      const double migrate_cost = children * migrate.ms;
      use_migrate = recompute_cost + children * limits_.move_min_gain_ms >= migrate_cost;
    }
    struct {
      const WorkerEntry* w = nullptr;
      bool migrate = false;
      double ms = 0;
    } alt;
    if (use_migrate) {
      alt = {migrate.w, true, migrate.ms};
    } else if (recompute.w != nullptr) {
      alt = {recompute.w, false, recompute.ms};
    }
    bool move = false;
    if (forced && alt.w != nullptr && alt.migrate) {
      move = true;
    } else if (alt.w != nullptr) {
      const double gain = local_ms - alt.ms;
      // Out of pages on the holder, a move only has to beat waiting for in-flight work.
      const double need = local_fits ? std::max<double>(limits_.move_min_gain_ms,
                                                        limits_.move_min_gain_fraction * local_ms)
                                     : 0.0;
      move = gain > need || (!local_fits && (holder->in_flight_tasks == 0 || !local_open));
    }
    if (!move) {
      if (!local_fits) return std::nullopt;  // wait for pages to free on the holder
      ++placement_.decided_wait;
      spdlog::debug("task {}: stays with the holder of node {} on worker {} (wait {:.1f} ms)",
                    q.task.task_id.value(), parent.value(), holder->id.value(), local_ms);
      return Placement{holder->id, false, std::nullopt};
    }
    if (alt.migrate) {
      ++placement_.decided_migrate;
      if (forced) forced_.insert(task_id);
      spdlog::debug(
          "task {}: migrate node {} from worker {} to {} ({:.1f} ms vs waiting {:.1f} ms{})",
          q.task.task_id.value(), parent.value(), holder->id.value(), alt.w->id.value(), alt.ms,
          local_ms, forced ? ", forced" : "");
      return Placement{alt.w->id, false, holder->id};
    }
    ++placement_.decided_recompute;
    spdlog::debug("task {}: recompute node {} on worker {} ({:.1f} ms vs waiting {:.1f} ms)",
                  q.task.task_id.value(), parent.value(), alt.w->id.value(), alt.ms, local_ms);
    return Placement{alt.w->id, true, std::nullopt};
  }

  // No live holder: the worker that would be done first, with the parent's path to prefill.
  const WorkerEntry* best = nullptr;
  double best_ms = 0;
  bool fits_anywhere_empty = live.empty();
  for (const WorkerEntry* w : live) {
    const int64_t need = NeedOn(q.task, w->id, true);
    auto book = pages_.find(w->id);
    const int64_t total = book != pages_.end() && book->second.total > 0
                              ? book->second.total
                              : static_cast<int64_t>(w->page_capacity);
    if (total == 0 || need <= total) fits_anywhere_empty = true;
    if (avoided(w->id) || !Fits(w->id, need)) continue;
    const double ms = WaitMs(w->id) + positions * 1000.0 / PrefillTokensPerSecond(w->id);
    // Ties go to the worker that has done the least: equal workers share the roots, and one
    // that just joined (estimated like the fastest) is tried at once.
    if (best == nullptr || ms < best_ms ||
        (ms == best_ms && TokensDone(w->id) < TokensDone(best->id))) {
      best = w;
      best_ms = ms;
    }
  }
  if (!fits_anywhere_empty && !hopeless_) {
    hopeless_ = "task " + std::to_string(q.task.task_id.value()) + " needs " +
                std::to_string(NeedOn(q.task, live.front()->id, true)) +
                " KV pages, more than any live worker has in all";
  }
  if (best == nullptr) return std::nullopt;
  return Placement{best->id, true, std::nullopt};
}

std::optional<double> Dispatcher::MeasuredTokensPerSecond(WorkerId worker) const {
  auto done = tokens_done_.find(worker);
  if (done == tokens_done_.end() || done->second <= 0) return std::nullopt;
  const double busy_ms = registry_->BusyMs(worker);
  if (busy_ms < std::max(1, limits_.measure_min_busy_ms)) return std::nullopt;
  return static_cast<double>(done->second) * 1000.0 / busy_ms;
}

double Dispatcher::TokensPerSecond(WorkerId worker) const {
  if (std::optional<double> own = MeasuredTokensPerSecond(worker)) return *own;
  // Not measured yet: the slowest live worker that is, else the assumed speed.
  std::optional<double> slowest;
  for (const auto& [id, done] : tokens_done_) {
    const WorkerEntry* w = registry_->Find(id);
    if (w == nullptr || !w->alive) continue;
    if (std::optional<double> s = MeasuredTokensPerSecond(id); s && (!slowest || *s < *slowest)) {
      slowest = s;
    }
  }
  return slowest.value_or(limits_.assumed_tokens_per_s);
}

double Dispatcher::PlacementTokensPerSecond(WorkerId worker) const {
  if (std::optional<double> own = MeasuredTokensPerSecond(worker)) return *own;
  std::optional<double> fastest;
  for (const auto& [id, done] : tokens_done_) {
    const WorkerEntry* w = registry_->Find(id);
    if (w == nullptr || !w->alive) continue;
    if (std::optional<double> s = MeasuredTokensPerSecond(id); s && (!fastest || *s > *fastest)) {
      fastest = s;
    }
  }
  return fastest.value_or(limits_.assumed_tokens_per_s);
}

double Dispatcher::BudgetMs(WorkerId worker, int64_t tokens, int missed_deadlines) const {
  const double expected_ms = static_cast<double>(tokens) * 1000.0 / TokensPerSecond(worker);
  double budget = std::max(static_cast<double>(limits_.deadline_floor_ms),
                           limits_.deadline_multiplier * expected_ms);
  budget *= static_cast<double>(int64_t{1} << std::min(missed_deadlines, 16));
  // A day at most: the budget stays a sane integer whatever the figures.
  return std::min(budget, 86400000.0);
}

int64_t Dispatcher::DeadlineFor(WorkerId worker, int64_t tokens, int missed_deadlines,
                                int64_t now) const {
  if (limits_.deadline_floor_ms <= 0) return 0;
  auto it = in_flight_tokens_.find(worker);
  const int64_t queued = it == in_flight_tokens_.end() ? 0 : it->second;
  const double budget = BudgetMs(worker, queued + tokens, missed_deadlines);
  return now + std::max<int64_t>(1, static_cast<int64_t>(budget));
}

void Dispatcher::TakeOff(const InFlightTask& t) {
  in_flight_tokens_[t.worker] -= t.tokens;
  WorkerEntry* w = registry_->Find(t.worker);
  if (w != nullptr && w->alive) {
    registry_->AddInFlight(w, -1, -static_cast<int>(t.task.child_node_ids.size()));
  }
}

std::map<WorkerId, protocols::SegmentTaskBatch> Dispatcher::Assign() {
  std::map<WorkerId, protocols::SegmentTaskBatch> out;
  std::deque<Queued> waiting;
  const int64_t now = registry_->clock().NowMs();
  while (!queue_.empty()) {
    Queued q = std::move(queue_.front());
    queue_.pop_front();
    const TaskId id = q.task.task_id;
    std::vector<WorkerId> avoid;
    if (auto a = avoid_.find(id); a != avoid_.end()) {
      const WorkerEntry* w = registry_->Find(a->second);
      // A refusing worker is tried again once it has nothing in flight (nothing else to wait for).
      if (w != nullptr && w->alive && w->in_flight_tasks > 0) avoid.push_back(a->second);
    }
    // A worker that may still be running this task would refuse its node ids.
    if (auto l = late_.find(id); l != late_.end()) {
      for (const auto& [worker, late] : l->second) avoid.push_back(worker);
    }
    if (SplitIfTooLarge(&q)) continue;
    std::optional<Placement> p = PlaceTask(q, avoid);
    if (p && p->migrate_from) {
      // Order the move; the task waits for the destination's acknowledgement.
      const NodeId parent = q.task.parent_node_id;
      const WorkerEntry* to = registry_->Find(p->worker);
      Transfer t;
      t.nodes = {parent};
      t.from = *p->migrate_from;
      t.to = p->worker;
      t.pages = static_cast<int>(
          TaskPages(holders_.Positions(parent), 0, 0, static_cast<int>(to->page_size), true));
      t.started_ms = now;
      const uint64_t transfer = next_transfer_++;
      Book(p->worker).reserved_imports += t.pages;
      migrations_.push_back(MigrationOrder{transfer, t.nodes, t.from, t.to});
      transfers_[transfer] = std::move(t);
      arriving_[parent] = p->worker;
      p.reset();
    }
    if (!p) {
      if (!q.waited) {
        q.waited = true;
        ++placement_.tasks_waited;
      }
      waiting.push_back(std::move(q));
      continue;
    }
    avoid_.erase(id);
    const int sequences = static_cast<int>(q.task.child_node_ids.size());
    // The copy sent keeps the parent's path only when the worker must prefill it.
    protocols::SegmentTask task = q.task;
    if (!p->needs_prefix) task.prefix_tokens.clear();
    const NodeId parent = task.parent_node_id;
    if (p->needs_prefix) {
      if (parent.value() != 0) {
        arriving_[parent] = p->worker;
        if (auto c = computed_.find(parent.value() >> 32);
            c != computed_.end() && c->second.count(parent) > 0) {
          placement_.tokens_recomputed +=
              std::max<int64_t>(0, static_cast<int64_t>(q.task.prefix_tokens.size()) - 1);
        }
      }
    }
    const int64_t pages = NeedOn(q.task, p->worker, p->needs_prefix);
    Book(p->worker).pending += pages;
    const int64_t tokens = static_cast<int64_t>(task.prefix_tokens.size()) +
                           static_cast<int64_t>(sequences) * task.max_new_tokens;
    registry_->AddInFlight(registry_->Find(p->worker), 1, sequences);
    out[p->worker].tasks.push_back(std::move(task));
    InFlightTask t{std::move(q.task),
                   p->worker,
                   p->needs_prefix,
                   q.attempts + 1,
                   q.missed_deadlines,
                   tokens,
                   0,
                   q.origin};
    t.deadline_ms = DeadlineFor(p->worker, tokens, q.missed_deadlines, now);
    in_flight_tokens_[p->worker] += tokens;
    in_flight_[id] = std::move(t);
  }
  queue_ = std::move(waiting);
  // Every batch returned is sent in this turn: its pages count until a report has seen it.
  for (auto& [worker, book] : pages_) {
    if (book.pending == 0 && out.count(worker) == 0) continue;
    if (out.count(worker) > 0) {
      ++book.batches_sent;
      if (!book.no_reports) {
        book.unseen.emplace_back(book.batches_sent, book.pending);
        book.unseen_pages += book.pending;
      }
    }
    book.pending = 0;
  }
  if (!queue_.empty()) MaybeEvict(queue_);
  return out;
}

bool Dispatcher::SplitIfTooLarge(Queued* q) {
  const size_t children = q->task.child_node_ids.size();
  if (children < 2 || !next_task_id_) return false;
  bool fits_one = false;
  for (const auto& [id, w] : registry_->workers()) {
    if (!w.alive) continue;
    auto book = pages_.find(id);
    const int64_t total = book != pages_.end() ? book->second.total : w.page_capacity;
    if (NeedOn(q->task, id, true) <= total) return false;
    fits_one = true;
  }
  if (!fits_one) return false;  // no live worker: nothing to size against
  Queued second = *q;
  const size_t half = children / 2;
  auto& a = q->task;
  auto& b = second.task;
  a.child_node_ids.resize(half);
  a.child_seeds.resize(half);
  b.child_node_ids.erase(b.child_node_ids.begin(), b.child_node_ids.begin() + half);
  b.child_seeds.erase(b.child_seeds.begin(), b.child_seeds.begin() + half);
  if (q->origin.value() == 0) q->origin = a.task_id;
  second.origin = q->origin;
  b.task_id = next_task_id_();
  spdlog::debug("task {}: {} children fit no worker at once: split into tasks {} and {}",
                q->origin.value(), children, a.task_id.value(), b.task_id.value());
  queue_.push_front(std::move(second));
  queue_.push_front(std::move(*q));
  return true;
}

void Dispatcher::MaybeEvict(const std::deque<Queued>& waiting) {
  if (!transfers_.empty()) return;  // a move under way will change the picture
  // Parents the queued tasks fork, and the newest query each worker holds nodes for.
  std::unordered_map<NodeId, int> wanted;
  for (const Queued& q : waiting) ++wanted[q.task.parent_node_id];
  for (const auto& [id, w] : registry_->workers()) {
    if (!w.alive || w.draining || w.in_flight_tasks > 0 || w.page_size == 0) continue;
    auto book = pages_.find(id);
    if (book == pages_.end() || book->second.total == 0 || book->second.reports_to_wait > 0) {
      continue;
    }
    // The smallest need of a task waiting for this worker's nodes (or for any worker).
    std::optional<int64_t> need;
    int64_t segment = 1;
    for (const Queued& q : waiting) {
      const NodeId parent = q.task.parent_node_id;
      if (arriving_.count(parent) > 0) continue;
      const std::vector<WorkerId> hs = holders_.Holders(parent);
      const bool here = std::find(hs.begin(), hs.end(), id) != hs.end();
      if (!here && !hs.empty()) continue;
      const int64_t n = NeedOn(q.task, id, !here);
      if (!need || n < *need) {
        need = n;
        segment = q.task.max_new_tokens;
      }
    }
    const std::optional<int64_t> free = FreePages(id);
    if (!need || !free || *need <= *free) continue;
    // Least recently useful first: nodes no queued task forks (oldest first), then the parents
    // of the newest queries' tasks.
    std::vector<NodeId> idle, parents;
    for (NodeId n : holders_.HeldBy(id)) {
      if (arriving_.count(n) > 0) continue;
      (wanted.count(n) > 0 ? parents : idle).push_back(n);
    }
    std::stable_sort(parents.begin(), parents.end(), [&](NodeId a, NodeId b) {
      return holders_.QueryOf(a).value() > holders_.QueryOf(b).value();
    });
    // Nodes no queued task forks all go (what they free is known only from the next report);
    // parents of queued tasks only as many as the need asks for.
    std::vector<NodeId> evict = idle;
    if (evict.empty()) {
      const int64_t per_node = (segment + w.page_size - 1) / w.page_size + 1;
      for (size_t i = 0; i < parents.size() && static_cast<int64_t>(i) * per_node < *need - *free;
           ++i) {
        evict.push_back(parents[i]);
      }
    }
    std::vector<NodeId>& release = releases_[id];
    for (NodeId n : evict) {
      holders_.RemoveHolder(n, id);
      release.push_back(n);
      ++placement_.kv_evictions;
    }
    const int64_t freed = static_cast<int64_t>(evict.size());
    if (freed > 0) {
      spdlog::debug("worker {}: evicting {} nodes for a task of {} pages ({} free)", id.value(),
                    freed, *need, *free);
      book->second.reports_to_wait = 2;
    }
  }
}

std::vector<MigrationOrder> Dispatcher::TakeMigrations() {
  std::vector<MigrationOrder> out;
  out.swap(migrations_);
  return out;
}

void Dispatcher::MigrationDone(uint64_t transfer_id, bool ok, uint64_t bytes) {
  auto it = transfers_.find(transfer_id);
  if (it == transfers_.end()) return;
  Transfer t = std::move(it->second);
  transfers_.erase(it);
  if (auto b = pages_.find(t.to); b != pages_.end()) b->second.reserved_imports -= t.pages;
  for (NodeId n : t.nodes) arriving_.erase(n);
  const WorkerEntry* to = registry_->Find(t.to);
  if (!ok || to == nullptr || !to->alive) {
    ++placement_.kv_migrations_failed;
    spdlog::debug("transfer {} of {} nodes from worker {} to {} failed", transfer_id,
                  t.nodes.size(), t.from.value(), t.to.value());
    return;
  }
  for (NodeId n : t.nodes) {
    const QueryId q = holders_.QueryOf(n);
    const int64_t positions = holders_.Positions(n);
    if (q.value() == 0) {
      // Released while it moved (its query ended): free the new copy too.
      releases_[t.to].push_back(n);
      continue;
    }
    holders_.Add(n, q, t.to, positions);
    holders_.RemoveHolder(n, t.from);  // a move: the source copy goes
    releases_[t.from].push_back(n);
  }
  ++placement_.kv_migrations;
  placement_.kv_bytes_migrated += static_cast<int64_t>(bytes);
  link_.first += static_cast<int64_t>(bytes);
  link_.second +=
      static_cast<double>(std::max<int64_t>(1, registry_->clock().NowMs() - t.started_ms));
}

bool Dispatcher::NeededForDrain(WorkerId worker) const {
  for (const auto& [id, t] : transfers_) {
    if (t.from == worker || t.to == worker) return true;
  }
  for (const Queued& q : queue_) {
    const NodeId parent = q.task.parent_node_id;
    if (parent.value() == 0) continue;
    const std::vector<WorkerId> hs = holders_.Holders(parent);
    if (std::find(hs.begin(), hs.end(), worker) == hs.end()) continue;
    const bool elsewhere = std::any_of(hs.begin(), hs.end(), [&](WorkerId h) {
      const WorkerEntry* w = registry_->Find(h);
      return h != worker && w != nullptr && w->alive && !w->draining;
    });
    if (!elsewhere) return true;
  }
  return false;
}

void Dispatcher::ExpireTransfers(int64_t now_ms) {
  std::vector<uint64_t> late;
  for (const auto& [id, t] : transfers_) {
    if (now_ms - t.started_ms >= limits_.transfer_timeout_ms) late.push_back(id);
  }
  for (uint64_t id : late) {
    spdlog::warn("transfer {} not acknowledged within {} ms: abandoned", id,
                 limits_.transfer_timeout_ms);
    MigrationDone(id, false, 0);
  }
}

bool Dispatcher::CanAdmit(int64_t positions, int paths, int64_t segment_tokens) const {
  int64_t free = 0;
  int page_size = 0;
  for (const auto& [id, w] : registry_->workers()) {
    if (!w.alive || w.draining) continue;
    const std::optional<int64_t> f = FreePages(id);
    if (!f) return true;  // a worker that reports no pages: no page-based admission
    free += *f;
    page_size = page_size == 0 ? static_cast<int>(w.page_size)
                               : std::min(page_size, static_cast<int>(w.page_size));
  }
  if (page_size == 0) return true;
  for (const Queued& q : queue_) {
    const int64_t pos = std::max<int64_t>(0, static_cast<int64_t>(q.task.prefix_tokens.size()) - 1);
    free -= TaskPages(pos, static_cast<int>(q.task.child_node_ids.size()), q.task.max_new_tokens,
                      page_size, false);
  }
  return TaskPages(positions, paths, segment_tokens, page_size, true) <= free;
}

std::optional<InFlightTask> Dispatcher::Complete(TaskId task, WorkerId worker,
                                                 const protocols::SegmentResult* result) {
  std::optional<InFlightTask> done;
  if (auto it = in_flight_.find(task); it != in_flight_.end() && it->second.worker == worker) {
    done = std::move(it->second);
    in_flight_.erase(it);
    TakeOff(*done);
  } else if (auto l = late_.find(task); l != late_.end() && l->second.count(worker) > 0) {
    // Taken back from this worker, but not placed elsewhere yet: the late answer still counts.
    auto q = std::find_if(queue_.begin(), queue_.end(),
                          [&](const Queued& e) { return e.task.task_id == task; });
    if (q == queue_.end()) {
      DropLate(task, worker);
      return std::nullopt;
    }
    done = InFlightTask{std::move(q->task),
                        worker,
                        l->second[worker].sent_prefix,
                        q->attempts,
                        q->missed_deadlines,
                        0,
                        0,
                        q->origin};
    queue_.erase(q);
    l->second.erase(worker);  // other late workers still get their nodes released
    if (l->second.empty()) late_.erase(l);
  } else {
    return std::nullopt;
  }
  const InFlightTask& t = *done;
  const WorkerEntry* w = registry_->Find(worker);
  const NodeId parent = t.task.parent_node_id;
  const int64_t parent_positions =
      std::max<int64_t>(0, static_cast<int64_t>(t.task.prefix_tokens.size()) - 1);
  if (t.sent_prefix && parent.value() != 0) {
    if (auto a = arriving_.find(parent); a != arriving_.end() && a->second == worker) {
      arriving_.erase(a);
    }
  }
  if (w != nullptr && w->alive) {
    const auto& children = t.task.child_node_ids;
    for (size_t i = 0; i < children.size(); ++i) {
      int64_t positions = parent_positions + t.task.max_new_tokens;
      if (result != nullptr && i < result->children.size()) {
        positions = parent_positions + static_cast<int64_t>(result->children[i].tokens.size());
      }
      holders_.Add(children[i], t.task.query_id, worker, positions);
      computed_[children[i].value() >> 32].insert(children[i]);
    }
    if (t.sent_prefix && parent.value() != 0) {
      holders_.Add(parent, t.task.query_id, worker, parent_positions);
      computed_[parent.value() >> 32].insert(parent);
    }
  }
  if (result != nullptr) RecordPrefill(worker, result->prefilled_tokens, result->prefill_ms);
  forced_.erase(task.value());
  tokens_done_[worker] += t.tokens;
  missed_in_a_row_[worker] = 0;
  last_answer_ms_[worker] = registry_->clock().NowMs();
  for (auto a = avoid_.begin(); a != avoid_.end();) {
    a = a->second == worker ? avoid_.erase(a) : std::next(a);
  }
  return done;
}

bool Dispatcher::Reject(TaskId task, WorkerId worker) {
  auto it = in_flight_.find(task);
  if (it == in_flight_.end() || it->second.worker != worker) {
    DropLate(task, worker);
    return false;
  }
  InFlightTask t = std::move(it->second);
  in_flight_.erase(it);
  TakeOff(t);
  ForgetArrival(t);
  avoid_[task] = worker;
  queue_.push_front(Queued{std::move(t.task), t.attempts, t.missed_deadlines, false, t.origin});
  return true;
}

int Dispatcher::Attempts(TaskId task) const {
  if (auto it = in_flight_.find(task); it != in_flight_.end()) return it->second.attempts;
  for (const Queued& q : queue_) {
    if (q.task.task_id == task) return q.attempts;
  }
  return 0;
}

std::set<WorkerId> Dispatcher::SilentWorkers(int64_t now_ms) const {
  std::set<WorkerId> out;
  if (limits_.deadline_floor_ms <= 0) return out;
  std::map<WorkerId, std::pair<int64_t, int>> largest;  // tokens, misses of its largest task
  for (const auto& [id, t] : in_flight_) {
    auto& l = largest[t.worker];
    l = std::max(l, std::make_pair(t.tokens, t.missed_deadlines));
  }
  for (const auto& [worker, l] : largest) {
    const WorkerEntry* w = registry_->Find(worker);
    if (w == nullptr || !w->alive || w->busy_since_ms < 0) continue;
    int64_t quiet_since = w->busy_since_ms;
    if (auto a = last_answer_ms_.find(worker); a != last_answer_ms_.end()) {
      quiet_since = std::max(quiet_since, a->second);
    }
    if (static_cast<double>(now_ms - quiet_since) >= BudgetMs(worker, l.first, l.second)) {
      out.insert(worker);
    }
  }
  return out;
}

void Dispatcher::ForgetArrival(const InFlightTask& t) {
  const NodeId parent = t.task.parent_node_id;
  if (!t.sent_prefix || parent.value() == 0) return;
  if (auto a = arriving_.find(parent); a != arriving_.end() && a->second == t.worker) {
    arriving_.erase(a);
  }
}

void Dispatcher::ForgetQuery(QueryId query) { computed_.erase(query.value()); }

Expiry Dispatcher::ExpireLate(int64_t now_ms) {
  ExpireTransfers(now_ms);
  Expiry out;
  std::vector<Queued> requeue;
  const std::set<WorkerId> silent = SilentWorkers(now_ms);
  for (auto it = in_flight_.begin(); it != in_flight_.end();) {
    InFlightTask& t = it->second;
    const bool late = t.deadline_ms > 0 && now_ms >= t.deadline_ms;
    if (!late && silent.count(t.worker) == 0) {
      ++it;
      continue;
    }
    TakeOff(t);
    ForgetArrival(t);
    out.late.emplace_back(it->first, t.worker);
    late_[it->first][t.worker] = Late{t.sent_prefix, t.task.parent_node_id, t.task.child_node_ids};
    const int misses = t.missed_deadlines + 1;
    if (misses >= limits_.max_task_deadline_misses && !out.hopeless) out.hopeless = it->first;
    if (++missed_in_a_row_[t.worker] >= limits_.max_missed_deadlines &&
        std::find(out.fence.begin(), out.fence.end(), t.worker) == out.fence.end()) {
      out.fence.push_back(t.worker);
    }
    requeue.push_back(Queued{std::move(t.task), t.attempts, misses, false, t.origin});
    it = in_flight_.erase(it);
  }
  // in_flight_ is ordered by task id, so the requeued tasks keep that order at the front.
  for (auto it = requeue.rbegin(); it != requeue.rend(); ++it) queue_.push_front(std::move(*it));
  return out;
}

bool Dispatcher::DropLate(TaskId task, WorkerId worker) {
  auto l = late_.find(task);
  if (l == late_.end()) return false;
  auto w = l->second.find(worker);
  if (w == l->second.end()) return false;
  const Late late = std::move(w->second);
  l->second.erase(w);
  if (l->second.empty()) late_.erase(l);
  std::vector<NodeId> nodes = late.children;
  if (late.sent_prefix && late.parent.value() != 0) {
    const std::vector<WorkerId> holders = holders_.Holders(late.parent);
    if (std::find(holders.begin(), holders.end(), worker) == holders.end()) {
      nodes.push_back(late.parent);
    }
  }
  std::vector<NodeId>& out = releases_[worker];
  out.insert(out.end(), nodes.begin(), nodes.end());
  return true;
}

std::map<WorkerId, std::vector<NodeId>> Dispatcher::TakeReleases() {
  std::map<WorkerId, std::vector<NodeId>> out;
  out.swap(releases_);
  return out;
}

int Dispatcher::QueuedOnlyOn(WorkerId worker) const {
  int n = 0;
  for (const Queued& q : queue_) {
    const std::vector<WorkerId> hs = holders_.Holders(q.task.parent_node_id);
    if (hs.size() == 1 && hs.front() == worker) ++n;
  }
  return n;
}

int Dispatcher::WorkerDied(WorkerId worker) {
  holders_.ForgetWorker(worker);
  for (auto a = arriving_.begin(); a != arriving_.end();) {
    a = a->second == worker ? arriving_.erase(a) : std::next(a);
  }
  std::vector<uint64_t> broken;
  for (const auto& [id, t] : transfers_) {
    if (t.from == worker || t.to == worker) broken.push_back(id);
  }
  for (uint64_t id : broken) MigrationDone(id, false, 0);
  pages_.erase(worker);
  std::vector<Queued> lost;
  for (auto it = in_flight_.begin(); it != in_flight_.end();) {
    if (it->second.worker != worker) {
      ++it;
      continue;
    }
    lost.push_back(Queued{std::move(it->second.task), it->second.attempts,
                          it->second.missed_deadlines, false, it->second.origin});
    it = in_flight_.erase(it);
  }
  // in_flight_ is ordered by task id, so the requeued tasks keep that order at the front.
  for (auto it = lost.rbegin(); it != lost.rend(); ++it) queue_.push_front(std::move(*it));
  for (auto a = avoid_.begin(); a != avoid_.end();) {
    a = a->second == worker ? avoid_.erase(a) : std::next(a);
  }
  for (auto l = late_.begin(); l != late_.end();) {
    l->second.erase(worker);
    l = l->second.empty() ? late_.erase(l) : std::next(l);
  }
  in_flight_tokens_.erase(worker);
  missed_in_a_row_.erase(worker);
  last_answer_ms_.erase(worker);
  releases_.erase(worker);
  return static_cast<int>(lost.size());
}

}  // namespace treepo::scheduler
