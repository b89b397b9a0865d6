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

TEST(DemoCli, SaveWritesPicturesAndTheLossCurve) {
  const auto dir = convkit::testing::test_dir("demo-save") / "pictures";
  const auto r = run_cli({"demo", "--save", dir.string()});
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* name : {"X.png", "Y.png", "Xt.png", "Yt.png", "X2d.png", "Y2d_target.png",
                           "Y2d_learned.png", "kernel_learned.png"}) {
    const std::string bytes = convkit::testing::read_text(dir / name);
    ASSERT_GE(bytes.size(), 8u) << name;
    EXPECT_EQ(bytes.substr(1, 3), "PNG") << name;
    EXPECT_NE(r.out.find((dir / name).string()), std::string::npos) << name;
  }
  const std::string svg = convkit::testing::read_text(dir / "loss.svg");
  EXPECT_NE(svg.find("<svg"), std::string::npos);
  EXPECT_NE(svg.find("<polyline"), std::string::npos);
}

TEST(DemoCli, SaveIntoAFileIsAnError) {
  const auto dir = convkit::testing::test_dir("demo-save-bad");
  const std::string file = (dir / "plain-file").string();
  { std::ofstream(file) << "x"; }
  const auto r = run_cli({"demo", "--save", file});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--save"), std::string::npos) << r.err;
}
