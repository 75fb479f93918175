/* Generation speed from a C host's long-lived threads, against the same host's main thread.
 *
 *   c_threads MODEL [ROUNDS]
 *
 * Eight pthreads live for the whole run and generate in turn (one at a time, so every
 * generation has the machine to itself); the main thread's generations are the baseline, and
 * the two alternate ROUNDS times. Prints the median tokens/s of each and their ratio. Before
 * uml ran compute on its own short-lived threads, llama.cpp's OpenMP kept a worker team per
 * calling thread, and past one team per core decoding slowed to about half.
 * Built and run by bench/c_threads.sh.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uml.h>

#define THREADS 8
#define MAX_RUNS 256
static const char *PARAMS = "{\"temperature\": 0, \"max_tokens\": 64}";
static const char *PROMPT = "Once upon a time, in a small village by the sea,";

static uml_model *model;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int turn = -1;     /* which thread generates now; -1: none */
static int finished = 0;  /* threads done with this round */
static int quit = 0;
static double thread_tps[MAX_RUNS];
static int n_thread_tps = 0;

/* One greedy generation; returns its decode tokens/s from the result JSON. */
static double generate_once(void) {
    char *result = NULL;
    uml_status status = uml_generate(model, PROMPT, PARAMS, NULL, NULL, NULL, &result);
    if (status != UML_OK) {
        fprintf(stderr, "uml_generate: %s: %s\n", uml_status_name(status), uml_last_error());
        exit(1);
    }
    const char *key = strstr(result, "\"generation_tokens_per_second\":");
    double tps = key ? atof(key + strlen("\"generation_tokens_per_second\":")) : 0.0;
    uml_string_free(result);
    return tps;
}

static void *worker(void *arg) {
    int id = (int)(long)arg;
    pthread_mutex_lock(&lock);
    for (;;) {
        while (turn != id && !quit) pthread_cond_wait(&changed, &lock);
        if (quit) break;
        pthread_mutex_unlock(&lock);
        double tps = generate_once();
        pthread_mutex_lock(&lock);
        thread_tps[n_thread_tps++] = tps;
        turn = -1;
        finished++;
        pthread_cond_broadcast(&changed);
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, compare);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [ROUNDS]\n", argv[0]);
        return 2;
    }
    int rounds = argc > 2 ? atoi(argv[2]) : 3;
    if (rounds < 1 || rounds * THREADS > MAX_RUNS) rounds = 3;
    uml_status status = uml_model_load(argv[1], "{\"n_ctx\": 512}", NULL, NULL, &model);
    if (status != UML_OK) {
        fprintf(stderr, "uml_model_load: %s: %s\n", uml_status_name(status), uml_last_error());
        return 1;
    }
    pthread_t threads[THREADS];
    for (long i = 0; i < THREADS; i++) pthread_create(&threads[i], NULL, worker, (void *)i);
    generate_once(); /* warm-up */

    double main_tps[MAX_RUNS];
    int n_main = 0;
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < THREADS; i++) main_tps[n_main++] = generate_once();
        pthread_mutex_lock(&lock);
        finished = 0;
        for (int i = 0; i < THREADS; i++) {
            turn = i;
            pthread_cond_broadcast(&changed);
            while (finished <= i) pthread_cond_wait(&changed, &lock);
        }
        pthread_mutex_unlock(&lock);
    }
    pthread_mutex_lock(&lock);
    quit = 1;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < THREADS; i++) pthread_join(threads[i], NULL);

    double base = median(main_tps, n_main), threaded = median(thread_tps, n_thread_tps);
    printf("main thread:             %.1f t/s (median of %d)\n", base, n_main);
    printf("%d long-lived pthreads:   %.1f t/s (median of %d)\n", THREADS, threaded, n_thread_tps);
    printf("ratio:                   %.3f\n", threaded / base);
    uml_model_free(model);
    return 0;
}
