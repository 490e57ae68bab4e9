// Key names of transformers' T5EncoderModel (and of full T5ForConditionalGeneration files, whose decoder and
// lm_head keys the encoder ignores).
#pragma once

#include <string>

namespace sparvar::io {
class Checkpoint;
}

namespace sparvar::t5 {

inline constexpr const char* kQ = "layer.0.SelfAttention.q.weight";
inline constexpr const char* kK = "layer.0.SelfAttention.k.weight";
inline constexpr const char* kV = "layer.0.SelfAttention.v.weight";
inline constexpr const char* kO = "layer.0.SelfAttention.o.weight";
inline constexpr const char* kRelativeBias = "layer.0.SelfAttention.relative_attention_bias.weight";  // block 0
inline constexpr const char* kAttnNorm = "layer.0.layer_norm.weight";
inline constexpr const char* kWi0 = "layer.1.DenseReluDense.wi_0.weight";
inline constexpr const char* kWi1 = "layer.1.DenseReluDense.wi_1.weight";
inline constexpr const char* kWo = "layer.1.DenseReluDense.wo.weight";
inline constexpr const char* kFfnNorm = "layer.1.layer_norm.weight";
inline constexpr const char* kFinalNorm = "encoder.final_layer_norm.weight";

// "encoder.block.{i}.{leaf}"
std::string block_key(int block, const char* leaf);
// The token embedding: 'shared.weight', or the tied 'encoder.embed_tokens.weight' when a file holds only that
// (safetensors files keep one of the tied pair). Throws naming both when neither is present.
std::string embedding_key(const io::Checkpoint& ckpt);

}  // namespace sparvar::t5
