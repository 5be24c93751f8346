// Seeded random numbers. Two flavours:
//  - Rng: a small sequential generator (SplitMix64 seeding xoshiro256**) for initialisation and
//    data order; its state is four words, so checkpoints can store it.
//  - counter_uniform(): a stateless hash of (seed, stream, index), for per-element randomness in
//    parallel kernels (dropout) that must not depend on the number of threads.
#pragma once

#include <array>
#include <cstdint>

namespace unet {

uint64_t splitmix64(uint64_t& state);

class Rng {
   public:
    explicit Rng(uint64_t seed = 0) { reseed(seed); }
    void reseed(uint64_t seed);
    uint64_t next_u64();
    float uniform();                            // [0, 1)
    float uniform(float lo, float hi) { return lo + (hi - lo) * uniform(); }
    float normal();                             // N(0, 1), Box-Muller
    int64_t below(int64_t n);                   // uniform integer in [0, n)
    std::array<uint64_t, 4> state() const { return s_; }
    void set_state(const std::array<uint64_t, 4>& s) { s_ = s; }

   private:
    std::array<uint64_t, 4> s_{};
};

// Uniform [0, 1) from a hash of the three arguments; same inputs, same value, on any thread.
float counter_uniform(uint64_t seed, uint64_t stream, uint64_t index);

}  // namespace unet
