/* The model manager from C, on tiny models: scan and register, get -> generate, the states
 * list reports, eviction of the least recently used idle model under a small budget, a held
 * model never evicted (UML_ERR_OUT_OF_MEMORY), aliases, unload / remove with their bytes,
 * hot-swap, keep-alive, paths outside the folders refused, option errors, and NULL, foreign
 * and freed handles refused.
 *
 *   test_manager ROOT HUB_URL
 *
 * ROOT/models holds a.gguf, b.gguf and c.gguf (tiny llamas with different weights) and nothing
 * else; ROOT/outside/x.gguf is a tiny llama outside it. HUB_URL is tests/hub/fake_hub.py
 * serving test/Tiny-GGUF (tiny-Q8_0.gguf, a tiny llama), for uml_manager_pull.
 */
#include "check.h"

#include <stdint.h>
#include <time.h>
#include <unistd.h>

#define SENTINEL_PTR ((void *)0x5e5e)

static char models_dir[2048];
static char outside[2048];

static void model_file(char *out, size_t size, const char *name) {
    snprintf(out, size, "%s/%s.gguf", models_dir, name);
}

/* The state `uml_manager_list` reports for `id` ("unloaded", "idle", ...), copied into out. */
static const char *state_of(const uml_manager *m, const char *id, char *out, size_t size) {
    char *json = NULL;
    CHECK_OK(uml_manager_list(m, &json));
    char needle[256];
    snprintf(needle, sizeof needle, "{\"id\":\"%s\"", id);
    const char *entry = strstr(json, needle);
    CHECK(entry != NULL);
    const char *state = strstr(entry, "\"state\":\"");
    CHECK(state != NULL);
    state += strlen("\"state\":\"");
    size_t len = strcspn(state, "\"");
    CHECK(len < size);
    memcpy(out, state, len);
    out[len] = '\0';
    uml_string_free(json);
    return out;
}

#define CHECK_STATE(m, id, expected)                                                       \
    do {                                                                                   \
        char state_[32];                                                                   \
        const char *got_ = state_of((m), (id), state_, sizeof state_);                     \
        if (strcmp(got_, (expected)) != 0) {                                               \
            fprintf(stderr, "%s:%d: %s is %s, expected %s\n", __FILE__, __LINE__, (id),    \
                    got_, (expected));                                                     \
            exit(1);                                                                       \
        }                                                                                  \
        checks_run++;                                                                      \
    } while (0)

/* What the budget counts for one tiny model: its estimate's host bytes. */
static uint64_t estimate_bytes(void) {
    char path[4096];
    model_file(path, sizeof path, "a");
    char *json = NULL;
    CHECK_OK(uml_estimate(path, NULL, &json));
    uint64_t bytes = json_u64(json, "host_bytes");
    uml_string_free(json);
    CHECK(bytes > 0);
    return bytes;
}

static uml_manager *new_manager(uint64_t budget, const char *keep_alive_ms) {
    char options[4096];
    snprintf(options, sizeof options,
             "{\"memory_budget_bytes\": %llu, \"keep_alive_ms\": %s, \"folders\": [\"%s\"]}",
             (unsigned long long)budget,
             keep_alive_ms, models_dir);
    uml_manager *m = NULL;
    CHECK_OK(uml_manager_new(options, &m));
    CHECK(m != NULL);
    return m;
}

static void test_options_errors(void) {
    uml_manager *m = SENTINEL_PTR;
    CHECK_STATUS(uml_manager_new("{\"keep_alive\": 5}", &m), UML_ERR_INVALID_ARGUMENT, "keep_alive_ms");
    CHECK_STATUS(uml_manager_new("{\"memory_budget_bytes\": \"lots\"}", &m), UML_ERR_INVALID_ARGUMENT,
                 "memory_budget_bytes");
    CHECK_STATUS(uml_manager_new("[1]", &m), UML_ERR_INVALID_ARGUMENT, "JSON object");
    CHECK_STATUS(uml_manager_new("{\"folders\": [\"/no/such/uml/folder\"]}", &m), UML_ERR_NOT_FOUND,
                 "/no/such/uml/folder");
    CHECK_STATUS(uml_manager_new(NULL, NULL), UML_ERR_INVALID_ARGUMENT, "out_manager");
    CHECK(m == SENTINEL_PTR); /* outputs are written only on success */
    /* The defaults: 80% of available RAM, any path. */
    CHECK_OK(uml_manager_new(NULL, &m));
    uint64_t budget = 0, used = 1;
    CHECK_OK(uml_manager_memory(m, &budget, &used));
    CHECK(budget > 0 && used == 0);
    CHECK_OK(uml_manager_memory(m, NULL, NULL));
    uml_manager_free(m);
}

static void generate_a_few_tokens(const uml_model *model) {
    char *result = NULL;
    CHECK_OK(uml_generate(model, "the cat", "{\"temperature\": 0, \"max_tokens\": 4}", NULL, NULL, NULL, &result));
    CHECK(strstr(result, "\"finish_reason\":") != NULL);
    CHECK(json_u64(result, "completion_tokens") >= 1);
    uml_string_free(result);
}

static uml_model *get(const uml_manager *m, const char *name) {
    uml_model *model = NULL;
    CHECK_OK(uml_manager_get(m, name, &model));
    CHECK(model != NULL);
    return model;
}

static void test_scan_get_evict(uint64_t need) {
    uml_manager *m = new_manager(need * 5 / 2, "null");
    char *json = NULL;
    CHECK_OK(uml_manager_scan(m, NULL, &json));
    CHECK(strcmp(json, "[\"a\",\"b\",\"c\"]") == 0);
    uml_string_free(json);
    /* Nothing new the second time. */
    CHECK_OK(uml_manager_scan(m, "{\"n_ctx\": 64}", &json));
    CHECK(strcmp(json, "[]") == 0);
    uml_string_free(json);
    CHECK_STATE(m, "a", "unloaded");
    CHECK_STATE(m, "c", "unloaded");

    /* A model from the manager is an ordinary uml_model; holding it makes it in use. */
    uml_model *a = get(m, "a");
    generate_a_few_tokens(a);
    CHECK_STATE(m, "a", "in_use");
    CHECK_OK(uml_model_info(a, &json));
    CHECK(strstr(json, "a.gguf") != NULL);
    uml_string_free(json);
    /* A second handle to the same model is a handle of its own. */
    uml_model *a2 = get(m, "a");
    CHECK(a2 != a);
    uml_model_free(a);
    CHECK_STATE(m, "a", "in_use");
    generate_a_few_tokens(a2);
    uml_model_free(a2);
    CHECK_STATE(m, "a", "idle"); /* freeing the handles let go of them only */
    uint64_t budget = 0, used = 0;
    CHECK_OK(uml_manager_memory(m, &budget, &used));
    CHECK(budget == need * 5 / 2 && used > 0 && used <= budget);

    /* b, then a again (the more recently used), then c: b, the least recently used, goes. */
    uml_model_free(get(m, "b"));
    uml_model_free(get(m, "a"));
    CHECK_OK(uml_manager_alias(m, "tiny", "c"));
    uml_model *c = get(m, "tiny");
    CHECK_STATE(m, "a", "idle");
    CHECK_STATE(m, "b", "unloaded");
    CHECK_STATE(m, "c", "in_use");
    CHECK_OK(uml_manager_list(m, &json));
    CHECK(strstr(json, "\"aliases\":[\"tiny\"]") != NULL);
    CHECK(strstr(json, "\"backend\":\"llama.cpp\"") != NULL);
    uml_string_free(json);
    CHECK_OK(uml_manager_memory(m, NULL, &used));
    CHECK(used <= need * 5 / 2);

    /* a and c held: b does not fit, and nothing held is evicted for it. */
    uml_model *a3 = get(m, "a");
    uml_model *b = SENTINEL_PTR;
    CHECK_STATUS(uml_manager_get(m, "b", &b), UML_ERR_OUT_OF_MEMORY, "budget");
    CHECK(b == SENTINEL_PTR);
    CHECK_STATE(m, "a", "in_use");
    CHECK_STATE(m, "c", "in_use");
    generate_a_few_tokens(c);
    uml_model_free(a3);
    uml_model_free(c);
    b = get(m, "b"); /* a and c are idle now: the least recently used makes room */
    uml_model_free(b);

    /* Unknown names say what is registered. */
    uml_model *none = SENTINEL_PTR;
    CHECK_STATUS(uml_manager_get(m, "nope", &none), UML_ERR_NOT_FOUND, "a, b, c");
    CHECK(none == SENTINEL_PTR);

    /* Unload: the bytes the budget counted, then 0; it loads again on demand. */
    uint64_t freed = 0;
    CHECK_OK(uml_manager_unload(m, "b", &freed));
    CHECK(freed > 0);
    CHECK_STATE(m, "b", "unloaded");
    freed = 12345;
    CHECK_OK(uml_manager_unload(m, "b", &freed));
    CHECK(freed == 0);
    CHECK_OK(uml_manager_unload(m, "b", NULL));
    uml_model_free(get(m, "b"));
    CHECK_STATE(m, "b", "idle");

    /* Remove: gone with its aliases; a handle still held keeps working. */
    c = get(m, "c");
    CHECK_OK(uml_manager_remove(m, "tiny", &freed));
    CHECK(freed > 0);
    CHECK_STATUS(uml_manager_get(m, "c", &none), UML_ERR_NOT_FOUND, "registered");
    CHECK_STATUS(uml_manager_get(m, "tiny", &none), UML_ERR_NOT_FOUND, "registered");
    CHECK_STATUS(uml_manager_unload(m, "c", &freed), UML_ERR_NOT_FOUND, "registered");
    generate_a_few_tokens(c);
    uml_model_free(c);

    /* A manager freed while a model handle lives: the handle keeps its model. */
    a = get(m, "a");
    uml_manager_free(m);
    generate_a_few_tokens(a);
    uml_model_free(a);
}

static void test_register_swap_and_paths(uint64_t need) {
    uml_manager *m = new_manager(need * 4, "null");
    char path[4096], c_path[4096];
    model_file(path, sizeof path, "a");
    model_file(c_path, sizeof c_path, "c");
    CHECK_OK(uml_manager_register(m, "first", path, "{\"n_ctx\": 64}"));
    CHECK_STATUS(uml_manager_register(m, "first", c_path, NULL), UML_ERR_INVALID_ARGUMENT, "already registered");
    CHECK_STATUS(uml_manager_register(m, "two words", c_path, NULL), UML_ERR_INVALID_ARGUMENT, "model id");
    CHECK_STATUS(uml_manager_register(m, "x", c_path, "{\"n_gpu_layers\": 1}"), UML_ERR_INVALID_ARGUMENT,
                 "n_gpu_layers");
    CHECK_STATUS(uml_manager_register(m, "x", outside, NULL), UML_ERR_INVALID_ARGUMENT, "outside the model folders");
    /* `..` and symlinks are followed before the path is checked. */
    char sneaky[4096];
    snprintf(sneaky, sizeof sneaky, "%s/../outside/x.gguf", models_dir);
    CHECK_STATUS(uml_manager_register(m, "x", sneaky, NULL), UML_ERR_INVALID_ARGUMENT, "outside the model folders");
    snprintf(sneaky, sizeof sneaky, "%s/link.gguf", models_dir);
    CHECK(symlink(outside, sneaky) == 0);
    CHECK_STATUS(uml_manager_register(m, "x", sneaky, NULL), UML_ERR_INVALID_ARGUMENT, "outside the model folders");
    CHECK(unlink(sneaky) == 0);
    snprintf(sneaky, sizeof sneaky, "%s/missing.gguf", models_dir);
    CHECK_STATUS(uml_manager_register(m, "x", sneaky, NULL), UML_ERR_NOT_FOUND, "missing.gguf");
    CHECK_STATUS(uml_manager_alias(m, "other", "nope"), UML_ERR_NOT_FOUND, "nope");
    CHECK_OK(uml_manager_alias(m, "other", "first"));
    CHECK_STATUS(uml_manager_alias(m, "other", "first"), UML_ERR_INVALID_ARGUMENT, "already names");

    /* Hot-swap: a handle to the old model keeps working; new gets have the new file. */
    uml_model *old = get(m, "first");
    CHECK_OK(uml_manager_swap(m, "other", c_path, NULL));
    uml_model *new = get(m, "first");
    char *json = NULL;
    CHECK_OK(uml_model_info(new, &json));
    CHECK(strstr(json, "c.gguf") != NULL);
    uml_string_free(json);
    generate_a_few_tokens(old);
    generate_a_few_tokens(new);
    uml_model_free(old);
    CHECK_STATUS(uml_manager_swap(m, "first", outside, NULL), UML_ERR_INVALID_ARGUMENT, "outside the model folders");
    CHECK_STATUS(uml_manager_swap(m, "nope", c_path, NULL), UML_ERR_NOT_FOUND, "nope");
    /* A swap that fails to load keeps the model that runs. */
    char broken[4096];
    snprintf(broken, sizeof broken, "%s/broken.gguf", models_dir);
    FILE *f = fopen(broken, "wb");
    CHECK(f != NULL);
    fputs("GGUF but not really", f);
    fclose(f);
    CHECK(uml_manager_swap(m, "first", broken, NULL) != UML_OK);
    remove(broken);
    generate_a_few_tokens(new);
    uml_model_free(new);
    uml_manager_free(m);
}

static void test_keep_alive(uint64_t need) {
    uml_manager *m = new_manager(need * 4, "100");
    char *json = NULL;
    CHECK_OK(uml_manager_scan(m, NULL, &json));
    uml_string_free(json);
    uml_model *held = get(m, "a");
    uml_model_free(get(m, "b"));
    char state[32];
    for (int i = 0; strcmp(state_of(m, "b", state, sizeof state), "unloaded") != 0; i++) {
        CHECK(i < 1000); /* 10 s */
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    CHECK_STATE(m, "a", "in_use"); /* held all along: kept */
    uml_model_free(held);
    for (int i = 0; strcmp(state_of(m, "a", state, sizeof state), "unloaded") != 0; i++) {
        CHECK(i < 1000);
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    uml_manager_free(m);
}

static void test_bad_handles(uint64_t need) {
    uml_manager *m = new_manager(need * 4, "null");
    uml_model *model = SENTINEL_PTR;
    char *json = SENTINEL_PTR;
    uint64_t bytes = 777;
    char path[4096];
    model_file(path, sizeof path, "a");

    /* NULL arguments and outputs. */
    CHECK_STATUS(uml_manager_get(NULL, "a", &model), UML_ERR_INVALID_ARGUMENT, "manager is NULL");
    CHECK_STATUS(uml_manager_get(m, NULL, &model), UML_ERR_INVALID_ARGUMENT, "name is NULL");
    CHECK_STATUS(uml_manager_get(m, "a", NULL), UML_ERR_INVALID_ARGUMENT, "out_model is NULL");
    CHECK_STATUS(uml_manager_list(m, NULL), UML_ERR_INVALID_ARGUMENT, "out_json is NULL");
    CHECK_STATUS(uml_manager_scan(m, NULL, NULL), UML_ERR_INVALID_ARGUMENT, "out_json is NULL");
    CHECK_STATUS(uml_manager_scan(m, "{\"nope\": 1}", &json), UML_ERR_INVALID_ARGUMENT, "nope");
    CHECK_STATUS(uml_manager_register(m, NULL, path, NULL), UML_ERR_INVALID_ARGUMENT, "id is NULL");
    CHECK_STATUS(uml_manager_register(m, "a", NULL, NULL), UML_ERR_INVALID_ARGUMENT, "path is NULL");
    CHECK_STATUS(uml_manager_register(m, "caf\xc3\x28", path, NULL), UML_ERR_INVALID_ARGUMENT, "UTF-8");
    CHECK_STATUS(uml_manager_alias(m, NULL, "a"), UML_ERR_INVALID_ARGUMENT, "alias is NULL");
    CHECK_STATUS(uml_manager_swap(m, "a", NULL, NULL), UML_ERR_INVALID_ARGUMENT, "path is NULL");
    CHECK_STATUS(uml_manager_unload(m, NULL, &bytes), UML_ERR_INVALID_ARGUMENT, "name is NULL");
    CHECK_STATUS(uml_manager_remove(m, NULL, &bytes), UML_ERR_INVALID_ARGUMENT, "name is NULL");
    CHECK(model == SENTINEL_PTR && json == SENTINEL_PTR && bytes == 777);

    /* A handle of another kind, and garbage. */
    uml_cancel *cancel = NULL;
    CHECK_OK(uml_cancel_new(&cancel));
    CHECK_STATUS(uml_manager_list((const uml_manager *)cancel, &json), UML_ERR_INVALID_ARGUMENT,
                 "not a uml_manager handle");
    CHECK_STATUS(uml_manager_list((const uml_manager *)(uintptr_t)0xdeadbeef, &json), UML_ERR_INVALID_ARGUMENT,
                 "not a uml_manager handle");
    uml_manager_free((uml_manager *)cancel); /* not a manager: ignored, the token lives on */
    CHECK_OK(uml_cancel_cancel(cancel));
    uml_cancel_free(cancel);
    CHECK_OK(uml_manager_register(m, "a", path, NULL));
    model = get(m, "a");
    CHECK_STATUS(uml_manager_list((const uml_manager *)model, &json), UML_ERR_INVALID_ARGUMENT,
                 "not a uml_manager handle");
    CHECK(json == SENTINEL_PTR);

    /* Freed: refused, and freeing again (or NULL) is harmless; the model handle lives on. */
    uml_manager_free(m);
    uml_manager_free(m);
    uml_manager_free(NULL);
    generate_a_few_tokens(model);
    uml_model_free(model);
    model = SENTINEL_PTR;
    CHECK_STATUS(uml_manager_get(m, "a", &model), UML_ERR_INVALID_ARGUMENT, "already freed");
    CHECK_STATUS(uml_manager_list(m, &json), UML_ERR_INVALID_ARGUMENT, "already freed");
    CHECK_STATUS(uml_manager_register(m, "b", path, NULL), UML_ERR_INVALID_ARGUMENT, "already freed");
    CHECK_STATUS(uml_manager_unload(m, "a", &bytes), UML_ERR_INVALID_ARGUMENT, "already freed");
    CHECK_STATUS(uml_manager_memory(m, &bytes, NULL), UML_ERR_INVALID_ARGUMENT, "already freed");
    CHECK(model == SENTINEL_PTR && json == SENTINEL_PTR && bytes == 777);
}

static int pull_calls;
static uint64_t pull_bytes, pull_total;

static bool on_pull(const char *file, uint64_t bytes, uint64_t total, void *user) {
    CHECK(strcmp(file, "tiny-Q8_0.gguf") == 0);
    CHECK(bytes <= total);
    pull_calls++;
    pull_bytes = bytes;
    pull_total = total;
    return *(const bool *)user;
}

/* uml_manager_pull from the fake hub: cancelled by its progress callback, then pulled,
 * registered and run; bad specs, repos and options refused. Runs last: it adds a model to the
 * folder. */
static void test_pull(const char *hub, uint64_t need) {
    uml_manager *m = new_manager(need * 4, "null");
    char options[4096];
    snprintf(options, sizeof options, "{\"endpoint\": \"%s\"}", hub);
    char *json = SENTINEL_PTR;
    bool go_on = false;
    CHECK_STATUS(uml_manager_pull(m, "test/Tiny-GGUF", options, NULL, on_pull, &go_on, &json),
                 UML_ERR_CANCELLED, "cancelled");
    CHECK(json == SENTINEL_PTR && pull_calls > 0);
    CHECK_STATUS(uml_manager_unload(m, "tiny-Q8_0", NULL), UML_ERR_NOT_FOUND, "tiny-Q8_0");

    go_on = true;
    pull_calls = 0;
    CHECK_OK(uml_manager_pull(m, "test/Tiny-GGUF", options, "{\"n_ctx\": 64}", on_pull, &go_on, &json));
    CHECK(strstr(json, "\"id\":\"tiny-Q8_0\"") != NULL);
    CHECK(strstr(json, "\"repo\":\"test/Tiny-GGUF\"") != NULL);
    CHECK(pull_calls > 0 && pull_total > 0 && pull_bytes == pull_total);
    CHECK(json_u64(json, "reused_bytes") == pull_total);
    uml_string_free(json);
    uml_model *model = get(m, "tiny-Q8_0");
    generate_a_few_tokens(model);
    uml_model_free(model);

    json = SENTINEL_PTR;
    CHECK_STATUS(uml_manager_pull(m, "not a repo", options, NULL, NULL, NULL, &json),
                 UML_ERR_INVALID_ARGUMENT, "owner/name");
    CHECK_STATUS(uml_manager_pull(m, "test/Nope", options, NULL, NULL, NULL, &json), UML_ERR_NOT_FOUND,
                 "HF_ENDPOINT");
    CHECK_STATUS(uml_manager_pull(m, "test/Tiny-GGUF", "{\"revison\": \"v1\"}", NULL, NULL, NULL, &json),
                 UML_ERR_INVALID_ARGUMENT, "revison");
    CHECK_STATUS(uml_manager_pull(m, NULL, options, NULL, NULL, NULL, &json), UML_ERR_INVALID_ARGUMENT, "spec");
    CHECK_STATUS(uml_manager_pull(m, "test/Tiny-GGUF", options, NULL, NULL, NULL, NULL), UML_ERR_INVALID_ARGUMENT,
                 "out_json");
    CHECK(json == SENTINEL_PTR);
    uml_manager_free(m);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s ROOT HUB_URL\n", argv[0]);
        return 2;
    }
    CHECK(strlen(argv[1]) + 32 < sizeof models_dir);
    snprintf(models_dir, sizeof models_dir, "%s/models", argv[1]);
    snprintf(outside, sizeof outside, "%s/outside/x.gguf", argv[1]);
    uint64_t need = estimate_bytes();
    test_options_errors();
    test_scan_get_evict(need);
    test_register_swap_and_paths(need);
    test_keep_alive(need);
    test_bad_handles(need);
    test_pull(argv[2], need);
    printf("test_manager: %d checks passed\n", checks_run);
    return 0;
}
