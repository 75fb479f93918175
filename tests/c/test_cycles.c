/* Load and free a model many times in one process: the resident memory after the last cycle
 * must stay within 10% of that after the first (nothing accumulates per load).
 *
 *   test_cycles TINY_MODEL.gguf CYCLES
 */
#include "check.h"

#include <unistd.h>

static long rss_kib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    CHECK(f != NULL);
    long size = 0, resident = 0;
    CHECK(fscanf(f, "%ld %ld", &size, &resident) == 2);
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s TINY_MODEL.gguf CYCLES\n", argv[0]);
        return 2;
    }
    int cycles = atoi(argv[2]);
    CHECK(cycles >= 2);
    long first = 0, last = 0, peak = 0;
    for (int i = 0; i < cycles; i++) {
        uml_model *m = NULL;
        CHECK_OK(uml_model_load(argv[1], "{\"n_ctx\": 64, \"n_threads\": 1}", NULL, NULL, &m));
        int32_t tokens[16];
        size_t n = 0;
        CHECK_OK(uml_tokenize(m, "hello world", true, tokens, 16, &n));
        uml_model_free(m);
        long rss = rss_kib();
        if (i == 0) first = rss;
        if (rss > peak) peak = rss;
        last = rss;
    }
    printf("test_cycles: %d load/free cycles: RSS after first %ld KiB, after last %ld KiB (%+.1f%%), peak %ld KiB\n",
           cycles, first, last, 100.0 * (double)(last - first) / (double)first, peak);
    CHECK(last <= first + first / 10);
    return 0;
}
