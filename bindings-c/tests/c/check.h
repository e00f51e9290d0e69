/* Assertions for the C test programs: print where and why, then exit(1). */
#ifndef SLUICE_TEST_CHECK_H
#define SLUICE_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sluice.h"

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);      \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

/* A call that must succeed. */
#define OK(call)                                                                         \
    do {                                                                                 \
        sluice_result r_ = (call);                                                       \
        if (r_ != SLUICE_OK) {                                                           \
            fprintf(stderr, "%s:%d: %s failed: %s (%s)\n", __FILE__, __LINE__, #call,   \
                    sluice_result_message(r_), sluice_last_error_detail());              \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

/* A call that must fail with `code` and leave a detail. */
#define FAILS(code, call)                                                                \
    do {                                                                                 \
        sluice_result r_ = (call);                                                       \
        if (r_ != (code)) {                                                              \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s (%s)\n", __FILE__,       \
                    __LINE__, #call, sluice_result_message(r_),                          \
                    sluice_result_message(code), sluice_last_error_detail());            \
            exit(1);                                                                     \
        }                                                                                \
        CHECK(strlen(sluice_last_error_detail()) > 0);                                   \
    } while (0)

#endif
