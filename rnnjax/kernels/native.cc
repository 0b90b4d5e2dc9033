// Whole-sequence SimpleRNN, LSTM and GRU recurrences on the CPU as XLA FFI kernels: forward (with the residuals
// the gradient needs) and backward. They compute exactly the equations of rnnjax/kernels/rules.py's step pairs
// (_simple_rnn_*, _lstm_*, _gru_*, _gru_v1_*), masking included, and run each batch row's whole sequence on one
// thread (rows are independent), so a call uses every core without any synchronisation between time steps.
//
// Layout (direction-major, then time): xw [D, T, B, G*H], U [D, H, G*H], mask [D, T, B] (uint8; ignored
// when has_mask = 0), carries [D, B, H]. Gates in Keras' order: LSTM i, f, g, o; GRU z, r, h (SimpleRNN: G = 1).
// The forward kernels take the projected inputs either as xw or, with gathered = 1, as rows of per-direction
// tables [D, V, G*H] picked by ids [D, T, B] (an embedding folded into the input projection), so the
// [D, T, B, G*H] array is never written. The LSTM's residuals are h before each step, c after it and the
// gate activations; its backward kernel writes the gate gradient over the activations. The SimpleRNN keeps only
// h before each step.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
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

// A [K, n] matrix as the products read it: row-major with leading dimension ld, and optionally a copy of its
// 64-column blocks packed one after another ([n / 64][K][64]), so a block's K rows are one contiguous stream
// (no page crossing per row) for the widest column pass.
struct Matrix {
  const float* m;
  int64_t ld;
  const float* panels = nullptr;
};

// The packed 64-column blocks of m [K, n] (row-major, leading dimension ld), for Matrix::panels.
std::vector<float> pack_panels(const float* m, int64_t ld, int64_t K, int64_t n) {
  const int64_t blocks = n / 64;
  std::vector<float> packed(blocks * K * 64);
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t k = 0; k < K; ++k)
      std::memcpy(packed.data() + (b * K + k) * 64, m + k * ld + b * 64, 64 * sizeof(float));
  return packed;
}

// R (<= 6) rows times columns [j0, j0 + 16 Q) of a matrix whose column j0 starts at mj, rows st apart:
// out[r][j] = init[r][j] (or 0) + sum_k s[r][k] m[k][j]. The rows share every load of m; R x Q vectors of
// accumulators stay in registers.
template <int R, int Q>
inline void column_block(float* const* out, const float* const* init, const float* const* s, int64_t K,
                         const float* __restrict__ mj, int64_t st, int64_t j0) {
  vf acc[R][Q];
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < Q; ++q) acc[r][q] = init ? load(init[r] + j0 + 16 * q) : vf{};
  for (int64_t k = 0; k < K; ++k) {
    vf mk[Q];
    for (int q = 0; q < Q; ++q) mk[q] = load(mj + k * st + 16 * q);
    for (int r = 0; r < R; ++r) {
      const float sr = s[r][k];
      for (int q = 0; q < Q; ++q) acc[r][q] += sr * mk[q];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < Q; ++q) store(out[r] + j0 + 16 * q, acc[r][q]);
}

// All column blocks of width 16 Q from j0 on, each for every row (6 at a time) before the next: a [K, 16 Q]
// slice of m is reused by all rows while it is in cache. Returns the first column not done.
template <int Q>
inline int64_t column_pass(int rows, float* const* out, const float* const* init, const float* const* s, int64_t K,
                           const Matrix& m, int64_t n, int64_t j0) {
  for (; j0 + 16 * Q <= n; j0 += 16 * Q) {
    const bool packed = Q == 4 && m.panels;  // 64-column blocks start at multiples of 64
    const float* mj = packed ? m.panels + (j0 / 64) * K * 64 : m.m + j0;
    const int64_t st = packed ? 64 : m.ld;
    for (int r0 = 0; r0 < rows; r0 += 6) {
      const float* const* in = init ? init + r0 : nullptr;
      switch (std::min(6, rows - r0)) {
        case 6: column_block<6, Q>(out + r0, in, s + r0, K, mj, st, j0); break;
        case 5: column_block<5, Q>(out + r0, in, s + r0, K, mj, st, j0); break;
        case 4: column_block<4, Q>(out + r0, in, s + r0, K, mj, st, j0); break;
        case 3: column_block<3, Q>(out + r0, in, s + r0, K, mj, st, j0); break;
        case 2: column_block<2, Q>(out + r0, in, s + r0, K, mj, st, j0); break;
        default: column_block<1, Q>(out + r0, in, s + r0, K, mj, st, j0);
      }
    }
  }
  return j0;
}

// Rows times one matrix: out[r][0:n) = init[r][0:n) (or 0) + sum_k s[r][k] * m[k][0:n), r < rows.
inline void rows_times_matrix(int rows, float* const* out, const float* const* init, const float* const* s,
                              int64_t K, const Matrix& m, int64_t n) {
  int64_t j0 = column_pass<4>(rows, out, init, s, K, m, n, 0);
  j0 = column_pass<2>(rows, out, init, s, K, m, n, j0);
  j0 = column_pass<1>(rows, out, init, s, K, m, n, j0);
  for (; j0 < n; ++j0) {
    for (int r = 0; r < rows; ++r) {
      float acc = init ? init[r][j0] : 0.0f;
      for (int64_t k = 0; k < K; ++k) acc += s[r][k] * m.m[k * m.ld + j0];
      out[r][j0] = acc;
    }
  }
}

// A matrix with its packed panels, owned.
struct PackedMatrix {
  PackedMatrix(const float* m, int64_t ld, int64_t K, int64_t n) : panels(pack_panels(m, ld, K, n)) {
    view = {m, ld, panels.empty() ? nullptr : panels.data()};
  }
  std::vector<float> panels;
  Matrix view;
};

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

// One step's gradient: dc <- dc_prev and the gate activations a = [i, f, g, o] <- dz (their pre-activations'
// gradient, in place: each k reads its four activations before writing) from dh (+ dy), dc, the cell state
// before (cp) and after (cn) the step; tanh(cn) is recomputed rather than kept from the forward pass.
inline void cell_grad(int64_t H, float* __restrict__ a_dz, const float* __restrict__ cn,
                      const float* __restrict__ cp, const float* __restrict__ dy, const float* __restrict__ dh,
                      float* __restrict__ dc) {
  for (int64_t k = 0; k < H; ++k) {
    const float i = a_dz[k], f = a_dz[H + k], g = a_dz[2 * H + k], o = a_dz[3 * H + k];
    const float tc = tanh_f32(cn[k]);
    const float dhk = dh[k] + dy[k];
    const float dct = dc[k] + dhk * o * (1.0f - tc * tc);
    a_dz[k] = dct * g * i * (1.0f - i);
    a_dz[H + k] = dct * cp[k] * f * (1.0f - f);
    a_dz[2 * H + k] = dct * i * (1.0f - g * g);
    a_dz[3 * H + k] = dhk * tc * o * (1.0f - o);
    dc[k] = dct * f;
  }
}

// GRU: z, r = sigmoid(x_zr + hu_zr) and r * h, from the projected input x and hu = h U (+ b_r).
inline void gru_gates(int64_t H, const float* __restrict__ x, const float* __restrict__ hu,
                      const float* __restrict__ h, float* __restrict__ z, float* __restrict__ r,
                      float* __restrict__ rh) {
  for (int64_t k = 0; k < H; ++k) {
    z[k] = sigmoid_f32(x[k] + hu[k]);
    r[k] = sigmoid_f32(x[H + k] + hu[H + k]);
    rh[k] = r[k] * h[k];
  }
}

// GRU backward: tot = dh + dy; dx_z = tot (h - n) z (1 - z); dx_n = tot (1 - z) (1 - n^2).
inline void gru_grad_zn(int64_t H, const float* __restrict__ dh, const float* __restrict__ dy,
                        const float* __restrict__ h, const float* __restrict__ z, const float* __restrict__ n,
                        float* __restrict__ tot, float* __restrict__ dx) {
  for (int64_t k = 0; k < H; ++k) {
    tot[k] = dh[k] + dy[k];
    dx[k] = tot[k] * (h[k] - n[k]) * z[k] * (1.0f - z[k]);
    dx[2 * H + k] = tot[k] * (1.0f - z[k]) * (1.0f - n[k] * n[k]);
  }
}

// GRU backward, reset_after: dx_r = dn hu_h r (1 - r), and dhu = [dz, dr, dn r] for dh_prev = dhu U^T.
inline void gru_grad_r(int64_t H, const float* __restrict__ hu_h, const float* __restrict__ r,
                       float* __restrict__ dx, float* __restrict__ dhu) {
  for (int64_t k = 0; k < H; ++k) {
    dx[H + k] = dx[2 * H + k] * hu_h[k] * r[k] * (1.0f - r[k]);
    dhu[k] = dx[k];
    dhu[H + k] = dx[H + k];
    dhu[2 * H + k] = dx[2 * H + k] * r[k];
  }
}

// The threads for `rows` batch rows: `requested` (0: one per core), at most one per 8 rows.
int num_threads(int64_t rows, int32_t requested) {
  int n = requested > 0 ? requested : static_cast<int>(std::thread::hardware_concurrency());
  n = std::max(1, n);
  return static_cast<int>(std::min<int64_t>(n, std::max<int64_t>(1, rows / 8)));
}

// The projected inputs of step t, row b, direction d: xw[d, t, b] or, gathered, table[d, ids[d, t, b]] (an id
// outside [0, V) reads NaNs, as jnp.take does).
class Inputs {
 public:
  Inputs(const ffi::Buffer<ffi::F32>& xw, const ffi::Buffer<ffi::S32>& ids, bool gathered) {
    const auto dims = xw.dimensions();
    data_ = xw.typed_data();
    G = dims[dims.size() - 1];
    if (gathered) {
      const auto id_dims = ids.dimensions();
      ids_ = ids.typed_data();
      D = id_dims[0], T = id_dims[1], B = id_dims[2], V_ = dims[1];
      nan_row_.assign(G, std::nanf(""));
    } else {
      D = dims[0], T = dims[1], B = dims[2];
    }
  }
  static bool valid(const ffi::Buffer<ffi::F32>& xw, const ffi::Buffer<ffi::S32>& ids, bool gathered) {
    return gathered ? xw.dimensions().size() == 3 && ids.dimensions().size() == 3 &&
                          ids.dimensions()[0] == xw.dimensions()[0]
                    : xw.dimensions().size() == 4;
  }
  const float* row(int64_t d, int64_t t, int64_t b) const {
    const int64_t i = (d * T + t) * B + b;
    if (!ids_) return data_ + i * G;
    const int32_t id = ids_[i];
    return id >= 0 && id < V_ ? data_ + (d * V_ + id) * G : nan_row_.data();
  }
  int64_t D = 0, T = 0, B = 0, G = 0;

 private:
  const float* data_ = nullptr;
  const int32_t* ids_ = nullptr;
  int64_t V_ = 0;
  std::vector<float> nan_row_;
};

struct WorkQueue {
  std::atomic<int64_t> next{0};  // the next chunk to claim
  std::atomic<int64_t> done{0};  // chunks finished
};

// Runs fn(row_begin, row_end) over [0, rows) in contiguous chunks, one per thread: the calling thread and
// tasks on XLA's intra-op thread pool claim chunks from a shared counter, so the call completes even when no
// pool thread is free (the caller then takes every chunk itself). A task that starts after all chunks are
// claimed only touches the shared counters, which it co-owns.
template <typename Fn>
void parallel_rows(ffi::ThreadPool& pool, int32_t requested, int64_t rows, Fn fn) {
  const int threads = num_threads(rows, requested);
  if (threads == 1) {
    fn(int64_t{0}, rows);
    return;
  }
  const int64_t chunk = (rows + threads - 1) / threads, chunks = (rows + chunk - 1) / chunk;
  auto queue = std::make_shared<WorkQueue>();
  Fn* body = &fn;
  auto work = [queue, body, chunk, chunks, rows]() {
    for (int64_t i; (i = queue->next.fetch_add(1)) < chunks;) {
      (*body)(i * chunk, std::min(rows, (i + 1) * chunk));
      queue->done.fetch_add(1);
    }
  };
  for (int64_t k = 1; k < chunks; ++k) pool.Schedule([work]() { work(); });
  work();
  while (queue->done.load() < chunks) std::this_thread::yield();
}

ffi::Error LstmForwardImpl(ffi::ThreadPool pool,
                           ffi::Buffer<ffi::F32> xw, ffi::Buffer<ffi::S32> ids, ffi::Buffer<ffi::F32> u,
                           ffi::Buffer<ffi::U8> mask, ffi::Buffer<ffi::F32> h0, ffi::Buffer<ffi::F32> c0,
                           ffi::ResultBuffer<ffi::F32> ys,
                           ffi::ResultBuffer<ffi::F32> h_out, ffi::ResultBuffer<ffi::F32> c_out,
                           ffi::ResultBuffer<ffi::F32> h_res, ffi::ResultBuffer<ffi::F32> c_res,
                           ffi::ResultBuffer<ffi::F32> a_res, int32_t has_mask, int32_t with_outputs,
                           int32_t keep_residuals, int32_t gathered, int32_t threads) {
  if (!Inputs::valid(xw, ids, gathered))
    return ffi::Error::InvalidArgument("lstm_forward: xw must be [D, T, B, 4H], or a [D, V, 4H] table with ids [D, T, B]");
  const Inputs X(xw, ids, gathered);
  const int64_t D = X.D, T = X.T, B = X.B, G = X.G, H = G / 4;
  const float* U = u.typed_data();
  const uint8_t* M = mask.typed_data();
  float* Y = ys->typed_data();
  float* HS = h_out->typed_data();
  float* CS = c_out->typed_data();
  // a_res may share xw's buffer (the caller aliases them when training on a projected array): a step's rows of
  // xw are read into z before that step's activations are written over them, and never read again.
  float* HR = h_res->typed_data();
  float* CR = c_res->typed_data();
  float* AR = a_res->typed_data();
  std::memcpy(HS, h0.typed_data(), sizeof(float) * D * B * H);
  std::memcpy(CS, c0.typed_data(), sizeof(float) * D * B * H);
  std::vector<PackedMatrix> Us;
  for (int64_t d = 0; d < D; ++d) Us.emplace_back(U + d * H * G, G, H, G);

  parallel_rows(pool, threads, B, [&](int64_t lo, int64_t hi) {
    const int64_t block = hi - lo;  // all of this thread's rows go through each matrix product together
    const int64_t b0 = lo;
    const int rows = static_cast<int>(block);
    std::vector<float*> zr(block);
    std::vector<const float*> xr(block);
    std::vector<const float*> hr(block);
    std::vector<float> z(block * G), tcs(H);
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t d = 0; d < D; ++d) {
        for (int r = 0; r < rows; ++r) {
          const int64_t row = (d * T + t) * B + b0 + r;
          zr[r] = z.data() + r * G;
          xr[r] = X.row(d, t, b0 + r);
          hr[r] = HS + (d * B + b0 + r) * H;
          if (keep_residuals) std::memcpy(HR + row * H, hr[r], sizeof(float) * H);
        }
        rows_times_matrix(rows, zr.data(), xr.data(), hr.data(), H, Us[d].view, G);  // z = xw + h U
        for (int r = 0; r < rows; ++r) {
          const int64_t row = (d * T + t) * B + b0 + r;
          if (has_mask && !M[row]) {  // masked: the carry is held and the output is zero
            if (with_outputs) std::fill(Y + row * H, Y + (row + 1) * H, 0.0f);
            if (keep_residuals) {
              std::fill(AR + row * G, AR + (row + 1) * G, 0.0f);
              std::memcpy(CR + row * H, CS + (d * B + b0 + r) * H, sizeof(float) * H);
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
            std::memcpy(CR + row * H, CS + (d * B + b0 + r) * H, sizeof(float) * H);
            std::memcpy(AR + row * G, zp, sizeof(float) * G);
          }
        }
      }
    }
  });
  return ffi::Error::Success();
}

// The gradient of a gathered table: dtable[d, ids[d, t, b]] += dxw[d, t, b] over all steps and rows. The table's
// rows are split between threads (each reads every id and adds only the steps whose id it owns, so no two
// threads write the same row), and each row's steps are added in (t, b) order. Ids outside [0, V) read NaNs in
// the forward pass; their steps are dropped here, as XLA's scatter drops out-of-bounds updates.
void scatter_table_rows(ffi::ThreadPool& pool, int32_t threads, const float* dxw, const int32_t* ids, int64_t D,
                        int64_t TB, int64_t G, int64_t V, float* dtable) {
  parallel_rows(pool, threads, V, [&](int64_t lo, int64_t hi) {
    for (int64_t d = 0; d < D; ++d) {
      float* table = dtable + d * V * G;
      std::fill(table + lo * G, table + hi * G, 0.0f);
      for (int64_t i = 0; i < TB; ++i) {
        const int32_t id = ids[d * TB + i];
        if (id < lo || id >= hi) continue;
        const float* __restrict__ src = dxw + (d * TB + i) * G;
        float* __restrict__ dst = table + id * G;
        for (int64_t j = 0; j < G; ++j) dst[j] += src[j];
      }
    }
  });
}

// The LSTM sequence's gradient. The gate activations a_res are overwritten with dz, the gradient of the gate
// pre-activations (the caller aliases the two buffers), so the backward pass needs no second [D, T, B, 4H]
// array; with gathered = 1 the table's gradient [D, V, 4H] is also added up here from dz and the ids.
ffi::Error LstmBackwardImpl(ffi::ThreadPool pool,
                            ffi::Buffer<ffi::F32> u, ffi::Buffer<ffi::F32> c0, ffi::Buffer<ffi::F32> c_res,
                            ffi::Buffer<ffi::F32> a_res, ffi::Buffer<ffi::U8> mask, ffi::Buffer<ffi::F32> dys,
                            ffi::Buffer<ffi::F32> dh_last, ffi::Buffer<ffi::F32> dc_last, ffi::Buffer<ffi::S32> ids,
                            ffi::ResultBuffer<ffi::F32> dz_out, ffi::ResultBuffer<ffi::F32> dh0,
                            ffi::ResultBuffer<ffi::F32> dc0, ffi::ResultBuffer<ffi::F32> dtable, int32_t has_mask,
                            int32_t with_outputs, int32_t gathered, int32_t threads) {
  auto dims = a_res.dimensions();
  if (dims.size() != 4) return ffi::Error::InvalidArgument("lstm_backward: a must be [D, T, B, 4H]");
  const int64_t D = dims[0], T = dims[1], B = dims[2], G = dims[3], H = G / 4;
  if (dz_out->typed_data() != a_res.typed_data())
    return ffi::Error::InvalidArgument("lstm_backward: dz must alias a (input_output_aliases)");
  if (gathered && (dtable->dimensions().size() != 3 || ids.dimensions().size() != 3))
    return ffi::Error::InvalidArgument("lstm_backward: gathered needs ids [D, T, B] and a [D, V, 4H] table");
  const float* U = u.typed_data();
  const float* C0 = c0.typed_data();
  const float* CR = c_res.typed_data();
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
  std::vector<PackedMatrix> UTs;
  for (int64_t d = 0; d < D; ++d) UTs.emplace_back(ut.data() + d * G * H, H, G, H);

  const std::vector<float> zeros(H, 0.0f);
  parallel_rows(pool, threads, B, [&](int64_t lo, int64_t hi) {
    const int64_t block = hi - lo;  // all of this thread's rows go through each matrix product together
    const int64_t b0 = lo;
    const int rows = static_cast<int>(block);
    std::vector<float*> outr(block);
    std::vector<const float*> dzr(block);
    std::vector<float> dhn(block * H);
    for (int64_t t = T - 1; t >= 0; --t) {
      for (int64_t d = 0; d < D; ++d) {
        for (int r = 0; r < rows; ++r) {
          const int64_t row = (d * T + t) * B + b0 + r;
          float* dz = DZ + row * G;
          outr[r] = dhn.data() + r * H;
          dzr[r] = dz;
          if (has_mask && !M[row]) {  // masked: dz = 0, and the held carry's gradient passes through
            std::fill(dz, dz + G, 0.0f);
            continue;
          }
          const float* dy = with_outputs ? DY + row * H : zeros.data();
          const float* cp = t > 0 ? CR + (row - B) * H : C0 + (d * B + b0 + r) * H;
          cell_grad(H, dz, CR + row * H, cp, dy, DH + (d * B + b0 + r) * H, DC + (d * B + b0 + r) * H);
        }
        rows_times_matrix(rows, outr.data(), nullptr, dzr.data(), G, UTs[d].view, H);  // dh_prev = dz U^T
        for (int r = 0; r < rows; ++r) {
          const int64_t row = (d * T + t) * B + b0 + r;
          if (!has_mask || M[row]) std::memcpy(DH + (d * B + b0 + r) * H, outr[r], sizeof(float) * H);
        }
      }
    }
  });
  if (gathered)
    scatter_table_rows(pool, threads, DZ, ids.typed_data(), D, T * B, G, dtable->dimensions()[1],
                       dtable->typed_data());
  return ffi::Error::Success();
}

// ----------------------------------------------------------------------------------------------------- GRU
// reset_after = 1: hu = h U + b_r; z, r = sigmoid(xw_zr + hu_zr); n = tanh(xw_h + r * hu_h).
// reset_after = 0: z, r = sigmoid(xw_zr + h U_zr); n = tanh(xw_h + (r * h) U_h).
// Both: h_new = z * h + (1 - z) * n. Residuals per step: h (before the step), z, r, n and, with reset_after,
// hu_h.

ffi::Error GruForwardImpl(ffi::ThreadPool pool,
                          ffi::Buffer<ffi::F32> xw, ffi::Buffer<ffi::S32> ids, ffi::Buffer<ffi::F32> u,
                          ffi::Buffer<ffi::F32> b_r, ffi::Buffer<ffi::U8> mask, ffi::Buffer<ffi::F32> h0, ffi::ResultBuffer<ffi::F32> ys,
                          ffi::ResultBuffer<ffi::F32> h_out, ffi::ResultBuffer<ffi::F32> h_res,
                          ffi::ResultBuffer<ffi::F32> z_res, ffi::ResultBuffer<ffi::F32> r_res,
                          ffi::ResultBuffer<ffi::F32> n_res, ffi::ResultBuffer<ffi::F32> hu_res, int32_t has_mask,
                          int32_t with_outputs, int32_t keep_residuals, int32_t reset_after, int32_t gathered,
                          int32_t threads) {
  if (!Inputs::valid(xw, ids, gathered))
    return ffi::Error::InvalidArgument("gru_forward: xw must be [D, T, B, 3H], or a [D, V, 3H] table with ids [D, T, B]");
  const Inputs X(xw, ids, gathered);
  const int64_t D = X.D, T = X.T, B = X.B, G = X.G, H = G / 3;
  const float* U = u.typed_data();
  const float* BR = b_r.typed_data();
  const uint8_t* M = mask.typed_data();
  float* Y = ys->typed_data();
  float* HS = h_out->typed_data();
  float* HR = h_res->typed_data();
  float* ZR = z_res->typed_data();
  float* RR = r_res->typed_data();
  float* NR = n_res->typed_data();
  float* UR = hu_res->typed_data();
  std::memcpy(HS, h0.typed_data(), sizeof(float) * D * B * H);
  // Per direction: U (all gates, or z and r only before the reset) and, before the reset, U_h.
  std::vector<PackedMatrix> Us, Uhs;
  for (int64_t d = 0; d < D; ++d) {
    Us.emplace_back(U + d * H * G, G, H, reset_after ? G : 2 * H);
    if (!reset_after) Uhs.emplace_back(U + d * H * G + 2 * H, G, H, H);
  }

  parallel_rows(pool, threads, B, [&](int64_t lo, int64_t hi) {
    const int64_t block = hi - lo;  // all of this thread's rows go through each matrix product together
    const int64_t b0 = lo;
    const int rows = static_cast<int>(block);
    std::vector<float*> hur(block);
    std::vector<float*> hnr(block);
    std::vector<const float*> hr(block);
    std::vector<const float*> rhr(block);
    std::vector<const float*> bias(block);
    std::vector<float> hu(block * G), zb(block * H), rb(block * H), rh(block * H), hn(block * H), nb(H);
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t d = 0; d < D; ++d) {
        for (int r = 0; r < rows; ++r) {
          hur[r] = hu.data() + r * G;
          hnr[r] = hn.data() + r * H;
          rhr[r] = rh.data() + r * H;
          hr[r] = HS + (d * B + b0 + r) * H;
          bias[r] = BR + d * G;
          if (keep_residuals) std::memcpy(HR + ((d * T + t) * B + b0 + r) * H, hr[r], sizeof(float) * H);
        }
        // hu = h U + b_r (all three gates), or h U_zr (z and r only) before the reset
        rows_times_matrix(rows, hur.data(), reset_after ? bias.data() : nullptr, hr.data(), H, Us[d].view,
                          reset_after ? G : 2 * H);
        for (int r = 0; r < rows; ++r) {
          gru_gates(H, X.row(d, t, b0 + r), hur[r], hr[r], zb.data() + r * H, rb.data() + r * H,
                    rh.data() + r * H);
        }
        // (r * h) U_h, before the reset
        if (!reset_after) rows_times_matrix(rows, hnr.data(), nullptr, rhr.data(), H, Uhs[d].view, H);
        for (int r = 0; r < rows; ++r) {
          const int64_t row = (d * T + t) * B + b0 + r;
          if (has_mask && !M[row]) {  // masked: the carry is held and the output is zero
            if (with_outputs) std::fill(Y + row * H, Y + (row + 1) * H, 0.0f);
            if (keep_residuals) {
              for (float* res : {ZR, RR, NR}) std::fill(res + row * H, res + (row + 1) * H, 0.0f);
              if (reset_after) std::fill(UR + row * H, UR + (row + 1) * H, 0.0f);
            }
            continue;
          }
          const float* x = X.row(d, t, b0 + r);
          const float* z = zb.data() + r * H;
          const float* rg = rb.data() + r * H;
          const float* hh = reset_after ? hur[r] + 2 * H : hnr[r];
          float* h = HS + (d * B + b0 + r) * H;
          float* n = nb.data();
          for (int64_t k = 0; k < H; ++k) {
            n[k] = tanh_f32(x[2 * H + k] + (reset_after ? rg[k] * hh[k] : hh[k]));
            h[k] = z[k] * h[k] + (1.0f - z[k]) * n[k];
          }
          if (with_outputs) std::memcpy(Y + row * H, h, sizeof(float) * H);
          if (keep_residuals) {
            std::memcpy(ZR + row * H, z, sizeof(float) * H);
            std::memcpy(RR + row * H, rg, sizeof(float) * H);
            std::memcpy(NR + row * H, n, sizeof(float) * H);
            if (reset_after) std::memcpy(UR + row * H, hh, sizeof(float) * H);
          }
        }
      }
    }
  });
  return ffi::Error::Success();
}

// Gradient of the GRU sequence: dxw [D, T, B, 3H] (the gate pre-activations' input part) and dh0; with
// gathered = 1 also the table's gradient [D, V, 3H], added up from dxw and the ids.
ffi::Error GruBackwardImpl(ffi::ThreadPool pool,
                           ffi::Buffer<ffi::F32> u, ffi::Buffer<ffi::F32> h_res, ffi::Buffer<ffi::F32> z_res,
                           ffi::Buffer<ffi::F32> r_res, ffi::Buffer<ffi::F32> n_res, ffi::Buffer<ffi::F32> hu_res,
                           ffi::Buffer<ffi::U8> mask, ffi::Buffer<ffi::F32> dys, ffi::Buffer<ffi::F32> dh_last,
                           ffi::Buffer<ffi::S32> ids, ffi::ResultBuffer<ffi::F32> dxw_out,
                           ffi::ResultBuffer<ffi::F32> dhu_out, ffi::ResultBuffer<ffi::F32> dh0,
                           ffi::ResultBuffer<ffi::F32> dtable, int32_t has_mask, int32_t with_outputs,
                           int32_t reset_after, int32_t gathered, int32_t threads) {
  auto dims = dxw_out->dimensions();
  if (dims.size() != 4) return ffi::Error::InvalidArgument("gru_backward: dxw must be [D, T, B, 3H]");
  if (gathered && (dtable->dimensions().size() != 3 || ids.dimensions().size() != 3))
    return ffi::Error::InvalidArgument("gru_backward: gathered needs ids [D, T, B] and a [D, V, 3H] table");
  const int64_t D = dims[0], T = dims[1], B = dims[2], G = dims[3], H = G / 3;
  const float* U = u.typed_data();
  const float* HR = h_res.typed_data();
  const float* ZR = z_res.typed_data();
  const float* RR = r_res.typed_data();
  const float* NR = n_res.typed_data();
  const float* UR = hu_res.typed_data();
  const uint8_t* M = mask.typed_data();
  const float* DY = dys.typed_data();
  float* DX = dxw_out->typed_data();
  float* DU = dhu_out->typed_data();  // reset_after: [dz, dr, dn * r] per step, for dU and db_r
  float* DH = dh0->typed_data();
  std::memcpy(DH, dh_last.typed_data(), sizeof(float) * D * B * H);
  std::vector<float> ut(D * G * H);  // U^T per direction, [D, 3H, H]
  for (int64_t d = 0; d < D; ++d)
    for (int64_t k = 0; k < H; ++k)
      for (int64_t j = 0; j < G; ++j) ut[(d * G + j) * H + k] = U[(d * H + k) * G + j];
  // Per direction: U^T whole (reset_after), or its rows for z and r and those for h.
  std::vector<PackedMatrix> UTs, UThs;
  for (int64_t d = 0; d < D; ++d) {
    UTs.emplace_back(ut.data() + d * G * H, H, reset_after ? G : 2 * H, H);
    if (!reset_after) UThs.emplace_back(ut.data() + d * G * H + 2 * H * H, H, H, H);
  }
  const std::vector<float> zeros(H, 0.0f);

  parallel_rows(pool, threads, B, [&](int64_t lo, int64_t hi) {
    const int64_t block = hi - lo;  // all of this thread's rows go through each matrix product together
    const int64_t b0 = lo;
    const int rows = static_cast<int>(block);
    std::vector<float*> outr(block);
    std::vector<float*> drhr(block);
    std::vector<const float*> src(block);
    // per block row: the total dh, dn, (reset_after: dhu = [dz, dr, dn * r]) and the matmul outputs
    std::vector<float> dht(block * H), drh(block * H), out(block * H);
    for (int64_t t = T - 1; t >= 0; --t) {
      for (int64_t d = 0; d < D; ++d) {
        for (int r = 0; r < rows; ++r) {
          const int64_t row = (d * T + t) * B + b0 + r;
          outr[r] = out.data() + r * H;
          drhr[r] = drh.data() + r * H;
          float* dx = DX + row * G;
          const float* dy = with_outputs ? DY + row * H : zeros.data();
          gru_grad_zn(H, DH + (d * B + b0 + r) * H, dy, HR + row * H, ZR + row * H, NR + row * H,
                      dht.data() + r * H, dx);
          if (reset_after) {
            gru_grad_r(H, UR + row * H, RR + row * H, dx, DU + row * G);
            src[r] = DU + row * G;
          } else {
            src[r] = dx + 2 * H;  // dn, for drh = dn U_h^T
          }
        }
        if (reset_after) {
          rows_times_matrix(rows, outr.data(), nullptr, src.data(), G, UTs[d].view, H);  // dhu U^T
        } else {
          rows_times_matrix(rows, drhr.data(), nullptr, src.data(), H, UThs[d].view, H);  // drh = dn U_h^T
          for (int r = 0; r < rows; ++r) {
            const int64_t row = (d * T + t) * B + b0 + r;
            float* dx = DX + row * G;
            const float* rg = RR + row * H;
            const float* hp = HR + row * H;
            for (int64_t k = 0; k < H; ++k) dx[H + k] = drhr[r][k] * hp[k] * rg[k] * (1.0f - rg[k]);  // dr
            src[r] = dx;  // dzr
          }
          rows_times_matrix(rows, outr.data(), nullptr, src.data(), 2 * H, UTs[d].view, H);  // dzr U_zr^T
        }
        for (int r = 0; r < rows; ++r) {
          const int64_t row = (d * T + t) * B + b0 + r;
          float* dh = DH + (d * B + b0 + r) * H;
          if (has_mask && !M[row]) {  // masked: dxw = 0, and the held carry's gradient passes through
            std::fill(DX + row * G, DX + (row + 1) * G, 0.0f);
            if (reset_after) std::fill(DU + row * G, DU + (row + 1) * G, 0.0f);
            continue;
          }
          const float* z = ZR + row * H;
          const float* tot = dht.data() + r * H;
          if (reset_after) {
            for (int64_t k = 0; k < H; ++k) dh[k] = tot[k] * z[k] + outr[r][k];
          } else {
            const float* rg = RR + row * H;
            for (int64_t k = 0; k < H; ++k) dh[k] = tot[k] * z[k] + drhr[r][k] * rg[k] + outr[r][k];
          }
        }
      }
    }
  });
  if (gathered)
    scatter_table_rows(pool, threads, DX, ids.typed_data(), D, T * B, G, dtable->dimensions()[1],
                       dtable->typed_data());
  return ffi::Error::Success();
}

// ----------------------------------------------------------------------------------------------- SimpleRNN
// h_new = act(xw + h U), act = tanh, relu, sigmoid or linear (activation = 0, 1, 2, 3). The one residual is h
// before each step, h_res [D, T, B, H] (it may share xw's buffer); the backward kernel reads an unmasked step's
// output h_new from the next step's residual (the final carry for the last step) and act' from it, and writes
// the pre-activation gradient over the output cotangent when the caller aliases the two.

enum Activation : int32_t { kTanh = 0, kRelu = 1, kSigmoid = 2, kLinear = 3 };

// h = act(z).
inline void activate(int32_t activation, int64_t H, const float* __restrict__ z, float* __restrict__ h) {
  switch (activation) {
    case kTanh:
      for (int64_t k = 0; k < H; ++k) h[k] = tanh_f32(z[k]);
      break;
    case kRelu:  // max(z, 0) keeps a NaN, as jax.nn.relu does
      for (int64_t k = 0; k < H; ++k) h[k] = z[k] < 0.0f ? 0.0f : z[k];
      break;
    case kSigmoid:
      for (int64_t k = 0; k < H; ++k) h[k] = sigmoid_f32(z[k]);
      break;
    default:
      std::memcpy(h, z, sizeof(float) * H);
  }
}

// dpre = (dh + dy) act'(pre), with act' written in terms of the output y. dy and dpre may be the same row.
inline void activation_grad(int32_t activation, int64_t H, const float* __restrict__ y,
                            const float* __restrict__ dh, const float* dy, float* dpre) {
  switch (activation) {
    case kTanh:
      for (int64_t k = 0; k < H; ++k) dpre[k] = (dh[k] + dy[k]) * (1.0f - y[k] * y[k]);
      break;
    case kRelu:
      for (int64_t k = 0; k < H; ++k) dpre[k] = y[k] > 0.0f ? dh[k] + dy[k] : 0.0f;
      break;
    case kSigmoid:
      for (int64_t k = 0; k < H; ++k) dpre[k] = (dh[k] + dy[k]) * (y[k] * (1.0f - y[k]));
      break;
    default:
      for (int64_t k = 0; k < H; ++k) dpre[k] = dh[k] + dy[k];
  }
}

ffi::Error SimpleRnnForwardImpl(ffi::ThreadPool pool,
                                ffi::Buffer<ffi::F32> xw, ffi::Buffer<ffi::S32> ids, ffi::Buffer<ffi::F32> u,
                                ffi::Buffer<ffi::U8> mask, ffi::Buffer<ffi::F32> h0, ffi::ResultBuffer<ffi::F32> ys,
                                ffi::ResultBuffer<ffi::F32> h_out, ffi::ResultBuffer<ffi::F32> h_res,
                                int32_t has_mask, int32_t with_outputs, int32_t keep_residuals, int32_t activation,
                                int32_t gathered, int32_t threads) {
  if (!Inputs::valid(xw, ids, gathered))
    return ffi::Error::InvalidArgument(
        "simple_rnn_forward: xw must be [D, T, B, H], or a [D, V, H] table with ids [D, T, B]");
  if (activation < kTanh || activation > kLinear)
    return ffi::Error::InvalidArgument("simple_rnn_forward: activation must be 0 to 3 (tanh, relu, sigmoid, linear)");
  const Inputs X(xw, ids, gathered);
  const int64_t D = X.D, T = X.T, B = X.B, H = X.G;
  const float* U = u.typed_data();
  const uint8_t* M = mask.typed_data();
  float* Y = ys->typed_data();
  float* HS = h_out->typed_data();
  // h_res may share xw's buffer (the caller aliases them when training on a projected array): a row of h_res is
  // written only after the product has read the same row of xw, which is never read again.
  float* HR = h_res->typed_data();
  std::memcpy(HS, h0.typed_data(), sizeof(float) * D * B * H);
  std::vector<PackedMatrix> Us;
  for (int64_t d = 0; d < D; ++d) Us.emplace_back(U + d * H * H, H, H, H);

  parallel_rows(pool, threads, B, [&](int64_t lo, int64_t hi) {
    const int64_t block = hi - lo;  // this thread's unmasked rows go through each matrix product together
    std::vector<int64_t> live(block);
    std::vector<float*> zr(block);
    std::vector<const float*> xr(block);
    std::vector<const float*> hr(block);
    std::vector<float> z(block * H);
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t d = 0; d < D; ++d) {
        int n = 0;
        for (int64_t b = lo; b < hi; ++b) {
          const int64_t row = (d * T + t) * B + b;
          float* h = HS + (d * B + b) * H;
          if (has_mask && !M[row]) {  // masked: the carry is held and the output is zero
            if (with_outputs) std::fill(Y + row * H, Y + (row + 1) * H, 0.0f);
            if (keep_residuals) std::memcpy(HR + row * H, h, sizeof(float) * H);
            continue;
          }
          live[n] = b;
          zr[n] = z.data() + n * H;
          xr[n] = X.row(d, t, b);
          hr[n++] = h;
        }
        rows_times_matrix(n, zr.data(), xr.data(), hr.data(), H, Us[d].view, H);  // z = xw + h U
        for (int i = 0; i < n; ++i) {
          const int64_t row = (d * T + t) * B + live[i];
          float* h = HS + (d * B + live[i]) * H;
          if (keep_residuals) std::memcpy(HR + row * H, h, sizeof(float) * H);
          activate(activation, H, zr[i], h);
          if (with_outputs) std::memcpy(Y + row * H, h, sizeof(float) * H);
        }
      }
    }
  });
  return ffi::Error::Success();
}

// Gradient of the SimpleRNN sequence: dpre [D, T, B, H] (the pre-activations' gradient, which is also xw's) and
// dh0; with gathered = 1 also the table's gradient [D, V, H], added up from dpre and the ids. dpre may share the
// output cotangent's buffer (each row of dys is read before the same row of dpre is written).
ffi::Error SimpleRnnBackwardImpl(ffi::ThreadPool pool,
                                 ffi::Buffer<ffi::F32> u, ffi::Buffer<ffi::F32> h_res, ffi::Buffer<ffi::F32> h_last,
                                 ffi::Buffer<ffi::U8> mask, ffi::Buffer<ffi::F32> dys, ffi::Buffer<ffi::F32> dh_last,
                                 ffi::Buffer<ffi::S32> ids, ffi::ResultBuffer<ffi::F32> dpre_out,
                                 ffi::ResultBuffer<ffi::F32> dh0, ffi::ResultBuffer<ffi::F32> dtable,
                                 int32_t has_mask, int32_t with_outputs, int32_t activation, int32_t gathered,
                                 int32_t threads) {
  auto dims = h_res.dimensions();
  if (dims.size() != 4) return ffi::Error::InvalidArgument("simple_rnn_backward: h_res must be [D, T, B, H]");
  if (activation < kTanh || activation > kLinear)
    return ffi::Error::InvalidArgument("simple_rnn_backward: activation must be 0 to 3 (tanh, relu, sigmoid, linear)");
  if (gathered && (dtable->dimensions().size() != 3 || ids.dimensions().size() != 3))
    return ffi::Error::InvalidArgument("simple_rnn_backward: gathered needs ids [D, T, B] and a [D, V, H] table");
  const int64_t D = dims[0], T = dims[1], B = dims[2], H = dims[3];
  const float* U = u.typed_data();
  const float* HR = h_res.typed_data();
  const float* HL = h_last.typed_data();
  const uint8_t* M = mask.typed_data();
  const float* DY = dys.typed_data();
  float* DP = dpre_out->typed_data();
  float* DH = dh0->typed_data();
  std::memcpy(DH, dh_last.typed_data(), sizeof(float) * D * B * H);
  std::vector<float> ut(D * H * H);  // U^T per direction, [D, H, H]
  for (int64_t d = 0; d < D; ++d)
    for (int64_t k = 0; k < H; ++k)
      for (int64_t j = 0; j < H; ++j) ut[(d * H + j) * H + k] = U[(d * H + k) * H + j];
  std::vector<PackedMatrix> UTs;
  for (int64_t d = 0; d < D; ++d) UTs.emplace_back(ut.data() + d * H * H, H, H, H);

  const std::vector<float> zeros(H, 0.0f);
  parallel_rows(pool, threads, B, [&](int64_t lo, int64_t hi) {
    const int64_t block = hi - lo;  // this thread's unmasked rows go through each matrix product together
    std::vector<float*> outr(block);
    std::vector<const float*> dpr(block);
    for (int64_t t = T - 1; t >= 0; --t) {
      for (int64_t d = 0; d < D; ++d) {
        int n = 0;
        for (int64_t b = lo; b < hi; ++b) {
          const int64_t row = (d * T + t) * B + b;
          float* dp = DP + row * H;
          if (has_mask && !M[row]) {  // masked: dpre = 0, and the held carry's gradient passes through
            std::fill(dp, dp + H, 0.0f);
            continue;
          }
          float* dh = DH + (d * B + b) * H;
          const float* y = t + 1 < T ? HR + (row + B) * H : HL + (d * B + b) * H;  // the output of step t
          activation_grad(activation, H, y, dh, with_outputs ? DY + row * H : zeros.data(), dp);
          outr[n] = dh;  // dh_prev = dpre U^T replaces dh, which activation_grad has read
          dpr[n++] = dp;
        }
        rows_times_matrix(n, outr.data(), nullptr, dpr.data(), H, UTs[d].view, H);
      }
    }
  });
  if (gathered)
    scatter_table_rows(pool, threads, DP, ids.typed_data(), D, T * B, H, dtable->dimensions()[1],
                       dtable->typed_data());
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnjaxLstmForward, LstmForwardImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
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
                                  .Attr<int32_t>("has_mask")
                                  .Attr<int32_t>("with_outputs")
                                  .Attr<int32_t>("keep_residuals")
                                  .Attr<int32_t>("gathered")
                                  .Attr<int32_t>("threads"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnjaxLstmBackward, LstmBackwardImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::U8>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int32_t>("has_mask")
                                  .Attr<int32_t>("with_outputs")
                                  .Attr<int32_t>("gathered")
                                  .Attr<int32_t>("threads"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnjaxGruForward, GruForwardImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::U8>>()
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
                                  .Attr<int32_t>("keep_residuals")
                                  .Attr<int32_t>("reset_after")
                                  .Attr<int32_t>("gathered")
                                  .Attr<int32_t>("threads"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnjaxGruBackward, GruBackwardImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::U8>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int32_t>("has_mask")
                                  .Attr<int32_t>("with_outputs")
                                  .Attr<int32_t>("reset_after")
                                  .Attr<int32_t>("gathered")
                                  .Attr<int32_t>("threads"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnjaxSimpleRnnForward, SimpleRnnForwardImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::U8>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int32_t>("has_mask")
                                  .Attr<int32_t>("with_outputs")
                                  .Attr<int32_t>("keep_residuals")
                                  .Attr<int32_t>("activation")
                                  .Attr<int32_t>("gathered")
                                  .Attr<int32_t>("threads"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnjaxSimpleRnnBackward, SimpleRnnBackwardImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::U8>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int32_t>("has_mask")
                                  .Attr<int32_t>("with_outputs")
                                  .Attr<int32_t>("activation")
                                  .Attr<int32_t>("gathered")
                                  .Attr<int32_t>("threads"));
