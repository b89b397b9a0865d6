#include <convkit/convkit.h>
#include <gtest/gtest.h>

#include "test_util.h"

using namespace convkit;

using convkit::testing::error_of;

TEST(Functional, Corr2dBadInputNamesShapes) {
  const std::string big = error_of([] { corr2d(ones({2, 5}), ones({3, 4})); });
  EXPECT_NE(big.find("corr2d"), std::string::npos);
  EXPECT_NE(big.find("(3, 4)"), std::string::npos);
  EXPECT_NE(big.find("(2, 5)"), std::string::npos);
  const std::string rank = error_of([] { corr2d(ones({2, 5, 1}), ones({1, 1})); });
  EXPECT_NE(rank.find("2-D"), std::string::npos);
  EXPECT_THROW(corr2d(ones({3, 3}), ones({0, 1})), Error);
  EXPECT_THROW(corr2d(Tensor(), ones({1, 1})), Error);
}

TEST(Functional, Corr2dAgainstTheNotebooksLoop) {
  manual_seed(4);
  const Tensor X = rand({7, 9}), K = rand({3, 2});
  const Tensor Y = corr2d(X, K);
  ASSERT_EQ(Y.shape(), (Shape{5, 8}));
  for (int64_t i = 0; i < 5; ++i) {
    for (int64_t j = 0; j < 8; ++j) {
      const float expected = (X.index({Slice(i, i + 3), Slice(j, j + 2)}) * K).sum().item();
      EXPECT_NEAR(Y.at({i, j}), expected, 1e-5f);
    }
  }
}

TEST(Functional, Conv2dBatchednessAndEmptyBatch) {
  manual_seed(5);
  const Tensor x = rand({3, 5, 6}), w = rand({4, 3, 3, 3}), b = rand({4});
  const Tensor y3 = conv2d(x, w, b);
  EXPECT_EQ(y3.shape(), (Shape{4, 3, 4}));
  const Tensor y4 = conv2d(x.unsqueeze(0), w, b);
  EXPECT_EQ(y4.shape(), (Shape{1, 4, 3, 4}));
  EXPECT_TRUE(equal(y3, y4.squeeze(0)));
  EXPECT_EQ(conv2d(zeros({0, 3, 5, 6}), w, b).shape(), (Shape{0, 4, 3, 4}));
  EXPECT_EQ(conv2d_output_shape({2, 3, 8, 8}, {6, 3, 3, 5}, {.stride = {3, 4}, .padding = {0, 1}}),
            (Shape{2, 6, 2, 2}));
  EXPECT_THROW(conv2d(x, w, rand({5})), Error);
  EXPECT_THROW(conv2d(rand({5, 6}), w), Error);
}

TEST(Functional, MseLossReductions) {
  const Tensor a = tensor({1.f, 2.f, 4.f}), b = tensor({1.f, 0.f, 1.f});
  EXPECT_EQ(mse_loss(a, b, Reduction::none).to_vector(), (std::vector<float>{0, 4, 9}));
  EXPECT_EQ(mse_loss(a, b, Reduction::sum).item(), 13.f);
  EXPECT_FLOAT_EQ(mse_loss(a, b).item(), 13.f / 3.f);
  EXPECT_FLOAT_EQ(nn::MSELoss(Reduction::sum)(a, b).item(), 13.f);
  EXPECT_THROW(mse_loss(a, tensor({1.f})), Error);
}
