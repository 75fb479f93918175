/* Remote models from C: a `uml serve` started here serves SmolLM2 as "smollm2"; generate and
 * chat through uml_model_load_remote, the errors of an endpoint without the model
 * (UML_ERR_NOT_FOUND), of one that cannot be reached (UML_ERR_BACKEND) and of bad endpoint
 * JSON (UML_ERR_INVALID_ARGUMENT naming the key), a manager entry registered as remote, and a
 * manager entry whose local file is broken answered by its remote fallback.
 *
 *   test_remote UML_BINARY MODEL BROKEN_GGUF
 *
 * UML_BINARY is the `uml` CLI, MODEL the SmolLM2 GGUF it serves, BROKEN_GGUF a file that is
 * not a model. The server is killed at the end (and when a check fails: see stop_server).
 */
#include "check.h"

#include <pthread.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t server = -1;

static void stop_server(void) {
    if (server > 0) {
        kill(server, SIGTERM);
        waitpid(server, NULL, 0);
        server = -1;
    }
}

/* The server's stdout after its first line, read to the end so it never blocks on a full
 * pipe. */
static void *drain(void *arg) {
    FILE *out = arg;
    char buf[4096];
    while (fgets(buf, sizeof buf, out) != NULL) {
    }
    fclose(out);
    return NULL;
}

/* Start `uml serve` on a free port serving MODEL as "smollm2"; writes its API's base URL
 * (".../v1") into url. */
static void start_server(const char *uml, const char *model, char *url, size_t size) {
    int fds[2];
    CHECK(pipe(fds) == 0);
    char spec[4096];
    snprintf(spec, sizeof spec, "smollm2=%s", model);
    server = fork();
    CHECK(server >= 0);
    if (server == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execl(uml, uml, "serve", "--port", "0", "--model", spec, "--ctx", "1024", "--threads",
              "2", (char *)NULL);
        perror("exec uml serve");
        _exit(127);
    }
    atexit(stop_server);
    close(fds[1]);
    FILE *out = fdopen(fds[0], "r");
    CHECK(out != NULL);
    char line[512];
    CHECK(fgets(line, sizeof line, out) != NULL);
    const char *prefix = "uml serve: listening on ";
    if (strncmp(line, prefix, strlen(prefix)) != 0) {
        fprintf(stderr, "unexpected first line from uml serve: %s\n", line);
        exit(1);
    }
    line[strcspn(line, "\r\n")] = '\0';
    snprintf(url, size, "%s/v1", line + strlen(prefix));
    pthread_t reader;
    CHECK(pthread_create(&reader, NULL, drain, out) == 0);
    CHECK(pthread_detach(reader) == 0);
}

static char endpoint[1024];

static void endpoint_json(char *out, size_t size, const char *url, const char *model) {
    snprintf(out, size, "{\"url\": \"%s\", \"model\": \"%s\"}", url, model);
}

/* The string after "key":" in a JSON result (up to the next quote), copied into out. */
static const char *json_str(const char *json, const char *key, char *out, size_t size) {
    char needle[64];
    snprintf(needle, sizeof needle, "\"%s\":\"", key);
    const char *at = strstr(json, needle);
    CHECK(at != NULL);
    at += strlen(needle);
    size_t len = strcspn(at, "\"");
    CHECK(len < size);
    memcpy(out, at, len);
    out[len] = '\0';
    return out;
}

/* Generate and chat on `model` give text and a finish reason. */
static void check_answers(const uml_model *model) {
    char *result = NULL;
    char text[4096], reason[32];
    CHECK_OK(uml_generate(model, "The capital of France is", "{\"temperature\": 0, \"max_tokens\": 8}",
                          NULL, NULL, NULL, &result));
    CHECK(strlen(json_str(result, "text", text, sizeof text)) > 0);
    json_str(result, "finish_reason", reason, sizeof reason);
    CHECK(strcmp(reason, "stop") == 0 || strcmp(reason, "length") == 0);
    uml_string_free(result);

    result = NULL;
    CHECK_OK(uml_chat(model, "[{\"role\": \"user\", \"content\": \"What is the capital of France?\"}]",
                      "{\"temperature\": 0, \"max_tokens\": 8}", NULL, NULL, NULL, &result));
    CHECK(strlen(json_str(result, "text", text, sizeof text)) > 0);
    json_str(result, "finish_reason", reason, sizeof reason);
    CHECK(strcmp(reason, "stop") == 0 || strcmp(reason, "length") == 0);
    uml_string_free(result);
}

static void test_load_remote(void) {
    uml_model *model = NULL;
    CHECK_OK(uml_model_load_remote(endpoint, NULL, &model));
    CHECK(model != NULL);
    char *info = NULL;
    CHECK_OK(uml_model_info(model, &info));
    CHECK(strstr(info, "\"backend\":\"remote\"") != NULL);
    uml_string_free(info);
    check_answers(model);
    uml_model_free(model);
}

static void test_errors(const char *url) {
    char json[1024];
    uml_model *model = (uml_model *)0x5e5e;
    endpoint_json(json, sizeof json, url, "no-such-model");
    CHECK_STATUS(uml_model_load_remote(json, NULL, &model), UML_ERR_NOT_FOUND, "no-such-model");
    endpoint_json(json, sizeof json, "http://127.0.0.1:1/v1", "smollm2");
    CHECK_STATUS(uml_model_load_remote(json, NULL, &model), UML_ERR_BACKEND, "127.0.0.1:1");
    snprintf(json, sizeof json, "{\"url\": \"%s\", \"model\": \"smollm2\", \"key\": \"x\"}", url);
    CHECK_STATUS(uml_model_load_remote(json, NULL, &model), UML_ERR_INVALID_ARGUMENT, "key");
    endpoint_json(json, sizeof json, "ftp://127.0.0.1/v1", "smollm2");
    CHECK_STATUS(uml_model_load_remote(json, NULL, &model), UML_ERR_INVALID_ARGUMENT, "http");
    CHECK_STATUS(uml_model_load_remote("{\"url\": 1", NULL, &model), UML_ERR_INVALID_ARGUMENT,
                 "endpoint_json");
    CHECK_STATUS(uml_model_load_remote(NULL, NULL, &model), UML_ERR_INVALID_ARGUMENT, "endpoint_json is NULL");
    CHECK_STATUS(uml_model_load_remote(endpoint, "{\"n_ctxx\": 1}", &model), UML_ERR_INVALID_ARGUMENT,
                 "n_ctxx");
    CHECK_STATUS(uml_model_load_remote(endpoint, NULL, NULL), UML_ERR_INVALID_ARGUMENT, "out_model");
    /* Outputs are written only on success. */
    CHECK(model == (uml_model *)0x5e5e);
}

static void test_manager_remote(void) {
    uml_manager *m = NULL;
    CHECK_OK(uml_manager_new(NULL, &m));
    CHECK_OK(uml_manager_register_remote(m, "far", endpoint, NULL));
    CHECK_STATUS(uml_manager_register_remote(m, "far", endpoint, NULL), UML_ERR_INVALID_ARGUMENT,
                 "already registered");
    CHECK_STATUS(uml_manager_register_remote(m, "bad", "{\"url\": \"http://x/v1\"}", NULL),
                 UML_ERR_INVALID_ARGUMENT, "model");
    uml_model *model = NULL;
    CHECK_OK(uml_manager_get(m, "far", &model));
    check_answers(model);
    uml_model_free(model);
    CHECK_STATUS(uml_manager_register_remote(NULL, "x", endpoint, NULL), UML_ERR_INVALID_ARGUMENT,
                 "manager");
    uml_manager_free(m);
}

static void test_manager_fallback(const char *broken) {
    uml_manager *m = NULL;
    CHECK_OK(uml_manager_new(NULL, &m));
    CHECK_OK(uml_manager_register(m, "local", broken, NULL));
    uml_model *model = NULL;
    /* Without a fallback, the broken file fails to load. */
    uml_status st = uml_manager_get(m, "local", &model);
    CHECK(st != UML_OK);
    CHECK(model == NULL);
    CHECK_STATUS(uml_manager_set_fallback(m, "nobody", endpoint), UML_ERR_NOT_FOUND, "nobody");
    CHECK_STATUS(uml_manager_set_fallback(m, "local", "{\"url\": \"http://x/v1\", \"model\": \"m\", \"apikey\": \"k\"}"),
                 UML_ERR_INVALID_ARGUMENT, "apikey");
    CHECK_OK(uml_manager_set_fallback(m, "local", endpoint));
    CHECK_OK(uml_manager_get(m, "local", &model));
    char *info = NULL;
    CHECK_OK(uml_model_info(model, &info));
    CHECK(strstr(info, "\"backend\":\"remote\"") != NULL);
    uml_string_free(info);
    check_answers(model);
    uml_model_free(model);
    uml_manager_free(m);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s UML_BINARY MODEL BROKEN_GGUF\n", argv[0]);
        return 2;
    }
    char url[512];
    start_server(argv[1], argv[2], url, sizeof url);
    endpoint_json(endpoint, sizeof endpoint, url, "smollm2");
    test_load_remote();
    test_errors(url);
    test_manager_remote();
    test_manager_fallback(argv[3]);
    stop_server();
    printf("test_remote: %d checks passed (%s)\n", checks_run, url);
    return 0;
}
