// Conv2d / LazyConv2d initialisation equals PyTorch's, bit for bit (values recorded offline from
// PyTorch 1.13: torch.manual_seed(s); nn.Conv2d(...)).
#include <convkit/convkit.h>
#include <gtest/gtest.h>

#include <cstring>

#include "test_util.h"

using namespace convkit;

using convkit::testing::bits_of;

TEST(Init, Conv2dMatchesPyTorch) {
  manual_seed(0);
  nn::Conv2d c(3, 2, {3, 2});
  ASSERT_EQ(c.weight.shape(), (Shape{2, 3, 3, 2}));
  EXPECT_EQ(bits_of(c.weight, 6), (std::vector<uint32_t>{0xbae74c2e, 0x3e0179be, 0xbe46a642,
                                                         0xbe31a027, 0xbdb9ebc9, 0x3d8171c7}));
  EXPECT_EQ(bits_of(c.weight)[35], 0xbe620c2bu);
  EXPECT_EQ(bits_of(c.bias), (std::vector<uint32_t>{0xbe0ce41e, 0x3e4f78c9}));

  manual_seed(7);
  nn::Conv2d d(3, 2, {3, 2});
  EXPECT_EQ(bits_of(d.weight, 3), (std::vector<uint32_t>{0x3c86dcaa, 0xbe1164a8, 0x3d99b572}));
  EXPECT_EQ(bits_of(d.bias), (std::vector<uint32_t>{0xbd56d33b, 0xbe06767f}));
}

TEST(Init, GroupedWithoutBiasMatchesPyTorch) {
  manual_seed(5);
  nn::Conv2d c(4, 6, 3, {.groups = 2, .bias = false});
  EXPECT_EQ(c.weight.shape(), (Shape{6, 2, 3, 3}));
  EXPECT_FALSE(c.bias.defined());
  EXPECT_EQ(bits_of(c.weight, 8),
            (std::vector<uint32_t>{0x3e1f6b29, 0xbe347bab, 0x3e44b16c, 0x3e1a6f43, 0x3e4acaa5,
                                   0xbe390d66, 0xbe22011c, 0x3de5b231}));
  EXPECT_EQ(c.parameters().size(), 1u);
}

TEST(Init, LazyConv2dDrawsWhenItSeesItsFirstInput) {
  manual_seed(3);
  nn::LazyConv2d c(2, {2, 2});
  EXPECT_FALSE(c.initialized());
  c(zeros({1, 3, 4, 4}));
  EXPECT_TRUE(c.initialized());
  EXPECT_EQ(c.in_channels, 3);
  EXPECT_EQ(c.weight.shape(), (Shape{2, 3, 2, 2}));
  const auto w = bits_of(c.weight);
  EXPECT_EQ(w[0], 0xbe928a96u);
  EXPECT_EQ(w[1], 0xbe6930a5u);
  EXPECT_EQ(w[23], 0xbe9038e9u);
  EXPECT_EQ(bits_of(c.bias), (std::vector<uint32_t>{0xbe3caae3, 0xbe389ff8}));
}

TEST(Init, TheNotebooksConv2DUsesRand) {
  // The notebook's layer: weight = torch.rand(kernel_size) → seed 0 gives these four values.
  manual_seed(0);
  Tensor w = nn::Parameter(rand({2, 2}));
  EXPECT_EQ(bits_of(w), (std::vector<uint32_t>{0x3efe1558, 0x3f44aa2f, 0x3db533a8, 0x3e073300}));
  EXPECT_TRUE(w.requires_grad());
  EXPECT_TRUE(w.is_leaf());
}
