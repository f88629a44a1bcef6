#pragma once
// Overlapped launches (programmatic dependent launch, sm_90): a kernel started with Launch() may be placed on
// the multiprocessors while the kernel before it on the stream is still finishing, so that its launch and
// start-up hide behind that kernel's tail instead of following it. A decode step is ~300 dependent launches of
// a few microseconds each, so those gaps are a large share of it.
//
// The contract, for every kernel started with Launch(): it calls WaitPrevious() before it reads or writes any
// memory that an earlier kernel of the stream writes or reads (only reads of constant data, such as weights,
// may come before), and it may call StartNext() once it has waited, to let the next kernel be placed early.
// WaitPrevious() returns when every earlier kernel has finished and its writes are visible. Kernels started
// with <<<...>>> are ordered as usual. PENSIEVE_CUDA_PDL=0 (SetOverlappedLaunches(false)) starts every kernel
// in order, for comparisons.
#include <cuda_runtime.h>

namespace pensieve::backend::cuda {

__device__ __forceinline__ void WaitPrevious() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void StartNext() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" :::);
#endif
}

// Whether Launch() asks for overlap (set once by the backend, before any launch).
bool OverlappedLaunches();

// kernel<<<grid, block, smem, stream>>>(args...), overlapped with the kernel before it where enabled. Errors are
// left for cudaGetLastError, as with <<<...>>>.
template <typename... Params, typename... Args>
void Launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream, Args&&... args) {
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  config.attrs = attr;
  config.numAttrs = OverlappedLaunches() ? 1 : 0;
  cudaLaunchKernelEx(&config, kernel, static_cast<Params>(args)...);
}

}  // namespace pensieve::backend::cuda
