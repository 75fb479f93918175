/* Speculative decoding from C: SmolLM2 with itself as the draft ("draft_model": the same
 * vocabulary, so every draft is kept) gives the greedy text it gives alone and reports the
 * drafted and accepted tokens in its usage; "draft_max": 0 and a "draft_margin_min" no token
 * leads by draft nothing; a draft of another
 * vocabulary (Gemma 3) is refused at load. The "mtp" option drafts with a model's own
 * prediction heads (a tiny Qwen3.5 written by the test harness): the same greedy text, and
 * a model without heads is refused.
 *
 *   test_draft MODEL OTHER_VOCABULARY_MODEL MTP_MODEL
 */
#include "check.h"

/* The "text" member of a result, copied. */
static char *text_of(const char *result) {
    const char *start = strstr(result, "{\"text\":\"");
    const char *end = strstr(result, "\",\"finish_reason\"");
    CHECK(start != NULL && end != NULL);
    start += strlen("{\"text\":\"");
    char *text = malloc((size_t)(end - start) + 1);
    CHECK(text != NULL);
    memcpy(text, start, (size_t)(end - start));
    text[end - start] = '\0';
    return text;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL OTHER_VOCABULARY_MODEL MTP_MODEL\n", argv[0]);
        return 2;
    }
    const char *path = argv[1];
    const char *params = "{\"temperature\": 0, \"max_tokens\": 32}";
    const char *prompt = "The capital of France is";

    uml_model *alone = NULL;
    CHECK_OK(uml_model_load(path, "{\"n_ctx\": 512}", NULL, NULL, &alone));
    char *result = NULL;
    CHECK_OK(uml_generate(alone, prompt, params, NULL, NULL, NULL, &result));
    char *expected = text_of(result);
    CHECK(json_u64(result, "drafted_tokens") == 0);
    uml_string_free(result);
    uml_model_free(alone);

    char options[4096];
    snprintf(options, sizeof options, "{\"n_ctx\": 512, \"draft_model\": \"%s\"}", path);
    uml_model *model = NULL;
    CHECK_OK(uml_model_load(path, options, NULL, NULL, &model));
    CHECK_OK(uml_generate(model, prompt, params, NULL, NULL, NULL, &result));
    char *text = text_of(result);
    CHECK(strcmp(text, expected) == 0);
    uint64_t drafted = json_u64(result, "drafted_tokens"), accepted = json_u64(result, "accepted_tokens");
    CHECK(drafted > 0 && accepted > 0 && accepted <= drafted);
    printf("drafted %llu, accepted %llu: %s\n", (unsigned long long)drafted, (unsigned long long)accepted, text);
    free(text);
    uml_string_free(result);
    CHECK_OK(uml_generate(model, prompt, "{\"temperature\": 0, \"max_tokens\": 8, \"draft_max\": 0}", NULL, NULL,
                          NULL, &result));
    CHECK(json_u64(result, "drafted_tokens") == 0);
    uml_string_free(result);
    /* A near-tie margin no token leads by: nothing drafted, the same text; a negative one is
     * refused naming the key. */
    CHECK_OK(uml_generate(model, prompt, "{\"temperature\": 0, \"max_tokens\": 32, \"draft_margin_min\": 1000}",
                          NULL, NULL, NULL, &result));
    CHECK(json_u64(result, "drafted_tokens") == 0);
    text = text_of(result);
    CHECK(strcmp(text, expected) == 0);
    free(text);
    uml_string_free(result);
    CHECK_STATUS(uml_generate(model, prompt, "{\"draft_margin_min\": -1}", NULL, NULL, NULL, &result),
                 UML_ERR_INVALID_ARGUMENT, "draft_margin_min");
    uml_model_free(model);
    free(expected);

    snprintf(options, sizeof options, "{\"draft_model\": \"%s\"}", argv[2]);
    uml_model *refused = NULL;
    CHECK_STATUS(uml_model_load(path, options, NULL, NULL, &refused), UML_ERR_INVALID_ARGUMENT, "vocabulary");
    CHECK(refused == NULL);

    /* The model's own heads. */
    const char *heads = argv[3];
    char *info = NULL;
    CHECK_OK(uml_inspect(heads, &info));
    CHECK(json_u64(info, "mtp_layers") == 1);
    /* Its first block keeps a recurrent state (a gated delta net), the second attends. */
    CHECK(strstr(info, "\"recurrent\":[true,false,false]") != NULL);
    uml_string_free(info);
    const char *tiny_params = "{\"temperature\": 0, \"max_tokens\": 40}";
    CHECK_OK(uml_model_load(heads, "{\"n_ctx\": 256}", NULL, NULL, &alone));
    CHECK_OK(uml_generate(alone, "once upon a time", tiny_params, NULL, NULL, NULL, &result));
    expected = text_of(result);
    uml_string_free(result);
    uml_model_free(alone);
    CHECK_OK(uml_model_load(heads, "{\"n_ctx\": 256, \"mtp\": true}", NULL, NULL, &model));
    CHECK_OK(uml_generate(model, "once upon a time", tiny_params, NULL, NULL, NULL, &result));
    text = text_of(result);
    CHECK(strcmp(text, expected) == 0);
    CHECK(json_u64(result, "drafted_tokens") > 0);
    free(text);
    free(expected);
    uml_string_free(result);
    uml_model_free(model);
    CHECK_STATUS(uml_model_load(path, "{\"mtp\": true}", NULL, NULL, &refused), UML_ERR_INVALID_ARGUMENT,
                 "no multi-token-prediction heads");
    CHECK(refused == NULL);
    printf("test_draft: %d checks passed\n", checks_run);
    return 0;
}
