// Whole-sequence LSTM recurrence on the CPU as two XLA FFI kernels: forward (with the residuals the gradient
// needs) and backward. They compute exactly the equations of rnnjax/fused.py's _lstm_forward/_lstm_backward,
// masking included, and run each batch row's whole sequence on one thread (rows are independent), so a call
// uses every core without any synchronisation between time steps.
//
// Layout (time-major, directions stacked): xw [T, D, B, 4H], U [D, H, 4H], mask [T, D, B] (uint8; ignored
// when has_mask = 0), carries [D, B, H]. Gates i, f, g, o in Keras' order.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// tanh as XLA:CPU and Eigen compute it for float32 (a 13/6 rational approximation, clamped), so the values
// match the XLA path to rounding.
inline float tanh_f32(float v) {
  const float clamp = 7.90531110763549805f;
  const float x = std::min(std::max(v, -clamp), clamp);
  const float x2 = x * x;
  float p = -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 + -8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  p = p * x;
  float q = 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  return std::fabs(v) < 0.0004f ? v : p / q;  // branch-free, so loops over it vectorise
}

inline float sigmoid_f32(float x) { return 0.5f * tanh_f32(0.5f * x) + 0.5f; }

// 16 floats; unaligned loads and stores go through memcpy. GCC lowers it to the widest vectors the CPU has.
typedef float vf __attribute__((vector_size(64)));
inline vf load(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store(float* p, vf v) { std::memcpy(p, &v, sizeof v); }

// Up to 4 rows times one matrix: out[r][0:n) = init[r][0:n) (or 0) + sum_k s[r][k] * m[k * ld + (0:n)].
// The rows share every load of m, and each column block keeps R x Q vectors of accumulators in registers.
template <int R, int Q>
inline int64_t column_blocks(float* const* out, const float* const* init, const float* const* s, int64_t K,
                             const float* __restrict__ m, int64_t ld, int64_t n, int64_t j0) {
  for (; j0 + 16 * Q <= n; j0 += 16 * Q) {
    vf acc[R][Q];
    for (int r = 0; r < R; ++r)
      for (int q = 0; q < Q; ++q) acc[r][q] = init ? load(init[r] + j0 + 16 * q) : vf{};
    for (int64_t k = 0; k < K; ++k) {
      vf mk[Q];
      for (int q = 0; q < Q; ++q) mk[q] = load(m + k * ld + j0 + 16 * q);
      for (int r = 0; r < R; ++r) {
        const float sr = s[r][k];
        for (int q = 0; q < Q; ++q) acc[r][q] += sr * mk[q];
      }
    }
    for (int r = 0; r < R; ++r)
      for (int q = 0; q < Q; ++q) store(out[r] + j0 + 16 * q, acc[r][q]);
  }
  return j0;
}

template <int R>
inline void rows_times_matrix(float* const* out, const float* const* init, const float* const* s, int64_t K,
                              const float* __restrict__ m, int64_t ld, int64_t n) {
  int64_t j0 = column_blocks<R, 4>(out, init, s, K, m, ld, n, 0);
  j0 = column_blocks<R, 2>(out, init, s, K, m, ld, n, j0);
  j0 = column_blocks<R, 1>(out, init, s, K, m, ld, n, j0);
  for (; j0 < n; ++j0) {
    for (int r = 0; r < R; ++r) {
      float acc = init ? init[r][j0] : 0.0f;
      for (int64_t k = 0; k < K; ++k) acc += s[r][k] * m[k * ld + j0];
      out[r][j0] = acc;
    }
  }
}

inline void rows_times_matrix(int rows, float* const* out, const float* const* init, const float* const* s,
                              int64_t K, const float* m, int64_t ld, int64_t n) {
  switch (rows) {
    case 4: return rows_times_matrix<4>(out, init, s, K, m, ld, n);
    case 3: return rows_times_matrix<3>(out, init, s, K, m, ld, n);
    case 2: return rows_times_matrix<2>(out, init, s, K, m, ld, n);
    default: return rows_times_matrix<1>(out, init, s, K, m, ld, n);
  }
}

constexpr int kRows = 4;  // batch rows per matrix product

// c, h <- the new cell state and output from the gate activations a = [i, f, g, o]; tc = tanh(c_new).
inline void cell_update(int64_t H, const float* __restrict__ a, float* __restrict__ c, float* __restrict__ h,
                        float* __restrict__ tc) {
  for (int64_t k = 0; k < H; ++k) {
    const float cn = a[H + k] * c[k] + a[k] * a[2 * H + k];
    tc[k] = tanh_f32(cn);
    c[k] = cn;
    h[k] = a[3 * H + k] * tc[k];
  }
}

// One step's gradient: dz (gate pre-activations) and dc <- dc_prev from dh (+ dy), dc and the residuals.
inline void cell_grad(int64_t H, const float* __restrict__ a, const float* __restrict__ tc,
                      const float* __restrict__ cp, const float* __restrict__ dy, const float* __restrict__ dh,
                      float* __restrict__ dc, float* __restrict__ dz) {
  for (int64_t k = 0; k < H; ++k) {
    const float i = a[k], f = a[H + k], g = a[2 * H + k], o = a[3 * H + k];
    const float dhk = dh[k] + dy[k];
    const float dct = dc[k] + dhk * o * (1.0f - tc[k] * tc[k]);
    dz[k] = dct * g * i * (1.0f - i);
    dz[H + k] = dct * cp[k] * f * (1.0f - f);
    dz[2 * H + k] = dct * i * (1.0f - g * g);
    dz[3 * H + k] = dhk * tc[k] * o * (1.0f - o);
    dc[k] = dct * f;
  }
}

int num_threads(int64_t rows) {
  int n = static_cast<int>(std::thread::hardware_concurrency());
  if (const char* env = std::getenv("RNNJAX_NATIVE_THREADS")) n = std::atoi(env);
  n = std::max(1, n);
  return static_cast<int>(std::min<int64_t>(n, std::max<int64_t>(1, rows / 8)));
}

// Runs fn(row_begin, row_end) over [0, rows) split into contiguous chunks, one per thread.
template <typename Fn>
void parallel_rows(int64_t rows, Fn fn) {
  const int threads = num_threads(rows);
  if (threads == 1) {
    fn(int64_t{0}, rows);
    return;
  }
  std::vector<std::thread> pool;
  const int64_t chunk = (rows + threads - 1) / threads;
  for (int k = 1; k < threads; ++k) {
    const int64_t lo = k * chunk, hi = std::min(rows, lo + chunk);
    if (lo < hi) pool.emplace_back(fn, lo, hi);
  }
  fn(int64_t{0}, std::min(rows, chunk));
  for (auto& th : pool) th.join();
}

ffi::Error LstmForwardImpl(ffi::Buffer<ffi::F32> xw, ffi::Buffer<ffi::F32> u, ffi::Buffer<ffi::U8> mask,
                           ffi::Buffer<ffi::F32> h0, ffi::Buffer<ffi::F32> c0, ffi::ResultBuffer<ffi::F32> ys,
                           ffi::ResultBuffer<ffi::F32> h_out, ffi::ResultBuffer<ffi::F32> c_out,
                           ffi::ResultBuffer<ffi::F32> h_res, ffi::ResultBuffer<ffi::F32> c_res,
                           ffi::ResultBuffer<ffi::F32> a_res, ffi::ResultBuffer<ffi::F32> tc_res, int32_t has_mask,
                           int32_t with_outputs, int32_t keep_residuals) {
  auto dims = xw.dimensions();
  if (dims.size() != 4) return ffi::Error::InvalidArgument("lstm_forward: xw must be [T, D, B, 4H]");
  const int64_t T = dims[0], D = dims[1], B = dims[2], G = dims[3], H = G / 4;
  const float* X = xw.typed_data();
  const float* U = u.typed_data();
  const uint8_t* M = mask.typed_data();
  float* Y = ys->typed_data();
  float* HS = h_out->typed_data();
  float* CS = c_out->typed_data();
  float* HR = h_res->typed_data();
  float* CR = c_res->typed_data();
  float* AR = a_res->typed_data();
  float* TR = tc_res->typed_data();
  std::memcpy(HS, h0.typed_data(), sizeof(float) * D * B * H);
  std::memcpy(CS, c0.typed_data(), sizeof(float) * D * B * H);

  parallel_rows(B, [&](int64_t lo, int64_t hi) {
    std::vector<float> z(kRows * G), tcs(H);
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t d = 0; d < D; ++d) {
        const float* Ud = U + d * H * G;
        for (int64_t b0 = lo; b0 < hi; b0 += kRows) {
          const int rows = static_cast<int>(std::min<int64_t>(kRows, hi - b0));
          float* zr[kRows];
          const float* xr[kRows];
          const float* hr[kRows];
          for (int r = 0; r < rows; ++r) {
            const int64_t row = (t * D + d) * B + b0 + r;
            zr[r] = z.data() + r * G;
            xr[r] = X + row * G;
            hr[r] = HS + (d * B + b0 + r) * H;
            if (keep_residuals) {
              std::memcpy(HR + row * H, hr[r], sizeof(float) * H);
              std::memcpy(CR + row * H, CS + (d * B + b0 + r) * H, sizeof(float) * H);
            }
          }
          rows_times_matrix(rows, zr, xr, hr, H, Ud, G, G);  // z = xw + h U
          for (int r = 0; r < rows; ++r) {
            const int64_t row = (t * D + d) * B + b0 + r;
            if (has_mask && !M[row]) {  // masked: the carry is held and the output is zero
              if (with_outputs) std::fill(Y + row * H, Y + (row + 1) * H, 0.0f);
              if (keep_residuals) {
                std::fill(AR + row * G, AR + (row + 1) * G, 0.0f);
                std::fill(TR + row * H, TR + (row + 1) * H, 0.0f);
              }
              continue;
            }
            float* __restrict__ zp = zr[r];
            // a = [sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)]
            for (int64_t j = 0; j < 2 * H; ++j) zp[j] = sigmoid_f32(zp[j]);
            for (int64_t j = 2 * H; j < 3 * H; ++j) zp[j] = tanh_f32(zp[j]);
            for (int64_t j = 3 * H; j < G; ++j) zp[j] = sigmoid_f32(zp[j]);
            float* h = HS + (d * B + b0 + r) * H;
            cell_update(H, zp, CS + (d * B + b0 + r) * H, h, tcs.data());
            if (with_outputs) std::memcpy(Y + row * H, h, sizeof(float) * H);
            if (keep_residuals) {
              std::memcpy(TR + row * H, tcs.data(), sizeof(float) * H);
              std::memcpy(AR + row * G, zp, sizeof(float) * G);
            }
          }
        }
      }
    }
  });
  return ffi::Error::Success();
}

ffi::Error LstmBackwardImpl(ffi::Buffer<ffi::F32> u, ffi::Buffer<ffi::F32> c_res, ffi::Buffer<ffi::F32> a_res,
                            ffi::Buffer<ffi::F32> tc_res, ffi::Buffer<ffi::U8> mask, ffi::Buffer<ffi::F32> dys,
                            ffi::Buffer<ffi::F32> dh_last, ffi::Buffer<ffi::F32> dc_last,
                            ffi::ResultBuffer<ffi::F32> dz_out, ffi::ResultBuffer<ffi::F32> dh0,
                            ffi::ResultBuffer<ffi::F32> dc0, int32_t has_mask, int32_t with_outputs) {
  auto dims = a_res.dimensions();
  if (dims.size() != 4) return ffi::Error::InvalidArgument("lstm_backward: a must be [T, D, B, 4H]");
  const int64_t T = dims[0], D = dims[1], B = dims[2], G = dims[3], H = G / 4;
  const float* U = u.typed_data();
  const float* CR = c_res.typed_data();
  const float* AR = a_res.typed_data();
  const float* TR = tc_res.typed_data();
  const uint8_t* M = mask.typed_data();
  const float* DY = dys.typed_data();
  float* DZ = dz_out->typed_data();
  float* DH = dh0->typed_data();
  float* DC = dc0->typed_data();
  std::memcpy(DH, dh_last.typed_data(), sizeof(float) * D * B * H);
  std::memcpy(DC, dc_last.typed_data(), sizeof(float) * D * B * H);
  // U^T per direction, [D, 4H, H]: dh_prev = dz @ U^T as H-wide row updates.
  std::vector<float> ut(D * G * H);
  for (int64_t d = 0; d < D; ++d)
    for (int64_t k = 0; k < H; ++k)
      for (int64_t j = 0; j < G; ++j) ut[(d * G + j) * H + k] = U[(d * H + k) * G + j];

  const std::vector<float> zeros(H, 0.0f);
  parallel_rows(B, [&](int64_t lo, int64_t hi) {
    std::vector<float> dhn(kRows * H);
    for (int64_t t = T - 1; t >= 0; --t) {
      for (int64_t d = 0; d < D; ++d) {
        const float* UT = ut.data() + d * G * H;
        for (int64_t b0 = lo; b0 < hi; b0 += kRows) {
          const int rows = static_cast<int>(std::min<int64_t>(kRows, hi - b0));
          float* outr[kRows];
          const float* dzr[kRows];
          for (int r = 0; r < rows; ++r) {
            const int64_t row = (t * D + d) * B + b0 + r;
            float* dz = DZ + row * G;
            outr[r] = dhn.data() + r * H;
            dzr[r] = dz;
            if (has_mask && !M[row]) {  // masked: dz = 0, and the held carry's gradient passes through
              std::fill(dz, dz + G, 0.0f);
              continue;
            }
            const float* dy = with_outputs ? DY + row * H : zeros.data();
            cell_grad(H, AR + row * G, TR + row * H, CR + row * H, dy, DH + (d * B + b0 + r) * H,
                      DC + (d * B + b0 + r) * H, dz);
          }
          rows_times_matrix(rows, outr, nullptr, dzr, G, UT, H, H);  // dh_prev = dz U^T
          for (int r = 0; r < rows; ++r) {
            const int64_t row = (t * D + d) * B + b0 + r;
            if (!has_mask || M[row]) std::memcpy(DH + (d * B + b0 + r) * H, outr[r], sizeof(float) * H);
          }
        }
      }
    }
  });
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnjaxLstmForward, LstmForwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::U8>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int32_t>("has_mask")
                                  .Attr<int32_t>("with_outputs")
                                  .Attr<int32_t>("keep_residuals"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnjaxLstmBackward, LstmBackwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::U8>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int32_t>("has_mask")
                                  .Attr<int32_t>("with_outputs"));
