#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <optional>

#include "core/error.h"
#include "io/files.h"
#include "io/mapped_file.h"
#include "io/strict_json.h"

namespace sparvar::io {
namespace {

constexpr size_t kMaxDims = 16;

struct DTypeName {
  std::string_view name;
  std::optional<DType> dtype;  // nullopt: a real safetensors dtype that sparvar does not read
};
constexpr DTypeName kDTypes[] = {
    {"F32", DType::F32},  {"F16", DType::F16}, {"BF16", DType::BF16},   {"I32", DType::I32},
    {"I64", DType::I64},  {"U8", DType::U8},   {"BOOL", DType::Bool},   {"F64", std::nullopt},
    {"I8", std::nullopt}, {"I16", std::nullopt}, {"U16", std::nullopt}, {"U32", std::nullopt},
    {"U64", std::nullopt}, {"F8_E4M3", std::nullopt}, {"F8_E5M2", std::nullopt}};

DType parse_dtype(const nlohmann::json& value, const std::string& name, const std::string& label) {
  SPARVAR_CHECK(value.is_string(), "{}: tensor '{}' has a non-string dtype", label, name);
  const auto& text = value.get_ref<const std::string&>();
  for (const auto& d : kDTypes) {
    if (d.name != text) continue;
    SPARVAR_CHECK(d.dtype.has_value(),
                  "{}: tensor '{}' has dtype {}, which sparvar does not read (supported: F32 F16 BF16 I32 I64 U8 BOOL)",
                  label, name, text);
    return *d.dtype;
  }
  fail("{}: tensor '{}' has unknown dtype '{}'", label, name, text.substr(0, 32));
}

Shape parse_shape(const nlohmann::json& value, const std::string& name, const std::string& label) {
  SPARVAR_CHECK(value.is_array(), "{}: tensor '{}' has a shape that is not a list", label, name);
  SPARVAR_CHECK(value.size() <= kMaxDims, "{}: tensor '{}' has {} dimensions (at most {})", label, name,
                value.size(), kMaxDims);
  Shape shape;
  for (const auto& d : value) {
    SPARVAR_CHECK(d.is_number_unsigned() && d.get<uint64_t>() <= uint64_t(std::numeric_limits<int64_t>::max()),
                  "{}: tensor '{}' has a shape entry {} that is not a non-negative integer", label, name, d.dump());
    shape.push_back(static_cast<int64_t>(d.get<uint64_t>()));
  }
  return shape;
}

// numel * element size, or nullopt on overflow.
std::optional<uint64_t> byte_size(const Shape& shape, DType dtype) {
  uint64_t n = dtype_size(dtype);
  for (int64_t d : shape) {
    const auto u = static_cast<uint64_t>(d);
    if (u != 0 && n > std::numeric_limits<uint64_t>::max() / u) return std::nullopt;
    n *= u;
  }
  return n;
}

}  // namespace

std::string_view safetensors_dtype_name(DType dtype) {
  for (const auto& d : kDTypes)
    if (d.dtype == dtype) return d.name;
  return "?";
}

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
  auto file = MappedFile::open(path);
  return from_buffer(file->bytes(), file, path.string());
}

SafetensorsFile SafetensorsFile::from_buffer(std::span<const uint8_t> bytes, std::shared_ptr<const void> keepalive,
                                             std::string label) {
  SafetensorsFile f;
  f.label_ = std::move(label);
  f.keepalive_ = std::move(keepalive);
  const std::string& lb = f.label_;

  SPARVAR_CHECK(bytes.size() >= 8, "{}: not a safetensors file ({} bytes, shorter than the 8-byte header length)",
                lb, bytes.size());
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[static_cast<size_t>(i)];
  SPARVAR_CHECK(header_len <= kMaxSafetensorsHeaderBytes, "{}: safetensors header length {} exceeds the {} MB cap",
                lb, header_len, kMaxSafetensorsHeaderBytes >> 20);
  SPARVAR_CHECK(header_len <= bytes.size() - 8, "{}: truncated: header length {} but only {} bytes follow", lb,
                header_len, bytes.size() - 8);
  SPARVAR_CHECK(header_len >= 2 && bytes[8] == '{', "{}: safetensors header does not start with '{{'", lb);
  const std::string_view header(reinterpret_cast<const char*>(bytes.data() + 8), header_len);
  f.data_section_ = bytes.subspan(8 + header_len);

  const nlohmann::json json = parse_strict_json(header, fmt::format("safetensors header of {}", lb), 8);
  SPARVAR_CHECK(json.is_object(), "{}: safetensors header is not a JSON object", lb);

  for (const auto& [name, entry] : json.items()) {
    if (name == "__metadata__") {
      SPARVAR_CHECK(entry.is_object(), "{}: __metadata__ is not an object", lb);
      for (const auto& [k, v] : entry.items()) {
        SPARVAR_CHECK(v.is_string(), "{}: __metadata__ value of '{}' is not a string", lb, k);
        f.metadata_.emplace(k, v.get<std::string>());
      }
      continue;
    }
    SPARVAR_CHECK(entry.is_object(), "{}: entry '{}' is not an object", lb, name);
    for (const auto& [field, unused] : entry.items())
      SPARVAR_CHECK(field == "dtype" || field == "shape" || field == "data_offsets",
                    "{}: tensor '{}' has unknown field '{}'", lb, name, field);
    SPARVAR_CHECK(entry.contains("dtype") && entry.contains("shape") && entry.contains("data_offsets"),
                  "{}: tensor '{}' lacks dtype, shape or data_offsets", lb, name);
    TensorInfo info{name, parse_dtype(entry["dtype"], name, lb), parse_shape(entry["shape"], name, lb), 0};
    const auto bytes_needed = byte_size(info.shape, info.dtype);
    SPARVAR_CHECK(bytes_needed.has_value(), "{}: tensor '{}' shape {} is too large", lb, name,
                  shape_string(info.shape));
    info.bytes = *bytes_needed;

    const auto& offsets = entry["data_offsets"];
    SPARVAR_CHECK(offsets.is_array() && offsets.size() == 2 && offsets[0].is_number_unsigned() &&
                      offsets[1].is_number_unsigned(),
                  "{}: tensor '{}' data_offsets is not [begin, end] of non-negative integers", lb, name);
    const auto begin = offsets[0].get<uint64_t>();
    const auto end = offsets[1].get<uint64_t>();
    SPARVAR_CHECK(begin <= end && end <= f.data_section_.size(),
                  "{}: tensor '{}' data_offsets [{}, {}] outside the data section of {} bytes (file truncated?)", lb,
                  name, begin, end, f.data_section_.size());
    SPARVAR_CHECK(end - begin == info.bytes, "{}: tensor '{}' {} {} needs {} bytes but data_offsets span {}", lb, name,
                  dtype_name(info.dtype), shape_string(info.shape), info.bytes, end - begin);
    f.tensors_.push_back(std::move(info));
    f.begins_.push_back(begin);
  }

  // Sort by offset and check that no two tensors share bytes.
  std::vector<size_t> order(f.tensors_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return f.begins_[a] != f.begins_[b] ? f.begins_[a] < f.begins_[b] : f.tensors_[a].bytes < f.tensors_[b].bytes;
  });
  std::vector<TensorInfo> sorted;
  std::vector<uint64_t> sorted_begins;
  uint64_t previous_end = 0;
  size_t previous = 0;  // index of the tensor that ends at previous_end
  for (size_t i : order) {
    if (f.tensors_[i].bytes == 0) continue;  // an empty tensor owns no bytes
    SPARVAR_CHECK(f.begins_[i] >= previous_end, "{}: tensors '{}' and '{}' overlap in the data section", lb,
                  f.tensors_[previous].name, f.tensors_[i].name);
    previous_end = f.begins_[i] + f.tensors_[i].bytes;
    previous = i;
  }
  for (size_t i : order) {
    sorted.push_back(std::move(f.tensors_[i]));
    sorted_begins.push_back(f.begins_[i]);
  }
  f.tensors_ = std::move(sorted);
  f.begins_ = std::move(sorted_begins);
  for (size_t i = 0; i < f.tensors_.size(); ++i) f.index_.emplace(f.tensors_[i].name, i);
  return f;
}

Tensor SafetensorsFile::tensor(const std::string& name) const {
  auto it = index_.find(name);
  SPARVAR_CHECK(it != index_.end(), "{} has no tensor '{}'", label_, name);
  const TensorInfo& info = tensors_[it->second];
  // Tensor needs a non-null pointer even for empty tensors; the data section's start is always valid.
  const uint8_t* p = data_section_.data() + begins_[it->second];
  static const uint8_t empty_byte = 0;
  if (data_section_.data() == nullptr) p = &empty_byte;
  return Tensor::wrap(const_cast<uint8_t*>(p), info.shape, info.dtype, Device::CPU,
                      keepalive_ ? std::const_pointer_cast<void>(keepalive_) : std::make_shared<int>(0));
}

std::vector<uint8_t> encode_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                        const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    SPARVAR_CHECK(t.device() == Device::CPU, "encode_safetensors: tensor '{}' is not on the host", name);
    SPARVAR_CHECK(name != "__metadata__" && !header.contains(name), "encode_safetensors: bad or repeated name '{}'",
                  name);
    header[name] = {{"dtype", safetensors_dtype_name(t.dtype())},
                    {"shape", t.shape()},
                    {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  std::string text = header.dump();
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');
  std::vector<uint8_t> out(8 + text.size() + offset);
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<uint8_t>(uint64_t(text.size()) >> (8 * i));
  std::memcpy(out.data() + 8, text.data(), text.size());
  uint8_t* p = out.data() + 8 + text.size();
  for (const auto& [name, t] : tensors) {
    if (t.nbytes() > 0) std::memcpy(p, t.data(), t.nbytes());
    p += t.nbytes();
  }
  return out;
}

void write_safetensors(const std::filesystem::path& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  write_file(path, encode_safetensors(tensors, metadata));
}

}  // namespace sparvar::io
