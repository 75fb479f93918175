/* Every entry point with NULL, invalid and freed handles, non-UTF-8 text and bad JSON: the
 * right status, a message that says why, outputs untouched, and no crash. Also the
 * thread-locality of uml_last_error, load progress and buffer-size reporting.
 *
 *   test_api TINY_MODEL.gguf SCRATCH_DIR
 */
#include "check.h"
#include <sys/stat.h>
#include <unistd.h>

#include <pthread.h>
#include <stdint.h>

static const char BAD_UTF8[] = "caf\xc3\x28 \xff";

#define SENTINEL_PTR ((void *)0x5e5e)

static void write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK(fwrite(data, 1, len, f) == len);
    fclose(f);
}

static void *thread_last_error(void *arg) {
    (void)arg;
    /* A fresh thread has no error, whatever other threads did. */
    return (void *)(uintptr_t)(uml_last_error()[0] == '\0');
}

struct progress_log {
    int calls;
    int saw_weights;
    int saw_ready;
    float last_weights;
    int stop_at; /* return false at this call (0 = never) */
};

static bool on_progress(const char *stage, float fraction, void *user) {
    struct progress_log *log = user;
    log->calls++;
    CHECK(fraction >= 0.0f && fraction <= 1.0f);
    if (strcmp(stage, "weights") == 0) {
        CHECK(fraction >= log->last_weights);
        log->last_weights = fraction;
        log->saw_weights = 1;
    } else if (strcmp(stage, "ready") == 0) {
        log->saw_ready = 1;
    } else {
        CHECK(strcmp(stage, "inspect") == 0);
    }
    return log->stop_at == 0 || log->calls < log->stop_at;
}

static void test_versions_and_names(void) {
    CHECK(uml_abi_version() == UML_ABI_VERSION);
    CHECK(strlen(uml_version()) >= 5);
    CHECK(strcmp(uml_status_name(UML_OK), "UML_OK") == 0);
    CHECK(strcmp(uml_status_name(UML_ERR_NOT_FOUND), "UML_ERR_NOT_FOUND") == 0);
    CHECK(strcmp(uml_status_name(UML_ERR_BUFFER_TOO_SMALL), "UML_ERR_BUFFER_TOO_SMALL") == 0);
    CHECK(strcmp(uml_status_name(UML_ERR_BUSY), "UML_ERR_BUSY") == 0);
    CHECK(strcmp(uml_status_name(-3), "UML_ERR_UNKNOWN") == 0);
    CHECK(strcmp(uml_status_name(1000), "UML_ERR_UNKNOWN") == 0);
    for (int s = 0; s <= 13; s++) CHECK(strncmp(uml_status_name(s), "UML_", 4) == 0);
    uml_string_free(NULL);
    uml_model_free(NULL);
    uml_cancel_free(NULL);
}

/* A GGUF header of key-values only (no tensors): the little-endian layout of GGUF v3. */
struct gguf_buf {
    unsigned char bytes[512];
    size_t len;
};

static void put(struct gguf_buf *b, const void *data, size_t n) {
    CHECK(b->len + n <= sizeof b->bytes);
    memcpy(b->bytes + b->len, data, n);
    b->len += n;
}

static void put_key(struct gguf_buf *b, const char *key, uint32_t type) {
    uint64_t n = strlen(key);
    put(b, &n, 8);
    put(b, key, n);
    put(b, &type, 4);
}

static void put_u64(struct gguf_buf *b, const char *key, uint64_t v) {
    put_key(b, key, 10);
    put(b, &v, 8);
}

/* A header whose values multiply past 2^64 bytes: the estimate says the file is corrupt
 * instead of wrapping around to a number that "fits". */
static void test_corrupt_header_estimate(const char *scratch) {
    struct gguf_buf b = {{0}, 0};
    const uint32_t version = 3;
    const uint64_t n_tensors = 0, n_kv = 4;
    put(&b, "GGUF", 4);
    put(&b, &version, 4);
    put(&b, &n_tensors, 8);
    put(&b, &n_kv, 8);
    put_key(&b, "general.architecture", 8);
    uint64_t n = 5;
    put(&b, &n, 8);
    put(&b, "llama", 5);
    put_u64(&b, "llama.block_count", (uint64_t)1 << 40);
    put_u64(&b, "llama.embedding_length", 64);
    put_u64(&b, "llama.attention.head_count", 4);
    char path[4096];
    snprintf(path, sizeof path, "%s/huge-header.gguf", scratch);
    write_file(path, b.bytes, b.len);
    char *out = SENTINEL_PTR;
    CHECK_STATUS(uml_estimate(path, "{\"n_ctx\": 128}", &out), UML_ERR_INVALID_MODEL, "block count");
    CHECK(out == SENTINEL_PTR);
    uml_model *m = NULL;
    CHECK_STATUS(uml_model_load(path, NULL, NULL, NULL, &m), UML_ERR_INVALID_MODEL, "corrupt");
    CHECK(m == NULL);
}

static void test_inspect_estimate_hardware(const char *tiny, const char *scratch) {
    char *out = SENTINEL_PTR;
    CHECK_STATUS(uml_inspect(NULL, &out), UML_ERR_INVALID_ARGUMENT, "path is NULL");
    CHECK_STATUS(uml_inspect(tiny, NULL), UML_ERR_INVALID_ARGUMENT, "out_json is NULL");
    CHECK_STATUS(uml_inspect(BAD_UTF8, &out), UML_ERR_INVALID_ARGUMENT, "UTF-8");
    CHECK_STATUS(uml_inspect("/no/such/model.gguf", &out), UML_ERR_NOT_FOUND, "/no/such/model.gguf");
    CHECK(out == SENTINEL_PTR); /* outputs are written only on success */

    char bad[4096];
    snprintf(bad, sizeof bad, "%s/not-a-model.gguf", scratch);
    write_file(bad, "hello, I am not a model\n", 24);
    CHECK_STATUS(uml_inspect(bad, &out), UML_ERR_INVALID_MODEL, "not a valid gguf");
    snprintf(bad, sizeof bad, "%s/not-a-model.txt", scratch);
    write_file(bad, "hello, I am not a model\n", 24);
    CHECK_STATUS(uml_inspect(bad, &out), UML_ERR_UNSUPPORTED_FORMAT, "not-a-model.txt");
    char truncated[4096];
    snprintf(truncated, sizeof truncated, "%s/truncated.gguf", scratch);
    const unsigned char gguf_head[] = {'G', 'G', 'U', 'F', 3, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
    write_file(truncated, gguf_head, sizeof gguf_head);
    CHECK_STATUS(uml_inspect(truncated, &out), UML_ERR_INVALID_MODEL, "truncated.gguf");
    CHECK(out == SENTINEL_PTR);

    CHECK_OK(uml_inspect(tiny, &out));
    CHECK(strstr(out, "\"llama\"") != NULL);
    uml_string_free(out);

    out = SENTINEL_PTR;
    CHECK_STATUS(uml_estimate(NULL, NULL, &out), UML_ERR_INVALID_ARGUMENT, "path is NULL");
    CHECK_STATUS(uml_estimate(tiny, "{\"bogus_key\": 1}", &out), UML_ERR_INVALID_ARGUMENT, "bogus_key");
    CHECK_STATUS(uml_estimate(tiny, "{not json", &out), UML_ERR_INVALID_ARGUMENT, "JSON");
    CHECK_STATUS(uml_estimate(tiny, BAD_UTF8, &out), UML_ERR_INVALID_ARGUMENT, "options_json is not valid UTF-8");
    CHECK_STATUS(uml_estimate(tiny, NULL, NULL), UML_ERR_INVALID_ARGUMENT, "out_json is NULL");
    CHECK(out == SENTINEL_PTR);
    CHECK_OK(uml_estimate(tiny, "{\"n_ctx\": 128}", &out));
    CHECK(strstr(out, "\"fits\":true") != NULL);
    CHECK(strstr(out, "\"backend\":\"llama.cpp\"") != NULL);
    CHECK(strstr(out, "\"available_memory_bytes\":") != NULL);
    CHECK(strstr(out, "\"draft\":null") != NULL);
    uml_string_free(out);

    /* A draft model is loaded beside the model: the estimate counts it. */
    char options[1024];
    snprintf(options, sizeof options, "{\"n_ctx\": 128, \"draft_model\": \"%s\"}", tiny);
    CHECK_OK(uml_estimate(tiny, options, &out));
    CHECK(strstr(out, "\"draft\":{") != NULL);
    CHECK(strstr(out, "\"load_host_bytes\":") != NULL);
    uml_string_free(out);
    out = SENTINEL_PTR;
    snprintf(options, sizeof options, "{\"draft_model\": \"%s.missing\"}", tiny);
    CHECK_STATUS(uml_estimate(tiny, options, &out), UML_ERR_NOT_FOUND, "draft model");
    CHECK(out == SENTINEL_PTR);

    CHECK_STATUS(uml_hardware(NULL), UML_ERR_INVALID_ARGUMENT, "out_json is NULL");
    CHECK_OK(uml_hardware(&out));
    CHECK(out[0] == '{');
    /* This test build is native; a portable one names its CPU variant. */
    CHECK(strstr(out, "\"cpu_kernels\":\"native\"") != NULL);
    uml_string_free(out);
}

static void test_load_errors(const char *tiny) {
    uml_model *m = SENTINEL_PTR;
    CHECK_STATUS(uml_model_load(NULL, NULL, NULL, NULL, &m), UML_ERR_INVALID_ARGUMENT, "path is NULL");
    CHECK_STATUS(uml_model_load(tiny, NULL, NULL, NULL, NULL), UML_ERR_INVALID_ARGUMENT, "out_model is NULL");
    CHECK_STATUS(uml_model_load(BAD_UTF8, NULL, NULL, NULL, &m), UML_ERR_INVALID_ARGUMENT, "path is not valid UTF-8");
    CHECK_STATUS(uml_model_load(tiny, "{\"n_ctxx\": 64}", NULL, NULL, &m), UML_ERR_INVALID_ARGUMENT, "n_ctxx");
    CHECK_STATUS(uml_model_load(tiny, "{\"n_ctx\": 0}", NULL, NULL, &m), UML_ERR_INVALID_ARGUMENT, "n_ctx");
    CHECK_STATUS(uml_model_load(tiny, "{\"n_threads\": 100000}", NULL, NULL, &m), UML_ERR_INVALID_ARGUMENT, "1 to 512");
    CHECK_STATUS(uml_model_load(tiny, "{\"n_batch\": 4294967295}", NULL, NULL, &m), UML_ERR_INVALID_ARGUMENT, "n_batch");
    CHECK_STATUS(uml_model_load(tiny, "[1, 2]", NULL, NULL, &m), UML_ERR_INVALID_ARGUMENT, "");
    CHECK_STATUS(uml_model_load("/no/such/model.gguf", NULL, NULL, NULL, &m), UML_ERR_NOT_FOUND, "does not exist");
    /* A FIFO is refused, not opened: reading it would block until someone writes. */
    char fifo[] = "/tmp/uml-test-fifo-XXXXXX";
    CHECK(mkdtemp(fifo) != NULL);
    char fifo_path[4096];
    snprintf(fifo_path, sizeof fifo_path, "%s/model.gguf", fifo);
    CHECK(mkfifo(fifo_path, 0600) == 0);
    CHECK_STATUS(uml_model_load(fifo_path, NULL, NULL, NULL, &m), UML_ERR_INVALID_ARGUMENT, "FIFO");
    char *info = SENTINEL_PTR;
    CHECK_STATUS(uml_inspect(fifo_path, &info), UML_ERR_INVALID_ARGUMENT, "not a regular file");
    CHECK_STATUS(uml_inspect("/dev/zero", &info), UML_ERR_INVALID_ARGUMENT, "device");
    unlink(fifo_path);
    rmdir(fifo);
    struct progress_log log = {0};
    log.stop_at = 1;
    CHECK_STATUS(uml_model_load(tiny, NULL, on_progress, &log, &m), UML_ERR_CANCELLED, "cancel");
    CHECK(m == SENTINEL_PTR);

    memset(&log, 0, sizeof log);
    CHECK_OK(uml_model_load(tiny, "{\"n_ctx\": 128}", on_progress, &log, &m));
    CHECK(log.saw_weights && log.saw_ready && log.last_weights == 1.0f);
    uml_model_free(m);
}

static void check_model_calls_fail(const uml_model *m, uml_status expected, const char *needle) {
    char *out = SENTINEL_PTR;
    size_t n = 12345;
    int32_t tokens[4] = {1, 2, 3, 4};
    float vec[8];
    const char *texts[] = {"a"};
    CHECK_STATUS(uml_model_info(m, &out), expected, needle);
    CHECK_STATUS(uml_model_embedding_size(m, &n), expected, needle);
    CHECK_STATUS(uml_tokenize(m, "hi", true, tokens, 4, &n), expected, needle);
    CHECK_STATUS(uml_detokenize(m, tokens, 2, &out, &n), expected, needle);
    CHECK_STATUS(uml_embed(m, texts, 1, NULL, vec, 8, &n), expected, needle);
    CHECK_STATUS(uml_generate(m, "hi", NULL, NULL, NULL, NULL, &out), expected, needle);
    CHECK_STATUS(uml_chat(m, "[{\"role\":\"user\",\"content\":\"hi\"}]", NULL, NULL, NULL, NULL, &out), expected, needle);
    CHECK(out == SENTINEL_PTR && n == 12345 && tokens[0] == 1);
}

static void test_bad_handles(const char *tiny) {
    check_model_calls_fail(NULL, UML_ERR_INVALID_ARGUMENT, "model is NULL");
    check_model_calls_fail((const uml_model *)(uintptr_t)0xdeadbeef, UML_ERR_INVALID_ARGUMENT, "not a uml_model handle");

    uml_cancel *c = NULL;
    CHECK_OK(uml_cancel_new(&c));
    /* A cancel token is not a model. */
    check_model_calls_fail((const uml_model *)c, UML_ERR_INVALID_ARGUMENT, "not a uml_model handle");

    uml_model *m = NULL;
    CHECK_OK(uml_model_load(tiny, "{\"n_ctx\": 128}", NULL, NULL, &m));
    /* ...and a model is not a cancel token. */
    CHECK_STATUS(uml_cancel_cancel((const uml_cancel *)m), UML_ERR_INVALID_ARGUMENT, "not a uml_cancel handle");
    uml_model_free(m);
    check_model_calls_fail(m, UML_ERR_MODEL_CLOSED, "already freed");
    uml_model_free(m); /* double free: ignored */

    CHECK_STATUS(uml_cancel_new(NULL), UML_ERR_INVALID_ARGUMENT, "out_cancel is NULL");
    CHECK_STATUS(uml_cancel_cancel(NULL), UML_ERR_INVALID_ARGUMENT, "cancel is NULL");
    CHECK_STATUS(uml_cancel_reset(NULL), UML_ERR_INVALID_ARGUMENT, "cancel is NULL");
    bool cancelled = true;
    CHECK_STATUS(uml_cancel_is_cancelled(NULL, &cancelled), UML_ERR_INVALID_ARGUMENT, "cancel is NULL");
    CHECK_STATUS(uml_cancel_is_cancelled(c, NULL), UML_ERR_INVALID_ARGUMENT, "out_cancelled is NULL");
    CHECK_OK(uml_cancel_is_cancelled(c, &cancelled));
    CHECK(!cancelled);
    CHECK_OK(uml_cancel_cancel(c));
    CHECK_OK(uml_cancel_is_cancelled(c, &cancelled));
    CHECK(cancelled);
    CHECK_OK(uml_cancel_reset(c));
    CHECK_OK(uml_cancel_is_cancelled(c, &cancelled));
    CHECK(!cancelled);
    uml_cancel_free(c);
    CHECK_STATUS(uml_cancel_cancel(c), UML_ERR_INVALID_ARGUMENT, "already freed");
    uml_cancel_free(c);
}

static void test_model_arguments(const char *tiny) {
    uml_model *m = NULL;
    CHECK_OK(uml_model_load(tiny, "{\"n_ctx\": 128, \"n_threads\": 1}", NULL, NULL, &m));
    char *out = SENTINEL_PTR;
    size_t n = 12345;

    CHECK_STATUS(uml_model_info(m, NULL), UML_ERR_INVALID_ARGUMENT, "out_json is NULL");
    CHECK_OK(uml_model_info(m, &out));
    CHECK(strstr(out, "\"n_ctx\":128") != NULL);
    uml_string_free(out);
    CHECK_STATUS(uml_model_embedding_size(m, NULL), UML_ERR_INVALID_ARGUMENT, "out_size is NULL");
    size_t dim = 0;
    CHECK_OK(uml_model_embedding_size(m, &dim));
    CHECK(dim == 64);

    /* tokenize: size query, too small, NULL buffer with capacity, bad text */
    int32_t tokens[64];
    CHECK_STATUS(uml_tokenize(m, NULL, true, tokens, 64, &n), UML_ERR_INVALID_ARGUMENT, "text is NULL");
    CHECK_STATUS(uml_tokenize(m, BAD_UTF8, true, tokens, 64, &n), UML_ERR_INVALID_ARGUMENT, "text is not valid UTF-8");
    CHECK_STATUS(uml_tokenize(m, "hello world", true, tokens, 64, NULL), UML_ERR_INVALID_ARGUMENT, "out_count is NULL");
    CHECK_STATUS(uml_tokenize(m, "hello world", true, NULL, 64, &n), UML_ERR_INVALID_ARGUMENT, "tokens is NULL");
    CHECK(n == 12345);
    CHECK_STATUS(uml_tokenize(m, "hello world", true, NULL, 0, &n), UML_ERR_BUFFER_TOO_SMALL, "needed");
    size_t needed = n;
    CHECK(needed >= 3);
    tokens[0] = -7;
    CHECK_STATUS(uml_tokenize(m, "hello world", true, tokens, needed - 1, &n), UML_ERR_BUFFER_TOO_SMALL, "needed");
    CHECK(n == needed && tokens[0] == -7); /* the buffer is untouched */
    CHECK_OK(uml_tokenize(m, "hello world", true, tokens, 64, &n));
    CHECK(n == needed && tokens[0] == 1); /* BOS */

    /* detokenize */
    out = SENTINEL_PTR;
    CHECK_STATUS(uml_detokenize(m, NULL, 2, &out, NULL), UML_ERR_INVALID_ARGUMENT, "tokens is NULL");
    CHECK_STATUS(uml_detokenize(m, tokens, n, NULL, NULL), UML_ERR_INVALID_ARGUMENT, "out_text is NULL");
    int32_t bad_ids[] = {5, -1};
    CHECK_STATUS(uml_detokenize(m, bad_ids, 2, &out, NULL), UML_ERR_INVALID_ARGUMENT, "-1");
    int32_t huge_ids[] = {1 << 30};
    CHECK_STATUS(uml_detokenize(m, huge_ids, 1, &out, NULL), UML_ERR_INVALID_ARGUMENT, "vocabulary");
    CHECK(out == SENTINEL_PTR);
    size_t len = 0;
    CHECK_OK(uml_detokenize(m, tokens + 1, n - 1, &out, &len));
    CHECK(strstr(out, "hello world") != NULL && len == strlen(out));
    uml_string_free(out);
    CHECK_OK(uml_detokenize(m, NULL, 0, &out, NULL));
    CHECK(out[0] == '\0');
    uml_string_free(out);

    /* generate / chat */
    out = SENTINEL_PTR;
    CHECK_STATUS(uml_generate(m, NULL, NULL, NULL, NULL, NULL, &out), UML_ERR_INVALID_ARGUMENT, "prompt is NULL");
    CHECK_STATUS(uml_generate(m, BAD_UTF8, NULL, NULL, NULL, NULL, &out), UML_ERR_INVALID_ARGUMENT, "prompt is not valid UTF-8");
    CHECK_STATUS(uml_generate(m, "hi", "{", NULL, NULL, NULL, &out), UML_ERR_INVALID_ARGUMENT, "JSON");
    CHECK_STATUS(uml_generate(m, "hi", "{\"max_tokenz\": 3}", NULL, NULL, NULL, &out), UML_ERR_INVALID_ARGUMENT, "max_tokenz");
    CHECK_STATUS(uml_generate(m, "hi", "{\"temperature\": -1}", NULL, NULL, NULL, &out), UML_ERR_INVALID_ARGUMENT, "temperature");
    CHECK_STATUS(uml_generate(m, "hi", "{\"max_tokens\": \"many\"}", NULL, NULL, NULL, &out), UML_ERR_INVALID_ARGUMENT, "max_tokens");
    CHECK_STATUS(uml_generate(m, "hi", BAD_UTF8, NULL, NULL, NULL, &out), UML_ERR_INVALID_ARGUMENT, "params_json is not valid UTF-8");
    CHECK_STATUS(uml_generate(m, "hi", NULL, NULL, NULL, (const uml_cancel *)(uintptr_t)0x1234560, &out), UML_ERR_INVALID_ARGUMENT, "not a uml_cancel handle");
    CHECK(out == SENTINEL_PTR);
    /* The result is optional. */
    CHECK_OK(uml_generate(m, "hello", "{\"temperature\": 0, \"max_tokens\": 2}", NULL, NULL, NULL, NULL));
    CHECK_OK(uml_generate(m, "hello", "{\"temperature\": 0, \"max_tokens\": 2}", NULL, NULL, NULL, &out));
    CHECK(strstr(out, "\"finish_reason\":\"length\"") != NULL && strstr(out, "\"completion_tokens\":2") != NULL);
    uml_string_free(out);
    /* A prompt longer than the context is an error, not a silent truncation. */
    char long_prompt[4096] = "";
    for (int i = 0; i < 300; i++) strcat(long_prompt, "the cat ");
    out = SENTINEL_PTR;
    CHECK_STATUS(uml_generate(m, long_prompt, NULL, NULL, NULL, NULL, &out), UML_ERR_CONTEXT_OVERFLOW, "n_ctx");
    /* One far longer than any context by its bytes alone is refused before tokenizing. */
    char *huge_prompt = malloc(1 << 20);
    CHECK(huge_prompt != NULL);
    memset(huge_prompt, 'a', (1 << 20) - 1);
    huge_prompt[(1 << 20) - 1] = '\0';
    CHECK_STATUS(uml_generate(m, huge_prompt, NULL, NULL, NULL, NULL, &out), UML_ERR_CONTEXT_OVERFLOW, "bytes");
    free(huge_prompt);

    CHECK_STATUS(uml_chat(m, NULL, NULL, NULL, NULL, NULL, &out), UML_ERR_INVALID_ARGUMENT, "messages_json is NULL");
    CHECK_STATUS(uml_chat(m, "[]", NULL, NULL, NULL, NULL, &out), UML_ERR_INVALID_ARGUMENT, "empty");
    CHECK_STATUS(uml_chat(m, "{\"role\": \"user\"}", NULL, NULL, NULL, NULL, &out), UML_ERR_INVALID_ARGUMENT, "messages");
    CHECK_STATUS(uml_chat(m, BAD_UTF8, NULL, NULL, NULL, NULL, &out), UML_ERR_INVALID_ARGUMENT, "UTF-8");
    CHECK(out == SENTINEL_PTR);
    CHECK_OK(uml_chat(m, "[{\"role\":\"user\",\"content\":\"hello\"}]", "{\"temperature\": 0, \"max_tokens\": 3}", NULL, NULL, NULL, &out));
    CHECK(strstr(out, "\"finish_reason\"") != NULL);
    uml_string_free(out);

    /* embed */
    const char *texts[] = {"hello world", "the cat sat"};
    const char *with_null[] = {"hello", NULL};
    const char *with_bad[] = {"hello", BAD_UTF8};
    float vec[128];
    n = 12345;
    CHECK_STATUS(uml_embed(m, NULL, 2, NULL, vec, 128, &n), UML_ERR_INVALID_ARGUMENT, "texts is NULL");
    CHECK_STATUS(uml_embed(m, texts, 0, NULL, vec, 128, &n), UML_ERR_INVALID_ARGUMENT, "n_texts is 0");
    CHECK_STATUS(uml_embed(m, with_null, 2, NULL, vec, 128, &n), UML_ERR_INVALID_ARGUMENT, "texts[1] is NULL");
    CHECK_STATUS(uml_embed(m, with_bad, 2, NULL, vec, 128, &n), UML_ERR_INVALID_ARGUMENT, "texts[1] is not valid UTF-8");
    CHECK_STATUS(uml_embed(m, texts, 2, NULL, vec, 128, NULL), UML_ERR_INVALID_ARGUMENT, "out_len is NULL");
    CHECK_STATUS(uml_embed(m, texts, 2, NULL, NULL, 128, &n), UML_ERR_INVALID_ARGUMENT, "out is NULL");
    CHECK(n == 12345);
    vec[0] = 42.0f;
    CHECK_STATUS(uml_embed(m, texts, 2, NULL, vec, 100, &n), UML_ERR_BUFFER_TOO_SMALL, "128");
    CHECK(n == 128 && vec[0] == 42.0f);
    CHECK_STATUS(uml_embed(m, texts, 2, NULL, NULL, 0, &n), UML_ERR_BUFFER_TOO_SMALL, "needed");
    CHECK(n == 128);
    CHECK_OK(uml_embed(m, texts, 2, NULL, vec, 128, &n));
    CHECK(n == 128 && vec[0] != 42.0f);

    uml_model_free(m);
}

/* A chat template is untrusted code: one that loops or writes without end fails with a clear
 * error (the process lives on), and a cancelled token stops chat before any work. */
static void test_hostile_templates(const char *tiny) {
    static const char *MESSAGES = "[{\"role\":\"user\",\"content\":\"hi\"}]";
    uml_model *m = NULL;
    char *out = SENTINEL_PTR;
    CHECK_OK(uml_model_load(tiny,
                            "{\"n_ctx\": 128, \"chat_template\": \"{% for i in range(100000) %}"
                            "{% for j in range(100000) %}{% endfor %}{% endfor %}\"}",
                            NULL, NULL, &m));
    CHECK_STATUS(uml_chat(m, MESSAGES, NULL, NULL, NULL, NULL, &out), UML_ERR_INVALID_ARGUMENT, "steps");
    uml_model_free(m);

    CHECK_OK(uml_model_load(tiny,
                            "{\"n_ctx\": 128, \"chat_template\": \"{% for i in range(100000) %}"
                            "{% for j in range(100000) %}{{ 'x' * 4096 }}{% endfor %}{% endfor %}\"}",
                            NULL, NULL, &m));
    CHECK_STATUS(uml_chat(m, MESSAGES, NULL, NULL, NULL, NULL, &out), UML_ERR_INVALID_ARGUMENT, "wrote more than");
    CHECK(out == SENTINEL_PTR);
    uml_model_free(m);

    CHECK_OK(uml_model_load(tiny, "{\"n_ctx\": 128}", NULL, NULL, &m));
    /* Grammars are untrusted too: one that can match nothing, or nests without end, is an
     * error naming the grammar. */
    CHECK_STATUS(uml_generate(m, "hi", "{\"grammar\": \"root ::= root\"}", NULL, NULL, NULL, &out), UML_ERR_INVALID_ARGUMENT, "no token can continue");
    char deep[4200] = "{\"grammar\": \"root ::= ";
    for (int i = 0; i < 1000; i++) strcat(deep, "(");
    strcat(deep, "x");
    for (int i = 0; i < 1000; i++) strcat(deep, ")");
    strcat(deep, "\"}");
    CHECK_STATUS(uml_generate(m, "hi", deep, NULL, NULL, NULL, &out), UML_ERR_INVALID_ARGUMENT, "nest deeper than 64");
    uml_cancel *cancel = NULL;
    CHECK_OK(uml_cancel_new(&cancel));
    CHECK_OK(uml_cancel_cancel(cancel));
    CHECK_OK(uml_chat(m, MESSAGES, NULL, NULL, NULL, cancel, &out));
    CHECK(strstr(out, "\"finish_reason\":\"cancelled\"") != NULL);
    CHECK(strstr(out, "\"text\":\"\"") != NULL);
    uml_string_free(out);
    uml_cancel_free(cancel);
    uml_model_free(m);
}

static void test_last_error_is_per_thread(void) {
    char *out = NULL;
    CHECK_STATUS(uml_inspect(NULL, &out), UML_ERR_INVALID_ARGUMENT, "path is NULL");
    pthread_t t;
    void *clean = NULL;
    CHECK(pthread_create(&t, NULL, thread_last_error, NULL) == 0);
    CHECK(pthread_join(t, &clean) == 0);
    CHECK(clean != NULL);
    CHECK(strstr(uml_last_error(), "uml_inspect: path is NULL") != NULL);
    /* Functions without a status leave it alone; the next fallible success clears it. */
    uml_string_free(NULL);
    (void)uml_version();
    CHECK(strstr(uml_last_error(), "path is NULL") != NULL);
    CHECK_OK(uml_hardware(&out));
    uml_string_free(out);
    CHECK(uml_last_error()[0] == '\0');
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s TINY_MODEL.gguf SCRATCH_DIR\n", argv[0]);
        return 2;
    }
    test_versions_and_names();
    test_inspect_estimate_hardware(argv[1], argv[2]);
    test_corrupt_header_estimate(argv[2]);
    test_load_errors(argv[1]);
    test_bad_handles(argv[1]);
    test_model_arguments(argv[1]);
    test_hostile_templates(argv[1]);
    test_last_error_is_per_thread();
    printf("test_api: %d checks passed\n", checks_run);
    return 0;
}
