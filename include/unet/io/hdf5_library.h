// The HDF5 library's process-wide set-up, done once by each program before any HDF5 call.
#pragma once

namespace unet {

// HDF5 1.10 closes every file it still knows of in an exit handler. After a failed write (a full
// disk) a file's close fails and leaves it half-closed, and that handler then crashes the process
// (SIGSEGV in H5F__close_cb) after our error line. Our files are closed by their owners, and the
// ".tmp" file of a failed write is never renamed, so the handler is not installed.
void skip_hdf5_exit_cleanup();

}  // namespace unet
