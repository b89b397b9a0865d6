// PNG and JPEG through convkit's reader and writer.
//
// Independence: test files are written here with libpng and libjpeg directly (not through convkit),
// from integer samples whose expected floats are sample / (2^depth - 1); convkit's PNGs are decoded
// here with libpng directly. JPEG is lossy: convkit's decode must equal libjpeg's own decode of the
// same bytes exactly, and the original within the stated tolerance (mean |error| < 0.01, max < 0.1
// at quality 95 on a smooth picture).
#include <convkit/error.h>
#include <convkit/image.h>
#include <convkit/tensor.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <jpeglib.h>
#include <png.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "io/image_codec.h"

namespace convkit {
namespace {

// ---- scratch files ----

// $CONVKIT_TEST_TMP/image_test_<pid>, removed when the test binary exits.
std::string scratch_dir() {
  const char* env = std::getenv("CONVKIT_TEST_TMP");
#ifdef CONVKIT_TEST_TMP
  const std::string base = env ? env : CONVKIT_TEST_TMP;
#else
  const std::string base = env ? env : "/tmp";
#endif
  struct Scratch {
    std::filesystem::path dir;
    ~Scratch() {
      std::error_code ignored;
      std::filesystem::remove_all(dir, ignored);
    }
  };
  static const Scratch scratch{std::filesystem::path(base) /
                               ("image_test_" + std::to_string(::getpid()))};
  std::filesystem::create_directories(scratch.dir);
  return scratch.dir.string();
}

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> names;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d))
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0)
        names.push_back(e->d_name);
    ::closedir(d);
  }
  return names;
}

std::vector<uint8_t> slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void spit(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

// ---- an independent PNG writer and reader (libpng directly) ----

struct PngSpec {
  int width = 0, height = 0, bit_depth = 8, color_type = PNG_COLOR_TYPE_GRAY;
  bool interlace = false;
  std::vector<png_color> palette;
  std::vector<png_byte> palette_alpha;  // tRNS for palettes
  bool gray_trns = false;
  png_color_16 trns_color{};      // tRNS for gray / RGB
  std::vector<uint16_t> samples;  // interleaved (H, W, channels-in-file), unpacked
};

int file_channels(int color_type) {
  switch (color_type) {
    case PNG_COLOR_TYPE_GRAY:
    case PNG_COLOR_TYPE_PALETTE:
      return 1;
    case PNG_COLOR_TYPE_GRAY_ALPHA:
      return 2;
    case PNG_COLOR_TYPE_RGB:
      return 3;
    default:
      return 4;
  }
}

// Packs samples (1, 2, 4, 8 or 16 bits, big-endian) into PNG rows.
std::vector<png_byte> pack_rows(const PngSpec& s) {
  const int ch = file_channels(s.color_type);
  const size_t row_bytes = (static_cast<size_t>(s.width) * ch * s.bit_depth + 7) / 8;
  std::vector<png_byte> out(row_bytes * s.height, 0);
  for (int y = 0; y < s.height; ++y) {
    png_byte* row = out.data() + row_bytes * y;
    for (int i = 0; i < s.width * ch; ++i) {
      const uint16_t v = s.samples[static_cast<size_t>(y) * s.width * ch + i];
      if (s.bit_depth == 16) {
        row[2 * i] = static_cast<png_byte>(v >> 8);
        row[2 * i + 1] = static_cast<png_byte>(v & 0xff);
      } else if (s.bit_depth == 8) {
        row[i] = static_cast<png_byte>(v);
      } else {
        const int bit = i * s.bit_depth, shift = 8 - s.bit_depth - bit % 8;
        row[bit / 8] = static_cast<png_byte>(row[bit / 8] | (v << shift));
      }
    }
  }
  return out;
}

struct PngFile {
  FILE* f = nullptr;
  png_structp png = nullptr;
  png_infop info = nullptr;
  std::vector<png_bytep> rows;
};

// Plain locals only: libpng longjmps here on error.
bool write_png_with_libpng(PngFile* pf, const PngSpec* s) {
  pf->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  pf->info = png_create_info_struct(pf->png);
  if (setjmp(png_jmpbuf(pf->png))) {
    png_destroy_write_struct(&pf->png, &pf->info);
    return false;
  }
  png_init_io(pf->png, pf->f);
  png_set_IHDR(pf->png, pf->info, s->width, s->height, s->bit_depth, s->color_type,
               s->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (!s->palette.empty())
    png_set_PLTE(pf->png, pf->info, s->palette.data(), static_cast<int>(s->palette.size()));
  if (!s->palette_alpha.empty())
    png_set_tRNS(pf->png, pf->info, s->palette_alpha.data(),
                 static_cast<int>(s->palette_alpha.size()), nullptr);
  if (s->gray_trns) png_set_tRNS(pf->png, pf->info, nullptr, 0, &s->trns_color);
  png_write_info(pf->png, pf->info);
  png_write_image(pf->png, pf->rows.data());
  png_write_end(pf->png, nullptr);
  png_destroy_write_struct(&pf->png, &pf->info);
  return true;
}

void write_test_png(const std::string& path, const PngSpec& s) {
  std::vector<png_byte> packed = pack_rows(s);
  PngFile pf;
  const size_t row_bytes = packed.size() / s.height;
  for (int y = 0; y < s.height; ++y) pf.rows.push_back(packed.data() + row_bytes * y);
  pf.f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(pf.f, nullptr);
  const bool ok = write_png_with_libpng(&pf, &s);
  std::fclose(pf.f);
  ASSERT_TRUE(ok) << "libpng could not write the test file " << path;
}

// Decodes a PNG with libpng's simplified API into 16-bit-per-sample values as stored (for 8-bit
// files the values are 0..255). Returns channels via *channels.
struct Decoded {
  int channels = 0, width = 0, height = 0, bit_depth = 0;
  std::vector<uint16_t> samples;  // (H, W, C)
};

Decoded read_png_with_libpng(const std::string& path) {
  Decoded d;
  FILE* f = std::fopen(path.c_str(), "rb");
  EXPECT_NE(f, nullptr);
  if (!f) return d;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  png_init_io(png, f);
  // No error recovery here: these files were just written by convkit and must be valid (a libpng
  // error aborts the test binary, which fails the test loudly).
  png_read_png(png, info, PNG_TRANSFORM_IDENTITY, nullptr);
  d.width = static_cast<int>(png_get_image_width(png, info));
  d.height = static_cast<int>(png_get_image_height(png, info));
  d.bit_depth = png_get_bit_depth(png, info);
  d.channels = png_get_channels(png, info);
  png_bytepp rows = png_get_rows(png, info);
  for (int y = 0; y < d.height; ++y)
    for (int i = 0; i < d.width * d.channels; ++i)
      d.samples.push_back(d.bit_depth == 16
                              ? static_cast<uint16_t>((rows[y][2 * i] << 8) | rows[y][2 * i + 1])
                              : rows[y][i]);
  png_destroy_read_struct(&png, &info, nullptr);
  std::fclose(f);
  return d;
}

// ---- an independent JPEG writer and decoder (libjpeg directly) ----

struct JpegError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
};

void jpeg_test_error_exit(j_common_ptr cinfo) {
  std::longjmp(reinterpret_cast<JpegError*>(cinfo->err)->jump, 1);
}

struct JpegOut {
  jpeg_compress_struct cinfo{};
  JpegError err{};
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
};

// Encodes interleaved 8-bit samples (H, W, components) with libjpeg; plain locals only.
bool encode_jpeg_run(JpegOut* o, const uint8_t* samples, int width, int height, int components,
                     J_COLOR_SPACE space, int quality, bool progressive) {
  o->cinfo.err = jpeg_std_error(&o->err.mgr);
  o->err.mgr.error_exit = jpeg_test_error_exit;
  if (setjmp(o->err.jump)) {
    jpeg_destroy_compress(&o->cinfo);
    return false;
  }
  jpeg_create_compress(&o->cinfo);
  jpeg_mem_dest(&o->cinfo, &o->buffer, &o->size);
  o->cinfo.image_width = width;
  o->cinfo.image_height = height;
  o->cinfo.input_components = components;
  o->cinfo.in_color_space = space;
  jpeg_set_defaults(&o->cinfo);
  jpeg_set_quality(&o->cinfo, quality, TRUE);
  if (progressive) jpeg_simple_progression(&o->cinfo);
  jpeg_start_compress(&o->cinfo, TRUE);
  while (o->cinfo.next_scanline < o->cinfo.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(samples) +
                   static_cast<size_t>(o->cinfo.next_scanline) * width * components;
    jpeg_write_scanlines(&o->cinfo, &row, 1);
  }
  jpeg_finish_compress(&o->cinfo);
  jpeg_destroy_compress(&o->cinfo);
  return true;
}

std::vector<uint8_t> encode_jpeg(const std::vector<uint8_t>& samples, int width, int height,
                                 int components, J_COLOR_SPACE space, int quality = 95,
                                 bool progressive = false) {
  JpegOut o;
  const bool ok =
      encode_jpeg_run(&o, samples.data(), width, height, components, space, quality, progressive);
  std::vector<uint8_t> bytes(o.buffer, o.buffer + o.size);
  std::free(o.buffer);
  EXPECT_TRUE(ok) << "libjpeg could not encode the test picture";
  return bytes;
}

// libjpeg's own decode of `bytes` to interleaved samples (gray stays gray, the rest RGB).
std::vector<uint8_t> decode_jpeg_with_libjpeg(const std::vector<uint8_t>& bytes, int* components) {
  jpeg_decompress_struct cinfo{};
  jpeg_error_mgr err{};
  cinfo.err = jpeg_std_error(&err);  // valid files only; errors would exit
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, bytes.data(), bytes.size());
  jpeg_read_header(&cinfo, TRUE);
  cinfo.out_color_space = cinfo.jpeg_color_space == JCS_GRAYSCALE ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress(&cinfo);
  *components = cinfo.output_components;
  const size_t row = static_cast<size_t>(cinfo.output_width) * cinfo.output_components;
  std::vector<uint8_t> out(row * cinfo.output_height);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW r = out.data() + row * cinfo.output_scanline;
    jpeg_read_scanlines(&cinfo, &r, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return out;
}

// A smooth picture (JPEG's friend): gradients and a soft blob, interleaved 8-bit (H, W, C).
std::vector<uint8_t> smooth_picture(int width, int height, int channels) {
  std::vector<uint8_t> out(static_cast<size_t>(width) * height * channels);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      for (int c = 0; c < channels; ++c) {
        const double u = x / double(width), v = y / double(height);
        const double blob = std::exp(-((u - 0.5) * (u - 0.5) + (v - 0.4) * (v - 0.4)) * 8.0);
        const double val = 0.15 + 0.3 * u * (c + 1) / channels + 0.2 * v + 0.3 * blob;
        out[(static_cast<size_t>(y) * width + x) * channels + c] =
            static_cast<uint8_t>(std::lround(255 * std::min(1.0, val)));
      }
  return out;
}

// Planar floats of a decoded image at (c, y, x).
float at(const io::RawImage& img, int64_t c, int64_t y, int64_t x) {
  return img.data[(c * img.height + y) * img.width + x];
}

// ============================== PNG reading ==============================

class PngReadTest : public testing::Test {
 protected:
  std::string dir = scratch_dir();
  std::mt19937 rng{1234};

  // Random samples for a file of the given kind; then read it with convkit and compare each
  // sample to `expect(c, sample_index...)`.
  PngSpec random_spec(int color_type, int bit_depth, int width = 7, int height = 5) {
    PngSpec s;
    s.width = width;
    s.height = height;
    s.color_type = color_type;
    s.bit_depth = bit_depth;
    const int ch = file_channels(color_type);
    const int top = color_type == PNG_COLOR_TYPE_PALETTE ? 0 : (1 << bit_depth) - 1;
    std::uniform_int_distribution<int> pick(0, top);
    s.samples.resize(static_cast<size_t>(width) * height * ch);
    for (auto& v : s.samples) v = static_cast<uint16_t>(pick(rng));
    // Make sure the extremes occur.
    s.samples[0] = 0;
    s.samples.back() = static_cast<uint16_t>(top);
    return s;
  }
};

TEST_F(PngReadTest, EveryDepthAndColorTypeRoundTripsExactly) {
  struct Case {
    int color_type, bit_depth, channels;
  };
  const Case cases[] = {
      {PNG_COLOR_TYPE_GRAY, 1, 1},        {PNG_COLOR_TYPE_GRAY, 2, 1},
      {PNG_COLOR_TYPE_GRAY, 4, 1},        {PNG_COLOR_TYPE_GRAY, 8, 1},
      {PNG_COLOR_TYPE_GRAY, 16, 1},       {PNG_COLOR_TYPE_GRAY_ALPHA, 8, 2},
      {PNG_COLOR_TYPE_GRAY_ALPHA, 16, 2}, {PNG_COLOR_TYPE_RGB, 8, 3},
      {PNG_COLOR_TYPE_RGB, 16, 3},        {PNG_COLOR_TYPE_RGB_ALPHA, 8, 4},
      {PNG_COLOR_TYPE_RGB_ALPHA, 16, 4},
  };
  for (const Case& k : cases)
    for (bool interlace : {false, true}) {
      SCOPED_TRACE("color type " + std::to_string(k.color_type) + ", depth " +
                   std::to_string(k.bit_depth) + (interlace ? ", interlaced" : ""));
      PngSpec s = random_spec(k.color_type, k.bit_depth, 11, 9);
      s.interlace = interlace;
      const std::string path = dir + "/t.png";
      write_test_png(path, s);
      const io::RawImage img = io::read_image_file(path);
      ASSERT_EQ(img.channels, k.channels);
      ASSERT_EQ(img.height, 9);
      ASSERT_EQ(img.width, 11);
      EXPECT_EQ(img.bit_depth, k.bit_depth == 16 ? 16 : 8);
      const double top = (1 << k.bit_depth) - 1;
      for (int y = 0; y < 9; ++y)
        for (int x = 0; x < 11; ++x)
          for (int c = 0; c < k.channels; ++c) {
            const double want = s.samples[(static_cast<size_t>(y) * 11 + x) * k.channels + c] / top;
            ASSERT_NEAR(at(img, c, y, x), want, 1e-6) << "at c" << c << " y" << y << " x" << x;
          }
    }
}

TEST_F(PngReadTest, PalettesExpandToRgbAndTransparencyToAlpha) {
  for (int depth : {1, 2, 4, 8})
    for (bool with_alpha : {false, true}) {
      SCOPED_TRACE("palette depth " + std::to_string(depth) + (with_alpha ? " with tRNS" : ""));
      const int entries = 1 << depth;
      PngSpec s = random_spec(PNG_COLOR_TYPE_PALETTE, depth, 6, 4);
      std::uniform_int_distribution<int> byte(0, 255), index(0, entries - 1);
      for (auto& v : s.samples) v = static_cast<uint16_t>(index(rng));
      for (int i = 0; i < entries; ++i)
        s.palette.push_back({static_cast<png_byte>(byte(rng)), static_cast<png_byte>(byte(rng)),
                             static_cast<png_byte>(byte(rng))});
      if (with_alpha)
        for (int i = 0; i < entries; ++i)
          s.palette_alpha.push_back(static_cast<png_byte>(byte(rng)));
      const std::string path = dir + "/p.png";
      write_test_png(path, s);
      const io::RawImage img = io::read_image_file(path);
      ASSERT_EQ(img.channels, with_alpha ? 4 : 3);
      for (int y = 0; y < 4; ++y)
        for (int x = 0; x < 6; ++x) {
          const int i = s.samples[static_cast<size_t>(y) * 6 + x];
          EXPECT_NEAR(at(img, 0, y, x), s.palette[i].red / 255.0, 1e-6);
          EXPECT_NEAR(at(img, 1, y, x), s.palette[i].green / 255.0, 1e-6);
          EXPECT_NEAR(at(img, 2, y, x), s.palette[i].blue / 255.0, 1e-6);
          if (with_alpha) {
            EXPECT_NEAR(at(img, 3, y, x), s.palette_alpha[i] / 255.0, 1e-6);
          }
        }
    }
}

TEST_F(PngReadTest, GrayAndRgbTransparencyKeyBecomesAlpha) {
  // Gray 8-bit with tRNS gray = 7: pixels equal to 7 are transparent, others opaque.
  PngSpec s = random_spec(PNG_COLOR_TYPE_GRAY, 8, 5, 3);
  s.samples[4] = 7;
  s.gray_trns = true;
  s.trns_color.gray = 7;
  const std::string path = dir + "/g.png";
  write_test_png(path, s);
  const io::RawImage img = io::read_image_file(path);
  ASSERT_EQ(img.channels, 2);
  for (int i = 0; i < 15; ++i) {
    EXPECT_NEAR(img.data[i], s.samples[i] / 255.0, 1e-6);
    EXPECT_EQ(img.data[15 + i], s.samples[i] == 7 ? 0.f : 1.f);
  }
  // RGB 16-bit with a colour key.
  PngSpec r = random_spec(PNG_COLOR_TYPE_RGB, 16, 2, 2);
  r.gray_trns = true;
  r.trns_color.red = r.samples[3];
  r.trns_color.green = r.samples[4];
  r.trns_color.blue = r.samples[5];
  write_test_png(path, r);
  const io::RawImage rgba = io::read_image_file(path);
  ASSERT_EQ(rgba.channels, 4);
  EXPECT_EQ(at(rgba, 3, 0, 1), 0.f);  // pixel 1 holds the key
  EXPECT_EQ(at(rgba, 3, 0, 0), r.samples[0] == r.samples[3] && r.samples[1] == r.samples[4] &&
                                       r.samples[2] == r.samples[5]
                                   ? 0.f
                                   : 1.f);
  EXPECT_NEAR(at(rgba, 0, 1, 1), r.samples[9] / 65535.0, 1e-7);
}

// ============================== PNG writing ==============================

TEST(PngWrite, EveryChannelCountAndDepthDecodesToTheRoundedLevels) {
  const std::string dir = scratch_dir();
  std::mt19937 rng(99);
  std::uniform_real_distribution<float> u(-0.2f, 1.2f);  // out-of-range values get clamped
  for (int64_t C = 1; C <= 4; ++C)
    for (int depth : {8, 16}) {
      SCOPED_TRACE("C " + std::to_string(C) + ", depth " + std::to_string(depth));
      const int64_t H = 5, W = 13;
      std::vector<float> values(static_cast<size_t>(C * H * W));
      for (auto& v : values) v = u(rng);
      values[1] = std::nanf("");
      const Tensor t = from_vector(values, {C, H, W});
      const std::string path = dir + "/w.png";
      write_png(path, t, depth);
      const Decoded d = read_png_with_libpng(path);
      ASSERT_EQ(d.channels, C);
      ASSERT_EQ(d.bit_depth, depth);
      ASSERT_EQ(d.width, W);
      ASSERT_EQ(d.height, H);
      const double top = depth == 8 ? 255 : 65535;
      for (int64_t c = 0; c < C; ++c)
        for (int64_t p = 0; p < H * W; ++p) {
          const float v = values[c * H * W + p];
          const double clamped = std::isnan(v) ? 0.0 : std::min(1.0, std::max(0.0, double(v)));
          ASSERT_EQ(d.samples[p * C + c], std::lround(clamped * top)) << "c" << c << " p" << p;
        }
      // And convkit reads back exactly the levels it wrote.
      const Tensor back = read_image(path);
      ASSERT_EQ(back.shape(), (Shape{C, H, W}));
      for (int64_t i = 0; i < C * H * W; ++i) {
        const float v = values[i];
        const double clamped = std::isnan(v) ? 0.0 : std::min(1.0, std::max(0.0, double(v)));
        ASSERT_NEAR(back.data_ptr()[i], std::lround(clamped * top) / top, 1e-6);
      }
    }
}

TEST(PngWrite, TwoDimensionalTensorIsGray) {
  const std::string path = scratch_dir() + "/hw.png";
  write_png(path, tensor({{0.f, 1.f, 0.5f}, {0.25f, 0.75f, 1.f}}));
  const Decoded d = read_png_with_libpng(path);
  ASSERT_EQ(d.channels, 1);
  EXPECT_EQ(d.samples, (std::vector<uint16_t>{0, 255, 128, 64, 191, 255}));
}

TEST(PngWrite, FailuresLeaveNoFileBehind) {
  const std::string dir = scratch_dir() + "/atomic";
  ::mkdir(dir.c_str(), 0777);
  const std::string path = dir + "/keep.png";
  write_png(path, zeros({1, 2, 2}));
  const auto before = slurp(path);
  // Bad channel count, bad depth, bad rank: errors name the problem; the old file is untouched.
  EXPECT_THROW(write_png(path, zeros({5, 2, 2})), Error);
  EXPECT_THROW(write_png(path, zeros({1, 2, 2}), 12), Error);
  EXPECT_THROW(write_png(path, zeros({1, 1, 2, 2})), Error);
  EXPECT_EQ(slurp(path), before);
  // A missing directory: no file and no temporary left anywhere.
  try {
    write_png(dir + "/missing/x.png", zeros({1, 2, 2}));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing/x.png"), std::string::npos) << e.what();
  }
  // The target is a directory: rename fails and the temporary is removed.
  ::mkdir((dir + "/adir").c_str(), 0777);
  EXPECT_THROW(write_png(dir + "/adir", zeros({1, 2, 2})), Error);
  const auto names = list_dir(dir);
  EXPECT_EQ(names.size(), 2u) << "leftover temporary files";
}

// ============================== JPEG ==============================

TEST(JpegRead, GrayRgbAndProgressiveMatchLibjpegAndTheOriginal) {
  const std::string dir = scratch_dir();
  struct Case {
    int components;
    J_COLOR_SPACE space;
    bool progressive;
  };
  for (const Case& k :
       {Case{1, JCS_GRAYSCALE, false}, Case{3, JCS_RGB, false}, Case{3, JCS_RGB, true}}) {
    SCOPED_TRACE("components " + std::to_string(k.components) +
                 (k.progressive ? " progressive" : ""));
    const int W = 40, H = 24;
    const auto original = smooth_picture(W, H, k.components);
    const auto bytes = encode_jpeg(original, W, H, k.components, k.space, 95, k.progressive);
    const std::string path = dir + "/j.jpeg";
    spit(path, bytes);
    const Tensor img = read_image(path);
    ASSERT_EQ(img.shape(), (Shape{k.components, H, W}));
    int comps = 0;
    const auto reference = decode_jpeg_with_libjpeg(bytes, &comps);
    ASSERT_EQ(comps, k.components);
    double sum_err = 0, max_err = 0;
    const float* p = img.data_ptr();
    for (int c = 0; c < k.components; ++c)
      for (int i = 0; i < H * W; ++i) {
        ASSERT_EQ(p[c * H * W + i], reference[i * k.components + c] / 255.f);
        const double e = std::fabs(p[c * H * W + i] - original[i * k.components + c] / 255.0);
        sum_err += e;
        max_err = std::max(max_err, e);
      }
    EXPECT_LT(sum_err / (H * W * k.components), 0.01);
    EXPECT_LT(max_err, 0.1);
  }
}

TEST(JpegRead, CmykBecomesRgb) {
  // Adobe-style inverted CMYK: stored c = 1 - ink. A flat colour: stored (c, m, y, k) =
  // (255, 128, 0, 200) -> R = 255 * 200 / 255^2, G = 128 * 200 / 255^2, B = 0.
  const int W = 16, H = 16;
  std::vector<uint8_t> cmyk;
  for (int i = 0; i < W * H; ++i) cmyk.insert(cmyk.end(), {255, 128, 0, 200});
  const std::string path = scratch_dir() + "/cmyk.jpg";
  spit(path, encode_jpeg(cmyk, W, H, 4, JCS_CMYK, 100));
  const Tensor img = read_image(path);
  ASSERT_EQ(img.shape(), (Shape{3, H, W}));
  EXPECT_NEAR(img.at({0, 8, 8}), 255.0 * 200 / (255.0 * 255), 0.02);
  EXPECT_NEAR(img.at({1, 8, 8}), 128.0 * 200 / (255.0 * 255), 0.02);
  EXPECT_NEAR(img.at({2, 8, 8}), 0.0, 0.02);
}

// ============================== bad input ==============================

// PNG's CRC-32 (ISO 3309, reflected polynomial 0xEDB88320), bit by bit.
uint32_t crc32_of(const uint8_t* p, size_t n) {
  uint32_t crc = 0xffffffffu;
  for (size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  return crc ^ 0xffffffffu;
}

class BadImageTest : public testing::Test {
 protected:
  std::string dir = scratch_dir();

  // Expects read_image(path) to throw a convkit::Error mentioning the path and `what`.
  void expect_error(const std::string& path, const std::string& what) {
    try {
      read_image(path);
      ADD_FAILURE() << "no error for " << path;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(path), std::string::npos) << msg;
      EXPECT_NE(msg.find(what), std::string::npos) << "expected '" << what << "' in: " << msg;
    }
  }

  std::vector<uint8_t> valid_png() {
    PngSpec s;
    s.width = 32;
    s.height = 32;
    s.color_type = PNG_COLOR_TYPE_RGB;
    std::mt19937 rng(5);  // noise compresses badly, so the IDAT is long
    for (int i = 0; i < 32 * 32 * 3; ++i) s.samples.push_back(static_cast<uint16_t>(rng() & 255));
    const std::string path = dir + "/valid.png";
    write_test_png(path, s);
    return slurp(path);
  }
};

TEST_F(BadImageTest, MissingEmptyAndDirectory) {
  expect_error(dir + "/nope.png", "No such file");
  spit(dir + "/empty.png", {});
  expect_error(dir + "/empty.png", "empty");
  expect_error(dir, "directory");
}

TEST_F(BadImageTest, TruncatedPngAtEveryStage) {
  const auto bytes = valid_png();
  // Inside the signature, inside IHDR, inside IDAT, and just before IEND.
  for (size_t cut : {size_t{5}, size_t{20}, bytes.size() / 2, bytes.size() - 12}) {
    SCOPED_TRACE("cut at " + std::to_string(cut) + " of " + std::to_string(bytes.size()));
    const std::string path = dir + "/cut.png";
    spit(path, std::vector<uint8_t>(bytes.begin(), bytes.begin() + static_cast<long>(cut)));
    expect_error(path, cut < 8 ? "not a PNG or JPEG" : "truncated");
  }
}

TEST_F(BadImageTest, CorruptPngData) {
  auto bytes = valid_png();
  bytes[bytes.size() / 2] ^= 0x55;  // inside IDAT: the CRC no longer matches
  const std::string path = dir + "/crc.png";
  spit(path, bytes);
  expect_error(path, "cannot read PNG");
}

TEST_F(BadImageTest, TruncatedAndCorruptJpeg) {
  const auto bytes = encode_jpeg(smooth_picture(64, 48, 3), 64, 48, 3, JCS_RGB);
  const std::string path = dir + "/cut.jpg";
  spit(path,
       std::vector<uint8_t>(bytes.begin(), bytes.begin() + static_cast<long>(bytes.size() / 2)));
  expect_error(path, "truncated");
  spit(path, std::vector<uint8_t>(bytes.begin(), bytes.begin() + 40));  // inside the headers
  expect_error(path, "cannot read JPEG");
  // 12-bit samples (SOF0's precision byte): this libjpeg-turbo decodes 8-bit JPEGs only.
  auto bad = bytes;
  size_t sof = 2;
  while (sof + 4 < bad.size() && !(bad[sof] == 0xff && bad[sof + 1] == 0xc0)) ++sof;
  ASSERT_LT(sof + 4, bad.size());
  bad[sof + 4] = 12;
  spit(path, bad);
  expect_error(path, "precision");
}

TEST_F(BadImageTest, UnsupportedFormatsAreNamed) {
  const std::string gif = dir + "/a.png";  // the name lies: the content decides
  spit(gif, {'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0, 0, 0, 0});
  expect_error(gif, "GIF");
  const std::string bmp = dir + "/b.jpg";
  spit(bmp, {'B', 'M', 0, 0, 0, 0});
  expect_error(bmp, "BMP");
  const std::string text = dir + "/c.png";
  spit(text, {'h', 'e', 'l', 'l', 'o'});
  expect_error(text, "not a PNG or JPEG");
}

TEST_F(BadImageTest, AbsurdHeaderSizeIsRefusedBeforeAllocating) {
  // A valid PNG header claiming 1,000,000 x 1,000,000 pixels (libpng's own limit) or just below.
  PngSpec s;
  s.width = 1;
  s.height = 1;
  s.samples = {0};
  const std::string path = dir + "/huge.png";
  write_test_png(path, s);
  auto bytes = slurp(path);
  // IHDR data starts at byte 16: width (4 bytes BE), height (4 bytes BE). Patch to 60000 x 60000
  // and fix the CRC so that only the size is wrong.
  const uint32_t side = 60000;
  for (int k = 0; k < 2; ++k)
    for (int b = 0; b < 4; ++b) bytes[16 + 4 * k + b] = static_cast<uint8_t>(side >> (24 - 8 * b));
  const uint32_t crc = crc32_of(bytes.data() + 12, 17);
  for (int b = 0; b < 4; ++b) bytes[29 + b] = static_cast<uint8_t>(crc >> (24 - 8 * b));
  spit(path, bytes);
  expect_error(path, "limit");
}

// ============================== Tensor helpers ==============================

TEST(Gray, Bt601Weights) {
  // (3, 1, 2): pure red, then (0.2, 0.4, 0.6)
  const Tensor rgb = tensor({{{1.f, 0.2f}}, {{0.f, 0.4f}}, {{0.f, 0.6f}}});
  const Tensor g = to_gray(rgb);
  ASSERT_EQ(g.shape(), (Shape{1, 1, 2}));
  EXPECT_NEAR(g.at({0, 0, 0}), 0.299, 1e-6);
  EXPECT_NEAR(g.at({0, 0, 1}), 0.299 * 0.2 + 0.587 * 0.4 + 0.114 * 0.6, 1e-6);
  // RGBA drops alpha; gray+alpha keeps gray; gray is copied.
  const Tensor rgba = tensor({{{1.f}}, {{1.f}}, {{1.f}}, {{0.f}}});
  EXPECT_NEAR(to_gray(rgba).at({0, 0, 0}), 1.0, 1e-6);
  const Tensor ga = tensor({{{0.3f}}, {{0.9f}}});
  EXPECT_EQ(to_gray(ga).shape(), (Shape{1, 1, 1}));
  EXPECT_FLOAT_EQ(to_gray(ga).at({0, 0, 0}), 0.3f);
  EXPECT_THROW(to_gray(zeros({5, 2, 2})), Error);
}

TEST(MapValues, AbsClipMinMax) {
  const Tensor v = tensor({-2.f, -0.5f, 0.f, 0.25f, 3.f});
  EXPECT_EQ(map_values(v, ValueMap::Abs).to_vector(),
            (std::vector<float>{1.f, 0.5f, 0.f, 0.25f, 1.f}));
  EXPECT_EQ(map_values(v, ValueMap::Clip).to_vector(),
            (std::vector<float>{0.f, 0.f, 0.f, 0.25f, 1.f}));
  const auto mm = map_values(v, ValueMap::MinMax).to_vector();
  const std::vector<float> want = {0.f, 0.3f, 0.4f, 0.45f, 1.f};  // (v + 2) / 5
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(mm[i], want[i], 1e-6);
  EXPECT_EQ(map_values(full({3}, 2.f), ValueMap::MinMax).to_vector(), (std::vector<float>(3, 0.f)));
  EXPECT_EQ(value_map_from_string("minmax"), ValueMap::MinMax);
  EXPECT_THROW(value_map_from_string("log"), Error);
}

TEST(Enlarged, BlocksOfScaleAndBothColormaps) {
  const std::string dir = scratch_dir();
  // (2, 3) with values -1, 0, 1 ...
  const Tensor v = tensor({{-1.f, 0.f, 1.f}, {0.5f, 0.f, -0.5f}});
  save_png_enlarged(dir + "/g.png", v, 4, ColorMap::Gray);
  const Decoded g = read_png_with_libpng(dir + "/g.png");
  ASSERT_EQ(g.channels, 1);
  ASSERT_EQ(g.width, 12);
  ASSERT_EQ(g.height, 8);
  // Gray: minmax, so -1 -> 0, 0 -> 128 (0.5 rounded), 1 -> 255; each a 4x4 block.
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 12; ++x) {
      const float val = v.at({y / 4, x / 4});
      ASSERT_EQ(g.samples[y * 12 + x], std::lround((val + 1) / 2 * 255)) << y << "," << x;
    }
  save_png_enlarged(dir + "/d.png", v, 3, ColorMap::Diverging);
  const Decoded d = read_png_with_libpng(dir + "/d.png");
  ASSERT_EQ(d.channels, 3);
  ASSERT_EQ(d.width, 9);
  auto rgb = [&](int y, int x) {
    const size_t i = (static_cast<size_t>(y) * 9 + x) * 3;
    return std::vector<int>{d.samples[i], d.samples[i + 1], d.samples[i + 2]};
  };
  EXPECT_EQ(rgb(0, 0), (std::vector<int>{0, 0, 255}));      // -1: blue
  EXPECT_EQ(rgb(1, 4), (std::vector<int>{255, 255, 255}));  // 0: white
  EXPECT_EQ(rgb(2, 8), (std::vector<int>{255, 0, 0}));      // 1: red
  EXPECT_EQ(rgb(5, 0), (std::vector<int>{255, 128, 128}));  // 0.5: pink
  EXPECT_THROW(save_png_enlarged(dir + "/x.png", zeros({2, 2, 2})), Error);
}

}  // namespace
}  // namespace convkit
