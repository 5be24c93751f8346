// PBT's exploit without a shared disk (issue 16): the donor's checkpoint travels as one MPI
// message from the leader of the group that trained the donor to the leader of the group that
// trained the recipient, which writes it into the recipient's trial directory, atomically as the
// trainer writes checkpoints (atomic_file.h). The message is the checkpoint files' bytes, so the
// recipient resumes from exactly the donor's weights, optimizer state and step.
//
// The message: for checkpoint_latest.h5 and then checkpoint_best.h5, a line "<name> <size>" and
// <size> bytes; size -1 where the donor has no such file (the recipient's is removed, as a file
// copy would leave it). A donor that cannot read its checkpoint sends "error <why>" instead, so the
// recipient never waits for bytes that will not come.
#pragma once

#include <cstdint>
#include <string>

namespace unet {

class Comm;

uint64_t pbt_checksum(const std::string& bytes);       // FNV-1a, 64 bits
uint64_t pbt_file_checksum(const std::string& path);  // of the file's bytes; 0 for a missing file

// The message for the checkpoint in `dir`. Throws std::runtime_error naming the file when it
// has no checkpoint_latest.h5 or cannot read one.
std::string pbt_pack_checkpoint(const std::string& dir);

struct PbtReceived {
    uint64_t bytes = 0;     // of the files written
    uint64_t checksum = 0;  // pbt_file_checksum of checkpoint_latest.h5 as written, read back
};
// Writes the message's files into `dir` (created if missing). Throws std::runtime_error for a
// malformed message, an "error" message (its text) or a failed write.
PbtReceived pbt_unpack_checkpoint(const std::string& message, const std::string& dir);

// The two leaders' halves, on the world communicator with message tag `tag`. The sender returns
// the checksum of the checkpoint_latest.h5 it sent (it sends the error message and rethrows when
// it cannot read it).
uint64_t pbt_send_checkpoint(Comm& world, int to, int tag, const std::string& dir);
PbtReceived pbt_receive_checkpoint(Comm& world, int from, int tag, const std::string& dir);

}  // namespace unet
