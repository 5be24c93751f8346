// libFuzzer harness: the NIfTI reader (NIfTI-1 and -2, raw or gzipped: gzip input is named .nii.gz).
#include <exception>

#include "fuzz_input.h"
#include "unet/data/nifti.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const bool gz = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
    const std::string path = fuzz::as_file(data, size, gz ? "case.nii.gz" : "case.nii");
    try {
        unet::read_nifti(path);
    } catch (const std::exception&) {
    }
    return 0;
}
