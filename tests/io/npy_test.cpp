// .npy / .npz: bytes built by hand from the format spec, bytes written by real numpy (embedded as
// hex, generated offline with numpy 1.24), every dtype and byte order, every malformed case, and
// the atomic save.
#include "io/npy.h"

#include <convkit/io.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace convkit::io {
namespace {

namespace fs = std::filesystem;

// ---- byte builders -----------------------------------------------------------------------------

std::vector<uint8_t> from_hex(std::string_view hex) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<uint8_t>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  return out;
}

// A .npy built per the spec: magic, version, little-endian header length (2 bytes for 1.0, else 4),
// the header text (padded with spaces and '\n' unless raw), then the data.
std::string make_npy(const std::string& header, const std::string& data, int major = 1,
                     bool raw_header = false) {
  std::string text = header;
  if (!raw_header) {
    const size_t prefix = major == 1 ? 10 : 12;
    while ((prefix + text.size() + 1) % 64 != 0) text += ' ';
    text += '\n';
  }
  std::string out = "\x93NUMPY";
  out += static_cast<char>(major);
  out += '\0';
  const int len_bytes = major == 1 ? 2 : 4;
  for (int i = 0; i < len_bytes; ++i) out += static_cast<char>((text.size() >> (8 * i)) & 0xff);
  return out + text + data;
}

std::string dict(const std::string& descr, const std::string& shape, bool fortran = false) {
  return "{'descr': '" + descr + "', 'fortran_order': " + (fortran ? "True" : "False") +
         ", 'shape': " + shape + ", }";
}

// The bytes of `values` as items of type T in the given byte order.
template <typename T>
std::string pack(std::initializer_list<T> values, bool big_endian) {
  std::string out;
  for (T v : values) {
    unsigned char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    if (big_endian != (std::endian::native == std::endian::big))
      for (size_t i = 0; i < sizeof(T) / 2; ++i) std::swap(b[i], b[sizeof(T) - 1 - i]);
    out.append(reinterpret_cast<const char*>(b), sizeof(T));
  }
  return out;
}

NpyArray parse(const std::string& bytes, const std::string& name = "test.npy") {
  return parse_npy(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), name);
}

// Parsing `bytes` throws a convkit::Error whose message contains the name and every fragment.
void expect_error(const std::string& bytes, std::initializer_list<std::string_view> fragments) {
  try {
    parse(bytes, "bad.npy");
    ADD_FAILURE() << "no error for " << bytes.substr(0, 120);
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("bad.npy"), std::string::npos) << msg;
    for (std::string_view f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << msg;
  }
}

void expect_values(const NpyArray& a, const std::vector<int64_t>& shape,
                   const std::vector<float>& values) {
  EXPECT_EQ(a.shape, shape);
  ASSERT_EQ(a.values.size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    if (std::isnan(values[i]))
      EXPECT_TRUE(std::isnan(a.values[i])) << i;
    else
      EXPECT_EQ(std::bit_cast<uint32_t>(a.values[i]), std::bit_cast<uint32_t>(values[i]))
          << "at " << i << ": " << a.values[i] << " vs " << values[i];
  }
}

// A fresh directory under CONVKIT_TEST_TMP (environment, else the compile definition), removed at
// the end of the test.
class TempDir {
 public:
  TempDir() {
    fs::path base = fs::temp_directory_path();
#ifdef CONVKIT_TEST_TMP
    base = CONVKIT_TEST_TMP;
#endif
    if (const char* env = std::getenv("CONVKIT_TEST_TMP")) base = env;
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = base / ("npy_" + std::string(info->name()) + "_" + std::to_string(::getpid()));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const {
    return path_;
  }
  std::string file(const std::string& name) const {
    return (path_ / name).string();
  }
  // Every entry of the directory (to prove no temporary file was left behind).
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(path_)) out.push_back(e.path().filename());
    return out;
  }

 private:
  fs::path path_;
};

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// ---- numpy-produced files (np.save / np.lib.format.write_array, numpy 1.24) ---------------------

// np.arange(6, dtype=np.float32).reshape(2, 3)
constexpr const char* kNumpyF4 =
    "934e554d5059010076007b276465736372273a20273c6634272c2027666f727472616e5f6f72646572273a20"
    "46616c73652c20277368617065273a2028322c2033292c207d20202020202020202020202020202020202020"
    "2020202020202020202020202020202020202020202020202020202020202020202020202020200a00000000"
    "0000803f0000004000004040000080400000a040";
// np.asfortranarray((np.arange(6).reshape(2, 3) * 0.5 - 1).astype('>f8'))
constexpr const char* kNumpyF8BigFortran =
    "934e554d5059010076007b276465736372273a20273e6638272c2027666f727472616e5f6f72646572273a20"
    "547275652c20277368617065273a2028322c2033292c207d2020202020202020202020202020202020202020"
    "2020202020202020202020202020202020202020202020202020202020202020202020202020200abff00000"
    "000000003fe0000000000000bfe00000000000003ff000000000000000000000000000003ff8000000000000";
// write_array(f, np.array([-7, 0, 300, 32767], dtype='<i2'), version=(3, 0))
constexpr const char* kNumpyI2V3 =
    "934e554d50590300740000007b276465736372273a20273c6932272c2027666f727472616e5f6f7264657227"
    "3a2046616c73652c20277368617065273a2028342c292c207d20202020202020202020202020202020202020"
    "2020202020202020202020202020202020202020202020202020202020202020202020202020200af9ff0000"
    "2c01ff7f";
// write_array(f, np.array([[True, False], [False, True]]), version=(2, 0))
constexpr const char* kNumpyBoolV2 =
    "934e554d50590200740000007b276465736372273a20277c6231272c2027666f727472616e5f6f7264657227"
    "3a2046616c73652c20277368617065273a2028322c2032292c207d2020202020202020202020202020202020"
    "2020202020202020202020202020202020202020202020202020202020202020202020202020200a01000001";
// np.array([1.5, -65504, 2**-24], dtype='<f2')
constexpr const char* kNumpyF2 =
    "934e554d5059010076007b276465736372273a20273c6632272c2027666f727472616e5f6f72646572273a20"
    "46616c73652c20277368617065273a2028332c292c207d202020202020202020202020202020202020202020"
    "2020202020202020202020202020202020202020202020202020202020202020202020202020200a003efffb"
    "0100";
// np.savez(f, a=np.arange(4, dtype=np.float32).reshape(2, 2), b=np.int64(-5))
constexpr const char* kNumpySavez =
    "504b03041400000000000000210091f4e7db900000009000000005001400612e6e7079010010009000000000"
    "0000009000000000000000934e554d5059010076007b276465736372273a20273c6634272c2027666f727472"
    "616e5f6f72646572273a2046616c73652c20277368617065273a2028322c2032292c207d2020202020202020"
    "2020202020202020202020202020202020202020202020202020202020202020202020202020202020202020"
    "2020202020200a000000000000803f0000004000004040504b030414000000000000002100b5bf19a6880000"
    "008800000005001400622e6e70790100100088000000000000008800000000000000934e554d505901007600"
    "7b276465736372273a20273c6938272c2027666f727472616e5f6f72646572273a2046616c73652c20277368"
    "617065273a2028292c207d202020202020202020202020202020202020202020202020202020202020202020"
    "20202020202020202020202020202020202020202020202020202020200afbffffffffffffff504b01021403"
    "1400000000000000210091f4e7db9000000090000000050000000000000000000000800100000000612e6e70"
    "79504b0102140314000000000000002100b5bf19a688000000880000000500000000000000000000008001c7"
    "000000622e6e7079504b0506000000000200020066000000860100000000";
// np.savez_compressed with the same arrays
constexpr const char* kNumpySavezCompressed =
    "504b03041400000008000000210091f4e7db500000009000000005001400612e6e7079010010009000000000"
    "00000050000000000000009bec17ea1b10c9c850c650ad9e925a9c5ca46ea5a06e9366a2aea3a09e965f5452"
    "9498179f5f94920a12774bcc294e058a17672416a402f91a463a0a469a3a0ab50a64032e063068b007120e40"
    "e40000504b030414000000080000002100b5bf19a6460000008800000005001400622e6e7079010010008800"
    "00000000000046000000000000009bec17ea1b10c9c850c650ad9e925a9c5ca46ea5a06e9369a1aea3a09e96"
    "5f54529498179f5f94920a12774bcc294e058a17672416a402f91a9a3a0ab50a1401aedfff210000504b0102"
    "14031400000008000000210091f4e7db5000000090000000050000000000000000000000800100000000612e"
    "6e7079504b0102140314000000080000002100b5bf19a6460000008800000005000000000000000000000080"
    "0187000000622e6e7079504b0506000000000200020066000000040100000000";

std::string numpy_bytes(const char* hex) {
  const auto b = from_hex(hex);
  return {b.begin(), b.end()};
}

TEST(Npy, ReadsNumpyFloat32) {
  expect_values(parse(numpy_bytes(kNumpyF4)), {2, 3}, {0, 1, 2, 3, 4, 5});
}

TEST(Npy, ReadsNumpyBigEndianFloat64FortranOrder) {
  // (arange(6).reshape(2, 3) * 0.5 - 1): row-major values -1, -0.5, 0, 0.5, 1, 1.5.
  expect_values(parse(numpy_bytes(kNumpyF8BigFortran)), {2, 3}, {-1, -0.5, 0, 0.5, 1, 1.5});
}

TEST(Npy, ReadsNumpyVersions2And3) {
  expect_values(parse(numpy_bytes(kNumpyI2V3)), {4}, {-7, 0, 300, 32767});
  expect_values(parse(numpy_bytes(kNumpyBoolV2)), {2, 2}, {1, 0, 0, 1});
}

TEST(Npy, ReadsNumpyHalf) {
  expect_values(parse(numpy_bytes(kNumpyF2)), {3}, {1.5f, -65504.f, std::ldexp(1.f, -24)});
}

TEST(Npy, EncodesExactlyLikeNumpy) {
  // Our writer reproduces np.save's bytes: same header layout, padding and data.
  const std::vector<float> v = {0, 1, 2, 3, 4, 5};
  EXPECT_EQ(encode_npy({2, 3}, v.data()), numpy_bytes(kNumpyF4));
}

// ---- every dtype and byte order, built by hand
// ---------------------------------------------------

TEST(Npy, EveryIntegerDtypeBothOrders) {
  for (bool big : {false, true}) {
    const char order = big ? '>' : '<';
    const std::string o(1, order);
    expect_values(parse(make_npy(dict(o + "i1", "(4,)"), pack<int8_t>({-128, -1, 0, 127}, big))),
                  {4}, {-128, -1, 0, 127});
    expect_values(
        parse(make_npy(dict(o + "i2", "(4,)"), pack<int16_t>({-32768, -2, 5, 32767}, big))), {4},
        {-32768, -2, 5, 32767});
    expect_values(parse(make_npy(dict(o + "i4", "(3,)"),
                                 pack<int32_t>({-2147483647 - 1, -3, 16777217}, big))),
                  {3}, {-2147483648.f, -3, 16777216.f});  // 2^24 + 1 rounds to nearest even
    expect_values(
        parse(make_npy(dict(o + "i8", "(3,)"),
                       pack<int64_t>({std::numeric_limits<int64_t>::min(), -9, 1LL << 40}, big))),
        {3}, {-9223372036854775808.f, -9, 1099511627776.f});
    expect_values(parse(make_npy(dict(o + "u1", "(3,)"), pack<uint8_t>({0, 7, 255}, big))), {3},
                  {0, 7, 255});
    expect_values(parse(make_npy(dict(o + "u2", "(2,)"), pack<uint16_t>({1, 65535}, big))), {2},
                  {1, 65535});
    expect_values(parse(make_npy(dict(o + "u4", "(2,)"), pack<uint32_t>({3, 4294967295u}, big))),
                  {2}, {3, 4294967296.f});
    expect_values(parse(make_npy(dict(o + "u8", "(2,)"),
                                 pack<uint64_t>({11, std::numeric_limits<uint64_t>::max()}, big))),
                  {2}, {11, 18446744073709551616.f});
  }
}

TEST(Npy, EveryFloatDtypeBothOrders) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (bool big : {false, true}) {
    const std::string o(1, big ? '>' : '<');
    expect_values(
        parse(make_npy(dict(o + "f4", "(5,)"), pack<float>({1.25f, -0.f, inf, 1e-45f, nan}, big))),
        {5}, {1.25f, -0.f, inf, 1e-45f, nan});
    // float64 rounds to the nearest float32; beyond float32's range it becomes inf.
    expect_values(parse(make_npy(dict(o + "f8", "(4,)"),
                                 pack<double>({0.1, -1e300, 3.0000000001, -0.0}, big))),
                  {4}, {0.1f, -inf, 3.f, -0.f});
    // float16 bit patterns: 1, -2, 65504 (max), 2^-24 (smallest subnormal), 2^-14 * 1023/1024
    // (largest subnormal), 2^-14 (smallest normal), inf, -inf, NaN, -0.
    expect_values(parse(make_npy(dict(o + "f2", "(10,)"),
                                 pack<uint16_t>({0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x0400,
                                                 0x7c00, 0xfc00, 0x7e00, 0x8000},
                                                big))),
                  {10},
                  {1, -2, 65504, std::ldexp(1.f, -24), std::ldexp(1023.f, -24),
                   std::ldexp(1.f, -14), inf, -inf, nan, -0.f});
  }
}

TEST(Npy, BoolAndSingleByteOrderMarks) {
  expect_values(parse(make_npy(dict("|b1", "(3,)"), std::string("\x01\x00\x01", 3))), {3},
                {1, 0, 1});
  // numpy writes '|' for single-byte types; '<', '>' and '=' are accepted there too, and a
  // missing order mark means native, as np.dtype('f4') does.
  expect_values(parse(make_npy(dict("|u1", "(1,)"), "\x05")), {1}, {5});
  expect_values(parse(make_npy(dict(">i1", "(1,)"), "\xff")), {1}, {-1});
  expect_values(parse(make_npy(dict("=u1", "(1,)"), "\x09")), {1}, {9});
  expect_values(parse(make_npy(dict("f4", "(1,)"), pack<float>({2.5f}, false))), {1}, {2.5f});
}

TEST(Npy, FortranOrder) {
  // shape (2, 3, 4), value at [i][j][k] = 100 i + 10 j + k, stored column-major (i fastest).
  std::string data;
  for (int k = 0; k < 4; ++k)
    for (int j = 0; j < 3; ++j)
      for (int i = 0; i < 2; ++i) data += pack<float>({100.f * i + 10.f * j + k}, false);
  std::vector<float> expected;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) expected.push_back(100.f * i + 10.f * j + k);
  expect_values(parse(make_npy(dict("<f4", "(2, 3, 4)", true), data)), {2, 3, 4}, expected);
  // Fortran order of a 1-D array, of a scalar and of an empty array changes nothing.
  expect_values(parse(make_npy(dict("<i2", "(3,)", true), pack<int16_t>({1, 2, 3}, false))), {3},
                {1, 2, 3});
  expect_values(parse(make_npy(dict("<i2", "()", true), pack<int16_t>({4}, false))), {}, {4});
  expect_values(parse(make_npy(dict("<f4", "(0, 5)", true), "")), {0, 5}, {});
}

TEST(Npy, ScalarsAndZeroSizeDims) {
  expect_values(parse(make_npy(dict("<f8", "()"), pack<double>({-2.5}, false))), {}, {-2.5f});
  expect_values(parse(make_npy(dict("<f4", "(0,)"), "")), {0}, {});
  expect_values(parse(make_npy(dict("<f4", "(3, 0, 2)"), "")), {3, 0, 2}, {});
  // A zero dimension makes the array empty even beside a dimension too large to allocate.
  expect_values(parse(make_npy(dict("<f4", "(0, 4611686018427387904)"), "")),
                {0, 4611686018427387904}, {});
}

TEST(Npy, HeaderSyntaxVariants) {
  const std::string one = pack<float>({7.f}, false);
  // Any key order, double quotes, no trailing comma, extra whitespace, tabs, Python 2's 3L.
  for (const std::string header :
       {"{'shape': (1,), 'fortran_order': False, 'descr': '<f4'}",
        "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (1,)}",
        "{ 'descr' :'<f4' ,'fortran_order':False,'shape':( 1 , ) , }",
        "{'descr':\t'<f4',\n'fortran_order': False, 'shape': (1L,)}"}) {
    expect_values(parse(make_npy(header, one)), {1}, {7.f});
  }
  // No padding at all and a header without the final newline are still valid literals.
  expect_values(parse(make_npy(dict("<f4", "(1,)"), one, 1, true)), {1}, {7.f});
}

// ---- malformed files ----------------------------------------------------------------------------

TEST(NpyMalformed, BadMagicAndPreamble) {
  expect_error("", {"truncated", "0 bytes"});
  expect_error("\x93NUM", {"truncated"});
  expect_error("PK\x03\x04 not a npy", {"not a .npy file", "\\x93NUMPY"});
  expect_error("\x93NUMPX\x01\x00", {"not a .npy file"});
  expect_error(std::string("\x93NUMPY\x01\x00\x05", 9), {"truncated", "preamble"});
  expect_error(std::string("\x93NUMPY\x02\x00\x05\x00\x00", 11), {"truncated", "preamble"});
  std::string v4 = make_npy(dict("<f4", "()"), pack<float>({1}, false));
  v4[6] = 4;
  expect_error(v4, {"unsupported .npy format version 4.0", "1.0, 2.0 and 3.0"});
  std::string v11 = make_npy(dict("<f4", "()"), pack<float>({1}, false));
  v11[7] = 1;
  expect_error(v11, {"version 1.1"});
}

TEST(NpyMalformed, TruncatedHeader) {
  const std::string full = make_npy(dict("<f4", "(2,)"), pack<float>({1, 2}, false));
  expect_error(full.substr(0, 40), {"truncated header", "announces a 118-byte header"});
  // A header length field far beyond the file (uint32 of version 2.0): no allocation follows.
  std::string huge = make_npy(dict("<f4", "(2,)"), "", 2);
  huge[8] = huge[9] = huge[10] = huge[11] = '\xff';
  expect_error(huge, {"truncated header", "4294967295"});
}

TEST(NpyMalformed, TruncatedAndTrailingData) {
  expect_error(make_npy(dict("<f4", "(2, 3)"), pack<float>({1, 2, 3, 4, 5}, false)),
               {"truncated data", "(2, 3)", "'<f4'", "needs 24 bytes", "only 20"});
  expect_error(make_npy(dict("<f4", "(2, 3)"), pack<float>({1, 2, 3, 4, 5, 6, 7}, false)),
               {"4 unexpected bytes after the data", "needs exactly 24"});
  expect_error(make_npy(dict("<f8", "(3,)"), pack<float>({1, 2, 3}, false)),
               {"shape disagrees with the data size"});
  expect_error(make_npy(dict("<f4", "()"), ""), {"truncated data", "needs 4 bytes"});
}

TEST(NpyMalformed, AbsurdSizes) {
  // A trillion floats promised by a 130-byte file: rejected before anything is allocated.
  expect_error(make_npy(dict("<f4", "(1000000000000,)"), "abcd"),
               {"truncated data", "4000000000000 bytes"});
  expect_error(make_npy(dict("<f4", "(4294967296, 4294967296)"), ""),
               {"absurd shape", "overflows 64 bits"});
  expect_error(make_npy(dict("<f8", "(4611686018427387904,)"), ""),
               {"absurd shape", "byte count overflows"});
  expect_error(make_npy(dict("<f4", "(99999999999999999999,)"), ""), {"out of range"});
  std::string many = "(";
  for (int i = 0; i < 65; ++i) many += "1, ";
  expect_error(make_npy(dict("<f4", many + ")"), pack<float>({1}, false)),
               {"65 dimensions", "at most 64"});
}

TEST(NpyMalformed, UnparsableHeaders) {
  const std::string one = pack<float>({1}, false);
  for (const std::string header : {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,)",
                                   "hello", "{'descr': '<f4' 'fortran_order': False}",
                                   "{'descr': '<f4, 'fortran_order': False, 'shape': (1,)}",
                                   "{'descr': '<f4', 'fortran_order': false, 'shape': (1,)}",
                                   "{'descr': '<f4', 'fortran_order': False, 'shape': (1.0,)}",
                                   "{'descr': '<f4', 'fortran_order': False, 'shape': (0x1,)}",
                                   "{'descr': '<f4', 'fortran_order': False, 'shape': (01,)}",
                                   "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x",
                                   "{descr: '<f4', 'fortran_order': False, 'shape': (1,)}",
                                   "{1: '<f4', 'fortran_order': False, 'shape': (1,)}",
                                   "{'descr': '<f4', 'fortran_order': False, 'shape': (1,,)}",
                                   "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)}}",
                                   "{'descr': '<f4', 'fortran_order': False, 'shape': (1,) + ()}",
                                   "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} # c"})
    expect_error(make_npy(header, one), {"unparsable header", "expected a Python dict"});
  // Deep nesting is refused rather than recursing without bound.
  expect_error(make_npy("{'descr': " + std::string(1000, '[') + std::string(1000, ']') + "}", one),
               {"nesting too deep"});
}

TEST(NpyMalformed, WrongKeysAndValues) {
  const std::string one = pack<float>({1}, false);
  expect_error(make_npy("[1, 2]", one), {"header is a list", "not a dict"});
  expect_error(make_npy("{'descr': '<f4', 'shape': (1,)}", one), {"no 'fortran_order' key"});
  expect_error(make_npy("{'fortran_order': False, 'shape': (1,)}", one), {"no 'descr' key"});
  expect_error(make_npy("{'descr': '<f4', 'fortran_order': False}", one), {"no 'shape' key"});
  expect_error(make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", one),
               {"unexpected header key 'x'"});
  expect_error(
      make_npy("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", one),
      {"duplicate key 'descr'"});
  expect_error(make_npy("{'descr': 4, 'fortran_order': False, 'shape': (1,)}", one),
               {"'descr' is an integer"});
  expect_error(make_npy("{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}", one),
               {"'fortran_order' is an integer", "True or False"});
  expect_error(make_npy(dict("<f4", "[1]"), one), {"'shape' is a list", "tuple"});
  expect_error(make_npy(dict("<f4", "(1)"), one), {"'shape' is an integer"});
  expect_error(make_npy(dict("<f4", "None"), one), {"'shape' is None"});
  expect_error(make_npy(dict("<f4", "(-1,)"), one), {"negative"});
  expect_error(make_npy(dict("<f4", "(True,)"), one), {"non-negative integers", "a bool"});
  expect_error(make_npy(dict("<f4", "((1,),)"), one), {"non-negative integers", "a tuple"});
}

TEST(NpyMalformed, UnsupportedDtypes) {
  const std::string data(16, '\0');
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"<c8", "complex"},   {"<c16", "complex"}, {"|O", "Python objects"},
      {"<U3", "strings"},   {"|S5", "strings"},  {"|V8", "structured"},
      {"<M8[ns]", "dates"}, {"<m8[s]", "dates"}, {"<f16", "extended precision"},
      {"<i3", "'<i3'"},     {"<u16", "'<u16'"},  {"|b2", "'|b2'"},
      {"<x4", "'<x4'"},     {"", "''"},          {"<", "'<'"}};
  for (const auto& [descr, what] : cases)
    expect_error(make_npy(dict(descr, "(1,)"), data), {"unsupported dtype", what, "float16/32/64"});
  expect_error(make_npy("{'descr': [('a', '<f4'), ('b', '<i4')], 'fortran_order': False, "
                        "'shape': (1,)}",
                        data.substr(0, 8)),
               {"structured dtype", "supported dtypes"});
}

// ---- files and atomic saves ---------------------------------------------------------------------

TEST(NpyFile, RoundTripThroughFiles) {
  TempDir dir;
  const std::vector<float> values = {1.5f, -2.f, 0.f, 3.25f, 1e-30f, -7.f};
  for (const std::vector<int64_t>& shape :
       {std::vector<int64_t>{2, 3}, {6}, {1, 2, 1, 3}, {3, 2, 1}}) {
    write_npy_file(dir.file("a.npy"), shape, values.data());
    expect_values(read_npy_file(dir.file("a.npy")), shape, values);
  }
  write_npy_file(dir.file("s.npy"), {}, values.data());
  expect_values(read_npy_file(dir.file("s.npy")), {}, {1.5f});
  write_npy_file(dir.file("e.npy"), {4, 0}, nullptr);
  expect_values(read_npy_file(dir.file("e.npy")), {4, 0}, {});
  // Saving over an existing file replaces it.
  write_npy_file(dir.file("a.npy"), {1}, values.data() + 3);
  expect_values(read_npy_file(dir.file("a.npy")), {1}, {3.25f});
  EXPECT_EQ(dir.entries().size(), 3u);  // a.npy, s.npy, e.npy and no temporary files
}

TEST(NpyFile, LargeFileReadInChunks) {
  // More than one read chunk (1 MiB) of big-endian float64 values, in Fortran order.
  TempDir dir;
  const int64_t rows = 300, cols = 700;  // 1.6 MiB of data
  std::string data;
  data.reserve(static_cast<size_t>(rows * cols * 8));
  for (int64_t c = 0; c < cols; ++c)
    for (int64_t r = 0; r < rows; ++r) data += pack<double>({r * 1000.0 + c}, true);
  write_bytes(dir.file("big.npy"), make_npy(dict(">f8", "(300, 700)", true), data));
  const NpyArray a = read_npy_file(dir.file("big.npy"));
  ASSERT_EQ(a.shape, (std::vector<int64_t>{rows, cols}));
  for (int64_t r = 0; r < rows; r += 37)
    for (int64_t c = 0; c < cols; c += 53)
      ASSERT_EQ(a.values[static_cast<size_t>(r * cols + c)], static_cast<float>(r * 1000 + c));
}

TEST(NpyFile, ReadErrorsNameTheFile) {
  TempDir dir;
  const auto expect_file_error = [](const std::string& path, std::string_view what) {
    try {
      read_npy_file(path);
      ADD_FAILURE() << "no error for " << path;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("load_npy: '" + path + "'"), std::string::npos) << msg;
      EXPECT_NE(msg.find(what), std::string::npos) << msg;
    }
  };
  expect_file_error(dir.file("missing.npy"), "No such file");
  expect_file_error(dir.path().string(), "is a directory");
  write_bytes(dir.file("short.npy"),
              make_npy(dict("<f4", "(1000000000000,)"), pack<float>({1}, false)));
  expect_file_error(dir.file("short.npy"), "truncated data");
  write_bytes(dir.file("trail.npy"), make_npy(dict("<f4", "(1,)"), pack<float>({1, 2}, false)));
  expect_file_error(dir.file("trail.npy"), "unexpected bytes after the data");
  write_bytes(dir.file("hdr.npy"), make_npy(dict("<f4", "(1,)"), "").substr(0, 30));
  expect_file_error(dir.file("hdr.npy"), "truncated header");
  // Headers of 0 and 1 bytes end inside the first 12 bytes read.
  write_bytes(dir.file("h0.npy"), make_npy("", "ab", 1, true));
  expect_file_error(dir.file("h0.npy"), "unparsable header");
  write_bytes(dir.file("h1.npy"), make_npy("{", "ab", 1, true));
  expect_file_error(dir.file("h1.npy"), "unparsable header");
  // The smallest valid file: a 2-byte header '{}' is parsed, then reported for its missing keys.
  write_bytes(dir.file("h2.npy"), make_npy("{}", "", 1, true));
  expect_file_error(dir.file("h2.npy"), "no 'descr' key");
  write_bytes(dir.file("empty.npy"), "");
  expect_file_error(dir.file("empty.npy"), "truncated");
}

TEST(NpyFile, FailedSavesLeaveNothingBehind) {
  TempDir dir;
  const float v = 1.f;
  // Into a directory that does not exist.
  EXPECT_THROW(write_npy_file(dir.file("nope/x.npy"), {1}, &v), Error);
  try {
    write_npy_file(dir.file("nope/x.npy"), {1}, &v);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("save_npy: cannot write '" + dir.file("nope/x.npy")),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("No such file or directory"), std::string::npos);
  }
  // Onto an existing non-empty directory: the temporary file is written, then rename fails and
  // the temporary file must be removed.
  fs::create_directories(dir.path() / "taken.npy" / "inside");
  EXPECT_THROW(write_npy_file(dir.file("taken.npy"), {1}, &v), Error);
  // A path that names no file.
  EXPECT_THROW(write_npy_file(dir.file("sub") + "/", {1}, &v), Error);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"taken.npy"});
  // A read-only directory (skipped as root, which may write anywhere).
  if (::geteuid() != 0) {
    fs::create_directories(dir.path() / "ro");
    fs::permissions(dir.path() / "ro", fs::perms::owner_read | fs::perms::owner_exec);
    EXPECT_THROW(write_npy_file(dir.file("ro/x.npy"), {1}, &v), Error);
    fs::permissions(dir.path() / "ro", fs::perms::owner_all);
    EXPECT_TRUE(fs::is_empty(dir.path() / "ro"));
  }
}

// ---- .npz ---------------------------------------------------------------------------------------

// CRC-32 (ZIP's, reflected polynomial 0xEDB88320) computed bit by bit.
uint32_t crc32_bitwise(const std::string& bytes) {
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : bytes) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

std::map<std::string, NpyArray> parse_z(const std::string& bytes) {
  return parse_npz(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "t.npz");
}

void expect_npz_error(const std::string& bytes, std::string_view what) {
  try {
    parse_z(bytes);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("t.npz"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
  }
}

TEST(Npz, ReadsNumpySavez) {
  const auto arrays = parse_z(numpy_bytes(kNumpySavez));
  ASSERT_EQ(arrays.size(), 2u);
  expect_values(arrays.at("a"), {2, 2}, {0, 1, 2, 3});
  expect_values(arrays.at("b"), {}, {-5});
}

TEST(Npz, ReadsNumpySavezCompressedWhenBuiltWithZlib) {
  if (npz_deflate_supported()) {
    const auto arrays = parse_z(numpy_bytes(kNumpySavezCompressed));
    expect_values(arrays.at("a"), {2, 2}, {0, 1, 2, 3});
    expect_values(arrays.at("b"), {}, {-5});
  } else {
    expect_npz_error(numpy_bytes(kNumpySavezCompressed), "built with zlib");
  }
}

TEST(Npz, RoundTripAndFiles) {
  TempDir dir;
  std::map<std::string, NpyArray> arrays;
  arrays["weight"] = {{2, 1, 2}, {1, 2, 3, 4}};
  arrays["bias"] = {{}, {0.5f}};
  arrays["empty"] = {{0, 3}, {}};
  write_npz_file(dir.file("m.npz"), arrays);
  const auto back = read_npz_file(dir.file("m.npz"));
  ASSERT_EQ(back.size(), 3u);
  for (const auto& [key, a] : arrays) expect_values(back.at(key), a.shape, a.values);
  EXPECT_THROW(write_npz_file(dir.file("missing/m.npz"), arrays), Error);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"m.npz"});
  EXPECT_THROW(encode_npz({{"", {{1}, {1.f}}}}), Error);
  EXPECT_THROW(encode_npz({{"x", {{2}, {1.f}}}}), Error);  // shape and values disagree
}

TEST(Npz, Malformed) {
  const std::string good = numpy_bytes(kNumpySavez);
  expect_npz_error("", "too short");
  expect_npz_error(std::string(100, 'x'), "no end-of-central-directory");
  expect_npz_error(good.substr(0, good.size() - 30), "no end-of-central-directory");
  std::string bad_crc = good;
  bad_crc[140] ^= 0x01;  // a data byte of member a.npy
  expect_npz_error(bad_crc, "CRC-32 mismatch");
  // Central directory offset pointing past the end.
  std::string bad_offset = good;
  bad_offset[good.size() - 3] = '\x7f';  // the high byte of the offset
  expect_npz_error(bad_offset, "central directory out of bounds");
  // A member that is not a .npy (rename "a.npy" to "a.txt" in the central directory).
  std::string not_npy = good;
  const size_t central_name = not_npy.rfind("a.npy");
  not_npy.replace(central_name, 5, "a.txt");
  expect_npz_error(not_npy, "not a .npy member");
  // A member holding a malformed .npy (with a matching CRC) is reported with the member's name.
  const std::string npy = make_npy(dict("<c8", "(1,)"), std::string(4, '\0'));
  std::string zip = encode_npz({{"z", {{1}, {1.f}}}});
  const size_t at = zip.find("\x93NUMPY");
  ASSERT_EQ(zip.substr(at, npy.size()).size(), npy.size());
  zip.replace(at, npy.size(), npy);  // same length as the original: 128 + 4 bytes
  const std::string crc = pack<uint32_t>({crc32_bitwise(npy)}, false);
  zip.replace(14, 4, crc);                           // in the local header
  zip.replace(zip.find("PK\x01\x02") + 16, 4, crc);  // in the central directory
  expect_npz_error(zip, "member 'z.npy': unsupported dtype '<c8'");
}

// ---- the public Tensor API ----------------------------------------------------------------------

TEST(NpyTensor, SaveLoadViewsAndDtypes) {
  TempDir dir;
  // A transposed (non-contiguous) view is saved in its logical C order.
  const Tensor x = from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  save_npy(dir.file("t.npy"), x.t());
  const Tensor y = load_npy(dir.file("t.npy"));
  EXPECT_EQ(y.shape(), (Shape{3, 2}));
  EXPECT_EQ(y.to_vector(), (std::vector<float>{1, 4, 2, 5, 3, 6}));
  // A numpy float64 Fortran-order file becomes a float32 C-order tensor.
  write_bytes(dir.file("np.npy"), numpy_bytes(kNumpyF8BigFortran));
  EXPECT_EQ(load_npy(dir.file("np.npy")).to_vector(),
            (std::vector<float>{-1, -0.5, 0, 0.5, 1, 1.5}));
  // Scalars and empty tensors.
  save_npy(dir.file("s.npy"), from_vector({4.f}, {}));
  EXPECT_EQ(load_npy(dir.file("s.npy")).dim(), 0);
  EXPECT_EQ(load_npy(dir.file("s.npy")).item(), 4.f);
  save_npy(dir.file("e.npy"), from_vector({}, {2, 0, 3}));
  EXPECT_EQ(load_npy(dir.file("e.npy")).shape(), (Shape{2, 0, 3}));
  EXPECT_THROW(save_npy(dir.file("u.npy"), Tensor()), Error);
  EXPECT_THROW(save_npy(dir.file("no/dir.npy"), x), Error);
  EXPECT_FALSE(fs::exists(dir.path() / "u.npy"));
}

TEST(NpyTensor, NpzOfTensors) {
  TempDir dir;
  save_npz(dir.file("m.npz"),
           {{"w", from_vector({1, 2, 3, 4}, {2, 2}).t()}, {"b", from_vector({9}, {1})}});
  const auto back = load_npz(dir.file("m.npz"));
  EXPECT_EQ(back.at("w").to_vector(), (std::vector<float>{1, 3, 2, 4}));
  EXPECT_EQ(back.at("b").shape(), (Shape{1}));
  EXPECT_THROW(save_npz(dir.file("x.npz"), {{"w", Tensor()}}), Error);
  write_bytes(dir.file("np.npz"), numpy_bytes(kNumpySavez));
  EXPECT_EQ(load_npz(dir.file("np.npz")).at("a").to_vector(), (std::vector<float>{0, 1, 2, 3}));
}

}  // namespace
}  // namespace convkit::io
