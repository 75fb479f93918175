/* LoRA adapters from C on the real SmolLM2: loaded with the "lora" load option, on by default
 * at their load scale, chosen per generation with the "lora" parameter ([] is the base model,
 * token for token), adapters loaded together running together, and the errors: an unknown
 * adapter name, two adapters on at once at other scales, a file that is not an adapter; and the
 * adapters' memory in the estimate.
 *
 *   test_lora MODEL ADAPTER_A ADAPTER_B
 */
#include "check.h"

/* The greedy text of a fresh model loaded with `options`, generated with `lora_json` (NULL: the
 * load scales): the first generation of a fresh model, so two of them compute alike exactly
 * (a later one may reuse cached prompt tokens, evaluated in other batches). */
static char *greedy(const char *path, const char *options, const char *lora_json) {
    char params[512];
    if (lora_json != NULL) {
        snprintf(params, sizeof params, "{\"temperature\": 0, \"max_tokens\": 24, \"lora\": %s}", lora_json);
    } else {
        snprintf(params, sizeof params, "{\"temperature\": 0, \"max_tokens\": 24}");
    }
    uml_model *model = NULL;
    CHECK_OK(uml_model_load(path, options, NULL, NULL, &model));
    char *result = NULL;
    CHECK_OK(uml_generate(model, "Once upon a time, there was a", params, NULL, NULL, NULL, &result));
    uml_model_free(model);
    /* Keep the text only: {"text":"...","finish_reason":... (the usage holds timings). */
    char *end = strstr(result, "\",\"finish_reason\"");
    CHECK(end != NULL);
    *end = '\0';
    return result;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL ADAPTER_A ADAPTER_B\n", argv[0]);
        return 2;
    }
    const char *path = argv[1];
    char options[4096];
    snprintf(options, sizeof options,
             "{\"n_ctx\": 256, \"lora\": [{\"path\": \"%s\", \"name\": \"a\"}, {\"path\": \"%s\", \"name\": \"b\", "
             "\"scale\": 0}]}",
             argv[2], argv[3]);
    char *base_text = greedy(path, "{\"n_ctx\": 256}", NULL);
    char *default_text = greedy(path, options, NULL);
    char *a_text = greedy(path, options, "[{\"name\": \"a\", \"scale\": 1}]");
    char *b_text = greedy(path, options, "[{\"name\": \"b\"}]");
    char *off_text = greedy(path, options, "[]");
    char *zero_text = greedy(path, options, "[{\"name\": \"a\", \"scale\": 0}]");
    printf("base: %s\na:    %s\nb:    %s\n", base_text, a_text, b_text);
    /* Adapter a is on by default; scale 0 or none is the base model, token for token. */
    CHECK(strcmp(default_text, a_text) == 0);
    CHECK(strcmp(off_text, base_text) == 0);
    CHECK(strcmp(zero_text, base_text) == 0);
    CHECK(strcmp(a_text, base_text) != 0);
    CHECK(strcmp(a_text, b_text) != 0);
    char *texts[] = {base_text, default_text, a_text, b_text, off_text, zero_text};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        uml_string_free(texts[i]);
    }

    /* Both loaded at nonzero scales: they run together, by default or named at those scales. */
    char both[4096];
    snprintf(both, sizeof both,
             "{\"n_ctx\": 256, \"lora\": [{\"path\": \"%s\", \"name\": \"a\"}, {\"path\": \"%s\", \"name\": \"b\", "
             "\"scale\": 0.5}]}",
             argv[2], argv[3]);
    char *together = greedy(path, both, NULL);
    char *named = greedy(path, both, "[{\"name\": \"b\", \"scale\": 0.5}, {\"name\": \"a\", \"scale\": 1}]");
    char *a_only = greedy(path, both, "[{\"name\": \"a\", \"scale\": 1}]");
    CHECK(strcmp(together, named) == 0);
    CHECK(strcmp(together, a_only) != 0);
    uml_string_free(together);
    uml_string_free(named);
    uml_string_free(a_only);

    uml_model *model = NULL;
    CHECK_OK(uml_model_load(path, options, NULL, NULL, &model));
    char *result = NULL;
    CHECK_STATUS(uml_generate(model, "Hi", "{\"lora\": [{\"name\": \"c\"}]}", NULL, NULL, NULL, &result),
                 UML_ERR_INVALID_ARGUMENT, "loaded: a, b");
    CHECK_STATUS(uml_generate(model, "Hi", "{\"lora\": [{\"name\": \"a\"}, {\"name\": \"b\"}]}", NULL, NULL, NULL,
                              &result),
                 UML_ERR_UNSUPPORTED, "scale to 0");
    CHECK_STATUS(uml_generate(model, "Hi", "{\"lora\": [{\"nam\": \"a\"}]}", NULL, NULL, NULL, &result),
                 UML_ERR_INVALID_ARGUMENT, "nam");
    CHECK(result == NULL);
    uml_model_free(model);

    /* The estimate counts the adapters (a's and b's tensors; none without them). */
    char *estimate = NULL;
    CHECK_OK(uml_estimate(path, "{\"n_ctx\": 256}", &estimate));
    CHECK(strstr(estimate, "\"adapters_bytes\":0,") != NULL);
    uml_string_free(estimate);
    CHECK_OK(uml_estimate(path, options, &estimate));
    CHECK(strstr(estimate, "\"adapters_bytes\":") != NULL);
    CHECK(strstr(estimate, "\"adapters_bytes\":0,") == NULL);
    uml_string_free(estimate);

    /* The model file itself is no adapter. */
    snprintf(options, sizeof options, "{\"lora\": [{\"path\": \"%s\"}]}", path);
    uml_model *refused = NULL;
    CHECK_STATUS(uml_model_load(path, options, NULL, NULL, &refused), UML_ERR_INVALID_ARGUMENT,
                 "not an adapter file");
    CHECK(refused == NULL);
    printf("test_lora: %d checks passed\n", checks_run);
    return 0;
}
