// .npy reader/writer; see npy.h. Header grammar accepted (what numpy.save writes, plus free spacing):
//   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }   padded with spaces, ending in '\n'.
#include "io/npy.h"

#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "core/error.h"

namespace sparvar::io {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;
constexpr int64_t kMaxElements = int64_t{1} << 40;

struct Descr {
  const char* text;
  DType dtype;
};
// '|' is numpy's "not applicable" byte order for one-byte types; '<' little-endian.
constexpr Descr kDescrs[] = {{"<f4", DType::F32}, {"<f2", DType::F16}, {"<i4", DType::I32}, {"<i8", DType::I64},
                             {"|u1", DType::U8},  {"|b1", DType::Bool}};

const char* descr_of(DType dtype) {
  for (const auto& d : kDescrs)
    if (d.dtype == dtype) return d.text;
  return nullptr;
}

// A tiny cursor over the header dict text.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& what) : s_(text), what_(what) {}

  void skip_space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t')) ++i_;
  }
  bool peek(char c) {
    skip_space();
    return i_ < s_.size() && s_[i_] == c;
  }
  void expect(char c) {
    if (!peek(c)) bad(fmt::format("expected '{}' at offset {}", c, i_));
    ++i_;
  }
  std::string quoted() {
    skip_space();
    if (i_ >= s_.size() || (s_[i_] != '\'' && s_[i_] != '"')) bad(fmt::format("expected a string at offset {}", i_));
    const char q = s_[i_++];
    const size_t end = s_.find(q, i_);
    if (end == std::string_view::npos) bad("unterminated string");
    std::string out(s_.substr(i_, end - i_));
    i_ = end + 1;
    return out;
  }
  std::string word() {
    skip_space();
    size_t b = i_;
    while (i_ < s_.size() && std::isalpha(static_cast<unsigned char>(s_[i_]))) ++i_;
    return std::string(s_.substr(b, i_ - b));
  }
  Shape tuple() {
    expect('(');
    Shape shape;
    while (!peek(')')) {
      skip_space();
      size_t b = i_;
      while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
      if (b == i_ || i_ - b > 15) bad(fmt::format("bad dimension in shape at offset {}", b));
      shape.push_back(std::stoll(std::string(s_.substr(b, i_ - b))));
      if (peek(',')) ++i_;
      else if (!peek(')')) bad("expected ',' or ')' in shape");
    }
    ++i_;
    return shape;
  }
  void end() {
    skip_space();
    if (i_ < s_.size() && s_[i_] == '\n') ++i_;
    skip_space();
    if (i_ != s_.size()) bad(fmt::format("unexpected text after the header dict at offset {}", i_));
  }
  [[noreturn]] void bad(const std::string& msg) const { fail("{}: bad .npy header ({}): {}", what_, msg, std::string(s_)); }

 private:
  std::string_view s_;
  const std::string& what_;
  size_t i_ = 0;
};

}  // namespace

Tensor parse_npy(std::string_view bytes, const std::string& what) {
  SPARVAR_CHECK(bytes.size() >= 10 && std::memcmp(bytes.data(), kMagic, kMagicLen) == 0,
                "{}: not a .npy file (no \\x93NUMPY magic)", what);
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len = 0, pos = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<size_t>(static_cast<unsigned char>(bytes[9])) << 8);
    pos = 10;
  } else if (major == 2 || major == 3) {
    SPARVAR_CHECK(bytes.size() >= 12, "{}: truncated .npy header", what);
    for (int k = 0; k < 4; ++k) header_len |= static_cast<size_t>(static_cast<unsigned char>(bytes[8 + k])) << (8 * k);
    pos = 12;
  } else {
    fail("{}: unsupported .npy format version {}", what, major);
  }
  SPARVAR_CHECK(header_len <= bytes.size() - pos, "{}: truncated .npy header ({} bytes announced, {} present)", what,
                header_len, bytes.size() - pos);
  HeaderParser p(bytes.substr(pos, header_len), what);
  std::map<std::string, bool> seen;
  std::string descr;
  bool fortran = false;
  Shape shape;
  p.expect('{');
  while (!p.peek('}')) {
    const std::string key = p.quoted();
    if (seen[key]) p.bad("duplicate key '" + key + "'");
    seen[key] = true;
    p.expect(':');
    if (key == "descr") {
      descr = p.quoted();
    } else if (key == "fortran_order") {
      const std::string w = p.word();
      if (w != "True" && w != "False") p.bad("fortran_order must be True or False");
      fortran = w == "True";
    } else if (key == "shape") {
      shape = p.tuple();
    } else {
      p.bad("unknown key '" + key + "'");
    }
    if (p.peek(',')) p.expect(',');
    else if (!p.peek('}')) p.bad("expected ',' or '}'");
  }
  p.expect('}');
  p.end();
  if (!seen["descr"] || !seen["fortran_order"] || !seen["shape"]) p.bad("needs descr, fortran_order and shape");
  SPARVAR_CHECK(!fortran, "{}: Fortran-order arrays are not supported (save with np.ascontiguousarray)", what);
  DType dtype{};
  bool known = false;
  for (const auto& d : kDescrs)
    if (descr == d.text || (descr.size() == 3 && descr[0] == '=' && descr.substr(1) == std::string(d.text + 1)) ||
        (descr == "<u1" && d.dtype == DType::U8) || (descr == "<b1" && d.dtype == DType::Bool)) {
      dtype = d.dtype;
      known = true;
    }
  SPARVAR_CHECK(known, "{}: unsupported .npy dtype '{}' (supported: <f4 <f2 <i4 <i8 |u1 |b1, little-endian)", what, descr);
  int64_t numel = 1;
  for (int64_t d : shape) {
    SPARVAR_CHECK(d >= 0 && (d == 0 || numel <= kMaxElements / std::max<int64_t>(d, 1)), "{}: .npy shape {} is too large",
                  what, shape_string(shape));
    numel *= d;
  }
  const size_t data_pos = pos + header_len;
  const size_t need = static_cast<size_t>(numel) * dtype_size(dtype);
  SPARVAR_CHECK(bytes.size() - data_pos == need, "{}: .npy data is {} bytes, shape {} of {} needs {}", what,
                bytes.size() - data_pos, shape_string(shape), dtype_name(dtype), need);
  Tensor t = Tensor::empty(shape, dtype);
  if (need) std::memcpy(t.data(), bytes.data() + data_pos, need);
  if (dtype == DType::Bool) {
    const auto* b = static_cast<const uint8_t*>(t.data());
    for (int64_t k = 0; k < numel; ++k) SPARVAR_CHECK(b[k] <= 1, "{}: bool array holds the byte {}", what, b[k]);
  }
  return t;
}

Tensor read_npy(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  SPARVAR_CHECK(in.good(), "cannot open {}", path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_npy(ss.str(), path.string());
}

std::string serialize_npy(const Tensor& input) {
  SPARVAR_CHECK(input.defined() && input.device() == Device::CPU, "write_npy: needs a host tensor");
  const Tensor t = input.dtype() == DType::BF16 ? input.to_dtype(DType::F32) : input;
  const char* descr = descr_of(t.dtype());
  SPARVAR_CHECK(descr != nullptr, "write_npy: dtype {} has no .npy equivalent", dtype_name(t.dtype()));
  std::string dims;  // "()", "(5,)", "(2, 3)"
  for (int i = 0; i < t.ndim(); ++i) dims += (i ? ", " : "") + std::to_string(t.shape()[static_cast<size_t>(i)]);
  if (t.ndim() == 1) dims += ",";
  std::string header = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': ({}), }}", descr, dims);
  // Pad so that the data starts at a multiple of 64 bytes, header ending in '\n' (format 1.0).
  const size_t total = ((kMagicLen + 4 + header.size() + 1 + 63) / 64) * 64;
  header.append(total - kMagicLen - 4 - header.size() - 1, ' ');
  header.push_back('\n');
  SPARVAR_CHECK(header.size() < 65536, "write_npy: header too long for shape {}", shape_string(t.shape()));
  std::string out(kMagic, kMagicLen);
  out.push_back('\x01');
  out.push_back('\x00');
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>(header.size() >> 8));
  out += header;
  out.append(static_cast<const char*>(t.data()), t.nbytes());
  return out;
}

void write_npy(const std::filesystem::path& path, const Tensor& t) {
  const std::string bytes = serialize_npy(t);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  SPARVAR_CHECK(out.good(), "cannot write {}", path.string());
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  SPARVAR_CHECK(out.good(), "error while writing {}", path.string());
}

}  // namespace sparvar::io
