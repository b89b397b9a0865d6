// 1-D Winograd minimal filtering F(4, r), r = 2, 3, 4, along output rows: four consecutive outputs
// of a correlation y[i] = sum_{k < r} g[k] d[i + k] (i < 4) from a window of A = r + 3 inputs,
//   y = AT [ (G g) . (BT d) ]          AT: 4 x A, G: A x r, BT: A x A, "." elementwise,
// with A multiplications where the direct sum takes 4 r. Sums of such products over many (g, d)
// pairs stay in the transformed domain, so one inverse transform (AT) serves them all.
//
// The matrices are the Toom-Cook ones for the points {0, 1, -1, 2} (r = 2), {0, 1, -1, 2, -2}
// (r = 3, Lavin and Gray's F(4, 3)) and {0, 1, -1, 2, -2, 1/2} (r = 4), each with the point at
// infinity: AT[i][e] = p_e^i, G[e][k] = p_e^k / prod_{l != e} (p_e - p_l), BT solved exactly so
// that sum_e AT[i][e] G[e][k] BT[e][j] = [j == i + k] (derived in exact rationals; the tests check
// the identity). AT and BT hold only dyadic rationals, exact in float; G is applied in double.
// Rounding, measured (float32 sums of 42 products, random inputs in [-1, 1]): at most 9.5 u times
// the sum of |terms| of an output, median 0.4-0.5 u, against the direct sum's bound of 2 (4 r + 2)
// u.
#pragma once

namespace convkit::kernels::smallc::wino1d {

constexpr int kM = 4;  // outputs per tile

template <int R>
struct Mat;

template <>
struct Mat<2> {
  static constexpr int A = 5;
  static constexpr double AT[4][5] = {
      {1, 1, 1, 1, 0}, {0, 1, -1, 2, 0}, {0, 1, 1, 4, 0}, {0, 1, -1, 8, 1}};
  static constexpr double G[5][2] = {
      {1. / 2, 0}, {-1. / 2, -1. / 2}, {-1. / 6, 1. / 6}, {1. / 6, 1. / 3}, {0, 1}};
  static constexpr double BT[5][5] = {
      {2, -1, -2, 1, 0}, {0, -2, -1, 1, 0}, {0, 2, -3, 1, 0}, {0, -1, 0, 1, 0}, {0, 2, -1, -2, 1}};
};

template <>
struct Mat<3> {
  static constexpr int A = 6;
  static constexpr double AT[4][6] = {
      {1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};
  static constexpr double G[6][3] = {{1. / 4, 0, 0},
                                     {-1. / 6, -1. / 6, -1. / 6},
                                     {-1. / 6, 1. / 6, -1. / 6},
                                     {1. / 24, 1. / 12, 1. / 6},
                                     {1. / 24, -1. / 12, 1. / 6},
                                     {0, 0, 1}};
  static constexpr double BT[6][6] = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0},
                                      {0, 4, -4, -1, 1, 0}, {0, -2, -1, 2, 1, 0},
                                      {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
};

template <>
struct Mat<4> {
  static constexpr int A = 7;
  static constexpr double AT[4][7] = {{1, 1, 1, 1, 1, 1, 0},
                                      {0, 1, -1, 2, -2, 1. / 2, 0},
                                      {0, 1, 1, 4, 4, 1. / 4, 0},
                                      {0, 1, -1, 8, -8, 1. / 8, 1}};
  static constexpr double G[7][4] = {{-1. / 2, 0, 0, 0},
                                     {-1. / 3, -1. / 3, -1. / 3, -1. / 3},
                                     {1. / 9, -1. / 9, 1. / 9, -1. / 9},
                                     {1. / 36, 1. / 18, 1. / 9, 2. / 9},
                                     {-1. / 60, 1. / 30, -1. / 15, 2. / 15},
                                     {32. / 45, 16. / 45, 8. / 45, 4. / 45},
                                     {0, 0, 0, 1}};
  static constexpr double BT[7][7] = {
      {-2, 4, 5. / 2, -5, -1. / 2, 1, 0}, {0, 2, -2, -9. / 2, 1. / 2, 1, 0},
      {0, -2, 6, -7. / 2, -3. / 2, 1, 0}, {0, 1, -3. / 2, -2, 3. / 2, 1, 0},
      {0, -1, 5. / 2, 0, -5. / 2, 1, 0},  {0, 4, 0, -5, 0, 1, 0},
      {0, -2, 4, 5. / 2, -5, -1. / 2, 1}};
};

}  // namespace convkit::kernels::smallc::wino1d
