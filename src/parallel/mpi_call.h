// For the .cpp files of src/parallel that speak MPI themselves (comm, the gradient exchanges): one
// way to turn an MPI error code into an exception, and the MPI_Comm behind Comm::mpi_comm().
#pragma once

#define OMPI_SKIP_MPICXX 1  // the C API only
#include <mpi.h>

#include <stdexcept>
#include <string>

namespace unet {

// Communicators return error codes (MPI_ERRORS_RETURN); this makes them exceptions with MPI's text.
inline void check_mpi(int rc, const char* what) {
    if (rc == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    throw std::runtime_error(std::string(what) + " failed: " + std::string(text, size_t(len)));
}

inline MPI_Comm native_comm(void* comm) { return *static_cast<MPI_Comm*>(comm); }

}  // namespace unet
