// Process-wide settings: the random generator (PyTorch-equal) and the thread count.
#pragma once
#include <cstdint>

namespace convkit {

// Seeds the global generator exactly as torch.manual_seed(seed) seeds PyTorch's CPU generator
// (mt19937 with the low 32 bits of seed), so rand/uniform_/module initialisation match bit for bit.
void manual_seed(uint64_t seed);
// The seed last set (default 67280421310721, PyTorch's default_rng_seed_val).
uint64_t initial_seed();

// Threads used inside each convolution call (OpenMP). n <= 0 restores the default (all cores).
// Results are bitwise identical whatever the thread count.
void set_num_threads(int n);
int get_num_threads();

}  // namespace convkit
