// amk's CUDA decode GEMV kernels: y[n] = W[n, :] . x for row-major W in fp32, fp16 or bf16 (fp32 accumulation).
//
// Two kernel families, with the reference module's knobs:
//   gemv_register<T, COLS_PER_WARP, THREADS>: each warp computes COLS_PER_WARP rows at a time, streaming
//     16-byte vectors of W straight into registers (x is shared by the warp's rows).
//   gemv_cpasync<T, CPA_STAGES, CPA_COLS, THREADS>: each warp streams CPA_COLS rows at a time through a
//     per-warp cp.async ring of CPA_STAGES stages in shared memory, so CPA_STAGES - 1 loads are always in
//     flight while the warp computes on the oldest stage.
// A block takes n_tile consecutive rows (a run-time argument); its warps stride over them.
// Requires sm_80+ for cp.async, and K * sizeof(T) a multiple of 16 (rows are 16-byte aligned).

#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace amk_gemv {

template <typename T> struct Lanes;

template <> struct Lanes<float> {
  static constexpr int kPerVec = 4;  // elements in one 16-byte vector
  __device__ static inline float dot(const uint4& w, const uint4& x) {
    float s = __uint_as_float(w.x) * __uint_as_float(x.x);
    s = fmaf(__uint_as_float(w.y), __uint_as_float(x.y), s);
    s = fmaf(__uint_as_float(w.z), __uint_as_float(x.z), s);
    return fmaf(__uint_as_float(w.w), __uint_as_float(x.w), s);
  }
  __device__ static inline float from_float(float v) { return v; }
};

__device__ inline float2 to_float2(const __half2& v) { return __half22float2(v); }
__device__ inline float2 to_float2(const __nv_bfloat162& v) { return __bfloat1622float2(v); }

// The fp32 dot product of two 16-byte vectors of eight 16-bit elements, read as four pairs T2.
template <typename T2>
__device__ inline float dot_pairs(const uint4& w, const uint4& x) {
  const T2* wp = reinterpret_cast<const T2*>(&w);
  const T2* xp = reinterpret_cast<const T2*>(&x);
  float s = 0.f;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 a = to_float2(wp[i]);
    const float2 b = to_float2(xp[i]);
    s = fmaf(a.x, b.x, s);
    s = fmaf(a.y, b.y, s);
  }
  return s;
}

template <> struct Lanes<__half> {
  static constexpr int kPerVec = 8;
  __device__ static inline float dot(const uint4& w, const uint4& x) { return dot_pairs<__half2>(w, x); }
  __device__ static inline __half from_float(float v) { return __float2half_rn(v); }
};

template <> struct Lanes<__nv_bfloat16> {
  static constexpr int kPerVec = 8;
  __device__ static inline float dot(const uint4& w, const uint4& x) { return dot_pairs<__nv_bfloat162>(w, x); }
  __device__ static inline __nv_bfloat16 from_float(float v) { return __float2bfloat16_rn(v); }
};

__device__ inline float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// 16 bytes global -> shared without passing through registers; src_bytes = 0 fills zeros and reads nothing.
__device__ inline void cp_async_16(void* smem, const void* gmem, bool valid) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem), "r"(src_bytes) : "memory");
}

__device__ inline void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

template <int kPending>
__device__ inline void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory"); }

template <typename T, int COLS_PER_WARP, int THREADS>
__global__ void __launch_bounds__(THREADS)
gemv_register(const T* __restrict__ w, const T* __restrict__ x, T* __restrict__ y, int n, int k, int n_tile) {
  using L = Lanes<T>;
  constexpr int kWarps = THREADS / 32;
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int kv = k / L::kPerVec;
  const uint4* xv = reinterpret_cast<const uint4*>(x);
  const int tile_begin = blockIdx.x * n_tile;
  const int tile_end = min(n, tile_begin + n_tile);

  for (int r = tile_begin + warp * COLS_PER_WARP; r < tile_end; r += kWarps * COLS_PER_WARP) {
    const uint4* rows[COLS_PER_WARP];
    float acc[COLS_PER_WARP];
#pragma unroll
    for (int c = 0; c < COLS_PER_WARP; ++c) {
      acc[c] = 0.f;  // rows past the tile re-read its last row; their sums are dropped below
      rows[c] = reinterpret_cast<const uint4*>(w + static_cast<size_t>(min(r + c, tile_end - 1)) * k);
    }
#pragma unroll 4
    for (int i = lane; i < kv; i += 32) {
      const uint4 xi = __ldg(xv + i);
#pragma unroll
      for (int c = 0; c < COLS_PER_WARP; ++c) acc[c] += L::dot(__ldcs(rows[c] + i), xi);
    }
#pragma unroll
    for (int c = 0; c < COLS_PER_WARP; ++c) {
      const float s = warp_sum(acc[c]);
      if (lane == 0 && r + c < tile_end) y[r + c] = L::from_float(s);
    }
  }
}

// Start copying stage `it` (16 bytes per lane of each of the warp's CPA_COLS rows) into its ring slot.
template <int CPA_STAGES, int CPA_COLS>
__device__ __forceinline__ void issue_stage(uint4* ring, const uint4* const (&rows)[CPA_COLS], int it, int lane,
                                            int kv) {
  const int i = it * 32 + lane;
  const bool valid = i < kv;
  uint4* slot = ring + (it % CPA_STAGES) * CPA_COLS * 32;
#pragma unroll
  for (int c = 0; c < CPA_COLS; ++c) cp_async_16(slot + c * 32 + lane, rows[c] + (valid ? i : 0), valid);
}

template <int CPA_STAGES, int CPA_COLS, int THREADS>
constexpr size_t cpasync_smem_bytes() {
  return static_cast<size_t>(THREADS / 32) * CPA_STAGES * CPA_COLS * 32 * sizeof(uint4);
}

template <typename T, int CPA_STAGES, int CPA_COLS, int THREADS>
__global__ void __launch_bounds__(THREADS)
gemv_cpasync(const T* __restrict__ w, const T* __restrict__ x, T* __restrict__ y, int n, int k, int n_tile) {
  using L = Lanes<T>;
  constexpr int kWarps = THREADS / 32;
  extern __shared__ uint4 smem[];  // [warp][stage][col][lane]
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  uint4* ring = smem + static_cast<size_t>(warp) * CPA_STAGES * CPA_COLS * 32;
  const int kv = k / L::kPerVec;
  const int iters = (kv + 31) / 32;
  const uint4* xv = reinterpret_cast<const uint4*>(x);
  const int tile_begin = blockIdx.x * n_tile;
  const int tile_end = min(n, tile_begin + n_tile);

  for (int r = tile_begin + warp * CPA_COLS; r < tile_end; r += kWarps * CPA_COLS) {
    const uint4* rows[CPA_COLS];
    float acc[CPA_COLS];
#pragma unroll
    for (int c = 0; c < CPA_COLS; ++c) {
      acc[c] = 0.f;
      rows[c] = reinterpret_cast<const uint4*>(w + static_cast<size_t>(min(r + c, tile_end - 1)) * k);
    }
    // Each lane copies, and later reads, only its own 16 bytes of each row: no cross-lane sync needed.
#pragma unroll
    for (int s = 0; s < CPA_STAGES - 1; ++s) {
      if (s < iters) issue_stage<CPA_STAGES, CPA_COLS>(ring, rows, s, lane, kv);
      cp_async_commit();  // commit even when empty: group g always holds stage g
    }
    for (int it = 0; it < iters; ++it) {
      if (it + CPA_STAGES - 1 < iters) issue_stage<CPA_STAGES, CPA_COLS>(ring, rows, it + CPA_STAGES - 1, lane, kv);
      cp_async_commit();
      cp_async_wait<CPA_STAGES - 1>();  // stage `it` has landed
      const int i = it * 32 + lane;
      if (i < kv) {
        const uint4 xi = __ldg(xv + i);
        const uint4* slot = ring + (it % CPA_STAGES) * CPA_COLS * 32;
#pragma unroll
        for (int c = 0; c < CPA_COLS; ++c) acc[c] += L::dot(slot[c * 32 + lane], xi);
      }
      __syncwarp();  // this slot is refilled next iteration
    }
    cp_async_wait<0>();
#pragma unroll
    for (int c = 0; c < CPA_COLS; ++c) {
      const float s = warp_sum(acc[c]);
      if (lane == 0 && r + c < tile_end) y[r + c] = L::from_float(s);
    }
  }
}

// Launch one GEMV of the variant on `stream`. CPASYNC selects the family; the other family's knobs are
// ignored (the search space maps them to one canonical value, so each distinct kernel is built once).
template <typename T, int CPASYNC, int COLS_PER_WARP, int CPA_STAGES, int CPA_COLS, int THREADS>
cudaError_t launch_gemv(const void* w, const void* x, void* y, int n, int k, int n_tile, cudaStream_t stream) {
  static_assert(THREADS % 32 == 0 && THREADS <= 1024, "THREADS must be a multiple of 32, at most 1024");
  if (n <= 0 || k <= 0 || n_tile <= 0 || k % Lanes<T>::kPerVec) return cudaErrorInvalidValue;
  const int blocks = (n + n_tile - 1) / n_tile;
  const T* wt = static_cast<const T*>(w);
  const T* xt = static_cast<const T*>(x);
  T* yt = static_cast<T*>(y);
  if constexpr (CPASYNC != 0) {
    constexpr size_t smem = cpasync_smem_bytes<CPA_STAGES, CPA_COLS, THREADS>();
    auto kernel = gemv_cpasync<T, CPA_STAGES, CPA_COLS, THREADS>;
    static bool smem_opted_in = false;  // set once, before any CUDA-graph capture (the caller warms up)
    if (smem > 48 * 1024 && !smem_opted_in) {
      const cudaError_t err =
          cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
      if (err != cudaSuccess) return err;
      smem_opted_in = true;
    }
    kernel<<<blocks, THREADS, smem, stream>>>(wt, xt, yt, n, k, n_tile);
  } else {
    gemv_register<T, COLS_PER_WARP, THREADS><<<blocks, THREADS, 0, stream>>>(wt, xt, yt, n, k, n_tile);
  }
  return cudaGetLastError();
}

}  // namespace amk_gemv
