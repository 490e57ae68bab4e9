#include "models/t5/tokenizer.h"

#include <sentencepiece_processor.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace sparvar::t5 {

T5Tokenizer::T5Tokenizer(const std::filesystem::path& spiece_model, int max_length)
    : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()), max_length_(max_length) {
  SPARVAR_CHECK(max_length >= 2, "T5 tokenizer: max_length {} must be at least 2 (one piece + EOS)", max_length);
  SPARVAR_CHECK(std::filesystem::is_regular_file(spiece_model), "T5 tokenizer: no sentencepiece model at {}",
                spiece_model.string());
  const auto status = sp_->Load(spiece_model.string());
  SPARVAR_CHECK(status.ok(), "T5 tokenizer: cannot load sentencepiece model {}: {}", spiece_model.string(),
                status.ToString());
  // The encoder's embedding rows are addressed by these ids: a model with other special ids is not T5's.
  SPARVAR_CHECK(sp_->eos_id() == kEosId && sp_->pad_id() == kPadId,
                "T5 tokenizer: {} has eos id {} and pad id {}; T5 needs eos 1 and pad 0", spiece_model.string(),
                sp_->eos_id(), sp_->pad_id());
}

T5Tokenizer::~T5Tokenizer() = default;
T5Tokenizer::T5Tokenizer(T5Tokenizer&&) noexcept = default;
T5Tokenizer& T5Tokenizer::operator=(T5Tokenizer&&) noexcept = default;

int T5Tokenizer::vocab_size() const { return sp_->GetPieceSize(); }

std::vector<int32_t> T5Tokenizer::encode(const std::string& prompt) const {
  SPARVAR_CHECK(!prompt.empty(), "T5 tokenizer: the prompt is empty");
  std::vector<int> pieces;
  const auto status = sp_->Encode(prompt, &pieces);
  SPARVAR_CHECK(status.ok(), "T5 tokenizer: cannot encode prompt '{}': {}", prompt, status.ToString());
  SPARVAR_CHECK(!pieces.empty(), "T5 tokenizer: the prompt '{}' holds no text (only whitespace)", prompt);
  const size_t keep = static_cast<size_t>(max_length_ - 1);
  if (pieces.size() > keep) {
    spdlog::warn("T5 tokenizer: prompt of {} tokens truncated to {} (the first {} pieces + EOS)", pieces.size() + 1,
                 max_length_, keep);
    pieces.resize(keep);
  }
  std::vector<int32_t> ids(pieces.begin(), pieces.end());
  ids.push_back(kEosId);
  return ids;
}

TokenBatch T5Tokenizer::encode_batch(const std::vector<std::string>& prompts) const {
  SPARVAR_CHECK(!prompts.empty(), "T5 tokenizer: no prompts");
  std::vector<std::vector<int32_t>> rows;
  for (size_t i = 0; i < prompts.size(); ++i) {
    try {
      rows.push_back(encode(prompts[i]));
    } catch (const Error& e) {
      fail("{} (prompt {} of {})", e.what(), i, prompts.size());
    }
  }
  size_t longest = 0;
  for (const auto& r : rows) longest = std::max(longest, r.size());
  TokenBatch batch;
  batch.ids = Tensor::zeros({static_cast<int64_t>(rows.size()), static_cast<int64_t>(longest)}, DType::I32);
  auto* out = batch.ids.data_as<int32_t>();
  for (size_t b = 0; b < rows.size(); ++b) {
    std::memcpy(out + b * longest, rows[b].data(), rows[b].size() * sizeof(int32_t));  // the rest stays pad 0
    batch.lengths.push_back(static_cast<int32_t>(rows[b].size()));
  }
  return batch;
}

}  // namespace sparvar::t5
