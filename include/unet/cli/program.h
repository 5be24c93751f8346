// What every unet_* program does at its edges: parse flags with Boost.Program_options (errors
// become UsageError, --help prints the grouped flags), and turn exceptions into one line on stderr
// and an exit code: 2 for usage errors, 1 for everything else.
#pragma once

#include <boost/program_options.hpp>
#include <functional>

namespace unet {

// Parses argv into vm (and the bound variables). Returns false after printing `flags` if --help
// was given. Throws UsageError for unknown flags or bad values.
bool parse_command_line(int argc, char** argv, const boost::program_options::options_description& flags,
                        boost::program_options::variables_map& vm);

// Runs body(); prints "<program>: <message>" for any exception and returns its exit code.
int run_program(const char* program, const std::function<int()>& body);

}  // namespace unet
