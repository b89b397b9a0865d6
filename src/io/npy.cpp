// numpy .npy / .npz reading and writing (see npy.h for the format).
#include "io/npy.h"

#include <convkit/error.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <string_view>
#include <utility>

#include "io/atomic_file.h"

#if defined(CONVKIT_HAVE_ZLIB)
#include <zlib.h>
#endif

namespace convkit::io {

namespace {

constexpr std::string_view kMagic = "\x93NUMPY";
constexpr size_t kMaxDims = 64;          // numpy 2 allows 64 (numpy 1: 32)
constexpr int kMaxLiteralDepth = 16;     // nesting in the header literal
constexpr size_t kChunkBytes = 1 << 20;  // file data is read and converted in chunks of this size

const char* const kSupportedDtypes =
    "supported dtypes: float16/32/64 ('<f2' '<f4' '<f8'), int8..int64 ('i1' 'i2' 'i4' 'i8'), "
    "uint8..uint64 ('u1' 'u2' 'u4' 'u8') and bool ('|b1'), little- ('<') or big-endian ('>')";

std::string shape_repr(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

// A short printable rendering of raw bytes for messages.
std::string printable(std::string_view bytes, size_t max_len = 40) {
  std::string out;
  for (size_t i = 0; i < bytes.size() && i < max_len; ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  if (bytes.size() > max_len) out += "...";
  return out;
}

uint64_t load_le(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// ---- the header: a Python literal -------------------------------------------------------------

// A parsed Python literal (only what a .npy header can hold, plus lists so that structured dtypes
// are recognised and reported).
struct PyValue {
  enum class Type { Str, Int, Bool, None, Tuple, List, Dict };
  Type type = Type::None;
  std::string str;
  int64_t integer = 0;
  bool boolean = false;
  std::vector<PyValue> items;     // Tuple, List; a Dict's values
  std::vector<std::string> keys;  // a Dict's keys, parallel to items
};

const char* type_name(PyValue::Type t) {
  switch (t) {
    case PyValue::Type::Str:
      return "a string";
    case PyValue::Type::Int:
      return "an integer";
    case PyValue::Type::Bool:
      return "a bool";
    case PyValue::Type::None:
      return "None";
    case PyValue::Type::Tuple:
      return "a tuple";
    case PyValue::Type::List:
      return "a list";
    case PyValue::Type::Dict:
      return "a dict";
  }
  return "?";
}

// Recursive-descent parser for the subset of Python literal syntax a header uses: strings in ' or
// ", decimal integers (an old 'L' suffix allowed), True/False/None, tuples, lists and dicts.
class LiteralParser {
 public:
  LiteralParser(std::string_view text, const std::string& context) : s_(text), ctx_(context) {}

  PyValue parse_document() {
    PyValue v = parse_value(0);
    skip_space();
    if (pos_ != s_.size()) error("unexpected text after the dict");
    return v;
  }

 private:
  [[noreturn]] void error(const std::string& what) const {
    fail(
        ctx_, ": unparsable header (", what, " at offset ", pos_, "): '", printable(s_, 120),
        "'; expected a Python dict like {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}");
  }

  void skip_space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' ||
                                s_[pos_] == '\r' || s_[pos_] == '\f' || s_[pos_] == '\v'))
      ++pos_;
  }
  bool peek(char c) {
    skip_space();
    return pos_ < s_.size() && s_[pos_] == c;
  }
  void expect(char c) {
    if (!peek(c)) error(std::string("expected '") + c + "'");
    ++pos_;
  }

  PyValue parse_value(int depth) {
    if (depth > kMaxLiteralDepth) error("nesting too deep");
    skip_space();
    if (pos_ >= s_.size()) error("unexpected end of header");
    const char c = s_[pos_];
    if (c == '\'' || c == '"') return parse_string();
    if (c == '-' || c == '+' || (c >= '0' && c <= '9')) return parse_int();
    if (c == '(') return parse_sequence(depth, '(', ')', PyValue::Type::Tuple);
    if (c == '[') return parse_sequence(depth, '[', ']', PyValue::Type::List);
    if (c == '{') return parse_dict(depth);
    return parse_name();
  }

  PyValue parse_string() {
    const char quote = s_[pos_++];
    PyValue v;
    v.type = PyValue::Type::Str;
    while (true) {
      if (pos_ >= s_.size() || s_[pos_] == '\n') error("unterminated string");
      const char c = s_[pos_++];
      if (c == quote) break;
      if (c == '\\') {
        if (pos_ >= s_.size()) error("unterminated string");
        const char e = s_[pos_++];
        if (e == '\\' || e == '\'' || e == '"') {
          v.str += e;
        } else {
          v.str += '\\';
          v.str += e;
        }
      } else {
        v.str += c;
      }
    }
    return v;
  }

  PyValue parse_int() {
    bool negative = false;
    if (s_[pos_] == '-' || s_[pos_] == '+') {
      negative = s_[pos_] == '-';
      ++pos_;
      skip_space();
    }
    const size_t start = pos_;
    uint64_t magnitude = 0;
    bool overflow = false;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
      const auto digit = static_cast<uint64_t>(s_[pos_] - '0');
      if (magnitude > (std::numeric_limits<uint64_t>::max() - digit) / 10) overflow = true;
      magnitude = overflow ? magnitude : magnitude * 10 + digit;
      ++pos_;
    }
    if (pos_ == start) error("expected a number");
    if (s_[start] == '0' && pos_ - start > 1) error("integer with a leading zero");
    if (pos_ < s_.size() && (s_[pos_] == 'L' || s_[pos_] == 'l')) ++pos_;  // Python 2 long
    if (pos_ < s_.size() &&
        (std::isalnum(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '.' || s_[pos_] == '_'))
      error("only decimal integers are allowed");
    const uint64_t limit = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    if (overflow || magnitude > limit)
      fail(ctx_, ": header integer ", s_.substr(start, pos_ - start),
           " is out of range; dimensions must be below 2^63");
    PyValue v;
    v.type = PyValue::Type::Int;
    v.integer = negative ? -static_cast<int64_t>(magnitude) : static_cast<int64_t>(magnitude);
    return v;
  }

  PyValue parse_name() {
    const size_t start = pos_;
    while (pos_ < s_.size() &&
           (std::isalnum(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '_'))
      ++pos_;
    const std::string_view name = s_.substr(start, pos_ - start);
    PyValue v;
    if (name == "True" || name == "False") {
      v.type = PyValue::Type::Bool;
      v.boolean = name == "True";
    } else if (name == "None") {
      v.type = PyValue::Type::None;
    } else {
      pos_ = start;
      error("expected a string, integer, True, False, None, tuple, list or dict");
    }
    return v;
  }

  // '(' [value (',' value)* [',']] ')': "(x)" without a comma is x itself, as in Python.
  PyValue parse_sequence(int depth, char open, char close, PyValue::Type type) {
    expect(open);
    PyValue v;
    v.type = type;
    bool saw_comma = false;
    while (!peek(close)) {
      v.items.push_back(parse_value(depth + 1));
      if (peek(close)) break;
      expect(',');
      saw_comma = true;
    }
    ++pos_;
    if (type == PyValue::Type::Tuple && v.items.size() == 1 && !saw_comma) {
      PyValue inner = std::move(v.items[0]);
      return inner;
    }
    return v;
  }

  PyValue parse_dict(int depth) {
    expect('{');
    PyValue v;
    v.type = PyValue::Type::Dict;
    while (!peek('}')) {
      skip_space();
      const PyValue key = parse_value(depth + 1);
      if (key.type != PyValue::Type::Str) error("dict keys must be strings");
      for (const std::string& k : v.keys)
        if (k == key.str) error("duplicate key '" + key.str + "'");
      expect(':');
      v.keys.push_back(key.str);
      v.items.push_back(parse_value(depth + 1));
      if (peek('}')) break;
      expect(',');
    }
    ++pos_;
    return v;
  }

  std::string_view s_;
  const std::string& ctx_;
  size_t pos_ = 0;
};

[[noreturn]] void unsupported_dtype(const std::string& ctx, const std::string& descr,
                                    const char* what) {
  fail(ctx, ": unsupported dtype '", printable(descr), "'", what, "; ", kSupportedDtypes);
}

// Fills kind / itemsize / big_endian from a descr string such as '<f4'.
void parse_descr(const std::string& descr, NpyHeader& h, const std::string& ctx) {
  const auto unsupported = [&](const char* what) { unsupported_dtype(ctx, descr, what); };
  size_t i = 0;
  bool big = std::endian::native == std::endian::big;
  if (i < descr.size() &&
      (descr[i] == '<' || descr[i] == '>' || descr[i] == '|' || descr[i] == '=')) {
    if (descr[i] == '<') big = false;
    if (descr[i] == '>') big = true;
    ++i;
  }
  if (i >= descr.size()) unsupported_dtype(ctx, descr, "");
  const char code = descr[i++];
  const std::string size_text = descr.substr(i);
  int size = 0;
  if (!size_text.empty() && size_text.size() <= 3 &&
      std::all_of(size_text.begin(), size_text.end(), [](char c) { return c >= '0' && c <= '9'; }))
    size = std::stoi(size_text);
  switch (code) {
    case 'f':
      if (size != 2 && size != 4 && size != 8) unsupported(size > 8 ? " (extended precision)" : "");
      h.kind = NpyKind::Float;
      break;
    case 'i':
    case 'u':
      if (size != 1 && size != 2 && size != 4 && size != 8) unsupported("");
      h.kind = code == 'i' ? NpyKind::Int : NpyKind::UInt;
      break;
    case 'b':
      if (size != 1) unsupported("");
      h.kind = NpyKind::Bool;
      break;
    case 'c':
      unsupported_dtype(ctx, descr, " (complex)");
    case 'O':
      unsupported_dtype(ctx, descr, " (Python objects)");
    case 'S':
    case 'a':
    case 'U':
      unsupported_dtype(ctx, descr, " (strings)");
    case 'V':
      unsupported_dtype(ctx, descr, " (raw or structured records)");
    case 'M':
    case 'm':
      unsupported_dtype(ctx, descr, " (dates and times)");
    default:
      unsupported_dtype(ctx, descr, "");
  }
  h.itemsize = size;
  h.big_endian = big;
}

// ---- element conversion -----------------------------------------------------------------------

float half_to_float(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits >> 15) << 31;
  const uint32_t exponent = (bits >> 10) & 0x1f;
  const uint32_t mantissa = bits & 0x3ff;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24
    const float v = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -v : v;
  }
  if (exponent == 31) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  return std::bit_cast<float>(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

template <typename U>
U load_item(const uint8_t* p, bool big) {
  U v = 0;
  if (big) {
    for (size_t i = 0; i < sizeof(U); ++i) v = static_cast<U>((v << 8) | p[i]);
  } else {
    for (size_t i = sizeof(U); i-- > 0;) v = static_cast<U>((v << 8) | p[i]);
  }
  return v;
}

// dst[i] = float(item i of src), for n items laid out as the header says.
template <typename U, typename Convert>
void convert_items(const uint8_t* src, size_t n, bool big, float* dst, Convert convert) {
  for (size_t i = 0; i < n; ++i) dst[i] = convert(load_item<U>(src + i * sizeof(U), big));
}

void decode_items(const NpyHeader& h, const uint8_t* src, size_t n, float* dst) {
  const bool big = h.big_endian;
  if (h.kind == NpyKind::Float && h.itemsize == 4 &&
      big == (std::endian::native == std::endian::big)) {
    std::memcpy(dst, src, n * 4);
    return;
  }
  switch (h.kind) {
    case NpyKind::Float:
      if (h.itemsize == 2) convert_items<uint16_t>(src, n, big, dst, half_to_float);
      if (h.itemsize == 4)
        convert_items<uint32_t>(src, n, big, dst,
                                [](uint32_t b) { return std::bit_cast<float>(b); });
      if (h.itemsize == 8)
        convert_items<uint64_t>(src, n, big, dst, [](uint64_t b) {
          return static_cast<float>(std::bit_cast<double>(b));
        });
      break;
    case NpyKind::Int:
      if (h.itemsize == 1)
        convert_items<uint8_t>(
            src, n, big, dst, [](uint8_t b) { return static_cast<float>(static_cast<int8_t>(b)); });
      if (h.itemsize == 2)
        convert_items<uint16_t>(src, n, big, dst, [](uint16_t b) {
          return static_cast<float>(static_cast<int16_t>(b));
        });
      if (h.itemsize == 4)
        convert_items<uint32_t>(src, n, big, dst, [](uint32_t b) {
          return static_cast<float>(static_cast<int32_t>(b));
        });
      if (h.itemsize == 8)
        convert_items<uint64_t>(src, n, big, dst, [](uint64_t b) {
          return static_cast<float>(static_cast<int64_t>(b));
        });
      break;
    case NpyKind::UInt:
      if (h.itemsize == 1)
        convert_items<uint8_t>(src, n, big, dst, [](uint8_t b) { return static_cast<float>(b); });
      if (h.itemsize == 2)
        convert_items<uint16_t>(src, n, big, dst, [](uint16_t b) { return static_cast<float>(b); });
      if (h.itemsize == 4)
        convert_items<uint32_t>(src, n, big, dst, [](uint32_t b) { return static_cast<float>(b); });
      if (h.itemsize == 8)
        convert_items<uint64_t>(src, n, big, dst, [](uint64_t b) { return static_cast<float>(b); });
      break;
    case NpyKind::Bool:
      convert_items<uint8_t>(src, n, big, dst, [](uint8_t b) { return b ? 1.f : 0.f; });
      break;
  }
}

// Fortran (column-major) values -> C (row-major) values of the same shape.
std::vector<float> fortran_to_c(const std::vector<float>& f, const std::vector<int64_t>& shape) {
  std::vector<float> c(f.size());
  if (f.empty()) return c;
  const size_t nd = shape.size();
  std::vector<int64_t> fstride(nd, 1);  // element strides of the Fortran layout
  for (size_t d = 1; d < nd; ++d) fstride[d] = fstride[d - 1] * shape[d - 1];
  std::vector<int64_t> index(nd, 0);
  int64_t offset = 0;  // Fortran offset of `index`
  for (size_t i = 0; i < c.size(); ++i) {
    c[i] = f[static_cast<size_t>(offset)];
    for (size_t d = nd; d-- > 0;) {  // C order: last index fastest
      if (++index[d] < shape[d]) {
        offset += fstride[d];
        break;
      }
      offset -= (shape[d] - 1) * fstride[d];
      index[d] = 0;
    }
  }
  return c;
}

// Lengths of the preamble: the magic, the version and the header-length field.
struct Preamble {
  int major = 0, minor = 0;
  uint64_t prefix = 0;      // bytes before the header
  uint64_t header_len = 0;  // bytes of header text
};

Preamble parse_preamble(const uint8_t* b, size_t size, uint64_t total_size,
                        const std::string& ctx) {
  const size_t have = std::min(size, kMagic.size());
  if (have > 0 && std::memcmp(b, kMagic.data(), have) != 0)
    fail(ctx, ": not a .npy file: it starts with '",
         printable(std::string_view(reinterpret_cast<const char*>(b), std::min<size_t>(size, 8))),
         "' instead of numpy's magic '\\x93NUMPY'");
  if (size < 8)
    fail(ctx, ": truncated .npy: ", total_size,
         " bytes, too short for the magic and version (8 bytes)");
  Preamble p;
  p.major = b[6];
  p.minor = b[7];
  if ((p.major != 1 && p.major != 2 && p.major != 3) || p.minor != 0)
    fail(ctx, ": unsupported .npy format version ", p.major, ".", p.minor,
         "; supported: 1.0, 2.0 and 3.0");
  const int len_bytes = p.major == 1 ? 2 : 4;
  p.prefix = 8 + static_cast<uint64_t>(len_bytes);
  if (size < p.prefix)
    fail(ctx, ": truncated .npy: ", total_size, " bytes, too short for a version ", p.major,
         ".0 preamble (", p.prefix, " bytes)");
  p.header_len = load_le(b + 8, len_bytes);
  if (p.header_len > total_size - p.prefix)
    fail(ctx, ": truncated header: the preamble announces a ", p.header_len,
         "-byte header but the file has only ", total_size - p.prefix, " bytes after the preamble");
  return p;
}

}  // namespace

// ---- .npy reading -----------------------------------------------------------------------------

NpyHeader parse_npy_header(const uint8_t* bytes, size_t size, uint64_t total_size,
                           const std::string& context) {
  const Preamble pre = parse_preamble(bytes, size, total_size, context);
  if (size < pre.prefix + pre.header_len)
    fail(context, ": truncated header (", size, " of ", pre.prefix + pre.header_len, " bytes)");
  NpyHeader h;
  h.major = pre.major;
  h.minor = pre.minor;
  h.data_offset = pre.prefix + pre.header_len;
  const std::string_view text(reinterpret_cast<const char*>(bytes + pre.prefix), pre.header_len);

  const PyValue dict = LiteralParser(text, context).parse_document();
  if (dict.type != PyValue::Type::Dict)
    fail(context, ": the header is ", type_name(dict.type),
         ", not a dict with the keys 'descr', 'fortran_order' and 'shape'");
  const PyValue* descr = nullptr;
  const PyValue* fortran = nullptr;
  const PyValue* shape = nullptr;
  for (size_t i = 0; i < dict.keys.size(); ++i) {
    const std::string& key = dict.keys[i];
    const PyValue& value = dict.items[i];
    if (key == "descr") {
      descr = &value;
    } else if (key == "fortran_order") {
      fortran = &value;
    } else if (key == "shape") {
      shape = &value;
    } else {
      fail(context, ": unexpected header key '", printable(key),
           "'; a .npy header has exactly 'descr', 'fortran_order' and 'shape'");
    }
  }
  for (const auto& [ptr, key] :
       {std::pair{descr, "descr"}, std::pair{fortran, "fortran_order"}, std::pair{shape, "shape"}})
    if (!ptr)
      fail(context, ": the header has no '", key,
           "' key; a .npy header has exactly 'descr', 'fortran_order' and 'shape'");

  if (descr->type == PyValue::Type::List)
    fail(context, ": unsupported structured dtype (a list of fields); ", kSupportedDtypes);
  if (descr->type != PyValue::Type::Str)
    fail(context, ": 'descr' is ", type_name(descr->type),
         ", expected a dtype string such as '<f4'");
  parse_descr(descr->str, h, context);

  if (fortran->type != PyValue::Type::Bool)
    fail(context, ": 'fortran_order' is ", type_name(fortran->type), ", expected True or False");
  h.fortran_order = fortran->boolean;

  if (shape->type != PyValue::Type::Tuple)
    fail(context, ": 'shape' is ", type_name(shape->type),
         ", expected a tuple of non-negative integers such as (2, 3), (5,) or ()");
  if (shape->items.size() > kMaxDims)
    fail(context, ": 'shape' has ", shape->items.size(), " dimensions; at most ", kMaxDims,
         " are supported");
  int64_t nonzero_product = 1;  // overflow is checked on the non-zero dims, as numpy does
  bool has_zero = false;
  for (const PyValue& d : shape->items) {
    if (d.type != PyValue::Type::Int || d.integer < 0)
      fail(context, ": 'shape' must be a tuple of non-negative integers, got a dimension that is ",
           d.type == PyValue::Type::Int ? "negative" : type_name(d.type));
    h.shape.push_back(d.integer);
    if (d.integer == 0) {
      has_zero = true;
    } else if (__builtin_mul_overflow(nonzero_product, d.integer, &nonzero_product)) {
      fail(context, ": absurd shape ", shape_repr(h.shape),
           "...: its element count overflows 64 bits");
    }
  }
  h.numel = has_zero ? 0 : nonzero_product;
  uint64_t data_bytes = 0;
  if (__builtin_mul_overflow(static_cast<uint64_t>(h.numel), static_cast<uint64_t>(h.itemsize),
                             &data_bytes))
    fail(context, ": absurd shape ", shape_repr(h.shape), ": its byte count overflows 64 bits");
  h.data_bytes = data_bytes;

  const uint64_t available = total_size - h.data_offset;
  if (data_bytes > available)
    fail(context, ": truncated data: shape ", shape_repr(h.shape), " of '", descr->str, "' needs ",
         data_bytes, " bytes of data but the file has only ", available,
         " (the header's shape disagrees with the data size)");
  if (data_bytes < available)
    fail(context, ": ", available - data_bytes, " unexpected bytes after the data: shape ",
         shape_repr(h.shape), " of '", descr->str, "' needs exactly ", data_bytes,
         " bytes of data but the file has ", available,
         " (the header's shape disagrees with the data size)");
  return h;
}

NpyArray parse_npy(const uint8_t* bytes, size_t size, const std::string& context) {
  const NpyHeader h = parse_npy_header(bytes, size, size, context);
  NpyArray out;
  out.shape = h.shape;
  out.values.resize(static_cast<size_t>(h.numel));
  if (h.numel > 0)
    decode_items(h, bytes + h.data_offset, static_cast<size_t>(h.numel), out.values.data());
  if (h.fortran_order && h.shape.size() > 1) out.values = fortran_to_c(out.values, h.shape);
  return out;
}

namespace {

// A file descriptor closed on scope exit.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// Reads up to n bytes at the current position; returns how many were read (fewer only at EOF).
size_t read_fully(int fd, uint8_t* dst, size_t n, const std::string& ctx) {
  size_t done = 0;
  while (done < n) {
    const ssize_t r = ::read(fd, dst + done, n - done);
    if (r < 0) {
      if (errno == EINTR) continue;
      fail(ctx, ": read error: ", std::strerror(errno));
    }
    if (r == 0) break;
    done += static_cast<size_t>(r);
  }
  return done;
}

// Opens a regular file for reading and returns its size.
uint64_t open_regular(const std::string& path, Fd& file, const std::string& ctx) {
  file.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (file.fd < 0) fail(ctx, ": cannot open: ", std::strerror(errno));
  struct stat st {};
  if (::fstat(file.fd, &st) != 0) fail(ctx, ": cannot stat: ", std::strerror(errno));
  if (S_ISDIR(st.st_mode)) fail(ctx, ": is a directory, expected a file");
  if (!S_ISREG(st.st_mode)) fail(ctx, ": not a regular file");
  return static_cast<uint64_t>(st.st_size);
}

}  // namespace

NpyArray read_npy_file(const std::string& path) {
  const std::string ctx = "load_npy: '" + path + "'";
  Fd file;
  const uint64_t total = open_regular(path, file, ctx);
  // The preamble is at most 12 bytes; the header is read once its length is known and checked
  // against the file size, and the data only after the header's shape has been checked too.
  std::vector<uint8_t> head(static_cast<size_t>(std::min<uint64_t>(total, 12)));
  const size_t got = read_fully(file.fd, head.data(), head.size(), ctx);
  if (got != head.size()) fail(ctx, ": the file shrank while being read");
  const Preamble pre = parse_preamble(head.data(), head.size(), total, ctx);
  // (A short header may end inside the 12 bytes already read; then those hold it all.)
  const auto header_end = static_cast<size_t>(pre.prefix + pre.header_len);
  if (header_end > got) {
    head.resize(header_end);
    const size_t rest = header_end - got;
    if (read_fully(file.fd, head.data() + got, rest, ctx) != rest)
      fail(ctx, ": the file shrank while being read");
  }
  const NpyHeader h = parse_npy_header(head.data(), head.size(), total, ctx);
  if (::lseek(file.fd, static_cast<off_t>(h.data_offset), SEEK_SET) < 0)
    fail(ctx, ": seek error: ", std::strerror(errno));

  NpyArray out;
  out.shape = h.shape;
  out.values.resize(static_cast<size_t>(h.numel));
  // Data in chunks of whole items: (chunk items) raw bytes -> floats.
  const size_t items_per_chunk = kChunkBytes / static_cast<size_t>(h.itemsize);
  std::vector<uint8_t> chunk(std::min<uint64_t>(h.data_bytes, kChunkBytes));
  for (size_t first = 0; first < out.values.size(); first += items_per_chunk) {
    const size_t n = std::min(items_per_chunk, out.values.size() - first);
    const size_t bytes = n * static_cast<size_t>(h.itemsize);
    if (read_fully(file.fd, chunk.data(), bytes, ctx) != bytes)
      fail(ctx, ": the file shrank while being read");
    decode_items(h, chunk.data(), n, out.values.data() + first);
  }
  if (h.fortran_order && h.shape.size() > 1) out.values = fortran_to_c(out.values, h.shape);
  return out;
}

// ---- .npy writing -----------------------------------------------------------------------------

std::string encode_npy(const std::vector<int64_t>& shape, const float* values) {
  int64_t numel = 1;
  for (int64_t d : shape) {
    check(d >= 0, "save_npy: negative dimension in shape ", shape_repr(shape));
    check(!__builtin_mul_overflow(numel, d, &numel), "save_npy: shape ", shape_repr(shape),
          " overflows 64 bits");
  }
  // numpy's own layout (numpy/lib/format.py, _wrap_header): keys sorted, spare spaces so the first
  // dimension can grow in place (21 digits), then padding so the data starts at a multiple of 64.
  std::string dict =
      "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape_repr(shape) + ", }";
  if (!shape.empty()) dict.append(21 - std::to_string(shape[0]).size(), ' ');
  int major = 1;
  size_t prefix = 10;
  if (dict.size() + 1 + 64 > 65535) {  // version 2.0 only for headers too long for uint16
    major = 2;
    prefix = 12;
  }
  const size_t pad = 64 - (prefix + dict.size() + 1) % 64;
  dict.append(pad, ' ');
  dict += '\n';
  std::string out(kMagic);
  out += static_cast<char>(major);
  out += '\0';
  for (size_t i = 0; i < prefix - 8; ++i) out += static_cast<char>((dict.size() >> (8 * i)) & 0xff);
  out += dict;
  const size_t header_end = out.size();
  out.resize(header_end + static_cast<size_t>(numel) * 4);
  if (numel > 0 && std::endian::native == std::endian::little) {
    std::memcpy(out.data() + header_end, values, static_cast<size_t>(numel) * 4);
    return out;
  }
  for (int64_t i = 0; i < numel; ++i) {
    const uint32_t bits = std::bit_cast<uint32_t>(values[i]);
    for (int b = 0; b < 4; ++b)
      out[header_end + static_cast<size_t>(i) * 4 + static_cast<size_t>(b)] =
          static_cast<char>((bits >> (8 * b)) & 0xff);
  }
  return out;
}

void write_npy_file(const std::string& path, const std::vector<int64_t>& shape,
                    const float* values) {
  write_file_atomic(path, encode_npy(shape, values), "save_npy");
}

// ---- .npz: a ZIP archive of .npy members ------------------------------------------------------

namespace {

uint32_t crc32_of(const uint8_t* data, size_t n) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) c = table[(c ^ data[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEndSig = 0x06054b50,
                   kZip64EndSig = 0x06064b50, kZip64LocatorSig = 0x07064b50;

// Bounds-checked little-endian reads from the archive.
struct Reader {
  const uint8_t* data;
  size_t size;
  const std::string& ctx;
  uint64_t at(uint64_t offset, int n) const {
    if (offset > size || static_cast<uint64_t>(n) > size - offset)
      fail(ctx, ": corrupt .npz (ZIP) archive: a record at offset ", offset,
           " runs past the end of the file (", size, " bytes)");
    return load_le(data + offset, n);
  }
};

[[noreturn]] void bad_zip(const std::string& ctx, const char* what) {
  fail(ctx, ": not a valid .npz (ZIP) archive: ", what);
}

struct Member {
  std::string name;
  uint16_t method = 0;
  uint32_t crc = 0;
  uint64_t compressed = 0, uncompressed = 0, local_offset = 0;
};

std::vector<uint8_t> inflate_member(const uint8_t* src, const Member& m, const std::string& ctx) {
#if defined(CONVKIT_HAVE_ZLIB)
  // deflate expands at most ~1032:1; a larger claim is corrupt (and would allocate absurdly).
  if (m.uncompressed / 1032 > m.compressed + 1)
    fail(ctx, ": corrupt .npz: member '", printable(m.name), "' claims ", m.uncompressed,
         " bytes from ", m.compressed, " compressed bytes");
  std::vector<uint8_t> out(static_cast<size_t>(m.uncompressed));
  z_stream z{};
  if (inflateInit2(&z, -MAX_WBITS) != Z_OK) fail(ctx, ": zlib initialisation failed");
  z.next_in = const_cast<Bytef*>(src);
  z.avail_in = static_cast<uInt>(m.compressed);
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = inflate(&z, Z_FINISH);
  const uint64_t produced = z.total_out;
  inflateEnd(&z);
  if (rc != Z_STREAM_END || produced != m.uncompressed)
    fail(ctx, ": corrupt .npz: member '", printable(m.name), "' does not inflate to ",
         m.uncompressed, " bytes");
  return out;
#else
  (void)src;
  (void)m;
  fail(ctx,
       ": compressed .npz members (np.savez_compressed) need a convkit built with zlib; "
       "save with np.savez (uncompressed) instead");
#endif
}

}  // namespace

bool npz_deflate_supported() {
#if defined(CONVKIT_HAVE_ZLIB)
  return true;
#else
  return false;
#endif
}

std::map<std::string, NpyArray> parse_npz(const uint8_t* bytes, size_t size,
                                          const std::string& context) {
  const Reader r{bytes, size, context};
  const auto corrupt = [&](const char* what) { bad_zip(context, what); };
  if (size < 22) corrupt("too short for a ZIP end-of-central-directory record");
  // The end record sits in the last 22 + 65535 (comment) bytes; scan back for its signature.
  std::optional<uint64_t> end;
  for (uint64_t pos = size - 22;; --pos) {
    if (load_le(bytes + pos, 4) == kEndSig) {
      end = pos;
      break;
    }
    if (pos == 0 || size - 22 - pos >= 65535) break;
  }
  if (!end) bad_zip(context, "no end-of-central-directory record");
  uint64_t entries = r.at(*end + 10, 2);
  uint64_t cd_size = r.at(*end + 12, 4);
  uint64_t cd_offset = r.at(*end + 16, 4);
  if (r.at(*end + 4, 2) != 0 || r.at(*end + 6, 2) != 0)
    corrupt("multi-disk archives are unsupported");
  if (entries == 0xFFFF || cd_size == 0xFFFFFFFF || cd_offset == 0xFFFFFFFF) {
    if (*end < 20 || r.at(*end - 20, 4) != kZip64LocatorSig) corrupt("missing ZIP64 locator");
    const uint64_t z64 = r.at(*end - 20 + 8, 8);
    if (r.at(z64, 4) != kZip64EndSig) corrupt("bad ZIP64 end record");
    entries = r.at(z64 + 32, 8);
    cd_size = r.at(z64 + 40, 8);
    cd_offset = r.at(z64 + 48, 8);
  }
  if (cd_offset > size || cd_size > size - cd_offset) corrupt("central directory out of bounds");
  if (entries > cd_size / 46) corrupt("more entries than the central directory can hold");

  std::map<std::string, NpyArray> out;
  uint64_t pos = cd_offset;
  for (uint64_t e = 0; e < entries; ++e) {
    if (r.at(pos, 4) != kCentralSig) corrupt("bad central directory entry signature");
    Member m;
    const auto flags = r.at(pos + 8, 2);
    m.method = static_cast<uint16_t>(r.at(pos + 10, 2));
    m.crc = static_cast<uint32_t>(r.at(pos + 16, 4));
    m.compressed = r.at(pos + 20, 4);
    m.uncompressed = r.at(pos + 24, 4);
    const uint64_t name_len = r.at(pos + 28, 2), extra_len = r.at(pos + 30, 2),
                   comment_len = r.at(pos + 32, 2);
    m.local_offset = r.at(pos + 42, 4);
    if (name_len > size - (pos + 46)) corrupt("entry name out of bounds");
    m.name.assign(reinterpret_cast<const char*>(bytes + pos + 46), name_len);
    // ZIP64 extra field (id 1): 8-byte values for those fields that hold 0xFFFFFFFF.
    uint64_t x = pos + 46 + name_len;
    const uint64_t x_end = x + extra_len;
    if (x_end > size) corrupt("entry extra field out of bounds");
    while (x + 4 <= x_end) {
      const uint64_t id = r.at(x, 2), len = r.at(x + 2, 2);
      if (x + 4 + len > x_end) corrupt("entry extra field out of bounds");
      if (id == 1) {
        uint64_t f = x + 4;
        for (uint64_t* field : {&m.uncompressed, &m.compressed, &m.local_offset}) {
          if (*field != 0xFFFFFFFF) continue;
          if (f + 8 > x + 4 + len) corrupt("short ZIP64 extra field");
          *field = r.at(f, 8);
          f += 8;
        }
      }
      x += 4 + len;
    }
    pos = x_end + comment_len;
    const std::string member_ctx = context + ": member '" + printable(m.name) + "'";
    if (flags & 1) fail(member_ctx, ": encrypted members are unsupported");
    if (m.method != 0 && m.method != 8)
      fail(member_ctx, ": unsupported ZIP compression method ", m.method,
           "; supported: stored (np.savez) and deflate (np.savez_compressed)");
    if (m.name.size() < 5 || m.name.substr(m.name.size() - 4) != ".npy")
      fail(member_ctx, ": not a .npy member; a .npz holds only '<name>.npy' members");
    const std::string key = m.name.substr(0, m.name.size() - 4);
    if (out.count(key)) fail(member_ctx, ": duplicate member");

    if (r.at(m.local_offset, 4) != kLocalSig) corrupt("bad local header signature");
    const uint64_t data_start =
        m.local_offset + 30 + r.at(m.local_offset + 26, 2) + r.at(m.local_offset + 28, 2);
    if (data_start > size || m.compressed > size - data_start)
      fail(member_ctx, ": truncated: its data runs past the end of the archive");
    const uint8_t* src = bytes + data_start;
    std::vector<uint8_t> inflated;
    if (m.method == 0) {
      if (m.compressed != m.uncompressed) corrupt("stored entry with differing sizes");
    } else {
      inflated = inflate_member(src, m, member_ctx);
      src = inflated.data();
    }
    const size_t n = static_cast<size_t>(m.uncompressed);
    if (crc32_of(src, n) != m.crc) fail(member_ctx, ": CRC-32 mismatch (corrupt data)");
    out.emplace(key, parse_npy(src, n, member_ctx));
  }
  return out;
}

std::map<std::string, NpyArray> read_npz_file(const std::string& path) {
  const std::string ctx = "load_npz: '" + path + "'";
  Fd file;
  const uint64_t total = open_regular(path, file, ctx);
  std::vector<uint8_t> bytes(static_cast<size_t>(total));
  if (read_fully(file.fd, bytes.data(), bytes.size(), ctx) != bytes.size())
    fail(ctx, ": the file shrank while being read");
  return parse_npz(bytes.data(), bytes.size(), ctx);
}

std::string encode_npz(const std::map<std::string, NpyArray>& arrays) {
  std::string out, central;
  const auto put = [](std::string& s, uint64_t v, int n) {
    for (int i = 0; i < n; ++i) s += static_cast<char>((v >> (8 * i)) & 0xff);
  };
  constexpr uint64_t kDate = (0 << 9) | (1 << 5) | 1;  // 1980-01-01, the ZIP epoch
  for (const auto& [key, array] : arrays) {
    check(!key.empty() && key.size() < 60000, "save_npz: keys must be non-empty names, got '",
          key.substr(0, 40), "'");
    int64_t numel = 1;
    for (int64_t d : array.shape) numel *= d;
    check(numel == static_cast<int64_t>(array.values.size()), "save_npz: array '", key,
          "' has shape ", shape_repr(array.shape), " but ", array.values.size(), " values");
    const std::string npy = encode_npy(array.shape, array.values.data());
    const std::string name = key + ".npy";
    const uint32_t crc = crc32_of(reinterpret_cast<const uint8_t*>(npy.data()), npy.size());
    const uint64_t offset = out.size();
    check(npy.size() < 0xFFFFFFFFu && offset < 0xFFFFFFFFu && arrays.size() < 0xFFFF,
          "save_npz: archives over 4 GiB or 65535 arrays are unsupported; use save_npy per array");
    // Local header: signature, version 2.0, flags, stored, time, date, crc, sizes, name length,
    // extra length.
    put(out, kLocalSig, 4);
    put(out, 20, 2);
    put(out, 0, 2);
    put(out, 0, 2);
    put(out, 0, 2);
    put(out, kDate, 2);
    put(out, crc, 4);
    put(out, npy.size(), 4);
    put(out, npy.size(), 4);
    put(out, name.size(), 2);
    put(out, 0, 2);
    out += name;
    out += npy;
    // Central directory entry: as above plus comment length, disk, attributes and the offset.
    put(central, kCentralSig, 4);
    put(central, 20, 2);
    put(central, 20, 2);
    put(central, 0, 2);
    put(central, 0, 2);
    put(central, 0, 2);
    put(central, kDate, 2);
    put(central, crc, 4);
    put(central, npy.size(), 4);
    put(central, npy.size(), 4);
    put(central, name.size(), 2);
    put(central, 0, 2);
    put(central, 0, 2);
    put(central, 0, 2);
    put(central, 0, 2);
    put(central, 0, 4);
    put(central, offset, 4);
    central += name;
  }
  check(out.size() + central.size() < 0xFFFFFFFFu,
        "save_npz: archives over 4 GiB are unsupported; use save_npy per array");
  const uint64_t cd_offset = out.size();
  out += central;
  put(out, kEndSig, 4);
  put(out, 0, 2);
  put(out, 0, 2);
  put(out, arrays.size(), 2);
  put(out, arrays.size(), 2);
  put(out, central.size(), 4);
  put(out, cd_offset, 4);
  put(out, 0, 2);
  return out;
}

void write_npz_file(const std::string& path, const std::map<std::string, NpyArray>& arrays) {
  write_file_atomic(path, encode_npz(arrays), "save_npz");
}

}  // namespace convkit::io
