// BucketedExchange's requests in flight, for the .cpp files of src/parallel (mpi.h stays here).
#pragma once

#include <vector>

#include "mpi_call.h"
#include "unet/parallel/bucketed_exchange.h"

namespace unet {

struct BucketedExchange::Requests {
    std::vector<MPI_Request> list;
};

}  // namespace unet
