/* Read bandwidth of this machine: T OpenMP threads sum a buffer much larger than the caches with
 * 256-bit loads (four independent accumulators), prefetching 4 KB ahead as the GEMV does. The
 * buffer is read in 4 MB steps, each timed on its own, so a step the OS deschedules on a shared
 * machine is one bad sample, not a slower round. Built and run by bench/kquant.py:
 *   cc -O2 -mavx2 -fopenmp bench/read_bandwidth.c -o rb && ./rb MB ROUNDS THREADS
 * Prints the best and the median step in GB/s (10^9 bytes per second). */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void* a, const void* b) {
  const double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

int main(int argc, char** argv) {
  const size_t mb = argc > 1 ? (size_t)atol(argv[1]) : 512;
  const int rounds = argc > 2 ? atoi(argv[2]) : 5, threads = argc > 3 ? atoi(argv[3]) : 2;
  const size_t n = mb << 20, step = (size_t)4 << 20, nsteps = n / step;
  char* buf = aligned_alloc(64, n);
  double* rate = malloc(sizeof(double) * nsteps * rounds);
  if (!buf || !rate || nsteps == 0) return 1;
#pragma omp parallel for num_threads(threads)
  for (size_t i = 0; i < n; i += 4096) memset(buf + i, (int)(i >> 12), 4096); /* each thread touches its pages */
  long long sink = 0;
  for (int r = 0; r < rounds; ++r) {
    for (size_t s = 0; s < nsteps; ++s) {
      const char* base = buf + s * step;
      const double t0 = omp_get_wtime();
      long long total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
      {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        const size_t per = step / nt / 128 * 128, b = t * per;
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
        for (size_t i = b; i < b + per; i += 128) {
          _mm_prefetch(base + i + 4096, _MM_HINT_T0);
          _mm_prefetch(base + i + 4096 + 64, _MM_HINT_T0);
          a0 = _mm256_add_epi64(a0, _mm256_load_si256((const __m256i*)(base + i)));
          a1 = _mm256_add_epi64(a1, _mm256_load_si256((const __m256i*)(base + i + 32)));
          a2 = _mm256_add_epi64(a2, _mm256_load_si256((const __m256i*)(base + i + 64)));
          a3 = _mm256_add_epi64(a3, _mm256_load_si256((const __m256i*)(base + i + 96)));
        }
        const __m256i v = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
        long long l[4];
        _mm256_storeu_si256((__m256i*)l, v);
        total += l[0] + l[1] + l[2] + l[3];
      }
      rate[r * nsteps + s] = step / (omp_get_wtime() - t0) / 1e9;
      sink += total;
    }
  }
  qsort(rate, nsteps * rounds, sizeof(double), cmp);
  printf("%.2f %.2f\n", rate[nsteps * rounds - 1], rate[nsteps * rounds / 2]);
  fprintf(stderr, "checksum %lld\n", sink);
  free(rate);
  free(buf);
  return 0;
}
