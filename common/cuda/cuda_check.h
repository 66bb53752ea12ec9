// Turning CUDA runtime and cuBLAS errors into Status (expected failures: no device, out of
// memory at creation) or into a CHECK failure (a failed launch or copy inside a forward pass,
// which is a bug or a dead device). Every CUDA and cuBLAS call of the backend goes through one
// of these macros, so each failure names the call, its file:line and the library's message.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

#include "common/check.h"
#include "common/status.h"

namespace treepo::cuda {

// "<expr> at <file>:<line>: <error name>: <message>"; kResourceExhausted for out-of-memory
// errors, kFailedPrecondition for a missing driver or device, kInternal otherwise.
Status CudaStatus(cudaError_t err, const char* expr, const char* file, int line);
Status CublasStatus(cublasStatus_t err, const char* expr, const char* file, int line);
const char* CublasErrorName(cublasStatus_t err);

}  // namespace treepo::cuda

// Returns a Status from the enclosing function when the CUDA runtime call fails.
#define TREEPO_CUDA_RETURN_IF_ERROR(expr)                                             \
  do {                                                                                \
    const cudaError_t treepo_cuda_err_ = (expr);                                      \
    if (treepo_cuda_err_ != cudaSuccess) {                                            \
      return ::treepo::cuda::CudaStatus(treepo_cuda_err_, #expr, __FILE__, __LINE__); \
    }                                                                                 \
  } while (0)

#define TREEPO_CUBLAS_RETURN_IF_ERROR(expr)                                               \
  do {                                                                                    \
    const cublasStatus_t treepo_cublas_err_ = (expr);                                     \
    if (treepo_cublas_err_ != CUBLAS_STATUS_SUCCESS) {                                    \
      return ::treepo::cuda::CublasStatus(treepo_cublas_err_, #expr, __FILE__, __LINE__); \
    }                                                                                     \
  } while (0)

// Aborts with the call, file:line and the error when the CUDA runtime call fails.
#define TREEPO_CUDA_CHECK(expr)                                                                \
  do {                                                                                         \
    const cudaError_t treepo_cuda_err_ = (expr);                                               \
    TREEPO_CHECK(treepo_cuda_err_ == cudaSuccess)                                              \
        << cudaGetErrorName(treepo_cuda_err_) << ": " << cudaGetErrorString(treepo_cuda_err_); \
  } while (0)

#define TREEPO_CUBLAS_CHECK(expr)                               \
  do {                                                          \
    const cublasStatus_t treepo_cublas_err_ = (expr);           \
    TREEPO_CHECK(treepo_cublas_err_ == CUBLAS_STATUS_SUCCESS)   \
        << ::treepo::cuda::CublasErrorName(treepo_cublas_err_); \
  } while (0)

// Aborts when a Status-returning launcher failed (inside a forward pass).
#define TREEPO_CUDA_CHECK_OK(expr) TREEPO_CHECK_OK(expr)
