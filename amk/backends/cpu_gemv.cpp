// amk's CPU decode GEMV: y[n] = W[n, :] . x for row-major W, in fp32, fp16 or bf16 (fp32 accumulation).
//
// Built once per machine by amk/backends/cpu.py. The knobs that change the generated code (columns per
// thread, K unroll) are template parameters, all instantiated in this one build and picked at run time
// from a table; prefetch distance, threads and N tile are run-time arguments. Weights arrive as raw
// 16-bit words for fp16/bf16 so the kernel does its own widening (a shift for bf16, _Float16 for fp16),
// which the compiler vectorises with -O3 -march=native.

#include <torch/extension.h>

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr int kLanes = 16;  // one 512-bit (or two 256-bit) vectors of fp32 per accumulator
constexpr int kCacheLineBytes = 64;

enum class Dtype : int { F32 = 0, F16 = 1, BF16 = 2 };

template <Dtype D> struct Elem;
template <> struct Elem<Dtype::F32> {
  using T = float;
  static inline float load(const T* p) { return *p; }
  static inline T store(float v) { return v; }
};
template <> struct Elem<Dtype::F16> {
  using T = _Float16;
  static inline float load(const T* p) { return static_cast<float>(*p); }
  static inline T store(float v) { return static_cast<T>(v); }
};
template <> struct Elem<Dtype::BF16> {
  using T = uint16_t;
  static inline float load(const T* p) {
    uint32_t bits = static_cast<uint32_t>(*p) << 16;
    float v;
    std::memcpy(&v, &bits, sizeof v);
    return v;
  }
  static inline T store(float v) {  // round to nearest even, as torch does
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu)) return static_cast<T>((bits >> 16) | 0x40);
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return static_cast<T>(bits >> 16);
  }
};

// Sixteen fp32 lanes: one AVX-512 register, two AVX2 registers, or a plain array, whichever this
// machine has (the build uses -march=native). load_* widens 16 weights of each dtype to fp32.
#if defined(__AVX512F__)
struct V16 {
  __m512 v;
  static inline V16 zero() { return {_mm512_setzero_ps()}; }
  static inline V16 load_f32(const float* p) { return {_mm512_loadu_ps(p)}; }
  static inline V16 load_f16(const _Float16* p) {
    return {_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)))};
  }
  static inline V16 load_bf16(const uint16_t* p) {
    __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return {_mm512_castsi512_ps(_mm512_slli_epi32(wide, 16))};
  }
  inline void fma(V16 a, V16 b) { v = _mm512_fmadd_ps(a.v, b.v, v); }
  inline float sum() const { return _mm512_reduce_add_ps(v); }
};
#elif defined(__AVX2__) && defined(__F16C__) && defined(__FMA__)
struct V16 {
  __m256 lo, hi;
  static inline V16 zero() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
  static inline V16 load_f32(const float* p) { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
  static inline V16 load_f16(const _Float16* p) {
    __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return {_mm256_cvtph_ps(_mm256_castsi256_si128(h)), _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1))};
  }
  static inline V16 load_bf16(const uint16_t* p) {
    __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    __m256i lo = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_castsi256_si128(h)), 16);
    __m256i hi = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_extracti128_si256(h, 1)), 16);
    return {_mm256_castsi256_ps(lo), _mm256_castsi256_ps(hi)};
  }
  inline void fma(V16 a, V16 b) { lo = _mm256_fmadd_ps(a.lo, b.lo, lo); hi = _mm256_fmadd_ps(a.hi, b.hi, hi); }
  inline float sum() const {
    alignas(32) float t[8];
    _mm256_store_ps(t, _mm256_add_ps(lo, hi));
    return ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
  }
};
#else
struct V16 {
  float v[kLanes];
  static inline V16 zero() { V16 r; for (int i = 0; i < kLanes; ++i) r.v[i] = 0.f; return r; }
  static inline V16 load_f32(const float* p) { V16 r; for (int i = 0; i < kLanes; ++i) r.v[i] = p[i]; return r; }
  static inline V16 load_f16(const _Float16* p) {
    V16 r; for (int i = 0; i < kLanes; ++i) r.v[i] = static_cast<float>(p[i]); return r;
  }
  static inline V16 load_bf16(const uint16_t* p) {
    V16 r; for (int i = 0; i < kLanes; ++i) r.v[i] = Elem<Dtype::BF16>::load(p + i); return r;
  }
  inline void fma(V16 a, V16 b) { for (int i = 0; i < kLanes; ++i) v[i] += a.v[i] * b.v[i]; }
  inline float sum() const { float s = 0.f; for (int i = 0; i < kLanes; ++i) s += v[i]; return s; }
};
#endif

template <Dtype D> inline V16 load_lanes(const typename Elem<D>::T* p);
template <> inline V16 load_lanes<Dtype::F32>(const float* p) { return V16::load_f32(p); }
template <> inline V16 load_lanes<Dtype::F16>(const _Float16* p) { return V16::load_f16(p); }
template <> inline V16 load_lanes<Dtype::BF16>(const uint16_t* p) { return V16::load_bf16(p); }

// C consecutive rows of W against x: C * U independent accumulators hide the FMA latency, and the
// C rows share each load of x.
template <Dtype D, int C, int U>
void rows_dot(const typename Elem<D>::T* __restrict w, int64_t ld, const float* __restrict x, int64_t k_len,
              int prefetch_elems, float* __restrict out) {
  using E = Elem<D>;
  V16 acc[C][U];
  for (int c = 0; c < C; ++c)
    for (int u = 0; u < U; ++u) acc[c][u] = V16::zero();

  constexpr int64_t kStep = static_cast<int64_t>(U) * kLanes;
  int64_t k = 0;
  for (; k + kStep <= k_len; k += kStep) {
    if (prefetch_elems) {
      for (int c = 0; c < C; ++c) __builtin_prefetch(w + c * ld + k + prefetch_elems, 0, 0);
    }
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) {
      const V16 xv = V16::load_f32(x + k + u * kLanes);
#pragma GCC unroll 8
      for (int c = 0; c < C; ++c) acc[c][u].fma(load_lanes<D>(w + c * ld + k + u * kLanes), xv);
    }
  }
  for (int c = 0; c < C; ++c) {
    float total = 0.f;
    for (int u = 0; u < U; ++u) total += acc[c][u].sum();
    for (int64_t kk = k; kk < k_len; ++kk) total += E::load(w + c * ld + kk) * x[kk];
    out[c] = total;
  }
}

struct Knobs {
  int cols_per_thread;
  int k_unroll;
  int prefetch_lines;
  int threads;
  int n_tile;
};

#if defined(__AVX512BF16__)
// bf16 on CPUs with AVX512-BF16: vdpbf16ps multiplies 32 bf16 pairs (exactly, in fp32) and adds them to
// 16 fp32 lanes in one instruction, against the input kept in bf16: a third of the instructions of
// widening both operands, so one core keeps up with memory.
template <int C, int U>
void rows_dot_bf16_pairs(const uint16_t* __restrict w, int64_t ld, const float* __restrict x32,
                         const uint16_t* __restrict x16, int64_t k_len, int prefetch_elems, float* __restrict out) {
  constexpr int kPairLanes = 2 * kLanes;
  __m512 acc[C][U];
  for (int c = 0; c < C; ++c)
    for (int u = 0; u < U; ++u) acc[c][u] = _mm512_setzero_ps();
  constexpr int64_t kStep = static_cast<int64_t>(U) * kPairLanes;
  int64_t k = 0;
  for (; k + kStep <= k_len; k += kStep) {
    if (prefetch_elems) {
      for (int c = 0; c < C; ++c) __builtin_prefetch(w + c * ld + k + prefetch_elems, 0, 0);
    }
#pragma GCC unroll 4
    for (int u = 0; u < U; ++u) {
      const __m512bh xv = (__m512bh)_mm512_loadu_si512(x16 + k + u * kPairLanes);
#pragma GCC unroll 8
      for (int c = 0; c < C; ++c) {
        const __m512bh wv = (__m512bh)_mm512_loadu_si512(w + c * ld + k + u * kPairLanes);
        acc[c][u] = _mm512_dpbf16_ps(acc[c][u], wv, xv);
      }
    }
  }
  for (int c = 0; c < C; ++c) {
    float total = 0.f;
    for (int u = 0; u < U; ++u) total += _mm512_reduce_add_ps(acc[c][u]);
    for (int64_t kk = k; kk < k_len; ++kk) total += Elem<Dtype::BF16>::load(w + c * ld + kk) * x32[kk];
    out[c] = total;
  }
}
#endif

// w, the input in fp32 (x32) and in the weights' own dtype (xn), K, the prefetch distance, C outputs.
using RowsFn = void (*)(const void*, int64_t, const float*, const void*, int64_t, int, float*);

template <Dtype D, int C, int U>
void rows_dot_erased(const void* w, int64_t ld, const float* x32, const void* xn, int64_t k_len, int prefetch_elems,
                     float* out) {
#if defined(__AVX512BF16__)
  if constexpr (D == Dtype::BF16) {
    rows_dot_bf16_pairs<C, U>(static_cast<const uint16_t*>(w), ld, x32, static_cast<const uint16_t*>(xn), k_len,
                              prefetch_elems, out);
    return;
  }
#endif
  (void)xn;
  rows_dot<D, C, U>(static_cast<const typename Elem<D>::T*>(w), ld, x32, k_len, prefetch_elems, out);
}

constexpr std::array<int, 4> kCols = {1, 2, 4, 8};
constexpr std::array<int, 3> kUnrolls = {1, 2, 4};

template <Dtype D, int CI, int UI>
constexpr RowsFn pick() { return &rows_dot_erased<D, kCols[CI], kUnrolls[UI]>; }

template <Dtype D>
constexpr std::array<std::array<RowsFn, 3>, 4> table() {
  return {{{pick<D, 0, 0>(), pick<D, 0, 1>(), pick<D, 0, 2>()},
           {pick<D, 1, 0>(), pick<D, 1, 1>(), pick<D, 1, 2>()},
           {pick<D, 2, 0>(), pick<D, 2, 1>(), pick<D, 2, 2>()},
           {pick<D, 3, 0>(), pick<D, 3, 1>(), pick<D, 3, 2>()}}};
}

int index_of(const int* values, int n, int value, const char* what) {
  for (int i = 0; i < n; ++i)
    if (values[i] == value) return i;
  TORCH_CHECK(false, what, "=", value, " is not a compiled choice");
  return -1;
}

Dtype dtype_of(const torch::Tensor& t) {
  switch (t.scalar_type()) {
    case torch::kFloat: return Dtype::F32;
    case torch::kHalf: return Dtype::F16;
    case torch::kBFloat16: return Dtype::BF16;
    default: TORCH_CHECK(false, "amk cpu gemv supports float32, float16 and bfloat16, not ", t.scalar_type());
  }
  return Dtype::F32;
}

RowsFn rows_fn(Dtype d, int ci, int ui) {
  static const auto f32 = table<Dtype::F32>();
  static const auto f16 = table<Dtype::F16>();
  static const auto bf16 = table<Dtype::BF16>();
  switch (d) {
    case Dtype::F32: return f32[ci][ui];
    case Dtype::F16: return f16[ci][ui];
    default: return bf16[ci][ui];
  }
}

void store_row(Dtype d, void* y, int64_t i, float v) {
  switch (d) {
    case Dtype::F32: static_cast<float*>(y)[i] = v; break;
    case Dtype::F16: static_cast<_Float16*>(y)[i] = Elem<Dtype::F16>::store(v); break;
    default: static_cast<uint16_t*>(y)[i] = Elem<Dtype::BF16>::store(v); break;
  }
}

struct Gemv {
  const void* w;
  const float* x;
  const void* xn;  // x in the weights' dtype
  void* y;
  int64_t n, k;
  Dtype dtype;
  RowsFn full;  // C rows at a time
  RowsFn single;  // the leftover rows of a tile, one at a time
};

}  // namespace

// Run every GEMV of one decode step (ys[i] = weights[i] @ xs[i]) under one set of knobs.
void gemv_step(const std::vector<torch::Tensor>& weights, const std::vector<torch::Tensor>& xs,
               const std::vector<torch::Tensor>& ys, int64_t cols_per_thread, int64_t k_unroll,
               int64_t prefetch_lines, int64_t threads, int64_t n_tile) {
  TORCH_CHECK(weights.size() == xs.size() && xs.size() == ys.size(), "weights, xs and ys differ in length");
  TORCH_CHECK(threads >= 1 && n_tile >= 1, "threads and n_tile must be >= 1");
  const int ci = index_of(kCols.data(), kCols.size(), static_cast<int>(cols_per_thread), "cols_per_thread");
  const int ui = index_of(kUnrolls.data(), kUnrolls.size(), static_cast<int>(k_unroll), "k_unroll");
  const int cols = kCols[ci];
  TORCH_CHECK(n_tile % cols == 0, "n_tile=", n_tile, " is not a multiple of cols_per_thread=", cols);

  std::vector<torch::Tensor> xs32;
  std::vector<Gemv> work;
  xs32.reserve(xs.size());
  work.reserve(weights.size());
  for (size_t i = 0; i < weights.size(); ++i) {
    const auto& w = weights[i];
    TORCH_CHECK(w.dim() == 2 && w.is_contiguous() && w.device().is_cpu(), "weights must be contiguous 2-D CPU tensors");
    TORCH_CHECK(xs[i].numel() == w.size(1) && ys[i].numel() == w.size(0), "x or y does not match its weight's shape");
    TORCH_CHECK(ys[i].is_contiguous() && ys[i].scalar_type() == w.scalar_type(), "y must be contiguous, of W's dtype");
    xs32.push_back(xs[i].to(torch::kFloat).contiguous());
    const Dtype d = dtype_of(w);
    TORCH_CHECK(xs[i].scalar_type() == w.scalar_type() && xs[i].is_contiguous(), "x must be contiguous, of W's dtype");
    work.push_back({w.data_ptr(), xs32.back().data_ptr<float>(), xs[i].data_ptr(), ys[i].data_ptr(), w.size(0), w.size(1), d,
                    rows_fn(d, ci, ui), rows_fn(d, 0, ui)});
  }
  const int elem_bytes = weights.empty() ? 4 : static_cast<int>(weights[0].element_size());
  const int prefetch_elems = static_cast<int>(prefetch_lines) * kCacheLineBytes / elem_bytes;

#pragma omp parallel num_threads(static_cast<int>(threads))
  {
    for (const Gemv& g : work) {
      const int64_t tiles = (g.n + n_tile - 1) / n_tile;
      // Threads take tiles as they finish their last (dynamic): a thread that loses its core for a while
      // (a shared machine) delays its tile, not a fixed share of the rows.
#pragma omp for schedule(dynamic, 1)
      for (int64_t t = 0; t < tiles; ++t) {
        const int64_t begin = t * n_tile;
        const int64_t end = std::min(g.n, begin + n_tile);
        const size_t row_bytes = static_cast<size_t>(g.k) * elem_bytes;
        float out[8];
        int64_t r = begin;
        for (; r + cols <= end; r += cols) {
          g.full(static_cast<const char*>(g.w) + r * row_bytes, g.k, g.x, g.xn, g.k, prefetch_elems, out);
          for (int c = 0; c < cols; ++c) store_row(g.dtype, g.y, r + c, out[c]);
        }
        for (; r < end; ++r) {
          g.single(static_cast<const char*>(g.w) + r * row_bytes, g.k, g.x, g.xn, g.k, prefetch_elems, out);
          store_row(g.dtype, g.y, r, out[0]);
        }
      }  // the implicit barrier keeps the GEMVs in order, as a decode step's data dependences would
    }
  }
}

// STREAM-like read: the sum of squares of a large float32 buffer with `threads` threads, each reading its
// share as `streams` concurrent sequential streams (the way a GEMV reads several rows at once: more
// streams keep more of the memory system busy); returns the sum so the compiler cannot drop the reads.
// The caller times it.
double read_sum(const torch::Tensor& buffer, int64_t threads, int64_t streams) {
  TORCH_CHECK(buffer.scalar_type() == torch::kFloat && buffer.is_contiguous(), "buffer must be contiguous float32");
  TORCH_CHECK(streams >= 1 && streams <= 16, "streams must be in [1, 16]");
  const float* p = buffer.data_ptr<float>();
  const int64_t n = buffer.numel();
  const int64_t parts = threads * streams;
  const int64_t part = n / parts / kLanes * kLanes;  // floats per stream, whole vectors
  double total = 0.0;
#pragma omp parallel num_threads(static_cast<int>(threads)) reduction(+ : total)
  {
    V16 acc[16];
    for (int s = 0; s < 16; ++s) acc[s] = V16::zero();
    const int64_t first = static_cast<int64_t>(omp_get_thread_num()) * streams;
    for (int64_t i = 0; i < part; i += kLanes) {
      for (int64_t s = 0; s < streams; ++s) {
        const V16 v = V16::load_f32(p + (first + s) * part + i);
        acc[s].fma(v, v);
      }
    }
    for (int s = 0; s < 16; ++s) total += acc[s].sum();
  }
  for (int64_t i = parts * part; i < n; ++i) total += static_cast<double>(p[i]) * p[i];
  return total;
}

// The knob choices this build was compiled with, so Python can check it agrees.
std::vector<int64_t> compiled_cols() { return {kCols.begin(), kCols.end()}; }
std::vector<int64_t> compiled_unrolls() { return {kUnrolls.begin(), kUnrolls.end()}; }
int64_t max_threads() { return omp_get_max_threads(); }

// Which vector code this build runs (it follows -march=native).
std::string simd_path() {
#if defined(__AVX512F__) && defined(__AVX512BF16__)
  return "avx512 (bf16 via avx512-bf16 dot products)";
#elif defined(__AVX512F__)
  return "avx512";
#elif defined(__AVX2__) && defined(__F16C__) && defined(__FMA__)
  return "avx2+f16c+fma";
#else
  return "scalar";
#endif
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("gemv_step", &gemv_step, "ys[i] = weights[i] @ xs[i] for every GEMV of a decode step");
  m.def("read_sum", &read_sum, "sum a float32 buffer (a memory-bandwidth probe)");
  m.def("compiled_cols", &compiled_cols);
  m.def("compiled_unrolls", &compiled_unrolls);
  m.def("max_threads", &max_threads);
  m.def("simd_path", &simd_path);
}
