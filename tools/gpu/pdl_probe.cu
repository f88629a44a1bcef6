// How long a dependent kernel boundary costs inside a CUDA graph on this GPU, with and without programmatic
// dependent launch (launch.cuh): a chain of N small kernels, each reading what the one before wrote.
//   nvcc -O3 -gencode arch=compute_90a,code=sm_90a -o pdl_probe tools/gpu/pdl_probe.cu && ./pdl_probe
#include <cuda_runtime.h>

#include <cstdio>

__global__ void Step(float* a, int n, int work) {
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;\n" :::);
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    float v = a[i];
    for (int k = 0; k < work; ++k) v = v * 0.999f + 0.001f;
    a[i] = v;
  }
}

int main() {
  const int kChain = 400;
  float* a;
  cudaMalloc(&a, 1 << 24);
  cudaMemset(a, 0, 1 << 24);
  cudaStream_t s;
  cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  for (int blocks : {1, 132, 528})
    for (int pdl : {0, 1}) {
      cudaLaunchAttribute attr[1];
      attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
      attr[0].val.programmaticStreamSerializationAllowed = 1;
      cudaLaunchConfig_t c = {};
      c.gridDim = dim3(blocks);
      c.blockDim = dim3(128);
      c.stream = s;
      c.attrs = attr;
      c.numAttrs = pdl;
      cudaGraph_t g;
      cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
      for (int k = 0; k < kChain; ++k) cudaLaunchKernelEx(&c, Step, a, blocks * 128, 16);
      cudaStreamEndCapture(s, &g);
      cudaGraphExec_t e;
      if (cudaGraphInstantiate(&e, g, 0) != cudaSuccess) {
        std::printf("instantiate failed: %s\n", cudaGetErrorString(cudaGetLastError()));
        return 1;
      }
      size_t nodes = 0;
      cudaGraphGetNodes(g, nullptr, &nodes);
      for (int w = 0; w < 3; ++w) cudaGraphLaunch(e, s);
      cudaEvent_t t0, t1;
      cudaEventCreate(&t0), cudaEventCreate(&t1);
      cudaEventRecord(t0, s);
      for (int r = 0; r < 20; ++r) cudaGraphLaunch(e, s);
      cudaEventRecord(t1, s);
      cudaEventSynchronize(t1);
      float ms = 0;
      cudaEventElapsedTime(&ms, t0, t1);
      std::printf("blocks %4d pdl %d: %6.2f us per kernel (%zu nodes) %s\n", blocks, pdl, ms * 1000 / 20 / kChain, nodes,
                  cudaGetErrorString(cudaGetLastError()));
      cudaGraphExecDestroy(e);
      cudaGraphDestroy(g);
    }
  return 0;
}
