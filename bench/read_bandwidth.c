/* Read bandwidth of this machine: T OpenMP threads each sum their share of a buffer much larger
 * than the caches with 256-bit loads (four independent accumulators), prefetching 4 KB ahead as the
 * GEMV does (without it this VM reads ~25% slower: the hardware prefetchers stop at pages). Built and run by
 * bench/kquant.py:  cc -O2 -mavx2 -fopenmp bench/read_bandwidth.c -o rb && ./rb MB ROUNDS THREADS
 * Prints the best round's GB/s (10^9 bytes per second). */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char** argv) {
  const size_t mb = argc > 1 ? (size_t)atol(argv[1]) : 512;
  const int rounds = argc > 2 ? atoi(argv[2]) : 7, threads = argc > 3 ? atoi(argv[3]) : 2;
  const size_t n = mb << 20;
  char* buf = aligned_alloc(64, n);
  if (!buf) return 1;
#pragma omp parallel for num_threads(threads)
  for (size_t i = 0; i < n; i += 4096) memset(buf + i, (int)(i >> 12), 4096); /* each thread touches its pages */
  double best = 0.0;
  long long sink = 0;
  for (int r = 0; r < rounds; ++r) {
    const double t0 = omp_get_wtime();
    long long total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      const size_t per = n / nt / 128 * 128, b = t * per;
      __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
      for (size_t i = b; i < b + per; i += 128) {
        _mm_prefetch(buf + i + 4096, _MM_HINT_T0); /* the hardware prefetchers stop at 4 KB pages */
        _mm_prefetch(buf + i + 4096 + 64, _MM_HINT_T0);
        a0 = _mm256_add_epi64(a0, _mm256_load_si256((const __m256i*)(buf + i)));
        a1 = _mm256_add_epi64(a1, _mm256_load_si256((const __m256i*)(buf + i + 32)));
        a2 = _mm256_add_epi64(a2, _mm256_load_si256((const __m256i*)(buf + i + 64)));
        a3 = _mm256_add_epi64(a3, _mm256_load_si256((const __m256i*)(buf + i + 96)));
      }
      const __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
      long long v[4];
      _mm256_storeu_si256((__m256i*)v, s);
      total += v[0] + v[1] + v[2] + v[3];
    }
    const double dt = omp_get_wtime() - t0;
    sink += total;
    if (n / dt / 1e9 > best) best = n / dt / 1e9;
  }
  printf("%.2f\n", best);
  fprintf(stderr, "checksum %lld\n", sink);
  free(buf);
  return 0;
}
