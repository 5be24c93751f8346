// Shared by the HDF5 harnesses: a bound on the children that the readers fork. A file in HDF5's
// first-wave format (no checksums) is read first in a forked child (read_in_child_first in
// src/io/hdf5_util.cpp), whose crash or hang inside the HDF5 library the reader turns into one line
// naming the file; it waits 120 s for a hung child. Under the fuzzer's -timeout=10 every such hang
// (HDF5's endless loops on damaged first-wave metadata: one in a few hundred mutated inputs) would
// end the run as a timeout of the harness, and cost two minutes, although the reader did what it
// should. Here each child is ended by SIGPROF after kChildCpuMilliseconds of CPU time (SIGALRM after
// kChildMilliseconds of wall time behind it) instead, which the reader meets as it meets any signal
// (the one line, "crashed reading it: Profiling timer expired"): a hang of the parent,
// in our code, is still a timeout. And a child's sanitizer report (HDF5's wild memcpy from a
// damaged global heap, the crash the child read is there for) is printed but no longer written by
// libFuzzer's inherited death callback as a crash- file of the harness: the parent goes on, and
// triage reads the reports' frames in the log (one outside libhdf5 would be a bug of ours). The
// production readers are unchanged.
#pragma once

#include <pthread.h>
#include <sys/time.h>
#include <sanitizer/common_interface_defs.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>

namespace fuzz {

// A read of a file of at most -max_len (64 KiB) takes a few milliseconds of CPU. The bound is what
// a hung child costs (HDF5's endless loops spin: one input in about 40), so it counts the child's
// CPU time (ITIMER_PROF, SIGPROF): a child that waits its turn for a core beside a second fuzzer or
// a build is not cut short. A wall-clock bound stays behind it for a child that blocks.
constexpr long kChildCpuMilliseconds = 40;
constexpr long kChildMilliseconds = 1000;

inline itimerval once_after(long milliseconds) {
    return itimerval{{0, 0}, {milliseconds / 1000, (milliseconds % 1000) * 1000}};
}

inline bool bound_forked_children() {
    // Runs in each child right after fork: libFuzzer's own SIGALRM handler (its -timeout) is
    // inherited and would report the child as a timeout of the harness; the kernel's default ends
    // it. Its death callback too: the sanitizer's report then ends the child with exit 1.
    static const auto in_child = [] {
        std::signal(SIGALRM, SIG_DFL);
        std::signal(SIGPROF, SIG_DFL);
        const itimerval cpu = once_after(kChildCpuMilliseconds), wall = once_after(kChildMilliseconds);
        setitimer(ITIMER_PROF, &cpu, nullptr);
        setitimer(ITIMER_REAL, &wall, nullptr);
        __sanitizer_set_death_callback(nullptr);
    };
    if (pthread_atfork(nullptr, nullptr, in_child) != 0) std::abort();
    return true;
}

}  // namespace fuzz
