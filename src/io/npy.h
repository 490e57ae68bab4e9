// NumPy .npy files (format 1.0/2.0/3.0): little-endian f32, f16, i32, i64, u8 and bool arrays in C order.
// Used for parity data exchanged with our PyTorch reference (text features, bits, uniforms, logits, codes).
// The reader is strict: the header must be a well-formed dict with exactly descr, fortran_order and shape,
// the data must be exactly shape x itemsize bytes; anything else is an Error naming the file and the problem.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "core/tensor.h"

namespace sparvar::io {

// Reads a whole .npy file into a host tensor (F32, F16, I32, I64, U8 or Bool).
Tensor read_npy(const std::filesystem::path& path);
// Parses .npy bytes; `what` names the source in errors.
Tensor parse_npy(std::string_view bytes, const std::string& what);

// Writes a host tensor (F32, F16, I32, I64, U8, Bool; BF16 is written as F32 since NumPy has no bf16).
void write_npy(const std::filesystem::path& path, const Tensor& t);
std::string serialize_npy(const Tensor& t);

}  // namespace sparvar::io
