// Bit patterns produced by PyTorch 1.13 (torch.manual_seed(s) then the same call), recorded
// offline with python3-torch; they check that convkit's generator is PyTorch's, draw for draw.
#include <convkit/convkit.h>
#include <gtest/gtest.h>

#include <cstring>

#include "test_util.h"

using namespace convkit;

using convkit::testing::bits_of;

TEST(Random, RandMatchesPyTorchBitForBit) {
  manual_seed(0);
  EXPECT_EQ(bits_of(rand({5})),
            (std::vector<uint32_t>{0x3efe1558, 0x3f44aa2f, 0x3db533a8, 0x3e073300, 0x3e9d6686}));
  manual_seed(1);
  EXPECT_EQ(bits_of(rand({5})),
            (std::vector<uint32_t>{0x3f41f425, 0x3e8f01d6, 0x3ece5f18, 0x3f3c1448, 0x3cefdfe0}));
  manual_seed(42);
  EXPECT_EQ(bits_of(rand({5})),
            (std::vector<uint32_t>{0x3f61dc66, 0x3f6a3db3, 0x3ec406b8, 0x3f75950e, 0x3ec7e8d4}));
  manual_seed(4294967303ULL);  // only the low 32 bits seed mt19937
  EXPECT_EQ(bits_of(rand({5})),
            (std::vector<uint32_t>{0x3f08f0af, 0x3e4b9310, 0x3f28c219, 0x3f2829f6, 0x3e6e590c}));
  manual_seed(0);
  const Tensor r = rand({3});
  EXPECT_FLOAT_EQ(r.at({0}), 0.49625659f);
  EXPECT_FLOAT_EQ(r.at({1}), 0.76822180f);
  EXPECT_FLOAT_EQ(r.at({2}), 0.08847743f);
}

TEST(Random, UniformMatchesPyTorchBitForBit) {
  manual_seed(0);
  EXPECT_EQ(bits_of(empty({6}).uniform_(-0.37, 2.5)),
            (std::vector<uint32_t>{0x3f86f1df, 0x3feada9c, 0xbdedb5ff, 0x3c12448e, 0x3f032652,
                                   0x3fb9933c}));
  manual_seed(123);
  EXPECT_EQ(bits_of(empty({6}).uniform_(-0.37, 2.5)),
            (std::vector<uint32_t>{0x3ef5adc0, 0x3f8e6781, 0x3eb46000, 0x3fcd9695, 0xbe217bdc,
                                   0x40077b95}));
}

TEST(Random, RandnHasUnitMoments) {
  manual_seed(3);
  const Tensor z = randn({20000});
  const float mean = z.mean().item();
  const float var = (z - mean).pow(2).mean().item();
  EXPECT_NEAR(mean, 0.0, 0.03);
  EXPECT_NEAR(var, 1.0, 0.05);
}
