// T5's tokenizer: a sentencepiece model (spiece.model) plus T5's conventions: the piece ids of the prompt,
// then EOS (id 1); rows padded with id 0; at most 512 tokens (longer prompts keep their first 511 pieces + EOS,
// with a warning), as transformers' T5 tokenizer does with truncation=True, max_length=512.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace sparvar::t5 {

// Token ids of a batch of prompts, 0-padded to the longest row.
struct TokenBatch {
  Tensor ids;                    // host I32 [B, L]
  std::vector<int32_t> lengths;  // valid tokens per row (EOS included), each >= 1
};

class T5Tokenizer {
 public:
  static constexpr int32_t kPadId = 0;
  static constexpr int32_t kEosId = 1;
  static constexpr int kDefaultMaxLength = 512;

  // Throws Error naming the path when the model cannot be loaded or does not use T5's pad 0 / eos 1.
  explicit T5Tokenizer(const std::filesystem::path& spiece_model, int max_length = kDefaultMaxLength);
  ~T5Tokenizer();
  T5Tokenizer(T5Tokenizer&&) noexcept;
  T5Tokenizer& operator=(T5Tokenizer&&) noexcept;

  // ids + EOS. An empty (or whitespace-only) prompt is an Error.
  std::vector<int32_t> encode(const std::string& prompt) const;
  TokenBatch encode_batch(const std::vector<std::string>& prompts) const;
  int vocab_size() const;
  int max_length() const { return max_length_; }

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  int max_length_;
};

}  // namespace sparvar::t5
