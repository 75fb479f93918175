/* The candle backend from C: a Hugging Face folder loads through the same uml_model_load, with
 * "backend": "auto" (llama.cpp is passed over at its check, and the info says so) or "candle",
 * and generates what llama.cpp generates from the same weights as a GGUF.
 * Usage: test_candle TINY_HF_FOLDER TINY_SAME_WEIGHTS.gguf */
#include "check.h"

/* Greedy text of `prompt` from `model` (caller frees with uml_string_free). */
static char *greedy_text(const uml_model *model, const char *prompt) {
    char *result = NULL;
    CHECK_OK(uml_generate(model, prompt, "{\"temperature\": 0, \"max_tokens\": 16}", NULL, NULL, NULL, &result));
    /* The result JSON starts {"text":"...": keep it whole; equal JSON means equal text. */
    return result;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s TINY_HF_FOLDER TINY.gguf\n", argv[0]);
        return 2;
    }
    uml_model *hf = NULL;
    CHECK_OK(uml_model_load(argv[1], "{\"n_ctx\": 128, \"n_threads\": 1}", NULL, NULL, &hf));
    char *info = NULL;
    CHECK_OK(uml_model_info(hf, &info));
    CHECK(strstr(info, "\"backend\":\"candle\"") != NULL);
    CHECK(strstr(info, "\"skipped_backends\":[{\"backend\":\"llama.cpp\",\"stage\":\"check\"") != NULL);
    uml_string_free(info);

    uml_model *named = NULL;
    CHECK_OK(uml_model_load(argv[1], "{\"n_ctx\": 128, \"n_threads\": 1, \"backend\": \"candle\"}", NULL, NULL, &named));
    CHECK_OK(uml_model_info(named, &info));
    CHECK(strstr(info, "\"skipped_backends\":[]") != NULL);
    uml_string_free(info);

    /* Exact f32 attention in llama.cpp (f32 cache, no flash attention), as candle computes. */
    uml_model *gguf = NULL;
    CHECK_OK(uml_model_load(argv[2],
                            "{\"n_ctx\": 128, \"n_threads\": 1, \"backend\": \"llamacpp\", "
                            "\"kv_cache_type\": \"f32\", \"flash_attention\": false}",
                            NULL, NULL, &gguf));
    const char *prompts[] = {"once upon a time", "the cat sat on the mat"};
    for (size_t i = 0; i < sizeof prompts / sizeof prompts[0]; i++) {
        char *a = greedy_text(hf, prompts[i]);
        char *b = greedy_text(gguf, prompts[i]);
        /* Same text; the usage timings differ, so compare up to the finish reason. */
        const char *cut_a = strstr(a, "\"finish_reason\"");
        const char *cut_b = strstr(b, "\"finish_reason\"");
        CHECK(cut_a != NULL && cut_b != NULL);
        CHECK(cut_a - a == cut_b - b && strncmp(a, b, (size_t)(cut_a - a)) == 0);
        uml_string_free(a);
        uml_string_free(b);
    }

    /* candle runs the GGUF too when asked (its quantized kernels), with the folder's text;
     * a context past its rotary tables, or an unknown backend, is a clear error. */
    uml_model *q = NULL;
    CHECK_OK(uml_model_load(argv[2], "{\"n_ctx\": 128, \"n_threads\": 1, \"backend\": \"candle\"}", NULL,
                            NULL, &q));
    char *a = greedy_text(hf, prompts[0]);
    char *b = greedy_text(q, prompts[0]);
    const char *cut_a = strstr(a, "\"finish_reason\"");
    const char *cut_b = strstr(b, "\"finish_reason\"");
    CHECK(cut_a != NULL && cut_b != NULL);
    CHECK(cut_a - a == cut_b - b && strncmp(a, b, (size_t)(cut_a - a)) == 0);
    uml_string_free(a);
    uml_string_free(b);
    uml_model_free(q);
    uml_model *m = NULL;
    CHECK_STATUS(uml_model_load(argv[2], "{\"backend\": \"candle\", \"n_ctx\": 8192}", NULL, NULL, &m),
                 UML_ERR_INVALID_ARGUMENT, "4096");
    CHECK_STATUS(uml_model_load(argv[1], "{\"backend\": \"tensorrt\"}", NULL, NULL, &m), UML_ERR_INVALID_ARGUMENT,
                 "backend");
    CHECK(m == NULL);

    uml_model_free(gguf);
    uml_model_free(named);
    uml_model_free(hf);
    printf("test_candle: %d checks passed\n", checks_run);
    return 0;
}
