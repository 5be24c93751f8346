// The one registry of unet_train's flags (src/train/flags.cpp): each row names a flag, its group,
// its value binding and default, its help, and how its resolved value reads as settings text. The
// rows drive everything that lists flags: the option table (--help, settings files, the command
// line), TrainOptions::describe() (the configuration a checkpoint stores), the text every rank
// compares before a run, TensorBoard's HParams columns, and the benchmark's JSON.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "unet/train/train_options.h"

namespace boost::program_options {
class options_description;
class value_semantic;
}  // namespace boost::program_options

namespace unet {

// What a flag's resolved value is part of.
enum FlagUse : unsigned {
    kConfig = 1u,      // the configuration: describe(), checkpoints, and the ranks' agreement
    kAgreement = 2u,   // only the ranks' agreement (where the run lives and how it syncs)
    kHParam = 4u,      // a column of TensorBoard's HParams table
    kBenchmark = 8u,   // a field of --benchmark's JSON line
};
enum class FlagKind { number, text, flag, list };

// Flags given as text, turned into TrainOptions by the parser's resolve step.
struct RawOptions {
    std::string input_size, upsampling, norm, loss, optimizer, conv_algorithm, patch, checkpoint_every,
        val_whole_every, labels;
    bool use_upsampling = false;
    int depth = 0;
    int64_t filters = 0;
};

struct Flag {
    using Value = boost::program_options::value_semantic*;
    const char* group;  // the --help section
    const char* name;   // Program_options' name ("help,h": with a short form)
    const char* help;
    Value (*value)(TrainOptions&, RawOptions&);       // binding and default; null: a flag without value
    std::string (*setting)(const TrainOptions&);      // the resolved value as settings text; null: none
    unsigned uses;                                    // FlagUse bits
    FlagKind kind;                                    // how the setting reads (HParams, JSON)
    const char* hparam;                               // the HParams column, when kHParam
};

const std::vector<Flag>& flag_table();
const char* help_caption();  // what --help prints above the option table

// The Program_options table of every flag, bound to `o` and `r`, grouped as --help shows it.
boost::program_options::options_description option_table(TrainOptions& o, RawOptions& r);

struct FlagValue {
    std::string name, value;  // value: the settings text
    FlagKind kind;
    std::string hparam;
};
// The resolved values of the flags with any of the `uses` bits, in the table's order.
std::vector<FlagValue> flag_values(const TrainOptions& o, unsigned uses);
// The same as "name = value" lines (settings text that parse_settings_text reads back).
std::string settings_text(const TrainOptions& o, unsigned uses);

}  // namespace unet
