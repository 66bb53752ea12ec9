// A matrix product whose every output element is computed the same way whatever the shape of
// the call: the batch-invariant linear layer of the inference forward.
//
// y[i][j] = x[i] . w[j] is reduced over k in one fixed order that depends on k alone: eight
// lane sums, lane l accumulating x[i][kk + l] * w[j][kk + l] for kk = 0, 8, 16, ... with a
// fused multiply-add (a lane past k adds 0 * 0), then ((l0 + l4) + (l2 + l6)) +
// ((l1 + l5) + (l3 + l7)). So y[i] depends on x[i] and w alone: not on m (the other rows of
// the batch), on the row's place in it, on the tiling of the call, nor on the thread count.
// The same arithmetic runs on every machine (AVX2+FMA when the CPU has it, the portable
// std::fma loop otherwise), so results are bitwise equal across hosts too.
//
// BLAS sgemm gives none of these guarantees (sgemv for one row, kernels and K blocking that
// vary with the shape and the library build), which is why the worker's forward uses this.
#pragma once

#include <cstdint>

#include "common/model/dtype.h"

namespace treepo::cpu {

// y[m, n] = beta * y + x[m, k] . w[n, k]^T, beta 0 (y is not read) or 1 (y += ...).
// Splits the columns across CpuThreads() threads when the product is large enough.
void FixedOrderMatMulWt(const float* x, const float* w, float* y, int m, int n, int k,
                        float beta = 0.0f);

// The portable path alone (tests compare it with the SIMD one).
void FixedOrderMatMulWtPortable(const float* x, const float* w, float* y, int m, int n, int k,
                                float beta = 0.0f);

// The same with 16-bit weights (bf16 or f16), widened to fp32 as they are loaded: the result
// equals FixedOrderMatMulWt over the widened weights, bit for bit.
void FixedOrderMatMulWt16(const float* x, const uint16_t* w, model::WeightDtype dtype, float* y,
                          int m, int n, int k, float beta = 0.0f);
void FixedOrderMatMulWt16Portable(const float* x, const uint16_t* w, model::WeightDtype dtype,
                                  float* y, int m, int n, int k, float beta = 0.0f);

}  // namespace treepo::cpu
