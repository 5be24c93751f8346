// libFuzzer harness: a unet_train settings file (--config FILE.ini), through the command-line parser.
#include <exception>
#include <vector>

#include "fuzz_input.h"
#include "unet/train/train_options.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string path = fuzz::as_file(data, size, "settings.ini");
    std::string a0 = "unet_train", a1 = "--config", a3 = "--check_flags";
    std::vector<char*> argv = {a0.data(), a1.data(), path.data(), a3.data()};
    try {
        unet::TrainOptions o;
        unet::parse_train_options(int(argv.size()), argv.data(), o);
    } catch (const std::exception&) {
    }
    return 0;
}
