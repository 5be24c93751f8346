#include "unet/cli/program.h"

#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>

#include "unet/core/check.h"
#include "unet/core/shared_input_error.h"
#include "unet/core/text.h"
#include "unet/io/hdf5_library.h"
#include "unet/parallel/comm.h"

namespace po = boost::program_options;

namespace unet {

namespace {
constexpr unsigned kUsageErrorGraceSeconds = 5;
}  // namespace

bool parse_command_line(int argc, char** argv, const po::options_description& flags, po::variables_map& vm) {
    for (int i = 1; i < argc; ++i) refuse_option_placeholders(argv[i], std::string("argument ") + argv[i] + ": ");
    try {
        po::store(po::parse_command_line(argc, argv, flags), vm);
        if (vm.count("help")) {
            std::cout << flags << "\n";
            return false;
        }
        po::notify(vm);
    } catch (const po::error& e) {
        throw UsageError(e.what());
    }
    return true;
}

// An error message is one line, whatever bytes it quotes (a damaged file's text can hold a
// newline or a terminal escape): control characters become '?'.
static std::string one_line(const char* what) {
    std::string s = what;
    for (char& ch : s)
        if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) ch = '?';
    return s;
}

int run_program(const char* program, const std::function<int()>& body) {
    skip_hdf5_exit_cleanup();
    int code = 0;
    Comm& comm = Comm::world();
    // Under mpirun, usage errors are the same on every rank: rank 0 alone reports them. Other errors
    // can be one rank's own (a file only it cannot read), so that rank reports, naming itself.
    const std::string who = comm.size() > 1 ? " (rank " + std::to_string(comm.rank()) + ")" : "";
    std::string unreported;  // an error that every rank meets alike, found by another rank than 0
    try {
        code = body();
    } catch (const UsageError& e) {
        if (comm.is_root()) std::fprintf(stderr, "%s: %s (see --help)\n", program, one_line(e.what()).c_str());
        else unreported = one_line(e.what()) + " (see --help)";
        code = 2;
    } catch (const SharedInputError& e) {
        if (comm.is_root()) std::fprintf(stderr, "%s: error: %s\n", program, one_line(e.what()).c_str());
        else unreported = "error: " + one_line(e.what());
        code = 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s%s: error: %s\n", program, who.c_str(), one_line(e.what()).c_str());
        code = 1;
    }
    // Under mpirun a rank that fails alone would leave the others waiting in a collective forever.
    if (code != 0 && comm.size() > 1) {
        // Rank 0 found the same usage error (or damaged shared file) and is saying it: an abort from
        // here at once could kill it before its line is out. A rank still running after the wait
        // had an error of its own.
        if (!unreported.empty()) {
            sleep(kUsageErrorGraceSeconds);
            std::fprintf(stderr, "%s%s: %s\n", program, who.c_str(), unreported.c_str());
        }
        std::fflush(stderr);
        comm.abort(code);
    }
    comm.finalize();
    return code;
}

}  // namespace unet
