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

/* Words a detail must never hold: Kinesis' API and member names (the server's wording, not
 * the C ABI's) and Rust-only names. */
static const char *const check_foreign_words_[] = {
    "GetShardIterator", "StartingSequenceNumber", "GetRecords", "PutRecord", "Exception",
    "under account", "MaxRecordSizeKiB", "sequence_number_for_ordering", "..=",
};

/* The detail of a failed `call_text` ("sluice_get(engine, ...)"): it starts with the
 * function's name and ": ", says it once, and holds no foreign word. */
static inline void check_detail_(const char *call_text, const char *file, int line) {
    const char *detail = sluice_last_error_detail();
    size_t name_len = strcspn(call_text, "(");
    int named = strncmp(detail, call_text, name_len) == 0 && detail[name_len] == ':' &&
                detail[name_len + 1] == ' ';
    int repeated = named && strncmp(detail + name_len + 2, call_text, name_len) == 0;
    const char *foreign = NULL;
    for (size_t i = 0; i < sizeof check_foreign_words_ / sizeof *check_foreign_words_; i++)
        if (strstr(detail, check_foreign_words_[i]) != NULL) foreign = check_foreign_words_[i];
    if (!named || repeated || foreign != NULL) {
        fprintf(stderr, "%s:%d: the detail of %s does not start with its name once%s%s: %s\n",
                file, line, call_text, foreign ? ", or names " : "", foreign ? foreign : "",
                detail);
        exit(1);
    }
}

/* A call that must fail with `code` and leave a detail that names the function. */
#define FAILS(code, call)                                                                \
    do {                                                                                 \
        sluice_result r_ = (call);                                                       \
        if (r_ != (code)) {                                                              \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s (%s)\n", __FILE__,       \
                    __LINE__, #call, sluice_result_message(r_),                          \
                    sluice_result_message(code), sluice_last_error_detail());            \
            exit(1);                                                                     \
        }                                                                                \
        check_detail_(#call, __FILE__, __LINE__);                                        \
    } while (0)

/* A call that must fail with `code` and exactly the detail `detail`. */
#define FAILS_SAYING(code, detail, call)                                                 \
    do {                                                                                 \
        FAILS(code, call);                                                               \
        if (strcmp(sluice_last_error_detail(), (detail)) != 0) {                         \
            fprintf(stderr, "%s:%d: %s said\n  %s\nexpected\n  %s\n", __FILE__, __LINE__,  \
                    #call, sluice_last_error_detail(), (detail));                        \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

#endif
