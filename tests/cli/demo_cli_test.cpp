// `convkit demo` end to end: the notebook's cells and values, and PyTorch's numbers under --seed.
#include <gtest/gtest.h>

#include "cli/run_cli.h"

using convkit::testing::run_cli;

TEST(DemoCli, PrintsEveryCellWithTheNotebooksValues) {
  const auto r = run_cli({"demo"});
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* header : {"In [1]:", "In [2]:", "In [3]:", "In [4]:", "In [5]:", "In [6]:",
                             "In [7]:", "In [8]:", "In [18]:", "In [19]:"}) {
    EXPECT_NE(r.out.find(header), std::string::npos) << header;
  }
  EXPECT_NE(r.out.find("tensor([[19., 25.],\n        [37., 43.]])"), std::string::npos);
  EXPECT_NE(r.out.find("tensor([[1., 1., 0., 0., 0., 0., 1., 1.],\n"), std::string::npos);
  EXPECT_NE(r.out.find("tensor([[6., 2., 0., 0., 0., 4., 6.],\n"), std::string::npos);
  EXPECT_NE(r.out.find("tensor([[6., 6., 6., 6., 6.],\n        [1., 1., 1., 1., 1.],\n"),
            std::string::npos);
  // In [3] comes before In [5], and In [18] before In [19].
  EXPECT_LT(r.out.find("In [3]:"), r.out.find("In [5]:"));
  EXPECT_LT(r.out.find("In [18]:"), r.out.find("In [19]:"));
}

TEST(DemoCli, SeededRunPrintsPyTorchsLossesAndKernel) {
  // The notebook's code under torch.manual_seed(1), PyTorch 1.13 (recorded offline).
  const auto r = run_cli({"demo", "--seed", "1"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("epoch 2, loss 1.443\nepoch 4, loss 0.797\nepoch 6, loss 0.441\n"
                       "epoch 8, loss 0.244\nepoch 10, loss 0.135\n"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("tensor([[ 0.8899, -0.8219]])"), std::string::npos);
}

TEST(DemoCli, BadArgumentsExitWithStatus2) {
  const auto r = run_cli({"demo", "--seed", "abc"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--seed"), std::string::npos) << r.err;
  const auto u = run_cli({"no-such-command"});
  EXPECT_EQ(u.status, 2);
  EXPECT_FALSE(u.err.empty());
}
