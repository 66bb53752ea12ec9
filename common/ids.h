// Strong id types so that ids of different kinds cannot be mixed.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <ostream>

namespace treepo {

template <typename Tag, typename Rep = uint64_t>
class StrongId {
 public:
  using rep_type = Rep;
  constexpr StrongId() = default;
  constexpr explicit StrongId(Rep v) : v_(v) {}
  constexpr Rep value() const { return v_; }
  constexpr auto operator<=>(const StrongId&) const = default;
  friend std::ostream& operator<<(std::ostream& os, StrongId id) { return os << id.v_; }

 private:
  Rep v_{};
};

using QueryId = StrongId<struct QueryIdTag>;
using NodeId = StrongId<struct NodeIdTag>;  // unique within a run, not only a query
using WorkerId = StrongId<struct WorkerIdTag, uint32_t>;
using LearnerId = StrongId<struct LearnerIdTag, uint32_t>;
using PageId = StrongId<struct PageIdTag, int32_t>;
using WeightVersion = StrongId<struct WeightVersionTag>;
using TaskId = StrongId<struct TaskIdTag>;

}  // namespace treepo

template <typename Tag, typename Rep>
struct std::hash<treepo::StrongId<Tag, Rep>> {
  size_t operator()(treepo::StrongId<Tag, Rep> id) const noexcept {
    return std::hash<Rep>()(id.value());
  }
};
