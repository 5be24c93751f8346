// Our own reader of a TensorBoard event file, for tests/e2e/tensorboard_logs.sh: checks both CRCs
// of every record (unet::read_records) and prints what it found, to compare with TensorBoard's
// loader.
//   event_dump FILE
// Output: "records N", "state clean|torn|corrupt: why", "first <file_version>", then one line per
// summary value: STEP <tab> TAG <tab> KIND <tab> DETAIL, where KIND/DETAIL is scalar/value,
// image/WxH, histogram/count, or tensor/<plugin>. Exit 1 when the file is corrupt or unreadable.
#include <cstdio>
#include <exception>
#include <string>

#include "proto/event.pb.h"
#include "unet/log/records.h"

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: event_dump FILE\n");
        return 2;
    }
    try {
        const unet::RecordScan scan = unet::read_records(argv[1]);
        std::printf("records %zu\n", scan.records.size());
        std::printf("state %s\n", !scan.corruption.empty() ? ("corrupt: " + scan.corruption).c_str()
                                  : scan.torn_tail         ? "torn"
                                                           : "clean");
        for (size_t i = 0; i < scan.records.size(); ++i) {
            unet::tb::Event e;
            if (!e.ParseFromString(scan.records[i])) {
                std::printf("unparsable record %zu\n", i);
                return 1;
            }
            if (i == 0) std::printf("first %s\n", e.file_version().c_str());
            for (const auto& v : e.summary().value()) {
                std::printf("%lld\t%s\t", (long long)e.step(), v.tag().c_str());
                if (v.has_image()) std::printf("image\t%dx%d\n", v.image().width(), v.image().height());
                else if (v.has_histo()) std::printf("histogram\t%.0f\n", v.histo().num());
                else if (v.has_tensor()) std::printf("tensor\t%s\n", v.metadata().plugin_data().plugin_name().c_str());
                else std::printf("scalar\t%.9g\n", double(v.simple_value()));
            }
        }
        return scan.corruption.empty() ? 0 : 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "event_dump: %s\n", e.what());
        return 1;
    }
}
