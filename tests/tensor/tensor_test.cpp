#include <convkit/convkit.h>
#include <gtest/gtest.h>

using namespace convkit;

TEST(Tensor, FactoriesAndShapes) {
  Tensor z = zeros({2, 3});
  EXPECT_EQ(z.shape(), (Shape{2, 3}));
  EXPECT_EQ(z.numel(), 6);
  EXPECT_EQ(z.dim(), 2);
  EXPECT_TRUE(z.is_contiguous());
  EXPECT_EQ(z.strides(), (std::vector<int64_t>{3, 1}));
  EXPECT_EQ(ones({4}).sum().item(), 4.f);
  EXPECT_EQ(full({2, 2}, 2.5f).at({1, 1}), 2.5f);
  EXPECT_EQ(arange(5).to_vector(), (std::vector<float>{0, 1, 2, 3, 4}));
  EXPECT_EQ(arange(1.0, 2.0, 0.25).to_vector(), (std::vector<float>{1, 1.25, 1.5, 1.75}));
  Tensor t = tensor({{0.f, 1.f}, {2.f, 3.f}});
  EXPECT_EQ(t.shape(), (Shape{2, 2}));
  EXPECT_EQ(t.at({1, 0}), 2.f);
  EXPECT_EQ(tensor({1, 2, 3}).shape(), (Shape{3}));
  EXPECT_EQ(tensor(3.5).dim(), 0);
  EXPECT_EQ(tensor(3.5).item(), 3.5f);
}

TEST(Tensor, RaggedNestedListIsAnError) {
  EXPECT_THROW(tensor({{1.f, 2.f}, {3.f}}), Error);
}

TEST(Tensor, ViewsShareStorage) {
  Tensor a = arange(6).reshape({2, 3});
  Tensor v = a.view({3, 2});
  v.set({0, 1}, 42.f);
  EXPECT_EQ(a.at({0, 1}), 42.f);
  Tensor t = a.t();
  EXPECT_EQ(t.shape(), (Shape{3, 2}));
  EXPECT_FALSE(t.is_contiguous());
  EXPECT_EQ(t.at({2, 1}), a.at({1, 2}));
  EXPECT_EQ(t.contiguous().to_vector(), (std::vector<float>{0, 3, 42, 4, 2, 5}));
  Tensor c = a.clone();
  c.set({0, 0}, -1.f);
  EXPECT_EQ(a.at({0, 0}), 0.f);
  EXPECT_EQ(a.view({-1}).shape(), (Shape{6}));
  EXPECT_THROW(a.view({4, -1}), Error);
  EXPECT_THROW(t.view({6}), Error);      // not contiguous
  EXPECT_EQ(t.reshape({6}).numel(), 6);  // reshape copies
  EXPECT_EQ(a.unsqueeze(0).shape(), (Shape{1, 2, 3}));
  EXPECT_EQ(a.unsqueeze(0).squeeze(0).shape(), (Shape{2, 3}));
  EXPECT_EQ(a.permute({1, 0}).at({2, 0}), a.at({0, 2}));
}

TEST(Tensor, SliceAssignmentLikeTheNotebook) {
  // X = torch.ones((6, 8)); X[:, 2:6] = 0
  Tensor X = ones({6, 8});
  X.index({Slice(), Slice(2, 6)}) = 0;
  for (int64_t i = 0; i < 6; ++i) {
    for (int64_t j = 0; j < 8; ++j) EXPECT_EQ(X.at({i, j}), (j >= 2 && j < 6) ? 0.f : 1.f);
  }
  // Negative bounds, steps, integer indices.
  Tensor a = arange(10);
  EXPECT_EQ(a.index({Slice(None, -1, 3)}).to_vector(), (std::vector<float>{0, 3, 6}));
  EXPECT_EQ(a.index({Slice(-3)}).to_vector(), (std::vector<float>{7, 8, 9}));
  Tensor m = arange(12).reshape({3, 4});
  EXPECT_EQ(m.index({1}).to_vector(), (std::vector<float>{4, 5, 6, 7}));
  EXPECT_EQ(m.index({Slice(), 2}).to_vector(), (std::vector<float>{2, 6, 10}));
  m.index({Slice(), 0}) = tensor({-1.f, -2.f, -3.f});
  EXPECT_EQ(m.at({2, 0}), -3.f);
  m.index({0}) = tensor({9.f});  // broadcast
  EXPECT_EQ(m.index({0}).to_vector(), (std::vector<float>{9, 9, 9, 9}));
  EXPECT_THROW(m.index({3}), Error);
  EXPECT_THROW(m.index({0}) = tensor({1.f, 2.f}), Error);
}

TEST(Tensor, BroadcastingArithmetic) {
  Tensor a = tensor({{1.f, 2.f, 3.f}, {4.f, 5.f, 6.f}});
  Tensor b = tensor({10.f, 20.f, 30.f});
  EXPECT_EQ((a + b).to_vector(), (std::vector<float>{11, 22, 33, 14, 25, 36}));
  EXPECT_EQ((a - b).to_vector(), (std::vector<float>{-9, -18, -27, -6, -15, -24}));
  EXPECT_EQ((a * tensor({{2.f}, {3.f}})).to_vector(), (std::vector<float>{2, 4, 6, 12, 15, 18}));
  EXPECT_EQ((b / 10.f).to_vector(), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ((1.f - b).to_vector(), (std::vector<float>{-9, -19, -29}));
  EXPECT_EQ((2.f * b).to_vector(), (std::vector<float>{20, 40, 60}));
  EXPECT_EQ((-b).to_vector(), (std::vector<float>{-10, -20, -30}));
  EXPECT_EQ(b.pow(2).to_vector(), (std::vector<float>{100, 400, 900}));
  EXPECT_EQ(a.sum().item(), 21.f);
  EXPECT_EQ(a.sum(0).to_vector(), (std::vector<float>{5, 7, 9}));
  EXPECT_EQ(a.sum(1, true).shape(), (Shape{2, 1}));
  EXPECT_EQ(a.mean().item(), 3.5f);
  EXPECT_EQ((-a).abs().to_vector(), a.to_vector());
  EXPECT_EQ(a.max().item(), 6.f);
  EXPECT_EQ(a.min().item(), 1.f);
  EXPECT_TRUE(allclose(a * 1.000001f, a));
  EXPECT_FALSE(allclose(a + 0.1f, a));
  EXPECT_EQ(matmul(a, a.t()).to_vector(), (std::vector<float>{14, 32, 32, 77}));
}

TEST(Tensor, ShapeErrorsNameTheOperationAndShapes) {
  try {
    (void)(zeros({2, 3}) + zeros({4}));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("add"), std::string::npos);
    EXPECT_NE(msg.find("(2, 3)"), std::string::npos);
    EXPECT_NE(msg.find("(4,)"), std::string::npos);
  }
  EXPECT_THROW(zeros({2, 3}).item(), Error);
  EXPECT_THROW(zeros({2}).at({0, 0}), Error);
  EXPECT_THROW(Tensor().shape(), Error);
  EXPECT_THROW(zeros({-1}), Error);
  EXPECT_THROW(matmul(zeros({2, 3}), zeros({2, 3})), Error);
}

TEST(Tensor, InPlaceOnParameterNeedsNoGrad) {
  Tensor w = ones({2});
  w.requires_grad_();
  EXPECT_THROW(w.sub_(1.f), Error);
  {
    NoGradGuard guard;
    w.sub_(1.f);
  }
  EXPECT_EQ(w.to_vector(), (std::vector<float>{0, 0}));
  w.data() += 2.f;  // .data() bypasses autograd, as in PyTorch
  EXPECT_EQ(w.to_vector(), (std::vector<float>{2, 2}));
  EXPECT_TRUE(w.requires_grad());
}

TEST(Tensor, EdgeCasesGiveErrorsNotCrashes) {
  EXPECT_THROW(Tensor().at({0}), Error);
  EXPECT_THROW(zeros({int64_t(1) << 32, int64_t(1) << 32}), Error);  // element count overflows
  EXPECT_EQ(arange(5).slice(0, 0, 5, INT64_MAX - 2).shape(), (Shape{1}));
  EXPECT_THROW(ones({1}).expand({-2}), Error);
  EXPECT_THROW(ones({1}).expand({3}).add_(ones({3})), Error);  // elements share memory
  EXPECT_THROW(tensor(3.f).transpose(5, 7), Error);
  EXPECT_THROW(arange(0.0, 1e30), Error);
  EXPECT_THROW(autograd::sum_to(tensor(1.f), {2}), Error);
  // copy_ from an overlapping view reads the source before writing.
  Tensor a = arange(5);
  a.slice(0, 1, 5).copy_(a.slice(0, 0, 4));
  EXPECT_EQ(a.to_vector(), (std::vector<float>{0, 0, 1, 2, 3}));
}
