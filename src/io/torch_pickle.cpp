#include "io/torch_pickle.h"

#include <map>
#include <optional>
#include <unordered_set>

#include "core/error.h"
#include "io/unpickler.h"

namespace sparvar::io {
namespace {

using K = PickleValue::Kind;
constexpr size_t kMaxDims = 16;
constexpr int kMaxDictDepth = 32;

// Names in error messages come from the file: keep them short and printable.
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 80)) out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  if (s.size() > 80) out += "...";
  return out;
}

struct StorageType {
  std::string_view name;
  std::optional<DType> dtype;
};
constexpr StorageType kStorageTypes[] = {
    {"FloatStorage", DType::F32}, {"HalfStorage", DType::F16}, {"BFloat16Storage", DType::BF16},
    {"IntStorage", DType::I32},   {"LongStorage", DType::I64}, {"ByteStorage", DType::U8},
    {"BoolStorage", DType::Bool}, {"DoubleStorage", std::nullopt}, {"CharStorage", std::nullopt},
    {"ShortStorage", std::nullopt}};

class TorchHooks : public PickleHooks {
 public:
  explicit TorchHooks(std::string_view label) : label_(label) {}

  PickleValue* global(PickleArena& arena, std::string_view module, std::string_view name) override {
    bool allowed = (module == "collections" && name == "OrderedDict") ||
                   (module == "torch._utils" &&
                    (name == "_rebuild_tensor_v2" || name == "_rebuild_tensor" || name == "_rebuild_parameter"));
    if (module == "torch")
      for (const auto& s : kStorageTypes) allowed = allowed || name == s.name;
    if (!allowed)
      fail("{}: disallowed global {}.{} (sparvar reads only tensors and plain containers)", label_,
           printable(module), printable(name));
    PickleValue* g = arena.make(K::Global);
    g->text = std::string(module) + "." + std::string(name);
    return g;
  }

  PickleValue* reduce(PickleArena& arena, PickleValue* callable, PickleValue* args) override {
    SPARVAR_CHECK(callable->kind == K::Global, "{}: REDUCE on a {}, not a callable", label_,
                  pickle_kind_name(callable->kind));
    const std::string& f = callable->text;
    const auto& a = args->items;
    if (f == "collections.OrderedDict") {
      SPARVAR_CHECK(a.empty(), "{}: OrderedDict built with arguments is not supported", label_);
      return arena.make(K::Dict);
    }
    if (f == "torch._utils._rebuild_tensor_v2" || f == "torch._utils._rebuild_tensor") {
      const bool v2 = f.ends_with("v2");
      SPARVAR_CHECK(v2 ? (a.size() == 6 || a.size() == 7) : a.size() == 4, "{}: {} called with {} arguments", label_,
                    f, a.size());
      SPARVAR_CHECK(a[0]->kind == K::Storage && a[1]->kind == K::Int && a[2]->kind == K::Tuple &&
                        a[3]->kind == K::Tuple,
                    "{}: {} arguments are not (storage, offset, size, stride, ...)", label_, f);
      PickleValue* t = arena.make(K::Tensor);
      t->tensor.storage = a[0];
      t->tensor.offset = a[1]->integer;
      t->tensor.sizes = int_tuple(a[2], "size");
      t->tensor.strides = int_tuple(a[3], "stride");
      return t;
    }
    if (f == "torch._utils._rebuild_parameter") {
      SPARVAR_CHECK(a.size() == 3 && a[0]->kind == K::Tensor, "{}: _rebuild_parameter arguments are not "
                    "(tensor, requires_grad, hooks)", label_);
      return a[0];  // a Parameter is its tensor to us
    }
    fail("{}: global {} cannot be called", label_, printable(f));
  }

  void build(PickleValue* object, PickleValue* state) override {
    // OrderedDict state (a state dict's _metadata) and tensor state carry nothing sparvar needs.
    SPARVAR_CHECK(object->kind == K::Dict || object->kind == K::Tensor, "{}: BUILD on a {} is not supported", label_,
                  pickle_kind_name(object->kind));
  }

  PickleValue* persistent_load(PickleArena& arena, PickleValue* pid) override {
    const auto& p = pid->items;
    SPARVAR_CHECK(pid->kind == K::Tuple && p.size() == 5 && p[0]->kind == K::String && p[0]->text == "storage" &&
                      p[1]->kind == K::Global && p[2]->kind == K::String && p[3]->kind == K::String &&
                      p[4]->kind == K::Int,
                  "{}: persistent id is not ('storage', type, key, location, numel)", label_);
    const std::string& type = p[1]->text;
    std::optional<DType> dtype;
    bool known = false;
    for (const auto& s : kStorageTypes)
      if (type == "torch." + std::string(s.name)) known = true, dtype = s.dtype;
    SPARVAR_CHECK(known, "{}: persistent id names {}, not a storage type", label_, printable(type));
    SPARVAR_CHECK(dtype.has_value(), "{}: tensors of {} are not supported (f32, f16, bf16, i32, i64, u8, bool)", label_,
                  type);
    const std::string& key = p[2]->text;
    SPARVAR_CHECK(!key.empty() && key.size() <= 64 && key != "." && key != ".." &&
                      key.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") ==
                          std::string::npos,
                  "{}: storage key '{}' is not a plain name", label_, printable(key));
    const int64_t numel = p[4]->integer;
    SPARVAR_CHECK(numel >= 0 && numel <= (int64_t{1} << 60) / static_cast<int64_t>(dtype_size(*dtype)),
                  "{}: storage '{}' has an invalid element count {}", label_, key, numel);
    PickleValue* s = arena.make(K::Storage);
    s->storage = StorageRef{key, *dtype, numel};
    return s;
  }

 private:
  std::vector<int64_t> int_tuple(const PickleValue* t, std::string_view what) const {
    SPARVAR_CHECK(t->items.size() <= kMaxDims, "{}: tensor {} has {} dimensions (at most {})", label_, what,
                  t->items.size(), kMaxDims);
    std::vector<int64_t> out;
    for (const PickleValue* v : t->items) {
      SPARVAR_CHECK(v->kind == K::Int, "{}: tensor {} holds a {}, not an int", label_, what, pickle_kind_name(v->kind));
      out.push_back(v->integer);
    }
    return out;
  }
  std::string_view label_;
};

// Checks a view against its storage and decides whether it is row-major contiguous.
void check_view(TorchTensorEntry& e, std::string_view label) {
  SPARVAR_CHECK(e.sizes.size() == e.strides.size(), "{}: tensor '{}' has {} sizes but {} strides", label, e.name,
                e.sizes.size(), e.strides.size());
  SPARVAR_CHECK(e.offset >= 0, "{}: tensor '{}' has a negative storage offset", label, e.name);
  unsigned __int128 numel = 1, last = static_cast<unsigned __int128>(e.offset);
  for (size_t i = 0; i < e.sizes.size(); ++i) {
    SPARVAR_CHECK(e.sizes[i] >= 0 && e.strides[i] >= 0, "{}: tensor '{}' has a negative size or stride", label, e.name);
    numel *= static_cast<uint64_t>(e.sizes[i]);
    SPARVAR_CHECK(numel <= (uint64_t{1} << 60), "{}: tensor '{}' shape {} is too large", label, e.name,
                  shape_string(e.sizes));
    if (e.sizes[i] > 0) last += static_cast<unsigned __int128>(e.sizes[i] - 1) * static_cast<uint64_t>(e.strides[i]);
  }
  if (numel > 0)
    SPARVAR_CHECK(last < static_cast<uint64_t>(e.storage.numel),
                  "{}: tensor '{}' (shape {}, offset {}, stride [{}]) reaches past its storage of {} elements", label,
                  e.name, shape_string(e.sizes), e.offset, fmt::join(e.strides, ","), e.storage.numel);
  int64_t expected = 1;
  for (size_t i = e.sizes.size(); i-- > 0;) {
    if (e.sizes[i] != 1 && e.strides[i] != expected) e.contiguous = false;
    expected *= e.sizes[i];
  }
  if (numel == 0) e.contiguous = true;
}

class Flattener {
 public:
  Flattener(std::string_view label, size_t budget) : label_(label), budget_(budget) {}

  void walk(const PickleValue* v, const std::string& name, int depth) {
    SPARVAR_CHECK(budget_-- > 0, "{}: pickle references too many values (shared or cyclic containers?)", label_);
    if (v->kind == K::Tensor) {
      SPARVAR_CHECK(names_.insert(name).second, "{}: tensor name '{}' occurs twice", label_, printable(name));
      TorchTensorEntry e{name, v->tensor.storage->storage, v->tensor.offset, v->tensor.sizes, v->tensor.strides, true};
      check_view(e, label_);
      auto [it, inserted] = storages_.emplace(e.storage.key, e.storage);
      SPARVAR_CHECK(it->second.dtype == e.storage.dtype && it->second.numel == e.storage.numel,
                    "{}: storage '{}' is declared with two different types or sizes", label_, e.storage.key);
      out.tensors.push_back(std::move(e));
      return;
    }
    if (v->kind != K::Dict) {
      out.other_entries.push_back(fmt::format("{}: {}", printable(name), pickle_kind_name(v->kind)));
      return;
    }
    SPARVAR_CHECK(depth < kMaxDictDepth, "{}: dicts nested deeper than {} levels", label_, kMaxDictDepth);
    for (const auto& [key, value] : v->entries) {
      std::string k;
      if (key->kind == K::String) k = key->text;
      else if (key->kind == K::Int) k = std::to_string(key->integer);
      else fail("{}: dict key of type {} under '{}' (expected str)", label_, pickle_kind_name(key->kind), printable(name));
      walk(value, name.empty() ? k : name + "." + k, depth + 1);
    }
  }

  TorchPickleContents out;

 private:
  std::string_view label_;
  size_t budget_;
  std::unordered_set<std::string> names_;
  std::map<std::string, StorageRef> storages_;
};

}  // namespace

TorchPickleContents parse_torch_pickle(std::span<const uint8_t> data_pkl, std::string_view label) {
  try {
    PickleArena arena;
    TorchHooks hooks(label);
    const PickleValue* root = unpickle(data_pkl, arena, hooks, label);
    SPARVAR_CHECK(root->kind == K::Dict, "{}: the checkpoint holds a {}, not a dict of tensors", label,
                  pickle_kind_name(root->kind));
    // Each reference costs at least one input byte, so visits beyond values + bytes mean a sharing bomb.
    Flattener flattener(label, arena.size() + data_pkl.size() + 1);
    flattener.walk(root, "", 0);
    return std::move(flattener.out);
  } catch (const std::bad_alloc&) {
    fail("{}: out of memory while reading the pickle", label);
  }
}

}  // namespace sparvar::io
