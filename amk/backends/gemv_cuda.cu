// One variant of amk's CUDA GEMV (gemv_cuda.cuh) as a small shared library with a C entry point.
//
// amk/backends/cuda.py builds one of these per distinct kernel through torch.utils.cpp_extension, with
// the variant's knobs as -D defines and -gencode for the live device, and calls it through ctypes on
// torch's current stream (so a step can be captured in a CUDA graph). No torch headers: a build takes
// seconds, not the minute a full torch extension takes.

#include "gemv_cuda.cuh"

#if !defined(AMK_CPASYNC) || !defined(AMK_COLS_PER_WARP) || !defined(AMK_CPA_STAGES) || \
    !defined(AMK_CPA_COLS) || !defined(AMK_THREADS_PER_BLOCK)
#error "define AMK_CPASYNC, AMK_COLS_PER_WARP, AMK_CPA_STAGES, AMK_CPA_COLS and AMK_THREADS_PER_BLOCK"
#endif

#define AMK_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

template <typename T>
cudaError_t launch(const void* w, const void* x, void* y, int n, int k, int n_tile, cudaStream_t stream) {
  return amk_gemv::launch_gemv<T, AMK_CPASYNC, AMK_COLS_PER_WARP, AMK_CPA_STAGES, AMK_CPA_COLS, AMK_THREADS_PER_BLOCK>(
      w, x, y, n, k, n_tile, stream);
}

}  // namespace

// dtype: 0 fp32, 1 fp16, 2 bf16. Returns a cudaError_t (0: launched).
AMK_EXPORT int amk_gemv_launch(int dtype, const void* w, const void* x, void* y, long long n, long long k,
                               long long n_tile, void* stream) {
  if (n > INT32_MAX || k > INT32_MAX || n_tile > INT32_MAX) return cudaErrorInvalidValue;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  switch (dtype) {
    case 0: return launch<float>(w, x, y, int(n), int(k), int(n_tile), s);
    case 1: return launch<__half>(w, x, y, int(n), int(k), int(n_tile), s);
    case 2: return launch<__nv_bfloat16>(w, x, y, int(n), int(k), int(n_tile), s);
    default: return cudaErrorInvalidValue;
  }
}

AMK_EXPORT const char* amk_gemv_error_string(int code) { return cudaGetErrorString(static_cast<cudaError_t>(code)); }

// The knobs this library was built with, so the loader can check it loaded the variant it asked for.
AMK_EXPORT void amk_gemv_variant(int* out5) {
  out5[0] = AMK_CPASYNC;
  out5[1] = AMK_COLS_PER_WARP;
  out5[2] = AMK_CPA_STAGES;
  out5[3] = AMK_CPA_COLS;
  out5[4] = AMK_THREADS_PER_BLOCK;
}
