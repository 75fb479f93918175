/* A minimal test harness for the C tests: CHECK fails the program with the file, line, the
 * failed expression and uml_last_error(). */
#ifndef UML_TEST_CHECK_H
#define UML_TEST_CHECK_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* nanosleep, sysconf under -std=c11 */
#endif

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uml.h>

static int checks_run = 0;

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        checks_run++;                                                                      \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n  uml_last_error: %s\n", __FILE__,   \
                    __LINE__, #cond, uml_last_error());                                    \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)

/* The call returns `expected` and, when it is an error, uml_last_error() mentions `needle`. */
#define CHECK_STATUS(call, expected, needle)                                               \
    do {                                                                                   \
        uml_status st_ = (call);                                                           \
        checks_run++;                                                                      \
        if (st_ != (expected)) {                                                           \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s\n  uml_last_error: %s\n",  \
                    __FILE__, __LINE__, #call, uml_status_name(st_),                       \
                    uml_status_name(expected), uml_last_error());                          \
            exit(1);                                                                       \
        }                                                                                  \
        if ((expected) != UML_OK && strstr(uml_last_error(), (needle)) == NULL) {          \
            fprintf(stderr, "%s:%d: %s: uml_last_error() lacks \"%s\": %s\n", __FILE__,    \
                    __LINE__, #call, (needle), uml_last_error());                          \
            exit(1);                                                                       \
        }                                                                                  \
        if ((expected) == UML_OK && uml_last_error()[0] != '\0') {                         \
            fprintf(stderr, "%s:%d: %s succeeded but uml_last_error() is \"%s\"\n",        \
                    __FILE__, __LINE__, #call, uml_last_error());                          \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)

#define CHECK_OK(call) CHECK_STATUS(call, UML_OK, "")

/* The integer after "key": in a JSON text (fails the test when the key is missing). */
static inline uint64_t json_u64(const char *json, const char *key) {
    char needle[64];
    snprintf(needle, sizeof needle, "\"%s\":", key);
    const char *at = strstr(json, needle);
    CHECK(at != NULL);
    return (uint64_t)strtoull(at + strlen(needle), NULL, 10);
}

#endif
