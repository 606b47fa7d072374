#pragma once

// PyTorch backend: TorchScript models through libtorch (Debian's libtorch 1.13,
// the same version as the python3-torch that exports the test fixtures).
//
// Model directory: a TorchScript archive (model.pt, or the one *.pt / *.pth /
// *.torchscript file, or config.pbtxt's default_model_filename), and
// optionally Triton's config.pbtxt declaring the tensors (name, data_type,
// dims, reshape), max_batch_size, dynamic_batching and instance groups
// (LoadOptions::config; the server reads the file). Inputs are passed to
// forward() positionally in declared order; outputs are forward()'s tensor,
// or the tensors of the tuple/list it returns, named in declared order. A
// reshape gives the shape forward() takes (or gives) after the batch
// dimension. LoadOptions::instances bounds the executions at once (and the
// batches run at once, with dynamic batching).
//
// KServe's torchserve layout (model-store/*.mar) is the Python runtime's,
// with TorchServe's own handlers (python_backend.h, torchserve_store.h).
//
// Without config.pbtxt (the documented default): one input "input-0" and one
// output "output-0", FP32, of shape [-1, -1] (a batch of feature vectors);
// no warm-up at load (no shape to warm up with) and no dynamic batching.
//
// Threads: libtorch's intra-op pool is set to --threads-per-call (1 by
// default) and its inter-op pool to 1, so concurrent requests, not one
// request's operators, share a small machine's cores.

#include "backends/backend.h"

namespace osprey {

const Backend& TorchBackend();

}  // namespace osprey
