#include "models/infinity/sparse_attention_runner.h"

#include <algorithm>

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
  exec_->reserve(o.max_batch);
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
  if (!runs_block_sparse(s)) {
    dense_self_attention(backend, q, k, v, call, out);
    return;
  }
  const int K = schedule_.num_scales();
  if (mode_ != AttentionMode::Cs4a) {
    exec_->attend(q, k, v, s, s, MassOutput{}, out);
  } else if (s == decision_scale_) {
    if (cs4a_on_device_) {
      const bool observed = static_cast<bool>(options_.on_cs4a_decision);
      exec_->attend(q, k, v, s, decision_slot(K), MassOutput{true, observed ? &mass_ : nullptr}, out);
      decide_cs4a_on_device(call.layer, q.dim(0));
    } else {
      exec_->attend(q, k, v, s, decision_slot(K), MassOutput{false, &mass_}, out);
      decide_cs4a(call.layer, mass_, q.dim(0));
    }
  } else {
    SPARVAR_CHECK(cs4a_decided_.count(call.layer),
                  "CS4A: layer {} reached scale {} without a decision at scale {} (scales must run in order)",
                  call.layer, s, decision_scale_);
    exec_->attend(q, k, v, s, cs4a_slot(K, call.layer, s), MassOutput{}, out);
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
