#define grid_size_x 4096
#define grid_size_y 1
#define grid_size_z 1
#define block_size_x 256
#define block_size_y 1
#define block_size_z 1
#define factor 4
#define kernel_tuner 1
#line 1

#include <time.h>
float scale(float *x, int n) {
#if factor == 3
#error "uses too much shared data"
#elif factor == 4
#error "a bug in the kernel"
#endif
    struct timespec start, stop;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (int i = 0; i < n; i++) x[i] *= factor;
    clock_gettime(CLOCK_MONOTONIC, &stop);
    return (stop.tv_sec - start.tv_sec) * 1e3f + (stop.tv_nsec - start.tv_nsec) * 1e-6f;
}
