/*
 * Device-side helpers shared by the CUDA op files (ops_cuda.cu,
 * ops_cuda_layers.cu): grid-stride loops and warp/block reductions.
 */
#ifndef OOMB_KERNELS_CUDA_DEVICE_CUH
#define OOMB_KERNELS_CUDA_DEVICE_CUH

#include <cuda_runtime.h>
#include <stdint.h>

#define GRID_STRIDE(i, n)                                                               \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);          \
         i += (int64_t)blockDim.x * gridDim.x)

#define ROW_STRIDE(r, rows) for (int64_t r = blockIdx.x; r < (rows); r += gridDim.x)

struct SumOp {
    template <typename T> __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};
struct MaxOp {
    template <typename T> __device__ __forceinline__ T operator()(T a, T b) const
    {
        return b > a ? b : a;
    }
};

template <typename T, typename Op> __device__ __forceinline__ T warp_reduce(T v, Op op)
{
    for (int off = 16; off > 0; off >>= 1)
        v = op(v, __shfl_xor_sync(0xffffffffu, v, off));
    return v;
}

/* Reduces v over the block and returns the result to every thread. blockDim.x
 * must be a multiple of 32. Safe to call repeatedly in one kernel. */
template <typename T, typename Op> __device__ T block_reduce(T v, Op op, T identity)
{
    __shared__ T sh[32];
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    const int nw = blockDim.x >> 5;
    v = warp_reduce(v, op);
    __syncthreads(); /* the previous call's readers are done with sh */
    if (lane == 0)
        sh[wid] = v;
    __syncthreads();
    if (wid == 0) {
        T w = lane < nw ? sh[lane] : identity;
        w = warp_reduce(w, op);
        if (lane == 0)
            sh[0] = w;
    }
    __syncthreads();
    return sh[0];
}

#endif
