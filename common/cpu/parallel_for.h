// A small fork-join pool for splitting one CPU kernel call across threads.
//
// ParallelFor(n, fn) runs fn(0) .. fn(n - 1), each exactly once, on the calling thread and up
// to threads - 1 helper threads, and returns when all are done. The pool is per calling
// thread (thread_local), so independent callers (two engines on two threads) never wait for
// each other; the helpers sleep on a condition variable between calls.
//
// The split changes only who computes what, never how: callers keep every output element's
// arithmetic inside one task, so results do not depend on the thread count.
#pragma once

#include <functional>

namespace treepo::cpu {

// Threads used by ParallelFor (>= 1). 0 or less: the number of hardware threads.
void SetCpuThreads(int n);
int CpuThreads();

void ParallelFor(int n, const std::function<void(int)>& fn);

}  // namespace treepo::cpu
