// Run-time CPU feature detection. The library is built for baseline x86-64 (no -march=native);
// kernels in *_avx2.cpp files (compiled with -mavx2 -mfma) run only when use_avx2() says so.
#pragma once

namespace convkit::base {

enum class Isa : int { Generic = 0, Avx2Fma = 1 };

// What this processor (and OS, via XSAVE state) supports: Avx2Fma needs both AVX2 and FMA3.
Isa detected_isa();
// The ISA kernels may use: detected_isa(), lowered by the environment variable CONVKIT_ISA=generic
// (read once) or by set_isa_limit (tests use it to run the portable fallbacks on any machine).
Isa active_isa();
inline bool use_avx2() {
  return active_isa() == Isa::Avx2Fma;
}
// Caps active_isa() at `limit` (never raises it above detected_isa()).
void set_isa_limit(Isa limit);
const char* isa_name(Isa isa);

}  // namespace convkit::base
