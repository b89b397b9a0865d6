#include "base/cpu.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace convkit::base {

Isa detected_isa() {
#if defined(__x86_64__) || defined(__i386__)
  // libgcc's feature probe checks CPUID and that the OS saves YMM state (XGETBV).
  static const Isa isa = (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
                             ? Isa::Avx2Fma
                             : Isa::Generic;
  return isa;
#else
  return Isa::Generic;
#endif
}

namespace {
Isa env_limit() {
  const char* v = std::getenv("CONVKIT_ISA");
  if (v && (std::strcmp(v, "generic") == 0 || std::strcmp(v, "GENERIC") == 0)) return Isa::Generic;
  return Isa::Avx2Fma;
}
std::atomic<int>& limit_slot() {
  static std::atomic<int> slot{static_cast<int>(env_limit())};
  return slot;
}
}  // namespace

Isa active_isa() {
  const int d = static_cast<int>(detected_isa());
  const int l = limit_slot().load(std::memory_order_relaxed);
  return static_cast<Isa>(d < l ? d : l);
}

void set_isa_limit(Isa limit) {
  limit_slot().store(static_cast<int>(limit));
}

const char* isa_name(Isa isa) {
  return isa == Isa::Avx2Fma ? "avx2+fma" : "generic";
}

}  // namespace convkit::base
