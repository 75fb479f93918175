/* Stream a greedy completion from a model given on the command line.
 *
 *   generate MODEL [PROMPT] [MAX_TOKENS]
 *
 * Build (after scripts/install-libuml PREFIX):
 *   cc generate.c $(pkg-config --cflags --libs uml) -o generate
 */
#include <stdio.h>
#include <stdlib.h>
#include <uml.h>

static bool print_piece(const char *piece, size_t len, void *user) {
    (void)user;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return true; /* false would stop generation */
}

static int fail(const char *what, uml_status status) {
    fprintf(stderr, "%s failed: %s: %s\n", what, uml_status_name(status), uml_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [PROMPT] [MAX_TOKENS]\n", argv[0]);
        return 2;
    }
    const char *prompt = argc > 2 ? argv[2] : "The capital of France is";
    int max_tokens = argc > 3 ? atoi(argv[3]) : 32;
    if (uml_abi_version() != UML_ABI_VERSION) {
        fprintf(stderr, "uml.h is ABI %d but libuml is ABI %u\n", UML_ABI_VERSION, uml_abi_version());
        return 1;
    }

    uml_model *model = NULL;
    uml_status status = uml_model_load(argv[1], "{\"n_ctx\": 256}", NULL, NULL, &model);
    if (status != UML_OK) return fail("uml_model_load", status);

    char params[128];
    snprintf(params, sizeof params, "{\"temperature\": 0, \"max_tokens\": %d}", max_tokens);
    char *result = NULL;
    status = uml_generate(model, prompt, params, print_piece, NULL, NULL, &result);
    if (status != UML_OK) {
        uml_model_free(model);
        return fail("uml_generate", status);
    }
    printf("\n");
    fprintf(stderr, "%s\n", result); /* {"text": ..., "finish_reason": ..., "usage": {...}} */
    uml_string_free(result);
    uml_model_free(model);
    return 0;
}
