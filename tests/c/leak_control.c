/* The negative control of the leak check in tests/c/run.sh: it leaks a string uml returned,
 * and the checker must report it (so a clean run means something). */
#include <stdio.h>
#include <uml.h>

int main(void) {
    char *json = NULL;
    if (uml_hardware(&json) != UML_OK) {
        fprintf(stderr, "%s\n", uml_last_error());
        return 1;
    }
    json = NULL; /* leaked on purpose: no uml_string_free */
    return 0;
}
