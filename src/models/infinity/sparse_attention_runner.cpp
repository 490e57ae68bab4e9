#include "models/infinity/sparse_attention_runner.h"

#include <algorithm>
#include <cstdlib>

#include "attention/cs4a_plan.h"
#include "core/error.h"
#include "models/infinity/attention_executor.h"

namespace sparvar::infinity {
namespace {

constexpr std::string_view kModes = "dense, csla, cs4a";

// Executor slots: static patterns by scale; CS4A's decision pattern and per-(layer, scale) patterns after.
int decision_slot(int num_scales) { return num_scales; }
int cs4a_slot(int num_scales, int layer, int scale) { return num_scales + 1 + layer * num_scales + scale; }

}  // namespace

std::string_view attention_mode_name(AttentionMode mode) {
  switch (mode) {
    case AttentionMode::Dense: return "dense";
    case AttentionMode::Csla: return "csla";
    case AttentionMode::Cs4a: return "cs4a";
  }
  return "?";
}

AttentionMode parse_attention_mode(std::string_view name) {
  for (AttentionMode m : {AttentionMode::Dense, AttentionMode::Csla, AttentionMode::Cs4a})
    if (name == attention_mode_name(m)) return m;
  fail("unknown attention mode '{}'; the modes are: {}", name, kModes);
}

SparseAttentionRunner::SparseAttentionRunner(Backend& backend, AttentionMode mode, SparseAttentionOptions options,
                                             const ScaleSchedule& schedule, int heads, int head_dim)
    : mode_(mode), options_(std::move(options)), schedule_(schedule), heads_(heads), head_dim_(head_dim) {
  SPARVAR_CHECK(heads >= 1 && head_dim >= 1, "sparse attention runner: heads {} and head dim {} must be >= 1", heads,
                head_dim);
  SPARVAR_CHECK(options_.max_batch >= 1, "sparse attention runner: max_batch {} must be >= 1", options_.max_batch);
  SparseAttentionOptions& o = options_;
  o.csla.q_tile = o.cs4a.q_tile = o.q_tile;
  o.csla.k_tile = o.cs4a.k_tile = o.k_tile;
  o.csla.dense_below_tokens = 0;  // the runner's threshold decides; the builder must not second-guess it
  const int K = schedule_.num_scales();
  const int packed = mode == AttentionMode::Csla ? o.csla.packed_scales
                     : mode == AttentionMode::Cs4a ? o.cs4a.packed_scales : 0;
  exec_ = backend.device() == Device::CPU
              ? make_cpu_attention_executor(heads, head_dim, o.cpu_threads)
              : make_cuda_attention_executor(backend, heads, head_dim, o.cuda_kernel);

  if (mode == AttentionMode::Cs4a) decision_scale_ = o.cs4a.resolve_decision_scale(schedule_);
  sparse_.assign(static_cast<size_t>(K), 0);
  layouts_.resize(static_cast<size_t>(K));
  static_.resize(static_cast<size_t>(K));
  mappers_.resize(static_cast<size_t>(K));
  for (int k = 0; k < K; ++k) {
    bool sparse = false;
    if (mode == AttentionMode::Cs4a) sparse = k >= decision_scale_;
    else if (mode == AttentionMode::Csla || o.dense_as_block_sparse)
      sparse = schedule_.tokens(k) >= o.dense_below_tokens && k >= packed;
    if (!sparse) continue;
    sparse_[static_cast<size_t>(k)] = 1;
    layouts_[static_cast<size_t>(k)] = make_scale_layouts(schedule_, k, o.q_tile, o.k_tile, packed);
    const ScaleLayouts& l = layouts_[static_cast<size_t>(k)];
    exec_->add_scale(k, l);
    if (mode == AttentionMode::Csla) {
      static_[static_cast<size_t>(k)] = std::make_unique<BlockSparseLayout>(
          make_block_sparse_layout(build_csla_pattern(l.q, l.k, o.csla, heads), l.q, l.k));
    } else if (mode == AttentionMode::Dense) {
      static_[static_cast<size_t>(k)] = std::make_unique<BlockSparseLayout>(
          make_block_sparse_layout(dense_pattern(l.q.num_blocks(), l.k.num_blocks(), heads), l.q, l.k));
    } else if (k == decision_scale_) {
      decision_dense_ = make_block_sparse_layout(dense_pattern(l.q.num_blocks(), l.k.num_blocks(), heads), l.q, l.k);
      exec_->set_pattern(decision_slot(K), decision_dense_);
    } else {
      mappers_[static_cast<size_t>(k)] = std::make_unique<Cs4aMapper>(schedule_, k, o.cs4a);
    }
    if (static_[static_cast<size_t>(k)]) exec_->set_pattern(k, *static_[static_cast<size_t>(k)]);
  }
  const char* env = std::getenv("SPARVAR_ATTN_IN_PLACE");
  in_place_ = o.in_place && (exec_->in_place(DType::BF16) || exec_->in_place(DType::F32)) &&
              !(env && std::string_view(env) == "0");
  if (in_place_) build_cache_order(backend, packed);
  exec_->reserve(o.max_batch, /*gather=*/!in_place_);
  if (decision_scale_ >= 0 && decision_scale_ + 1 < K && exec_->builds_cs4a()) {
    std::vector<const Cs4aMapper*> later;
    for (int k = decision_scale_ + 1; k < K; ++k) later.push_back(mappers_[static_cast<size_t>(k)].get());
    exec_->set_cs4a_plan(make_cs4a_plan(later, heads));
    cs4a_on_device_ = true;
  }
  if (decision_scale_ >= 0) {
    const BlockPattern& p = decision_dense_.pattern;
    mass_.reserve(static_cast<size_t>(o.max_batch) * heads * p.num_q_blocks * p.num_k_blocks);
    mass_avg_.resize(static_cast<size_t>(heads) * p.num_q_blocks * p.num_k_blocks);
  }
}

SparseAttentionRunner::~SparseAttentionRunner() = default;

// The KV cache in the padded tile order of the whole schedule (the key layout of scales 0..K-1, whose first blocks
// are the key layout of every shorter prefix), q of the sparse scales in their padded q tile order. The dense
// scales keep row-major q and the backend's dense attention, which reads keys [0, kv_tokens) in row order: where
// the cache prefix is no longer row-major (after the first tiled scale), their keys and values are first gathered
// back into row order (a small prefix: below dense_below_tokens), so dense scales compute exactly what the dense
// runner does. (Running them through the kernel instead changes their rounding, and an early scale's rounding
// changes the sampled bits: measured on the 2B, PSNR vs dense fell from 30.4 to 24.3 dB.)
void SparseAttentionRunner::build_cache_order(Backend& backend, int packed) {
  const SparseAttentionOptions& o = options_;
  const int K = schedule_.num_scales();
  const TileLayout full = TileLayout::build(schedule_, 0, K - 1, o.k_tile, packed);
  const std::vector<int32_t>& slot_of_row = full.slot_of_row();
  const std::vector<int32_t>& row_of_slot = full.row_of_slot();
  int64_t row_major = 0;  // leading rows at their own index
  while (row_major < full.num_rows() && slot_of_row[static_cast<size_t>(row_major)] == row_major) ++row_major;
  auto upload = [&](const std::vector<int32_t>& rows) {
    Tensor host = Tensor::empty({static_cast<int64_t>(rows.size())}, DType::I32);
    std::copy(rows.begin(), rows.end(), host.data_as<int32_t>());
    return backend.device() == Device::CPU ? host : backend.upload(host, DType::I32);  // CPU: stores f32 only
  };
  order_ = CacheOrder{};
  order_.capacity = full.num_slots();
  for (int k = 0; k < K; ++k) {
    const size_t ks = static_cast<size_t>(k);
    const int64_t first = schedule_.offset(k), n = schedule_.tokens(k);
    if (!sparse_[ks] && first + n > row_major) gathered_rows_ = std::max(gathered_rows_, first + n);
    // Cache rows of scale k: from its first token's slot up to the next scale's (its padding included).
    ScaleRows rows;
    rows.first_row = slot_of_row[static_cast<size_t>(first)];
    const int64_t end = k + 1 < K ? slot_of_row[static_cast<size_t>(first + n)] : full.num_slots();
    std::vector<int32_t> kv_src;
    for (int64_t slot = rows.first_row; slot < end; ++slot) {
      const int32_t row = row_of_slot[static_cast<size_t>(slot)];
      SPARVAR_CHECK(row < 0 || (row >= first && row < first + n), "cache order: slot {} of scale {} holds row {}",
                    slot, k, row);
      kv_src.push_back(row < 0 ? -1 : static_cast<int32_t>(row - first));
    }
    rows.kv_src = upload(kv_src);
    if (sparse_[ks]) {
      const TileLayout& q = layouts_[ks].q;  // of scale k alone: rows are the scale's own token indices
      rows.q_src = upload(q.row_of_slot());
      rows.q_rows = q.num_slots();
    } else {
      rows.q_rows = n;
    }
    order_.max_q_rows = std::max(order_.max_q_rows, rows.q_rows);
    order_.scales.push_back(std::move(rows));
  }
  row_major_ = row_major;
  if (gathered_rows_ == 0) return;
  slot_of_row_ = upload({slot_of_row.begin(), slot_of_row.begin() + gathered_rows_});  // the dense scales' prefix
  const DType dt = exec_->in_place(DType::BF16) ? DType::BF16 : DType::F32;
  for (Tensor* t : {&rows_k_, &rows_v_})
    *t = backend.empty({int64_t{o.max_batch} * heads_ * gathered_rows_ * head_dim_}, dt);
}

const CacheOrder* SparseAttentionRunner::cache_order(DType dtype) const {
  return in_place_ && exec_->in_place(dtype) ? &order_ : nullptr;
}

// A dense scale in the cache order: keys [0, kv_tokens) back in row order first when that prefix has gaps.
void SparseAttentionRunner::dense_in_cache_order(Backend& backend, const Tensor& q, const Tensor& k, const Tensor& v,
                                                 const SelfAttentionCall& call, Tensor& out) {
  if (call.kv_tokens <= row_major_) {
    dense_self_attention(backend, q, k, v, call, out);
    return;
  }
  const int64_t B = q.dim(0), kv = call.kv_tokens;
  SPARVAR_CHECK(B <= options_.max_batch && kv <= gathered_rows_, "sparse attention runner: {} rows of {} keys exceed "
                "its row-order scratch ({} x {})", B, kv, options_.max_batch, gathered_rows_);
  const Shape shape{B, heads_, kv, head_dim_};
  Tensor kr = rows_k_.slice0(0, shape_numel(shape)).view(shape), vr = rows_v_.slice0(0, shape_numel(shape)).view(shape);
  const Tensor slots = slot_of_row_.slice0(0, kv);
  exec_->cache_rows(k, slots, kr);
  exec_->cache_rows(v, slots, vr);
  dense_self_attention(backend, q, kr, vr, call, out);
}

bool SparseAttentionRunner::runs_block_sparse(int scale) const {
  return scale >= 0 && scale < schedule_.num_scales() && sparse_[static_cast<size_t>(scale)];
}

bool SparseAttentionRunner::capturable(int scale) const {
  const bool host_decision = !cs4a_on_device_ || static_cast<bool>(options_.on_cs4a_decision);
  return !(mode_ == AttentionMode::Cs4a && scale == decision_scale_ && host_decision);
}

void SparseAttentionRunner::end_image() {
  if (!cs4a_on_device_) return;  // host-built patterns are this image's already
  cs4a_.clear();
  exec_->end_image();
}

const BlockSparseLayout* SparseAttentionRunner::static_layout(int scale) const {
  return runs_block_sparse(scale) ? static_[static_cast<size_t>(scale)].get() : nullptr;
}

const BlockSparseLayout* SparseAttentionRunner::cs4a_layout(int layer, int scale) const {
  const auto it = cs4a_.find({layer, scale});
  if (it != cs4a_.end()) return &it->second;
  if (!cs4a_on_device_ || !cs4a_decided_.count(layer) || scale <= decision_scale_ || scale >= schedule_.num_scales())
    return nullptr;
  const ScaleLayouts& l = layouts_[static_cast<size_t>(scale)];
  const int slot = cs4a_slot(schedule_.num_scales(), layer, scale);
  return &cs4a_.emplace(std::pair{layer, scale}, make_block_sparse_layout(exec_->download_pattern(slot), l.q, l.k))
              .first->second;
}

std::vector<int> SparseAttentionRunner::cs4a_slots(int layer) const {
  std::vector<int> slots;
  for (int k = decision_scale_ + 1; k < schedule_.num_scales(); ++k)
    slots.push_back(cs4a_slot(schedule_.num_scales(), layer, k));
  return slots;
}

const ScaleLayouts& SparseAttentionRunner::layouts(int scale) const {
  SPARVAR_CHECK(runs_block_sparse(scale), "sparse attention runner: scale {} runs dense (no tile layouts)", scale);
  return layouts_[static_cast<size_t>(scale)];
}

void SparseAttentionRunner::self_attention(Backend& backend, const Tensor& q, const Tensor& k, const Tensor& v,
                                           const SelfAttentionCall& call, Tensor& out) {
  SPARVAR_CHECK(call.schedule && (call.schedule == &schedule_ || call.schedule->grids() == schedule_.grids()),
                "sparse attention runner was built for schedule {} but called with {}", schedule_.describe(),
                call.schedule ? call.schedule->describe() : std::string("none"));
  SPARVAR_CHECK(q.ndim() == 4 && q.dim(1) == heads_ && q.dim(3) == head_dim_,
                "sparse attention runner: q {} must be [B, {}, N, {}] (the heads and head dim it was built for)",
                q.describe(), heads_, head_dim_);
  const int s = call.scale;
  SPARVAR_CHECK(call.kv_tokens == schedule_.offset(s) + schedule_.tokens(s),
                "sparse attention runner: scale {} needs {} valid keys, the call has {}", s,
                schedule_.offset(s) + schedule_.tokens(s), call.kv_tokens);
  SPARVAR_CHECK(!call.runner_order || cache_order(q.dtype()),
                "sparse attention runner: called in its cache order, but it keeps none for {}", q.describe());
  if (!runs_block_sparse(s)) {
    if (call.runner_order) dense_in_cache_order(backend, q, k, v, call, out);
    else dense_self_attention(backend, q, k, v, call, out);
    return;
  }
  const auto attend = [&](int slot, MassOutput mass) {
    if (call.runner_order) exec_->attend_in_place(q, k, v, s, slot, mass, out);
    else exec_->attend(q, k, v, s, slot, mass, out);
  };
  const int K = schedule_.num_scales();
  if (mode_ != AttentionMode::Cs4a) {
    attend(s, MassOutput{});
  } else if (s == decision_scale_) {
    if (cs4a_on_device_) {
      const bool observed = static_cast<bool>(options_.on_cs4a_decision);
      attend(decision_slot(K), MassOutput{true, observed ? &mass_ : nullptr});
      decide_cs4a_on_device(call.layer, q.dim(0));
    } else {
      attend(decision_slot(K), MassOutput{false, &mass_});
      decide_cs4a(call.layer, mass_, q.dim(0));
    }
  } else {
    SPARVAR_CHECK(cs4a_decided_.count(call.layer),
                  "CS4A: layer {} reached scale {} without a decision at scale {} (scales must run in order)",
                  call.layer, s, decision_scale_);
    attend(cs4a_slot(K, call.layer, s), MassOutput{});
  }
}

// The executor selects and maps on the device, straight into the layer's slots (see decide_cs4a for what).
void SparseAttentionRunner::decide_cs4a_on_device(int layer, int64_t batch) {
  exec_->build_cs4a(cs4a_slots(layer));
  cs4a_decided_.insert(layer);
  for (int k = decision_scale_ + 1; k < schedule_.num_scales(); ++k) cs4a_.erase({layer, k});
  if (options_.on_cs4a_decision) {
    const BlockPattern selected = exec_->cs4a_selection();
    options_.on_cs4a_decision(Cs4aDecisionView{layer, decision_scale_, &layouts_[static_cast<size_t>(decision_scale_)],
                                               batch, heads_, mass_, &selected});
  }
}

// Selection on the batch-averaged mass (the pattern is per layer and head; CFG's conditional and
// unconditional rows, and the images of one batch, share it), then the map to every later scale.
void SparseAttentionRunner::decide_cs4a(int layer, std::span<const float> mass, int64_t batch) {
  const ScaleLayouts& dl = layouts_[static_cast<size_t>(decision_scale_)];
  const size_t per = mass_avg_.size();
  SPARVAR_CHECK(mass.size() == per * static_cast<size_t>(batch), "CS4A: block mass has {} entries, expected {}",
                mass.size(), per * static_cast<size_t>(batch));
  std::fill(mass_avg_.begin(), mass_avg_.end(), 0.0f);
  for (int64_t b = 0; b < batch; ++b)
    for (size_t i = 0; i < per; ++i) mass_avg_[i] += mass[static_cast<size_t>(b) * per + i];
  for (float& m : mass_avg_) m /= static_cast<float>(batch);
  const BlockPattern selected = cs4a_select(mass_avg_, heads_, dl, options_.cs4a);
  const int K = schedule_.num_scales();
  for (int k = decision_scale_ + 1; k < K; ++k) {
    BlockSparseLayout& slot = cs4a_[{layer, k}];
    slot = mappers_[static_cast<size_t>(k)]->map_layout(selected);
    exec_->set_pattern(cs4a_slot(K, layer, k), slot);
  }
  cs4a_decided_.insert(layer);
  if (options_.on_cs4a_decision)
    options_.on_cs4a_decision(Cs4aDecisionView{layer, decision_scale_, &dl, batch, heads_, mass, &selected});
}

std::unique_ptr<AttentionRunner> make_attention_runner(Backend& backend, AttentionMode mode,
                                                       const SparseAttentionOptions& options,
                                                       const ScaleSchedule& schedule, int heads, int head_dim) {
  if (mode == AttentionMode::Dense && !options.dense_as_block_sparse) return std::make_unique<DenseAttentionRunner>();
  return std::make_unique<SparseAttentionRunner>(backend, mode, options, schedule, heads, head_dim);
}

}  // namespace sparvar::infinity
