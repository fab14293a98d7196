#include "modelgen/torch_checkpoint.h"

#include <zip.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <unordered_map>

#include "core/error.h"

namespace lipsync::modelgen {
namespace {

// What a legacy (pre-1.6) checkpoint starts with: pickle protocol 2, then the magic number
// 0x1950a86a20f9469cfc6c as a 10-byte LONG1 (torch/serialization.py, MAGIC_NUMBER).
constexpr std::array<unsigned char, 14> kLegacyHead{0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c,
                                                    0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
constexpr int kMaxPickleProtocol = 5;
constexpr std::size_t kMaxStackDepth = 1 << 20;  // far above any state dict's needs
// Far above any SyncTalk_2D tensor (the largest holds 2.4 M values, its file 49 MB), far below
// what would exhaust memory: a file claiming more is refused, not allocated.
constexpr std::int64_t kMaxTensorElements = std::int64_t{1} << 31;
constexpr std::uint64_t kMaxEntryBytes = std::uint64_t{1} << 33;

// A storage's element type: how one element is read (little-endian, at element index i).
struct StorageType {
  const char* name;   // torch.<name>
  const char* dtype;  // what TorchTensor::dtype says
  std::size_t bytes;
  double (*read)(const char* data, std::size_t i);
};

template <class T>
double read_as_double(const char* data, std::size_t i) {
  T v;
  std::memcpy(&v, data + i * sizeof(T), sizeof(T));
  return static_cast<double>(v);
}

double half_to_double(std::uint16_t h) {
  const int sign = (h >> 15) & 1, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
  double v;
  if (exponent == 0) {
    v = std::ldexp(mantissa, -24);
  } else if (exponent == 31) {
    v = mantissa == 0 ? INFINITY : NAN;
  } else {
    v = std::ldexp(mantissa + 1024, exponent - 25);
  }
  return sign ? -v : v;
}

double read_half(const char* data, std::size_t i) {
  std::uint16_t h;
  std::memcpy(&h, data + i * 2, 2);
  return half_to_double(h);
}

constexpr std::array<StorageType, 5> kStorageTypes{
    {{"FloatStorage", "float32", 4, read_as_double<float>},
     {"DoubleStorage", "float64", 8, read_as_double<double>},
     {"LongStorage", "int64", 8, read_as_double<std::int64_t>},
     {"IntStorage", "int32", 4, read_as_double<std::int32_t>},
     {"HalfStorage", "float16", 2, read_half}}};

// A value of the pickle machine. Only what state dicts hold.
struct PyObj;
using Obj = std::shared_ptr<PyObj>;
struct PyObj {
  enum class Kind {
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kTuple,
    kList,
    kDict,
    kGlobal,
    kOpaque,
    kStorage,
    kTensor
  };
  Kind kind = Kind::kNone;
  std::int64_t i = 0;                 // kInt, kBool; kStorage: element count
  double f = 0;                       // kFloat
  std::string s;                      // kString; kGlobal/kOpaque: "module.name"; kStorage: dtype
  std::string key;                    // kStorage: the storage file's name
  const StorageType* type = nullptr;  // kStorage
  std::vector<Obj> items;             // kTuple, kList
  std::vector<std::pair<Obj, Obj>> dict;    // kDict, in insertion order
  Obj storage;                              // kTensor
  std::int64_t offset = 0;                  // kTensor: storage offset in elements
  std::vector<std::int64_t> shape, stride;  // kTensor

  PyObj() = default;
  PyObj(const PyObj&) = delete;
  PyObj& operator=(const PyObj&) = delete;
  // Iterative, so a hostile pickle nesting a million tuples cannot overflow the stack when its
  // values are freed: the children only this object holds are unlinked before they die.
  ~PyObj() {
    std::vector<Obj> pending;
    auto take_children = [&pending](PyObj& o) {
      for (Obj& c : o.items) pending.push_back(std::move(c));
      for (auto& [k, v] : o.dict) {
        pending.push_back(std::move(k));
        pending.push_back(std::move(v));
      }
      if (o.storage) pending.push_back(std::move(o.storage));
      o.items.clear();
      o.dict.clear();
    };
    take_children(*this);
    while (!pending.empty()) {
      Obj o = std::move(pending.back());
      pending.pop_back();
      if (o && o.use_count() == 1) take_children(*o);
    }
  }
};

// Every value made while a checkpoint is read, so that what a hostile pickle ties into a cycle
// (a list appended to itself, a dict holding itself: shared_ptr cycles that would never be
// freed) is unlinked once the reading is done. One per thread, set by a CycleBreaker.
thread_local std::vector<std::weak_ptr<PyObj>>* t_made = nullptr;

// While alive, values made on this thread are recorded; when it dies, every one still alive
// (only a cycle keeps one alive by then) loses its children.
class CycleBreaker {
 public:
  CycleBreaker() : previous_(t_made) { t_made = &made_; }
  ~CycleBreaker() {
    t_made = previous_;
    std::vector<Obj> unlinked;  // freed after the loop, children and all
    for (auto& weak : made_) {
      if (Obj o = weak.lock()) {
        for (Obj& c : o->items) unlinked.push_back(std::move(c));
        for (auto& [k, v] : o->dict) {
          unlinked.push_back(k);
          unlinked.push_back(v);
        }
        if (o->storage) unlinked.push_back(std::move(o->storage));
        o->items.clear();
        o->dict.clear();
        unlinked.push_back(std::move(o));
      }
    }
  }
  CycleBreaker(const CycleBreaker&) = delete;
  CycleBreaker& operator=(const CycleBreaker&) = delete;

 private:
  std::vector<std::weak_ptr<PyObj>>* previous_;
  std::vector<std::weak_ptr<PyObj>> made_;
};

Obj make(PyObj::Kind kind) {
  auto o = std::make_shared<PyObj>();
  o->kind = kind;
  if (t_made != nullptr) t_made->push_back(o);
  return o;
}

const char* kind_name(PyObj::Kind k) {
  switch (k) {
    case PyObj::Kind::kNone:
      return "None";
    case PyObj::Kind::kBool:
      return "a bool";
    case PyObj::Kind::kInt:
      return "an int";
    case PyObj::Kind::kFloat:
      return "a float";
    case PyObj::Kind::kString:
      return "a string";
    case PyObj::Kind::kTuple:
      return "a tuple";
    case PyObj::Kind::kList:
      return "a list";
    case PyObj::Kind::kDict:
      return "a dict";
    case PyObj::Kind::kGlobal:
      return "a class";
    case PyObj::Kind::kOpaque:
      return "an object";
    case PyObj::Kind::kStorage:
      return "a storage";
    case PyObj::Kind::kTensor:
      return "a tensor";
  }
  return "?";
}

const StorageType* storage_type(const std::string& global) {
  for (const auto& t : kStorageTypes) {
    if (global == std::string("torch.") + t.name) return &t;
  }
  return nullptr;
}

// The pickle virtual machine for state dicts (pickle protocols 2 to 5).
class Unpickler {
 public:
  Unpickler(std::string_view data, std::string where) : data_(data), where_(std::move(where)) {}

  Obj load() {
    while (true) {
      if (pos_ >= data_.size()) fail("ends before its STOP opcode (truncated)");
      const std::size_t at = pos_;
      const auto op = static_cast<unsigned char>(data_[pos_++]);
      switch (op) {
        case 0x80: {  // PROTO
          const int proto = u8();
          if (proto > kMaxPickleProtocol) fail("pickle protocol " + std::to_string(proto));
          break;
        }
        case 0x95:
          take(8);
          break;     // FRAME: a length hint
        case '.': {  // STOP
          if (stack_.size() != 1) fail("STOP with " + std::to_string(stack_.size()) + " values");
          return stack_.back();
        }
        case '(':
          marks_.push_back(stack_.size());
          break;
        case 'N':
          push(make(PyObj::Kind::kNone));
          break;
        case 0x88:
        case 0x89: {
          Obj b = make(PyObj::Kind::kBool);
          b->i = op == 0x88;
          push(b);
          break;
        }
        case 'J':
          push_int(static_cast<std::int32_t>(le(4)));
          break;
        case 'K':
          push_int(static_cast<std::int64_t>(le(1)));
          break;
        case 'M':
          push_int(static_cast<std::int64_t>(le(2)));
          break;
        case 0x8a:
          push_long(u8());
          break;  // LONG1
        case 0x8b:
          push_long(static_cast<std::size_t>(le(4)));
          break;     // LONG4
        case 'G': {  // BINFLOAT, big-endian
          std::uint64_t bits = 0;
          for (char c : take(8)) bits = (bits << 8) | static_cast<unsigned char>(c);
          Obj f = make(PyObj::Kind::kFloat);
          f->f = std::bit_cast<double>(bits);
          push(f);
          break;
        }
        case 'X':
        case 'T':
        case 'B':
          push_string(take(static_cast<std::size_t>(le(4))));
          break;
        case 0x8c:
        case 'U':
        case 'C':
          push_string(take(u8()));
          break;
        case 0x8d:
        case 0x8e:
          push_string(take(static_cast<std::size_t>(le(8))));
          break;
        case ')':
          push(make(PyObj::Kind::kTuple));
          break;
        case 't': {
          Obj t = make(PyObj::Kind::kTuple);
          t->items = pop_mark();
          push(t);
          break;
        }
        case 0x85:
        case 0x86:
        case 0x87: {  // TUPLE1..3
          const std::size_t n = op - 0x84u;
          if (stack_.size() < n) fail("tuple of " + std::to_string(n) + " on a short stack");
          Obj t = make(PyObj::Kind::kTuple);
          t->items.assign(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
          stack_.resize(stack_.size() - n);
          push(t);
          break;
        }
        case ']':
          push(make(PyObj::Kind::kList));
          break;
        case 'l': {
          Obj l = make(PyObj::Kind::kList);
          l->items = pop_mark();
          push(l);
          break;
        }
        case 'a': {
          Obj v = pop();
          expect(top(), PyObj::Kind::kList, "APPEND")->items.push_back(v);
          break;
        }
        case 'e': {
          std::vector<Obj> vs = pop_mark();
          Obj l = expect(top(), PyObj::Kind::kList, "APPENDS");
          l->items.insert(l->items.end(), vs.begin(), vs.end());
          break;
        }
        case '}':
          push(make(PyObj::Kind::kDict));
          break;
        case 'd': {
          Obj d = make(PyObj::Kind::kDict);
          set_items(d, pop_mark());
          push(d);
          break;
        }
        case 's': {
          Obj v = pop();
          Obj k = pop();
          set_items(expect(top(), PyObj::Kind::kDict, "SETITEM"), {k, v});
          break;
        }
        case 'u': {
          std::vector<Obj> kv = pop_mark();
          set_items(expect(top(), PyObj::Kind::kDict, "SETITEMS"), kv);
          break;
        }
        case 'c': {  // GLOBAL "module\nname\n"
          const std::string module = line();
          push_global(module + "." + line());
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          const Obj name = expect(pop(), PyObj::Kind::kString, "STACK_GLOBAL");
          const Obj module = expect(pop(), PyObj::Kind::kString, "STACK_GLOBAL");
          push_global(module->s + "." + name->s);
          break;
        }
        case 'R':
        case 0x81: {  // REDUCE, NEWOBJ
          Obj args = expect(pop(), PyObj::Kind::kTuple, "REDUCE");
          Obj callable = pop();
          push(call(callable, args->items));
          break;
        }
        case 'b':
          pop();
          break;  // BUILD: only sets state_dict's _metadata; not needed
        case 'Q':
          push(persistent(pop()));
          break;  // BINPERSID
        case 'q':
          memo_[static_cast<std::uint32_t>(le(1))] = top();
          break;
        case 'r':
          memo_[static_cast<std::uint32_t>(le(4))] = top();
          break;
        case 0x94:
          memo_[static_cast<std::uint32_t>(memo_.size())] = top();
          break;
        case 'h':
          push(memo(static_cast<std::uint32_t>(le(1))));
          break;
        case 'j':
          push(memo(static_cast<std::uint32_t>(le(4))));
          break;
        case '0':
          pop();
          break;
        case '1':
          pop_mark();
          break;
        case '2':
          push(top());
          break;
        default: {
          std::ostringstream s;
          s << "unsupported pickle opcode 0x" << std::hex << static_cast<int>(op) << std::dec
            << " at byte " << at << " (a state dict saved with torch.save uses none)";
          fail(s.str());
        }
      }
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error::invalid_input(where_ + ": " + what);
  }
  std::string_view take(std::size_t n) {
    if (n > data_.size() - pos_) fail("ends inside an opcode's argument (truncated)");
    const std::string_view v = data_.substr(pos_, n);
    pos_ += n;
    return v;
  }
  std::size_t u8() { return static_cast<unsigned char>(take(1)[0]); }
  std::uint64_t le(std::size_t n) {
    std::uint64_t v = 0;
    const std::string_view b = take(n);
    for (std::size_t i = n; i-- > 0;) v = (v << 8) | static_cast<unsigned char>(b[i]);
    return v;
  }
  std::string line() {
    const std::size_t end = data_.find('\n', pos_);
    if (end == std::string_view::npos) fail("GLOBAL without its newline (truncated)");
    std::string s(data_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return s;
  }
  void push(Obj o) {
    if (stack_.size() >= kMaxStackDepth) fail("stack deeper than any state dict needs");
    stack_.push_back(std::move(o));
  }
  Obj pop() {
    if (stack_.empty()) fail("pops an empty stack");
    Obj o = std::move(stack_.back());
    stack_.pop_back();
    return o;
  }
  const Obj& top() const {
    if (stack_.empty()) fail("reads an empty stack");
    return stack_.back();
  }
  std::vector<Obj> pop_mark() {
    if (marks_.empty()) fail("has no MARK where one is needed");
    const std::size_t m = marks_.back();
    marks_.pop_back();
    if (m > stack_.size()) fail("MARK above the stack");
    std::vector<Obj> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  Obj expect(Obj o, PyObj::Kind kind, const char* op) const {
    if (o->kind != kind) {
      fail(std::string(op) + " expected " + kind_name(kind) + ", found " + kind_name(o->kind));
    }
    return o;
  }
  Obj memo(std::uint32_t index) const {
    const auto it = memo_.find(index);
    if (it == memo_.end()) fail("reads memo entry " + std::to_string(index) + " never stored");
    return it->second;
  }
  void push_int(std::int64_t v) {
    Obj o = make(PyObj::Kind::kInt);
    o->i = v;
    push(o);
  }
  void push_long(std::size_t n) {
    if (n > 8) fail("an integer of " + std::to_string(n) + " bytes");
    const std::uint64_t raw = n == 0 ? 0 : le(n);
    std::int64_t v = static_cast<std::int64_t>(raw);
    if (n > 0 && n < 8 && (raw >> (8 * n - 1)) != 0) v -= std::int64_t{1} << (8 * n);  // sign
    push_int(v);
  }
  void push_string(std::string_view s) {
    Obj o = make(PyObj::Kind::kString);
    o->s = std::string(s);
    push(o);
  }
  void push_global(std::string name) {
    Obj g = make(PyObj::Kind::kGlobal);
    g->s = std::move(name);
    push(g);
  }
  void set_items(const Obj& d, const std::vector<Obj>& kv) {
    if (kv.size() % 2 != 0) fail("dict items with an odd count");
    for (std::size_t i = 0; i < kv.size(); i += 2) d->dict.emplace_back(kv[i], kv[i + 1]);
  }
  static std::vector<std::int64_t> ints(const Obj& tuple, const char* what, const Unpickler& u) {
    if (tuple->kind != PyObj::Kind::kTuple) u.fail(std::string(what) + " is not a tuple");
    std::vector<std::int64_t> v;
    for (const Obj& x : tuple->items) {
      if (x->kind != PyObj::Kind::kInt) u.fail(std::string(what) + " holds a non-integer");
      v.push_back(x->i);
    }
    return v;
  }
  // Calls one of the few functions a state dict needs; anything else becomes an opaque value
  // (never run), which is an error only if the state dict itself holds it.
  Obj call(const Obj& callable, const std::vector<Obj>& args) const {
    const std::string name = callable->kind == PyObj::Kind::kGlobal ? callable->s : "";
    if (name == "collections.OrderedDict" && args.empty()) return make(PyObj::Kind::kDict);
    if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") {
      if (args.size() < 4 || args[0]->kind != PyObj::Kind::kStorage ||
          args[1]->kind != PyObj::Kind::kInt) {
        fail(name + " with unexpected arguments");
      }
      Obj t = make(PyObj::Kind::kTensor);
      t->storage = args[0];
      t->offset = args[1]->i;
      t->shape = ints(args[2], "a tensor's size", *this);
      t->stride = ints(args[3], "a tensor's stride", *this);
      if (t->shape.size() != t->stride.size())
        fail("a tensor whose size and stride differ in rank");
      return t;
    }
    if ((name == "torch._utils._rebuild_parameter" ||
         name == "torch._utils._rebuild_parameter_with_state") &&
        !args.empty()) {
      return args[0];  // a Parameter is its tensor
    }
    Obj o = make(PyObj::Kind::kOpaque);
    o->s = name.empty() ? std::string("a call of ") + kind_name(callable->kind) : name + "(...)";
    return o;
  }
  // ('storage', torch.FloatStorage, '<key>', 'cpu', numel): the tensor data file.
  Obj persistent(const Obj& pid) const {
    if (pid->kind != PyObj::Kind::kTuple || pid->items.size() < 5 ||
        pid->items[0]->kind != PyObj::Kind::kString || pid->items[0]->s != "storage" ||
        pid->items[1]->kind != PyObj::Kind::kGlobal ||
        pid->items[2]->kind != PyObj::Kind::kString || pid->items[4]->kind != PyObj::Kind::kInt) {
      fail("a persistent id that is not ('storage', type, key, location, numel)");
    }
    const StorageType* type = storage_type(pid->items[1]->s);
    if (type == nullptr) {
      fail("tensor storage " + pid->items[1]->s +
           " is not supported (float32, float64, float16, int64, int32 are)");
    }
    Obj s = make(PyObj::Kind::kStorage);
    s->s = type->dtype;
    s->type = type;
    s->key = pid->items[2]->s;
    s->i = pid->items[4]->i;
    return s;
  }

  std::string_view data_;
  std::string where_;
  std::size_t pos_ = 0;
  std::vector<Obj> stack_;
  std::vector<std::size_t> marks_;
  std::unordered_map<std::uint32_t, Obj> memo_;
};

// An open zip archive (libzip), closed on destruction.
class ZipReader {
 public:
  explicit ZipReader(const std::filesystem::path& path) : where_(path.string()) {
    int code = 0;
    zip_ = zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &code);
    if (zip_ == nullptr) {
      zip_error_t e;
      zip_error_init_with_code(&e, code);
      const std::string message = zip_error_strerror(&e);
      zip_error_fini(&e);
      throw Error::invalid_input(where_ + ": not a readable zip archive (" + message +
                                 "); a truncated or damaged checkpoint?");
    }
  }
  ~ZipReader() { zip_discard(zip_); }
  ZipReader(const ZipReader&) = delete;
  ZipReader& operator=(const ZipReader&) = delete;

  std::vector<std::string> names() const {
    std::vector<std::string> out;
    const zip_int64_t n = zip_get_num_entries(zip_, 0);
    for (zip_int64_t i = 0; i < n; ++i) {
      const char* name = zip_get_name(zip_, static_cast<zip_uint64_t>(i), 0);
      if (name != nullptr) out.emplace_back(name);
    }
    return out;
  }
  bool has(const std::string& name) const { return zip_name_locate(zip_, name.c_str(), 0) >= 0; }

  // The whole entry; throws naming it when it is missing or cannot be read in full.
  std::string read(const std::string& name) const {
    const zip_int64_t index = zip_name_locate(zip_, name.c_str(), 0);
    if (index < 0) throw Error::invalid_input(where_ + ": entry " + name + " is missing");
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(zip_, static_cast<zip_uint64_t>(index), 0, &st) != 0 ||
        (st.valid & ZIP_STAT_SIZE) == 0) {
      throw Error::invalid_input(where_ + ": entry " + name + ": cannot read its size");
    }
    if (st.size > kMaxEntryBytes) {
      throw Error::invalid_input(where_ + ": entry " + name + " claims " + std::to_string(st.size) +
                                 " bytes: not a model checkpoint");
    }
    std::unique_ptr<zip_file_t, int (*)(zip_file_t*)> file(
        zip_fopen_index(zip_, static_cast<zip_uint64_t>(index), 0), zip_fclose);
    if (!file) {
      throw Error::invalid_input(where_ + ": entry " + name + ": " + zip_strerror(zip_));
    }
    std::string out(static_cast<std::size_t>(st.size), '\0');
    std::size_t got = 0;
    while (got < out.size()) {
      const zip_int64_t n = zip_fread(file.get(), out.data() + got, out.size() - got);
      if (n < 0) {
        throw Error::invalid_input(where_ + ": entry " + name + ": " +
                                   zip_file_strerror(file.get()) + " (damaged archive?)");
      }
      if (n == 0) break;
      got += static_cast<std::size_t>(n);
    }
    if (got != out.size()) {
      throw Error::invalid_input(where_ + ": entry " + name + " is shorter than its header says");
    }
    return out;
  }

 private:
  std::string where_;
  zip_t* zip_ = nullptr;
};

// Gathers a tensor through its offset and strides; checks it fits its storage.
TorchTensor materialise(const std::string& where, const std::string& key, const PyObj& t,
                        const std::string& bytes) {
  TorchTensor out;
  out.dtype = t.storage->s;
  out.shape = t.shape;
  const StorageType& type = *t.storage->type;
  const std::size_t elem = type.bytes;
  const std::int64_t available = static_cast<std::int64_t>(bytes.size() / elem);
  std::int64_t count = 1, last = t.offset;
  if (t.offset < 0 || t.offset > available) {
    throw Error::invalid_input(where + ": tensor " + key + ": offset " + std::to_string(t.offset) +
                               " is outside its storage");
  }
  for (std::size_t d = 0; d < t.shape.size(); ++d) {
    if (t.shape[d] < 0 || t.stride[d] < 0 || t.stride[d] > available) {
      throw Error::invalid_input(where + ": tensor " + key + " has a size or stride out of range");
    }
    if (t.shape[d] == 0) {
      count = 0;
      break;
    }
    if (t.shape[d] > kMaxTensorElements || count > kMaxTensorElements / t.shape[d]) {
      throw Error::invalid_input(where + ": tensor " + key + " " + shape_string(t.shape) +
                                 " is larger than any model weight");
    }
    if (t.stride[d] > 0 && t.shape[d] - 1 > kMaxTensorElements * 4 / t.stride[d]) {
      throw Error::invalid_input(where + ": tensor " + key + " " + shape_string(t.shape) +
                                 " reaches far past the end of storage " + t.storage->key);
    }
    count *= t.shape[d];
    last += (t.shape[d] - 1) * t.stride[d];  // each term <= 2^33: no overflow
  }
  if (count > 0 && last >= available) {
    throw Error::invalid_input(where + ": tensor " + key + " " + shape_string(t.shape) + " needs " +
                               std::to_string(last + 1) + " elements of storage " + t.storage->key +
                               ", which holds " + std::to_string(available) +
                               " (truncated storage?)");
  }
  // A weight has at most as many elements as its storage holds; more is a broadcast view (a
  // zero stride), which a state dict never holds, and would cost memory the file never had.
  if (count > available) {
    throw Error::invalid_input(where + ": tensor " + key + " " + shape_string(t.shape) + " has " +
                               std::to_string(count) + " elements but its storage " +
                               t.storage->key + " holds " + std::to_string(available) +
                               " (a broadcast view, not a weight)");
  }
  out.values.resize(static_cast<std::size_t>(count));
  std::vector<std::int64_t> index(t.shape.size(), 0);
  for (std::int64_t n = 0; n < count; ++n) {
    std::int64_t at = t.offset;
    for (std::size_t d = 0; d < index.size(); ++d) at += index[d] * t.stride[d];
    out.values[static_cast<std::size_t>(n)] = type.read(bytes.data(), static_cast<std::size_t>(at));
    for (std::size_t d = index.size(); d-- > 0;) {
      if (++index[d] < t.shape[d]) break;
      index[d] = 0;
    }
  }
  return out;
}

bool is_tensor_dict(const PyObj& d) {
  if (d.kind != PyObj::Kind::kDict || d.dict.empty()) return false;
  return std::all_of(d.dict.begin(), d.dict.end(),
                     [](const auto& kv) { return kv.second->kind == PyObj::Kind::kTensor; });
}

// The state dict inside the pickle: the top-level dict, or a training checkpoint's
// {"state_dict": ...} (or "model", "net", ...) when the top level holds other things.
const PyObj& find_state_dict(const std::string& where, const PyObj& top, std::string& note) {
  if (top.kind != PyObj::Kind::kDict) {
    throw Error::invalid_input(where + ": holds " + std::string(kind_name(top.kind)) +
                               ", not a state dict (save model.state_dict())");
  }
  if (is_tensor_dict(top)) return top;
  for (const char* name : {"state_dict", "model_state_dict", "model", "net", "generator"}) {
    for (const auto& [k, v] : top.dict) {
      if (k->kind == PyObj::Kind::kString && k->s == name && is_tensor_dict(*v)) {
        note = std::string("the state dict under key '") + name + "'";
        return *v;
      }
    }
  }
  for (const auto& [k, v] : top.dict) {
    if (v->kind != PyObj::Kind::kTensor) {
      const std::string key = k->kind == PyObj::Kind::kString ? k->s : kind_name(k->kind);
      const std::string what = v->kind == PyObj::Kind::kOpaque ? v->s : kind_name(v->kind);
      throw Error::invalid_input(where + ": entry '" + key + "' is " + what +
                                 ", not a tensor; expected a state dict of tensors");
    }
  }
  throw Error::invalid_input(where + ": holds an empty dict, not a state dict");
}

void check_head(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec))
      throw Error::not_found(path.string() + ": no such file");
    throw Error::invalid_input(path.string() + ": cannot open");
  }
  std::array<unsigned char, kLegacyHead.size()> head{};
  in.read(reinterpret_cast<char*>(head.data()), head.size());
  const auto n = static_cast<std::size_t>(in.gcount());
  if (n >= 4 && head[0] == 'P' && head[1] == 'K') return;
  if (n == head.size() && head == kLegacyHead) {
    throw Error::invalid_input(
        path.string() +
        ": a legacy PyTorch checkpoint (the pre-1.6 format, not a zip archive), which lipsync "
        "does not read. Re-save it with any PyTorch >= 1.6: python3 -c \"import torch; "
        "torch.save(torch.load('" +
        path.filename().string() + "', map_location='cpu'), '" + path.stem().string() +
        "_zip.pth')\"");
  }
  throw Error::invalid_input(path.string() +
                             ": not a PyTorch checkpoint (expected the zip archive torch.save "
                             "writes; the file does not start with a zip header)");
}

}  // namespace

std::string shape_string(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

const TorchTensor* TorchStateDict::find(const std::string& key) const {
  for (const auto& [k, t] : entries) {
    if (k == key) return &t;
  }
  return nullptr;
}

TorchStateDict read_torch_checkpoint(const std::filesystem::path& path) {
  const std::string where = path.string();
  check_head(path);
  const ZipReader zip(path);
  // The top folder is the saved file's base name (or "archive"); find it through data.pkl.
  std::string top;
  for (const std::string& name : zip.names()) {
    const std::size_t slash = name.find('/');
    if (slash != std::string::npos && name.substr(slash + 1) == "data.pkl") {
      if (!top.empty()) throw Error::invalid_input(where + ": holds more than one data.pkl");
      top = name.substr(0, slash + 1);
    }
  }
  if (top.empty()) {
    throw Error::invalid_input(where +
                               ": a zip archive without <folder>/data.pkl: not a "
                               "PyTorch checkpoint");
  }
  if (zip.has(top + "code/") || zip.has(top + "constants.pkl")) {
    throw Error::invalid_input(where +
                               ": a TorchScript archive (torch.jit.save); save the "
                               "model's state_dict() with torch.save instead");
  }
  if (zip.has(top + "byteorder") && zip.read(top + "byteorder") != "little") {
    throw Error::invalid_input(where + ": tensors saved big-endian are not supported");
  }
  const std::string pickle = zip.read(top + "data.pkl");
  const CycleBreaker cycles;  // declared before root: unlinks what is left once root is gone
  const Obj root = Unpickler(pickle, where + ": " + top + "data.pkl").load();

  TorchStateDict out;
  const PyObj& sd = find_state_dict(where, *root, out.note);
  std::map<std::string, std::string> storages;  // key -> bytes, read once each
  for (const auto& [k, v] : sd.dict) {
    if (k->kind != PyObj::Kind::kString) {
      throw Error::invalid_input(where + ": a state dict key that is not a string");
    }
    auto it = storages.find(v->storage->key);
    if (it == storages.end()) {
      it = storages.emplace(v->storage->key, zip.read(top + "data/" + v->storage->key)).first;
    }
    out.entries.emplace_back(k->s, materialise(where, k->s, *v, it->second));
  }
  // nn.DataParallel saves every key under "module.".
  const bool wrapped = std::all_of(out.entries.begin(), out.entries.end(),
                                   [](const auto& e) { return e.first.starts_with("module."); });
  if (wrapped) {
    for (auto& e : out.entries) e.first.erase(0, 7);
    out.note += (out.note.empty() ? "" : "; ") + std::string("'module.' prefix removed");
  }
  return out;
}

}  // namespace lipsync::modelgen
