#include "kernels/winograd/winograd.h"

namespace convkit::kernels::winograd {

namespace {
// s (6) = G v (3), v strided by `step`.
inline void g_times(const float* v, int step, float* s) {
  const float a = v[0], b = v[step], c = v[2 * step];
  s[0] = a * 0.25f;
  s[1] = (a + b + c) * (-1.f / 6.f);
  s[2] = (a - b + c) * (-1.f / 6.f);
  s[3] = a * (1.f / 24.f) + b * (1.f / 12.f) + c * (1.f / 6.f);
  s[4] = a * (1.f / 24.f) - b * (1.f / 12.f) + c * (1.f / 6.f);
  s[5] = c;
}
}  // namespace

void f32_wino_f4x3_ftrans(const float g[9], float u[36]) {
  float t[6][3];  // G g: (6 x 3)
  for (int j = 0; j < 3; ++j) {
    float s[6];
    g_times(g + j, 3, s);
    for (int i = 0; i < 6; ++i) t[i][j] = s[i];
  }
  for (int i = 0; i < 6; ++i) g_times(t[i], 1, u + 6 * i);  // (G g) G^T, row by row
}

}  // namespace convkit::kernels::winograd
