// test_backend_ops, part 2: the ops with several outputs, integer tensors, outputs that must keep part of their
// contents or are read and written, or results that must be bit-exact: qkv_to_attention, copy_slice, sample_bits,
// bits_to_codes, linear_residual, gated_residual_norm; the timing events; bad inputs to these ops.
//
// Every case runs on the CPU (F32, the reference) and on CUDA (BF16 and F32) from the same inputs. Outputs
// start as NaN (u8 outputs as 0xFF, not a bit), except outputs that must keep what the op does not write (the
// KV cache, copy_slice's destination, linear_residual's y, gated_residual_norm's x), which start with the same
// random contents on both backends. Such an output is compared in two parts: its written slab within the case's
// tolerance, everything else bit for bit.
// "exact" cases (copies, sampling, codes) must match the CPU bit for bit everywhere: sample_bits uses
// core/bit_sampling.h's arithmetic on both backends and the inputs are bf16-representable, so even the BF16
// path sees exactly the CPU's numbers. Index inputs (qkv_to_attention's row maps) are fixed I32 values, not random.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "backend_ops_util.h"
#include "core/error.h"

namespace sparvar::backend_ops {
namespace {

enum class Kind {
  Compute,  // float, the dtype under test (F32 on the CPU)
  F32,      // float, always F32 (RoPE tables, uniforms, sampled logits, codes)
  Uniform,  // F32 in [0, 1), 24-bit values like Philox's
  Bits,     // U8 0/1
  Index,    // I32, the fixed values of Arg::index (qkv_to_attention's row maps)
};

DType storage(Kind kind, DType compute) {
  switch (kind) {
    case Kind::Compute: return compute;
    case Kind::Bits: return DType::U8;
    case Kind::Index: return DType::I32;
    default: return DType::F32;
  }
}

struct Arg {
  Shape shape;
  Kind kind = Kind::Compute;
  float scale = 1.0f;
  std::vector<int32_t> index = {};  // Kind::Index: the values (shape {index.size()})
};

struct Out {
  Shape shape;
  Kind kind = Kind::Compute;
  // >= 0: the op writes only indices [slab_begin, slab_end) of dimension slab_dim; the rest starts random and
  // must come back unchanged.
  int slab_dim = -1;
  int64_t slab_begin = 0, slab_end = 0;
};

struct MultiCase {
  std::string op, desc;
  std::vector<Arg> inputs;
  std::vector<Out> outputs;
  std::function<void(Backend&, std::vector<Tensor>&, std::vector<Tensor>&)> run;
  bool exact = false;
  double tol_f32 = kTolF32;
};

Tensor host_values(Kind kind, const Shape& shape, float scale) {
  const int64_t n = shape_numel(shape);
  SPARVAR_CHECK(kind != Kind::Index, "index inputs have fixed values (host_input)");
  if (kind == Kind::Bits) {
    Tensor t = Tensor::empty(shape, DType::U8);
    std::bernoulli_distribution coin(0.5);
    for (int64_t i = 0; i < n; ++i) t.data_as<uint8_t>()[i] = coin(rng()) ? 1 : 0;
    return t;
  }
  if (kind == Kind::Uniform) {
    std::uniform_int_distribution<uint32_t> bits24(0, (1u << 24) - 1);
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = static_cast<float>(bits24(rng())) / 16777216.0f;
    return Tensor::from_floats(shape, v);
  }
  return random_normal(shape, scale);
}

Tensor host_input(const Arg& a) {
  if (a.kind != Kind::Index) return host_values(a.kind, a.shape, a.scale);
  Tensor t = Tensor::empty({static_cast<int64_t>(a.index.size())}, DType::I32);
  std::copy(a.index.begin(), a.index.end(), t.data_as<int32_t>());
  return t;
}

// An input on `be`. The CPU backend stores no I32 tensors: it takes index maps as the host tensors they are.
Tensor input_on(Backend& be, const Tensor& host, Kind kind, DType dtype) {
  if (kind == Kind::Index && be.device() == Device::CPU) return host;
  return be.upload(host, storage(kind, dtype));
}

Tensor poisoned_out(Backend& be, const Out& o, DType dtype) {
  if (o.kind != Kind::Bits) return poisoned(be, o.shape, storage(o.kind, dtype));
  Tensor t = Tensor::empty(o.shape, DType::U8);
  std::memset(t.data(), 0xFF, t.nbytes());
  return be.upload(t, DType::U8);
}

// Runs the case on `be`; returns the outputs as host F32.
std::vector<Tensor> run_on(Backend& be, const MultiCase& c, const std::vector<Tensor>& host_in,
                           const std::vector<Tensor>& host_initial, DType dtype) {
  std::vector<Tensor> ins, outs;
  for (size_t i = 0; i < host_in.size(); ++i) ins.push_back(input_on(be, host_in[i], c.inputs[i].kind, dtype));
  for (size_t i = 0; i < c.outputs.size(); ++i) {
    const Out& o = c.outputs[i];
    outs.push_back(o.slab_dim >= 0 ? be.upload(host_initial[i], storage(o.kind, dtype)) : poisoned_out(be, o, dtype));
  }
  c.run(be, ins, outs);
  std::vector<Tensor> host;
  for (const Tensor& t : outs) host.push_back(be.download(t));
  return host;
}

// Values of t inside [begin, end) of dimension dim, and outside it.
void split_slab(const Tensor& t, int dim, int64_t begin, int64_t end, std::vector<float>& in, std::vector<float>& out) {
  const std::vector<float> v = t.to_floats();
  int64_t rows = 1, inner = 1;
  for (int i = 0; i < dim; ++i) rows *= t.dim(i);
  for (int i = dim + 1; i < t.ndim(); ++i) inner *= t.dim(i);
  const int64_t len = t.dim(dim);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < len; ++j) {
      auto& dst = j >= begin && j < end ? in : out;
      const auto first = v.begin() + (r * len + j) * inner;
      dst.insert(dst.end(), first, first + inner);
    }
}

void run_multi(Backend& cpu, Backend& gpu, const MultiCase& c, Tally& tally) {
  std::vector<Tensor> host_in, host_initial;
  for (const Arg& a : c.inputs) host_in.push_back(host_input(a));
  for (const Out& o : c.outputs)
    host_initial.push_back(o.slab_dim >= 0 ? host_values(o.kind, o.shape, 1.0f) : Tensor());
  std::vector<Tensor> ref;
  try {
    ref = run_on(cpu, c, host_in, host_initial, DType::F32);
  } catch (const Error& e) {
    std::printf("%-15s %-58s %-5s %-10s FAIL (cpu reference threw: %s)\n", c.op.c_str(), c.desc.c_str(), "-", "-",
                e.what());
    tally.record(false);
    return;
  }
  for (DType dtype : {DType::BF16, DType::F32}) {
    const double tol = c.exact ? 0.0 : dtype == DType::BF16 ? kTolBf16 : c.tol_f32;
    double worst = 0.0, worst_max = 0.0;
    bool ok = true;
    std::string note;
    try {
      const std::vector<Tensor> got = run_on(gpu, c, host_in, host_initial, dtype);
      for (size_t i = 0; i < got.size(); ++i) {
        const Out& o = c.outputs[i];
        std::vector<float> g_in, g_out, r_in, r_out;
        if (o.slab_dim >= 0) {
          split_slab(got[i], o.slab_dim, o.slab_begin, o.slab_end, g_in, g_out);
          split_slab(ref[i], o.slab_dim, o.slab_begin, o.slab_end, r_in, r_out);
          if (!identical(g_out, r_out)) {
            ok = false;
            note += " (output " + std::to_string(i) + " changed outside its slab)";
          }
        } else {
          g_in = got[i].to_floats();
          r_in = ref[i].to_floats();
        }
        if (c.exact || o.kind == Kind::Bits) {
          if (!identical(g_in, r_in)) {
            int64_t differ = 0;
            for (size_t j = 0; j < g_in.size() && j < r_in.size(); ++j) differ += !(g_in[j] == r_in[j]);
            ok = false;
            note += " (output " + std::to_string(i) + ": " + std::to_string(differ) + " of " +
                    std::to_string(r_in.size()) + " elements differ)";
          }
          continue;
        }
        const Errors e = compare_values(g_in, r_in);
        if (std::isnan(e.rel_l2)) note += " (output " + std::to_string(i) + " non-finite: unwritten or NaN)";
        ok = ok && e.rel_l2 <= tol && e.rel_max <= kMaxErrFactor * tol;  // false for NaN
        worst = std::max(worst, std::isnan(e.rel_l2) ? INFINITY : e.rel_l2);
        worst_max = std::max(worst_max, std::isnan(e.rel_max) ? INFINITY : e.rel_max);
      }
    } catch (const Error& e) {
      ok = false;
      note = std::string(" (threw: ") + e.what() + ")";
    }
    std::printf("%-15s %-58s %-5s %-10.3e %s (%s; max err %.2e)%s\n", c.op.c_str(), c.desc.c_str(),
                std::string(dtype_name(dtype)).c_str(), worst, ok ? "OK  " : "FAIL",
                c.exact ? "exact" : fmt::format("tol {:.0e}", tol).c_str(), worst_max,
                note.c_str());
    tally.record(ok);
  }
  std::fflush(stdout);
}

// A destination row order of n tokens, as the sparse runner's padded tiles: shuffled, a -1 (padding) row after
// every `tile` - 1 tokens and at the end. Its own generator: the run's keeps the inputs of the other cases.
std::vector<int32_t> padded_order(int64_t n, int64_t tile, uint32_t seed) {
  std::vector<int32_t> tokens(static_cast<size_t>(n)), order;
  for (int64_t t = 0; t < n; ++t) tokens[static_cast<size_t>(t)] = static_cast<int32_t>(t);
  std::mt19937 generator(seed);
  std::shuffle(tokens.begin(), tokens.end(), generator);
  for (int64_t i = 0; i < n; ++i) {
    order.push_back(tokens[static_cast<size_t>(i)]);
    if ((i + 1) % (tile - 1) == 0) order.push_back(-1);
  }
  order.push_back(-1);
  return order;
}

// qkv_to_attention with QkvRowMap: q [B, H, Rq, D] all written; the cache slab [offset, offset + Rk).
void add_mapped_qkv_cases(const Options& o, std::vector<MultiCase>& cases) {
  struct Mapped { int64_t b, n, h, d, offset; bool kv_map; bool q_map = true; };
  const int64_t tokens = o.small ? 256 : 4096;
  for (const Mapped& m : std::vector<Mapped>{{2, tokens, 16, 128, 904, true},               // 2B, last scale
                                             {2, o.small ? 256 : 1024, 28, 128, 521, true},  // 8B heads
                                             {2, 300, 4, 64, 17, true},                      // head dim 64
                                             {2, 300, 4, 64, 0, false},                      // q map only
                                             {2, 37, 3, 6, 5, true},                         // generic path
                                             {4, 1, 16, 128, 0, true, false},                // kv map only: scale 0
                                             {4, 9, 16, 128, 5, true, false}}) {             // a packed sink scale
    const std::vector<int32_t> q_src = padded_order(m.n, 64, 1), kv_src = padded_order(m.n, 16, 2);
    const int64_t rq = m.q_map ? static_cast<int64_t>(q_src.size()) : m.n;
    const int64_t rk = m.kv_map ? static_cast<int64_t>(kv_src.size()) : m.n, cap = m.offset + rk + 7;
    const Shape cache = {m.b, m.h, cap, m.d};
    MultiCase c;
    c.op = "qkv_to_attn";
    c.desc = fmt::format("B={} N={} H={} D={} off={} maps {}{}", m.b, m.n, m.h, m.d, m.offset, m.q_map ? "q" : "",
                         m.kv_map ? ",kv" : "");
    c.inputs = {{{m.b, m.n, 3 * m.h * m.d}, Kind::Compute, 3.0f},
                {{m.n, m.d / 2}, Kind::F32},
                {{m.n, m.d / 2}, Kind::F32},
                {{m.h}, Kind::Compute, 2.0f},
                {{rq}, Kind::Index, 1.0f, q_src},
                {{static_cast<int64_t>(kv_src.size())}, Kind::Index, 1.0f, kv_src}};
    c.outputs = {{{m.b, m.h, rq, m.d}}, {cache, Kind::Compute, 2, m.offset, m.offset + rk},
                 {cache, Kind::Compute, 2, m.offset, m.offset + rk}};
    const int64_t offset = m.offset;
    const bool kv_map = m.kv_map, q_map = m.q_map;
    c.run = [offset, kv_map, q_map](Backend& be, std::vector<Tensor>& in, std::vector<Tensor>& out) {
      const QkvRowMap rows{q_map ? &in[4] : nullptr, kv_map ? &in[5] : nullptr};
      be.qkv_to_attention(in[0], &in[3], in[1], in[2], 1e-12f, offset, out[0], out[1], out[2], &rows);
    };
    cases.push_back(c);
  }
}

// linear_residual: y [B, N, Nout] += gate [B, Nout] * (x [B, N, K] @ w^T + bias). y is read and written: it starts
// with the same random contents on both backends, as an output whose "slab" is all of it (compared within the
// tolerance). scratch starts as NaN, so no result may come from it unwritten. Infinity's projections: self-attention
// and FFN down (gated), cross-attention (no gate); the first scales' single token; odd sizes that cuBLASLt may
// refuse to fuse (then composed). The fused path rounds once, the composition twice: both within the bf16 tolerance.
struct Lr {
  int64_t b, n, k, nout;
  bool bias, gate;
};

void add_linear_residual(const Lr& l, std::vector<MultiCase>& cases) {
  const Shape y = {l.b, l.n, l.nout};
  MultiCase c;
  c.op = "linear_residual";
  c.desc = fmt::format("B={} N={} K={} Nout={}{}{}", l.b, l.n, l.k, l.nout, l.bias ? " bias" : "",
                       l.gate ? " gate" : "");
  c.inputs = {{{l.b, l.n, l.k}}, {{l.nout, l.k}, Kind::Compute, 1.0f / std::sqrt(float(l.k))}, {{l.nout}},
              {{l.b, l.nout}, Kind::Compute, 0.5f}};
  c.outputs = {{y, Kind::Compute, 0, 0, l.b}};
  const bool bias = l.bias, gate = l.gate;
  c.run = [bias, gate, y](Backend& be, std::vector<Tensor>& in, std::vector<Tensor>& out) {
    Tensor scratch = poisoned(be, y, out[0].dtype());
    be.linear_residual(in[0], in[1], bias ? &in[2] : nullptr, gate ? &in[3] : nullptr, out[0], scratch);
  };
  c.tol_f32 = kTolF32Gemm;
  cases.push_back(c);
}

void add_linear_residual_cases(const Options& o, std::vector<MultiCase>& cases) {
  const int64_t tokens = o.small ? 256 : 4096, rows_8b = o.small ? 256 : 1024;
  for (const Lr& l : std::vector<Lr>{{2, tokens, 2048, 2048, true, true},           // 2B self-attention proj
                                     {2, tokens, 2048, 2048, true, false},          // 2B cross-attention proj
                                     {2, tokens, 4 * 2048, 2048, true, true},       // 2B FFN down
                                     {2, rows_8b, 3584, 3584, true, true},          // 8B self-attention proj
                                     {2, rows_8b, 3584, 3584, true, false},         // 8B cross-attention proj
                                     {2, rows_8b, 4 * 3584, 3584, true, true},      // 8B FFN down
                                     {2, 1, 2048, 2048, true, true},                // first scale: 1 token
                                     {2, 300, 2048, 2048, false, true},             // gate, no bias
                                     {1, 77, 256, 384, false, false},               // plain accumulation
                                     {2, 1, 33, 17, true, true},                    // odd: Nout % 8 != 0
                                     {3, 5, 64, 33, false, true},
                                     {1, 1, 40, 19, true, false}})
    add_linear_residual(l, cases);
}

// linear_residual with a few rows (B * N): ungated BF16 runs the skinny GEMM in place on y (gemm_skinny.h), gated the
// composition with linear on it. Infinity's first scales (B = 2 with CFG, 1 and 4 tokens; 16 rows) at its widths, and
// K = 72 / Nout = 100, 24, 8 off the kernel's multiples; K % 8 != 0 falls back to cuBLASLt.
void add_skinny_residual_cases(std::vector<MultiCase>& cases) {
  for (const Lr& l : std::vector<Lr>{{2, 1, 3584, 3584, true, false},       // 8B cross-attention proj, 1x1
                                     {2, 4, 2048, 2048, true, false},       // 2B, 2x2
                                     {2, 4, 4 * 3584, 3584, true, false},   // 8B FFN down's shape, 2x2
                                     {2, 8, 3584, 3584, false, false},      // 16 rows
                                     {2, 4, 3584, 3584, true, true},        // gated: composed around linear
                                     {1, 3, 72, 100, false, false},
                                     {1, 1, 4 * 3584, 24, true, false},
                                     {2, 4, 64, 8, true, false},
                                     {1, 2, 36, 24, true, false}})         // K % 8 != 0: cuBLASLt
    add_linear_residual(l, cases);
}

// gated_residual_norm: x [B, N, C] += gate [B, C] * y, then h = layer_norm(x, weight [C], bias [C]) or
// layer_norm_modulate(x, scale [B, C], shift [B, C]). x is read and written (compared as a slab that is all of it, like
// linear_residual's y); h starts poisoned. C: Infinity-2B's and 8B's widths, and widths off the 16-byte path (bf16 at
// C = 100, both dtypes at 203).
void add_gated_residual_norm_cases(const Options& o, std::vector<MultiCase>& cases) {
  struct Rn { int64_t b, n, c; bool modulated, affine = true, y_is_x = false; };
  const int64_t rows = o.small ? 64 : 1024;
  std::vector<Rn> shapes;
  for (bool modulated : {false, true})
    for (int64_t b : {1, 2})
      for (int64_t c : {2048, 3584, 203}) shapes.push_back({b, c == 203 ? 37 : rows, c, modulated});
  shapes.push_back({2, 37, 100, true});
  shapes.push_back({2, 37, 100, false});
  shapes.push_back({2, 37, 203, false, false});      // layer_norm without affine
  shapes.push_back({2, 64, 2048, true, true, true});  // y = x
  for (const Rn& r : shapes) {
    const Shape x = {r.b, r.n, r.c}, param = r.modulated ? Shape{r.b, r.c} : Shape{r.c};
    MultiCase c;
    c.op = "gated_res_norm";
    c.desc = fmt::format("B={} N={} C={} {}{}", r.b, r.n, r.c,
                         r.modulated ? "modulated" : r.affine ? "affine" : "no affine", r.y_is_x ? " y=x" : "");
    c.inputs = {{{r.b, r.c}, Kind::Compute, 0.5f}, {x}, {param, Kind::Compute, 0.5f}, {param}};
    c.outputs = {{x, Kind::Compute, 0, 0, r.b}, {x}};
    c.run = [r](Backend& be, std::vector<Tensor>& in, std::vector<Tensor>& out) {
      const LayerNormSpec norm = r.modulated ? LayerNormSpec::modulate(in[2], in[3])
                                 : r.affine  ? LayerNormSpec::affine(&in[2], &in[3])
                                             : LayerNormSpec{};
      be.gated_residual_norm(out[0], in[0], r.y_is_x ? out[0] : in[1], norm, 1e-6f, out[1]);
    };
    cases.push_back(c);
  }
}

std::vector<MultiCase> make_cases(const Options& o) {
  std::vector<MultiCase> cases;
  const int64_t tokens = o.small ? 256 : 4096;

  // ---- qkv_to_attention: [B, N, 3HD] -> q [B, H, N, D], cache slab [offset, offset + N) of [B, H, cap, D]
  struct Qkv { int64_t b, n, h, d, cap, offset; bool scaled; };
  for (const Qkv& q : std::vector<Qkv>{
           {2, tokens, 16, 128, tokens + 904, 904, true},          // Infinity-2B, last scale, CFG rows
           {2, o.small ? 256 : 1024, 28, 128, 2000, 521, true},   // 8B heads
           {4, 1, 16, 128, 10, 0, true},                           // the first scale (1 token), batch 2 x CFG
           {1, 5, 3, 64, 9, 4, false},                             // no q scale, the slab at the very end
           {2, 7, 2, 6, 20, 3, true}}) {                           // head dim % 4 != 0: one pair per lane
    const Shape cache = {q.b, q.h, q.cap, q.d};
    MultiCase c;
    c.op = "qkv_to_attn";
    c.desc = fmt::format("B={} N={} H={} D={} cap={} off={}{}", q.b, q.n, q.h, q.d, q.cap, q.offset,
                         q.scaled ? " q_scale" : "");
    c.inputs = {{{q.b, q.n, 3 * q.h * q.d}, Kind::Compute, 3.0f}, {{q.n, q.d / 2}, Kind::F32},
                {{q.n, q.d / 2}, Kind::F32}, {{q.h}, Kind::Compute, 2.0f}};
    c.outputs = {{{q.b, q.h, q.n, q.d}}, {cache, Kind::Compute, 2, q.offset, q.offset + q.n},
                 {cache, Kind::Compute, 2, q.offset, q.offset + q.n}};
    const bool scaled = q.scaled;
    const int64_t offset = q.offset;
    c.run = [scaled, offset](Backend& be, std::vector<Tensor>& in, std::vector<Tensor>& out) {
      be.qkv_to_attention(in[0], scaled ? &in[3] : nullptr, in[1], in[2], 1e-12f, offset, out[0], out[1], out[2]);
    };
    cases.push_back(c);
  }

  // ---- copy_slice: exact, the rest of the destination untouched
  struct Slice { Shape src; int dim; int64_t dst_len, offset; Kind kind; };
  for (const Slice& s : std::vector<Slice>{{{2, 16, tokens, 128}, 2, tokens + 1000, 1000, Kind::Compute},
                                           {{3, 5}, 0, 7, 2, Kind::Compute},
                                           {{4, 3}, 1, 9, 6, Kind::Compute},
                                           {{2, 4, 10, 32}, 2, 30, 17, Kind::Bits}}) {
    Shape dst = s.src;
    dst[static_cast<size_t>(s.dim)] = s.dst_len;
    MultiCase c;
    c.op = "copy_slice";
    c.desc = shape_string(s.src) + " -> " + shape_string(dst) + fmt::format(" dim {} at {}", s.dim, s.offset) +
             (s.kind == Kind::Bits ? " u8" : "");
    c.inputs = {{s.src, s.kind}};
    c.outputs = {{dst, s.kind, s.dim, s.offset, s.offset + s.src[static_cast<size_t>(s.dim)]}};
    const int dim = s.dim;
    const int64_t offset = s.offset;
    c.run = [dim, offset](Backend& be, std::vector<Tensor>& in, std::vector<Tensor>& out) {
      be.copy_slice(in[0], out[0], dim, offset);
    };
    c.exact = true;
    cases.push_back(c);
  }

  // ---- sample_bits: raw [R, N, 2D] -> bits [B, N, D] and logits [B, N, 2D]; must equal the CPU bit for bit
  struct Sample { int64_t b, n, d; bool guided, uniforms, want_bits, want_logits; BitSampling p; const char* what; };
  auto params = [](float tau, float cfg, int top_k, float top_p, uint64_t seed, uint64_t stream) {
    BitSampling p;
    p.tau = tau;
    p.cfg = cfg;
    p.top_k = top_k;
    p.top_p = top_p;
    p.seed = seed;
    p.stream = stream;
    return p;
  };
  for (const Sample& s : std::vector<Sample>{
           {2, tokens, 32, true, false, true, true, params(1.0f, 3.0f, 900, 0.97f, 12345, 12), "2B, philox"},
           {2, o.small ? 256 : 1024, 56, true, true, true, true, params(0.8f, 4.0f, 900, 0.97f, 0, 0), "8B, uniforms"},
           {1, 777, 32, false, false, true, true, params(0.5f, 1.0f, 1, 0.0f, 7, 3), "no cfg, top-k 1"},
           {2, 100, 16, true, true, true, false, params(1.0f, 2.0f, 0, 0.5f, 0, 0), "top-p 0.5, bits only"},
           {2, 100, 16, true, false, false, true, params(0.9f, 3.0f, 900, 0.97f, 0, 0), "logits only"}}) {
    MultiCase c;
    c.op = "sample_bits";
    c.desc = fmt::format("B={} N={} D={} {}", s.b, s.n, s.d, s.what);
    c.inputs = {{{s.guided ? 2 * s.b : s.b, s.n, 2 * s.d}, Kind::Compute, 3.0f}};
    if (s.uniforms) c.inputs.push_back({{s.b, s.n, s.d}, Kind::Uniform});
    if (s.want_bits) c.outputs.push_back({{s.b, s.n, s.d}, Kind::Bits});
    if (s.want_logits) c.outputs.push_back({{s.b, s.n, 2 * s.d}, Kind::F32});
    const Sample k = s;
    c.run = [k](Backend& be, std::vector<Tensor>& in, std::vector<Tensor>& out) {
      Tensor* bits = k.want_bits ? &out[0] : nullptr;
      Tensor* logits = k.want_logits ? &out[k.want_bits ? 1 : 0] : nullptr;
      be.sample_bits(in[0], k.p, k.uniforms ? &in[1] : nullptr, bits, logits);
    };
    c.exact = true;
    cases.push_back(c);
  }

  // ---- bits_to_codes: bits [B, h*w, d p^2] -> codes [B, d, h p, w p]
  struct Codes { int64_t b, h, w, d; int p; };
  const int64_t side = o.small ? 16 : 64;
  for (const Codes& k : std::vector<Codes>{{2, side, side, 32, 1}, {2, side / 2, side / 2, 14, 2}, {1, 3, 5, 2, 2}}) {
    MultiCase c;
    c.op = "bits_to_codes";
    c.desc = fmt::format("B={} {}x{} d={} patch={}", k.b, k.h, k.w, k.d, k.p);
    c.inputs = {{{k.b, k.h * k.w, k.d * k.p * k.p}, Kind::Bits}};
    c.outputs = {{{k.b, k.d, k.h * k.p, k.w * k.p}, Kind::F32}};
    const int p = k.p;
    c.run = [p](Backend& be, std::vector<Tensor>& in, std::vector<Tensor>& out) {
      be.bits_to_codes(in[0], p, -0.1767767f, 0.1767767f, out[0]);
    };
    c.exact = true;
    cases.push_back(c);
  }
  add_mapped_qkv_cases(o, cases);
  add_linear_residual_cases(o, cases);
  add_gated_residual_norm_cases(o, cases);
  add_skinny_residual_cases(cases);  // last, so the inputs of the cases above stay what they were
  return cases;
}

// On the GPU the fused op must give bit for bit what the composition gives there (x: gated_residual's fp32 fma and
// rounding; h: row_norm's arithmetic on the stored x), so swapping it into the model changes no GPU result either.
void check_residual_norm_equals_composition(Backend& gpu, const Options& o, Tally& tally) {
  struct Eq { int64_t b, n, c; bool modulated; DType dtype; };
  for (const Eq& e : {Eq{2, o.small ? 64 : 1024, 3584, true, DType::BF16}, Eq{1, 37, 2048, false, DType::BF16},
                      Eq{2, 37, 100, false, DType::BF16}, Eq{2, 37, 203, true, DType::F32}}) {
    const Shape shape{e.b, e.n, e.c}, param = e.modulated ? Shape{e.b, e.c} : Shape{e.c};
    auto up = [&](const Shape& s, float scale) { return gpu.upload(random_normal(s, scale), e.dtype); };
    const Tensor x0 = up(shape, 1.0f), gate = up({e.b, e.c}, 0.5f), y = up(shape, 1.0f);
    const Tensor p = up(param, 0.5f), q = up(param, 1.0f);
    Tensor x_fused = gpu.empty(shape, e.dtype), x_comp = gpu.empty(shape, e.dtype);
    Tensor h_fused = poisoned(gpu, shape, e.dtype), h_comp = poisoned(gpu, shape, e.dtype);
    gpu.copy(x0, x_fused);
    gpu.copy(x0, x_comp);
    bool ok = false;
    std::string note;
    try {
      const LayerNormSpec norm = e.modulated ? LayerNormSpec::modulate(p, q) : LayerNormSpec::affine(&p, &q);
      gpu.gated_residual_norm(x_fused, gate, y, norm, 1e-6f, h_fused);
      gpu.gated_residual(x_comp, gate, y);
      if (e.modulated) gpu.layer_norm_modulate(x_comp, p, q, 1e-6f, h_comp);
      else gpu.layer_norm(x_comp, &p, &q, 1e-6f, h_comp);
      const bool same_x = identical(gpu.download(x_fused).to_floats(), gpu.download(x_comp).to_floats());
      const bool same_h = identical(gpu.download(h_fused).to_floats(), gpu.download(h_comp).to_floats());
      ok = same_x && same_h;
      note = ok ? "x and h bit for bit" : std::string(same_x ? "" : "x differs ") + (same_h ? "" : "h differs");
    } catch (const Error& err) {
      note = std::string("threw: ") + err.what();
    }
    const std::string desc = fmt::format("B={} N={} C={} {} == composition", e.b, e.n, e.c,
                                         e.modulated ? "modulated" : "affine");
    std::printf("%-15s %-58s %-5s %-10s %s (%s)\n", "gated_res_norm", desc.c_str(),
                std::string(dtype_name(e.dtype)).c_str(), "-", ok ? "OK  " : "FAIL", note.c_str());
    tally.record(ok);
  }
  std::fflush(stdout);
}

// Events around real work: after synchronize() the time between them is finite and >= 0; events of another
// backend are refused.
void check_timing(Backend& cpu, Backend& gpu, Tally& tally) {
  bool ok = false;
  std::string note;
  try {
    Tensor a = gpu.upload(random_normal({2, 1024, 2048}), DType::BF16);
    auto e0 = gpu.record_event();
    for (int i = 0; i < 4; ++i) gpu.add(a, a, a);
    auto e1 = gpu.record_event();
    gpu.synchronize();
    const double ms = e1->ms_since(*e0);
    auto other = cpu.record_event();
    bool refused = false;
    try {
      (void)e1->ms_since(*other);
    } catch (const Error&) {
      refused = true;
    }
    ok = std::isfinite(ms) && ms >= 0.0 && refused;
    note = fmt::format("{:.3f} ms between the events{}", ms, refused ? "" : "; a cpu event was accepted");
  } catch (const Error& e) {
    note = std::string("threw: ") + e.what();
  }
  std::printf("%-15s %-58s %-5s %-10s %s (%s)\n", "record_event", "two events around 4 adds", "bf16", "-",
              ok ? "OK  " : "FAIL", note.c_str());
  tally.record(ok);
}

// Each must throw sparvar::Error before any launch: the output (poisoned) stays untouched.
void check_bad_inputs(Backend& gpu, Tally& tally) {
  auto dev = [&](Shape s, DType d = DType::BF16) { return gpu.upload(random_normal(s), d); };
  auto bits_dev = [&](Shape s) { return gpu.upload(Tensor::zeros(s, DType::U8), DType::U8); };
  struct Bad { const char* what; std::function<void(Tensor&)> call; Shape out; DType dtype = DType::BF16; };
  Tensor x = dev({2, 3, 64}), qkv = dev({1, 4, 3 * 2 * 64}), q = dev({1, 2, 4, 64}), cache = dev({1, 2, 10, 64});
  Tensor table = dev({4, 32}, DType::F32), raw = dev({3, 5, 64});
  const Tensor map3 = gpu.upload(Tensor::zeros({3}, DType::I32), DType::I32);  // 3 rows of token 0
  const Tensor lr_w = dev({16, 64}), lr_bias = dev({16}), lr_gate = dev({2, 16}), lr_gate_f32 = dev({2, 16}, DType::F32);
  const Tensor lr_gate_bad = dev({2, 15}), lr_bias_bad = dev({15});
  Tensor lr_scratch = dev({2, 3, 16}), lr_scratch_bad = dev({2, 3, 15});
  // gated_residual_norm: the poisoned tensor is x (must not be updated) or h; x's shape [2, 3, 64].
  const Tensor rn_gate = dev({2, 64}), rn_w = dev({64}), rn_mod = dev({2, 64});
  const LayerNormSpec rn_affine = LayerNormSpec::affine(&rn_w, &rn_w);
  const LayerNormSpec rn_modulated = LayerNormSpec::modulate(rn_mod, rn_mod);
  Tensor rn_h = dev({2, 3, 64});
  const std::vector<Bad> bads = {
      {"ln_modulate scale shape", [&](Tensor& y) { gpu.layer_norm_modulate(x, dev({3, 64}), dev({2, 64}), 1e-6f, y); },
       {2, 3, 64}},
      {"ln_modulate output shape", [&](Tensor& y) { gpu.layer_norm_modulate(x, dev({2, 64}), dev({2, 64}), 1e-6f, y); },
       {2, 4, 64}},
      {"gated_residual gate shape", [&](Tensor& y) { gpu.gated_residual(y, dev({2, 32}), x); }, {2, 3, 64}},
      {"gated_residual mixed dtypes",
       [&](Tensor& y) { gpu.gated_residual(y, dev({2, 64}), dev({2, 3, 64}, DType::F32)); }, {2, 3, 64}},
      {"qkv_to_attention past capacity",
       [&](Tensor& y) { gpu.qkv_to_attention(qkv, nullptr, table, table, 1e-12f, 7, q, y, cache); }, {1, 2, 10, 64}},
      {"qkv_to_attention bf16 tables",
       [&](Tensor& y) { gpu.qkv_to_attention(qkv, nullptr, dev({4, 32}), table, 1e-12f, 0, q, y, cache); },
       {1, 2, 10, 64}},
      {"qkv_to_attention qkv width",
       [&](Tensor& y) { gpu.qkv_to_attention(dev({1, 4, 64}), nullptr, table, table, 1e-12f, 0, q, y, cache); },
       {1, 2, 10, 64}},
      {"qkv_to_attention q_src length",
       [&](Tensor& y) {
         const QkvRowMap rows{&map3, nullptr};
         gpu.qkv_to_attention(qkv, nullptr, table, table, 1e-12f, 0, q, y, cache, &rows);
       },
       {1, 2, 10, 64}},
      {"qkv_to_attention kv_src past capacity",
       [&](Tensor& y) {
         const QkvRowMap rows{nullptr, &map3};
         gpu.qkv_to_attention(qkv, nullptr, table, table, 1e-12f, 8, q, y, cache, &rows);
       },
       {1, 2, 10, 64}},
      {"qkv_to_attention host q_src",
       [&](Tensor& y) {
         const Tensor host = Tensor::zeros({4}, DType::I32);
         const QkvRowMap rows{&host, nullptr};
         gpu.qkv_to_attention(qkv, nullptr, table, table, 1e-12f, 0, q, y, cache, &rows);
       },
       {1, 2, 10, 64}},
      {"copy_slice past the end", [&](Tensor& y) { gpu.copy_slice(q, y, 2, 7); }, {1, 2, 10, 64}},
      {"copy_slice other dim differs", [&](Tensor& y) { gpu.copy_slice(dev({1, 3, 4, 64}), y, 2, 0); }, {1, 2, 10, 64}},
      {"copy_slice dtype", [&](Tensor& y) { gpu.copy_slice(dev({1, 2, 4, 64}, DType::F32), y, 2, 0); }, {1, 2, 10, 64}},
      {"sample_bits raw rows", [&](Tensor& y) { gpu.sample_bits(raw, BitSampling{}, nullptr, nullptr, &y); },
       {2, 5, 64}, DType::F32},
      {"sample_bits bf16 logits",
       [&](Tensor& y) { gpu.sample_bits(dev({4, 5, 64}), BitSampling{}, nullptr, nullptr, &y); }, {2, 5, 64}},
      {"sample_bits uniforms shape",
       [&](Tensor& y) { gpu.sample_bits(dev({4, 5, 64}), BitSampling{}, &table, nullptr, &y); }, {2, 5, 64},
       DType::F32},
      {"bits_to_codes patch 3", [&](Tensor& y) { gpu.bits_to_codes(bits_dev({1, 4, 9}), 3, 0.0f, 1.0f, y); },
       {1, 1, 6, 6}, DType::F32},
      {"bits_to_codes bits shape", [&](Tensor& y) { gpu.bits_to_codes(bits_dev({1, 5, 8}), 2, 0.0f, 1.0f, y); },
       {1, 2, 4, 4}, DType::F32},
      {"linear_residual gate shape",
       [&](Tensor& y) { gpu.linear_residual(x, lr_w, &lr_bias, &lr_gate_bad, y, lr_scratch); }, {2, 3, 16}},
      {"linear_residual bias shape",
       [&](Tensor& y) { gpu.linear_residual(x, lr_w, &lr_bias_bad, nullptr, y, lr_scratch); }, {2, 3, 16}},
      {"linear_residual y shape", [&](Tensor& y) { gpu.linear_residual(x, lr_w, nullptr, nullptr, y, lr_scratch); },
       {2, 4, 16}},
      {"linear_residual scratch shape",
       [&](Tensor& y) { gpu.linear_residual(x, lr_w, &lr_bias, &lr_gate, y, lr_scratch_bad); }, {2, 3, 16}},
      {"linear_residual scratch is y", [&](Tensor& y) { gpu.linear_residual(x, lr_w, &lr_bias, &lr_gate, y, y); },
       {2, 3, 16}},
      {"linear_residual f32 gate",
       [&](Tensor& y) { gpu.linear_residual(x, lr_w, &lr_bias, &lr_gate_f32, y, lr_scratch); }, {2, 3, 16}},
      {"gated_residual_norm gate shape",
       [&](Tensor& y) { gpu.gated_residual_norm(y, dev({2, 32}), x, rn_affine, 1e-6f, rn_h); }, {2, 3, 64}},
      {"gated_residual_norm y shape",
       [&](Tensor& y) { gpu.gated_residual_norm(y, rn_gate, dev({2, 4, 64}), rn_affine, 1e-6f, rn_h); }, {2, 3, 64}},
      {"gated_residual_norm weight shape",
       [&](Tensor& y) {
         gpu.gated_residual_norm(y, rn_gate, x, LayerNormSpec::affine(&rn_w, &rn_mod), 1e-6f, rn_h);
       },
       {2, 3, 64}},
      {"gated_residual_norm scale shape",
       [&](Tensor& y) {
         gpu.gated_residual_norm(y, rn_gate, x, LayerNormSpec::modulate(dev({3, 64}), rn_mod), 1e-6f, rn_h);
       },
       {2, 3, 64}},
      {"gated_residual_norm h shape",
       [&](Tensor& y) { gpu.gated_residual_norm(rn_h, rn_gate, x, rn_modulated, 1e-6f, y); }, {2, 4, 64}},
      {"gated_residual_norm h is x",
       [&](Tensor& y) { gpu.gated_residual_norm(y, rn_gate, x, rn_modulated, 1e-6f, y); }, {2, 3, 64}},
      {"gated_residual_norm h is y",
       [&](Tensor& y) { gpu.gated_residual_norm(rn_h, rn_gate, y, rn_modulated, 1e-6f, y); }, {2, 3, 64}},
      {"gated_residual_norm f32 gate",
       [&](Tensor& y) { gpu.gated_residual_norm(y, dev({2, 64}, DType::F32), x, rn_modulated, 1e-6f, rn_h); },
       {2, 3, 64}},
  };
  for (const Bad& bad : bads) {
    Tensor y = poisoned(gpu, bad.out, bad.dtype);
    std::string outcome = "no error thrown";
    bool ok = false;
    try {
      bad.call(y);
    } catch (const Error& e) {
      bool untouched = true;
      for (float v : gpu.download(y).to_floats()) untouched = untouched && std::isnan(v);
      ok = untouched;
      outcome = untouched ? e.what() : "threw, but the output was written";
    }
    std::printf("%-15s %-58s %-5s %-10s %s (%s)\n", "bad-input", bad.what, std::string(dtype_name(bad.dtype)).c_str(),
                "-", ok ? "OK  " : "FAIL", outcome.c_str());
    tally.record(ok);
  }
}

}  // namespace

void run_fused_cases(Backend& cpu, Backend& gpu, const Options& options, Tally& tally) {
  for (const MultiCase& c : make_cases(options))
    if (selected(options, c.op + " " + c.desc)) run_multi(cpu, gpu, c, tally);
  if (selected(options, "gated_res_norm composition")) check_residual_norm_equals_composition(gpu, options, tally);
  if (selected(options, "record_event")) check_timing(cpu, gpu, tally);
  if (options.filter.empty() || std::string("bad-input").find(options.filter) != std::string::npos)
    check_bad_inputs(gpu, tally);
}

}  // namespace sparvar::backend_ops
