#include "io/unpickler.h"

#include <bit>
#include <cstring>
#include <unordered_map>

#include "core/error.h"

namespace sparvar::io {

std::string_view pickle_kind_name(PickleValue::Kind kind) {
  using K = PickleValue::Kind;
  switch (kind) {
    case K::None: return "None";
    case K::Bool: return "bool";
    case K::Int: return "int";
    case K::Float: return "float";
    case K::String: return "str";
    case K::Bytes: return "bytes";
    case K::Tuple: return "tuple";
    case K::List: return "list";
    case K::Dict: return "dict";
    case K::Global: return "global";
    case K::Storage: return "storage";
    case K::Tensor: return "tensor";
  }
  return "?";
}

namespace {

using K = PickleValue::Kind;

class Machine {
 public:
  Machine(std::span<const uint8_t> bytes, PickleArena& arena, PickleHooks& hooks, std::string_view label,
          const UnpickleLimits& limits)
      : in_(bytes), arena_(arena), hooks_(hooks), label_(label), limits_(limits) {}

  PickleValue* run() {
    while (true) {
      const size_t opcode_at = pos_;
      const uint8_t op = u8();
      if (op == '.') {  // STOP
        SPARVAR_CHECK(stack_.size() == 1 && marks_.empty(), "{}: pickle ends with {} values on the stack", label_,
                      stack_.size());
        return stack_.back();
      }
      step(op, opcode_at);
    }
  }

 private:
  [[noreturn]] void bad(std::string_view what) const { fail("{}: malformed pickle at byte {}: {}", label_, pos_, what); }

  void need(uint64_t n) const {
    if (n > in_.size() - pos_) fail("{}: pickle truncated at byte {} (needs {} more bytes)", label_, pos_, n);
  }
  uint8_t u8() {
    need(1);
    return in_[pos_++];
  }
  uint64_t le(int n) {
    need(static_cast<uint64_t>(n));
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | in_[pos_ + static_cast<size_t>(i)];
    pos_ += static_cast<size_t>(n);
    return v;
  }
  std::string bytes(uint64_t n) {
    need(n);
    std::string s(reinterpret_cast<const char*>(in_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  std::string line() {
    const size_t start = pos_;
    while (true) {
      if (u8() == '\n') break;
      if (pos_ - start > 256) bad("GLOBAL name longer than 256 bytes");
    }
    return std::string(reinterpret_cast<const char*>(in_.data() + start), pos_ - start - 1);
  }

  PickleValue* make(K kind) {
    if (arena_.size() >= limits_.max_values) fail("{}: pickle builds more than {} values", label_, limits_.max_values);
    return arena_.make(kind);
  }
  void push(PickleValue* v) {
    if (stack_.size() >= limits_.max_stack) fail("{}: pickle stack deeper than {}", label_, limits_.max_stack);
    stack_.push_back(v);
  }
  PickleValue* pop() {
    if (stack_.size() <= floor()) bad("pop from an empty stack");
    PickleValue* v = stack_.back();
    stack_.pop_back();
    return v;
  }
  PickleValue* top() {
    if (stack_.size() <= floor()) bad("empty stack");
    return stack_.back();
  }
  // Values above the innermost MARK may be popped; the mark protects what lies below.
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  // Pops everything above the innermost mark, and the mark.
  std::vector<PickleValue*> pop_to_mark() {
    if (marks_.empty()) bad("no MARK");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<PickleValue*> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  PickleValue* expect(PickleValue* v, K kind, std::string_view op) {
    if (v->kind != kind) bad(fmt::format("{} expects a {}, got {}", op, pickle_kind_name(kind), pickle_kind_name(v->kind)));
    return v;
  }
  void memo_put(uint64_t index) {
    if (memo_.size() >= limits_.max_memo && !memo_.count(index)) fail("{}: pickle memo exceeds {}", label_, limits_.max_memo);
    memo_[index] = top();
  }
  PickleValue* memo_get(uint64_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end()) bad(fmt::format("memo key {} was never stored", index));
    return it->second;
  }
  PickleValue* integer(int64_t v) {
    PickleValue* p = make(K::Int);
    p->integer = v;
    return p;
  }
  PickleValue* text(K kind, uint64_t length) {
    PickleValue* p = make(kind);
    p->text = bytes(length);
    return p;
  }
  // Little-endian two's complement of n bytes; sparvar needs no integer wider than 64 bits.
  PickleValue* long_integer(uint64_t n) {
    if (n > 8) bad(fmt::format("integer of {} bytes is too large", n));
    need(n);
    uint64_t v = 0;
    for (uint64_t i = n; i-- > 0;) v = (v << 8) | in_[pos_ + i];
    if (n > 0 && n < 8 && (in_[pos_ + n - 1] & 0x80)) v |= ~uint64_t{0} << (8 * n);  // sign-extend
    pos_ += n;
    return integer(static_cast<int64_t>(v));
  }
  void set_items(PickleValue* dict, const std::vector<PickleValue*>& kv) {
    expect(dict, K::Dict, "SETITEMS");
    if (kv.size() % 2 != 0) bad("SETITEMS with an odd number of values");
    for (size_t i = 0; i < kv.size(); i += 2) dict->entries.emplace_back(kv[i], kv[i + 1]);
  }
  void append(PickleValue* list, const std::vector<PickleValue*>& items) {
    expect(list, K::List, "APPEND");
    list->items.insert(list->items.end(), items.begin(), items.end());
  }
  PickleValue* tuple(std::vector<PickleValue*> items) {
    PickleValue* t = make(K::Tuple);
    t->items = std::move(items);
    return t;
  }

  void step(uint8_t op, size_t opcode_at) {
    switch (op) {
      case 0x80: {  // PROTO
        const uint8_t proto = u8();
        if (proto < 2 || proto > 5) bad(fmt::format("pickle protocol {} is not supported (2..5)", proto));
        return;
      }
      case 0x95: le(8); return;  // FRAME: framing is only a read-ahead hint
      case '(':                  // MARK
        if (marks_.size() >= limits_.max_marks) fail("{}: pickle nests more than {} MARKs", label_, limits_.max_marks);
        marks_.push_back(stack_.size());
        return;
      case '0': pop(); return;            // POP
      case '1': pop_to_mark(); return;    // POP_MARK
      case '2': push(top()); return;      // DUP
      case 'N': push(make(K::None)); return;
      case 0x88: case 0x89: {  // NEWTRUE, NEWFALSE
        PickleValue* b = make(K::Bool);
        b->integer = op == 0x88;
        push(b);
        return;
      }
      case 'J': push(integer(static_cast<int32_t>(static_cast<uint32_t>(le(4))))); return;  // BININT
      case 'K': push(integer(static_cast<int64_t>(le(1)))); return;                          // BININT1
      case 'M': push(integer(static_cast<int64_t>(le(2)))); return;                          // BININT2
      case 0x8a: push(long_integer(le(1))); return;                                          // LONG1
      case 0x8b: push(long_integer(le(4))); return;                                          // LONG4
      case 'G': {  // BINFLOAT, big-endian
        need(8);
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | in_[pos_++];
        PickleValue* f = make(K::Float);
        f->real = std::bit_cast<double>(bits);
        push(f);
        return;
      }
      case 0x8c: push(text(K::String, le(1))); return;  // SHORT_BINUNICODE
      case 'X': push(text(K::String, le(4))); return;   // BINUNICODE
      case 0x8d: push(text(K::String, le(8))); return;  // BINUNICODE8
      case 'C': push(text(K::Bytes, le(1))); return;    // SHORT_BINBYTES
      case 'B': push(text(K::Bytes, le(4))); return;    // BINBYTES
      case 0x8e: push(text(K::Bytes, le(8))); return;   // BINBYTES8
      case ')': push(tuple({})); return;                // EMPTY_TUPLE
      case 0x85: { PickleValue* a = pop(); push(tuple({a})); return; }  // TUPLE1
      case 0x86: {                                                       // TUPLE2
        PickleValue* b = pop();
        PickleValue* a = pop();
        push(tuple({a, b}));
        return;
      }
      case 0x87: {  // TUPLE3
        PickleValue* c = pop();
        PickleValue* b = pop();
        PickleValue* a = pop();
        push(tuple({a, b, c}));
        return;
      }
      case 't': push(tuple(pop_to_mark())); return;  // TUPLE
      case ']': push(make(K::List)); return;         // EMPTY_LIST
      case 'l': {                                    // LIST
        PickleValue* l = make(K::List);
        l->items = pop_to_mark();
        push(l);
        return;
      }
      case '}': push(make(K::Dict)); return;  // EMPTY_DICT
      case 'd': {                             // DICT
        auto kv = pop_to_mark();
        PickleValue* d = make(K::Dict);
        set_items(d, kv);
        push(d);
        return;
      }
      case 's': {  // SETITEM
        PickleValue* value = pop();
        PickleValue* key = pop();
        set_items(top(), {key, value});
        return;
      }
      case 'u': {  // SETITEMS
        auto kv = pop_to_mark();
        set_items(top(), kv);
        return;
      }
      case 'a': {  // APPEND
        PickleValue* value = pop();
        append(top(), {value});
        return;
      }
      case 'e': {  // APPENDS
        auto items = pop_to_mark();
        append(top(), items);
        return;
      }
      case 'q': memo_put(le(1)); return;             // BINPUT
      case 'r': memo_put(le(4)); return;             // LONG_BINPUT
      case 0x94: memo_put(memo_.size()); return;     // MEMOIZE
      case 'h': push(memo_get(le(1))); return;       // BINGET
      case 'j': push(memo_get(le(4))); return;       // LONG_BINGET
      case 'c': {                                    // GLOBAL
        const std::string module = line();
        const std::string name = line();
        push(hooks_.global(arena_, module, name));
        return;
      }
      case 0x93: {  // STACK_GLOBAL
        PickleValue* name = expect(pop(), K::String, "STACK_GLOBAL");
        PickleValue* module = expect(pop(), K::String, "STACK_GLOBAL");
        push(hooks_.global(arena_, module->text, name->text));
        return;
      }
      case 'R': {  // REDUCE
        PickleValue* args = expect(pop(), K::Tuple, "REDUCE");
        PickleValue* callable = pop();
        push(hooks_.reduce(arena_, callable, args));
        return;
      }
      case 'b': {  // BUILD
        PickleValue* state = pop();
        hooks_.build(top(), state);
        return;
      }
      case 'Q': push(hooks_.persistent_load(arena_, pop())); return;  // BINPERSID
      default:
        fail("{}: pickle opcode 0x{:02x} at byte {} is not supported by sparvar's restricted reader", label_, op,
             opcode_at);
    }
  }

  std::span<const uint8_t> in_;
  size_t pos_ = 0;
  PickleArena& arena_;
  PickleHooks& hooks_;
  std::string_view label_;
  const UnpickleLimits& limits_;
  std::vector<PickleValue*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, PickleValue*> memo_;
};

}  // namespace

PickleValue* unpickle(std::span<const uint8_t> bytes, PickleArena& arena, PickleHooks& hooks, std::string_view label,
                      const UnpickleLimits& limits) {
  try {
    return Machine(bytes, arena, hooks, label, limits).run();
  } catch (const std::bad_alloc&) {
    fail("{}: out of memory while reading the pickle", label);
  }
}

}  // namespace sparvar::io
