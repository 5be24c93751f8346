# unet_train build. `make` builds the library and programs, `make test` runs every test and ends
# with one line "N passed, N failed, N skipped", `make bench` runs the standard benchmark shapes.
# Missing Debian packages are installed on demand by scripts/install_deps.sh.

CXX        ?= g++
ARCH       ?= -march=native
OPT        ?= -O3
MPI_CFLAGS  := $(shell pkg-config --cflags ompi-c 2>/dev/null || echo -I/usr/lib/x86_64-linux-gnu/openmpi/include)
MPI_LIBS    := $(shell pkg-config --libs ompi-c 2>/dev/null || echo -L/usr/lib/x86_64-linux-gnu/openmpi/lib -lmpi)
HDF5_CFLAGS := $(shell pkg-config --cflags hdf5-serial 2>/dev/null || echo -I/usr/include/hdf5/serial)
HDF5_LIBS   := $(shell pkg-config --libs hdf5-serial 2>/dev/null || echo -L/usr/lib/x86_64-linux-gnu/hdf5/serial -lhdf5)
CXXFLAGS   += -std=c++17 $(OPT) $(ARCH) -g -Wall -Wextra -fopenmp -MMD -MP -Iinclude -I/usr/include/nifti $(HDF5_CFLAGS) $(MPI_CFLAGS)
LDLIBS     += -ldnnl -lboost_program_options $(HDF5_LIBS) -lniftiio -lznz -lz -lpng -lgif $(MPI_LIBS) -fopenmp -lpthread
BUILD      ?= build
# Compile on every core unless the command line says otherwise (make test's build took 12 of its
# 32 minutes one file at a time on 2 cores). The installs stay one after another (the test
# packages' stamp waits for the runtime one: apt-get takes a lock).
ifeq ($(filter -j%,$(MAKEFLAGS)),)
MAKEFLAGS  += -j$(shell nproc)
endif
# TensorBoard's messages (proto/*.proto, our own copies of the fields we write), compiled by
# Debian's protoc into $(BUILD)/gen/proto/*.pb.{h,cc} and linked into the library.
PROTOBUF_LIBS := $(shell pkg-config --libs protobuf 2>/dev/null || echo -lprotobuf)
CXXFLAGS   += -I$(BUILD)/gen $(shell pkg-config --cflags protobuf 2>/dev/null)
LDLIBS     += $(PROTOBUF_LIBS)
PROTO_CCS  := $(patsubst %.proto,$(BUILD)/gen/%.pb.cc,$(wildcard proto/*.proto))
PROTO_HDRS := $(PROTO_CCS:.cc=.h)
PROTO_OBJS := $(patsubst $(BUILD)/gen/%.cc,$(BUILD)/obj/gen/%.o,$(PROTO_CCS))

LIB_SRCS   := $(wildcard src/core/*.cpp src/nn/*.cpp src/cli/*.cpp src/train/*.cpp src/data/*.cpp src/log/*.cpp src/parallel/*.cpp src/io/*.cpp src/infer/*.cpp src/tune/*.cpp)
LIB_OBJS   := $(LIB_SRCS:%.cpp=$(BUILD)/obj/%.o) $(PROTO_OBJS)
LIB        := $(BUILD)/libunet.a
APPS       := $(patsubst src/apps/%.cpp,$(BUILD)/bin/%,$(wildcard src/apps/*.cpp))
TEST_SRCS  := $(wildcard tests/unit/test_*.cpp)
TESTS      := $(patsubst tests/unit/%.cpp,$(BUILD)/tests/%,$(TEST_SRCS))
# Multi-rank tests with their own main() (MPI), run under mpirun by tests/e2e/mpi_unit_tests.sh.
MPI_TESTS  := $(patsubst tests/mpi/%.cpp,$(BUILD)/tests/mpi/%,$(wildcard tests/mpi/test_*.cpp))
TEST_SUPPORT_OBJS := $(patsubst %.cpp,$(BUILD)/obj/%.o,$(wildcard tests/support/*.cpp))
BENCH_BINS := $(BUILD)/bin/fma_peak
# The fuzz harnesses (rules below, at make fuzz): the readers they instrument, and their replay
# builds, which make test needs.
FUZZ_READERS := src/data/nifti.cpp src/data/npy.cpp src/data/msd_index.cpp src/train/train_options.cpp \
                src/train/flags.cpp src/train/json_config.cpp src/tune/search_space.cpp src/log/records.cpp \
                src/log/crc32c.cpp src/io/checkpoint.cpp src/io/hdf5_util.cpp src/data/hdf5_dataset.cpp \
                src/train/training_state.cpp
FUZZ_NAMES   := $(patsubst tests/fuzz/fuzz_%.cpp,%,$(wildcard tests/fuzz/fuzz_*.cpp))
SANITIZE     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
REPLAY_BINS  := $(FUZZ_NAMES:%=$(BUILD)/fuzz_replay/fuzz_%)
FUZZ_CXX     ?= clang++
FUZZ_CXXFLAGS = $(subst -fopenmp,-fopenmp=libgomp,$(CXXFLAGS)) -O1
FUZZ_BINS    := $(FUZZ_NAMES:%=$(BUILD)/fuzz/fuzz_%)
DEPS_STAMP := $(BUILD)/.deps_runtime_ok
TEST_DEPS_STAMP := $(BUILD)/.deps_ok

.PHONY: all deps test unit-tests asan bench fuzz clean
.SECONDARY:
all: $(LIB) $(APPS)

# Installs missing packages once; the stamps are refreshed when the script changes. Building and
# running needs the runtime packages only; the tests add theirs (PyTorch, nibabel, GoogleTest, ...).
$(DEPS_STAMP): scripts/install_deps.sh
	@scripts/install_deps.sh --runtime
	@mkdir -p $(BUILD) && touch $@
$(TEST_DEPS_STAMP): scripts/install_deps.sh | $(DEPS_STAMP)
	@scripts/install_deps.sh
	@mkdir -p $(BUILD) && touch $@
deps: $(DEPS_STAMP) $(TEST_DEPS_STAMP)

# Sources may include generated headers: they exist before anything compiles.
$(BUILD)/obj/%.o: %.cpp | $(DEPS_STAMP) $(PROTO_HDRS)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@

# Test sources need the test packages (GoogleTest) too.
$(BUILD)/obj/tests/%.o: tests/%.cpp | $(TEST_DEPS_STAMP) $(DEPS_STAMP) $(PROTO_HDRS)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@

$(BUILD)/gen/%.pb.cc $(BUILD)/gen/%.pb.h: %.proto | $(DEPS_STAMP)
	@mkdir -p $(BUILD)/gen
	protoc -I. --cpp_out=$(BUILD)/gen $<

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.cc | $(PROTO_HDRS)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(BUILD)/bin/%: $(BUILD)/obj/src/apps/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(TEST_SUPPORT_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) $^ -o $@ $(LDLIBS) -lgtest -lgtest_main

$(BUILD)/tests/mpi/%: $(BUILD)/obj/tests/mpi/%.o $(BUILD)/obj/tests/mpi/mpi_gtest_main.o $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) $^ -o $@ $(LDLIBS) -lgtest

$(BUILD)/bin/fma_peak: bench/fma_peak.cpp | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CXX) -std=c++17 -O2 $(ARCH) -fopenmp $< -o $@

# Every test program prints its own result lines; tests/run_all.sh counts them and prints the
# final "N passed, N failed, N skipped" line.
test: $(TEST_DEPS_STAMP) all $(TESTS) $(MPI_TESTS) $(BENCH_BINS) $(REPLAY_BINS)
	@scripts/install_deps.sh --slurm || echo "note: Slurm not installed; tests/e2e/slurm_real.sh will say it skipped"
	@scripts/install_deps.sh --sshd || echo "note: sshd not installed; tests/e2e/cluster_hosts.sh will say it skipped"
	@tests/run_all.sh $(BUILD)

unit-tests: $(TESTS) $(MPI_TESTS)

# Unit tests under AddressSanitizer and UndefinedBehaviorSanitizer, in a separate build tree.
asan:
	$(MAKE) BUILD=build/asan OPT="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined" \
	    LDLIBS="$(LDLIBS) -fsanitize=address,undefined" unit-tests
	@tests/run_all.sh build/asan --unit-only

# Fuzzing the readers of outside bytes (tests/fuzz/fuzz_*.cpp; make fuzz, FUZZ_SECONDS each). Only
# the readers' own sources are built instrumented (libFuzzer coverage, ASan, UBSan); the rest comes
# from the library as it is. The same harnesses with a plain main() (tests/fuzz/replay_main.cpp),
# built by g++ with ASan and UBSan, replay the committed corpora in make test.

$(BUILD)/fuzz_replay/obj/%.o: %.cpp | $(DEPS_STAMP) $(PROTO_HDRS)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -O1 $(SANITIZE) -c $< -o $@
$(BUILD)/fuzz_replay/fuzz_%: $(BUILD)/fuzz_replay/obj/tests/fuzz/fuzz_%.o $(BUILD)/fuzz_replay/obj/tests/fuzz/replay_main.o \
                             $(FUZZ_READERS:%.cpp=$(BUILD)/fuzz_replay/obj/%.o) $(LIB)
	$(CXX) $(CXXFLAGS) $(SANITIZE) $^ -o $@ $(LDLIBS)

$(BUILD)/fuzz/obj/%.o: %.cpp | $(DEPS_STAMP) $(PROTO_HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CXX) $(FUZZ_CXXFLAGS) -fsanitize=fuzzer-no-link,address,undefined -c $< -o $@
$(BUILD)/fuzz/fuzz_%: $(BUILD)/fuzz/obj/tests/fuzz/fuzz_%.o $(FUZZ_READERS:%.cpp=$(BUILD)/fuzz/obj/%.o) $(LIB)
	$(FUZZ_CXX) $(FUZZ_CXXFLAGS) -fsanitize=fuzzer,address,undefined $^ -o $@ $(subst -fopenmp,-fopenmp=libgomp,$(LDLIBS))

# The cluster file parser's harness (Python) runs under atheris, libFuzzer for Python, from PyPI in
# its own virtual environment; offline, make fuzz goes on without it.
$(BUILD)/fuzz/fuzz_cluster_config: tests/fuzz/fuzz_cluster_config.py
	@mkdir -p $(dir $@)
	@if $(BUILD)/fuzzvenv/bin/python -c 'import atheris' 2>/dev/null || \
	    { python3 -m venv $(BUILD)/fuzzvenv && $(BUILD)/fuzzvenv/bin/pip install -q atheris; }; then \
	  printf '#!/bin/sh\nexec "%s/fuzzvenv/bin/python" "%s/tests/fuzz/fuzz_cluster_config.py" "$$@"\n' \
	    "$(abspath $(BUILD))" "$(CURDIR)" > $@ && chmod +x $@; \
	else echo "make fuzz: atheris did not install (offline?): the cluster file harness is left out"; fi

fuzz: all $(FUZZ_BINS) $(BUILD)/fuzz/fuzz_cluster_config
	@tests/fuzz/run_fuzz.sh $(BUILD)

bench: all $(BENCH_BINS)
	@bench/run_bench.sh $(BUILD)
	@bench/distributed_bench.sh $(BUILD)
	@[ "$${TUNE_BENCH:-1}" = 0 ] || bench/tune_bench.sh $(BUILD)
	@[ "$${PREDICT_BENCH:-1}" = 0 ] || bench/predict_bench.sh $(BUILD)
	@bench/memory_bench.sh $(BUILD)

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj $(BUILD)/fuzz_replay/obj $(BUILD)/fuzz/obj -name '*.d' 2>/dev/null)
