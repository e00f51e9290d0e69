/* What sluice.h promises, each checked: the version macros, the bounds every setter and call
 * states (checked when called), the code of a missing record, and sluice_engine_close.
 * Usage: promises DATA_DIR */
#include "check.h"
#include <stdint.h>

static char dir_small[512], dir_big[512], dir_close[512];

static void version(void) {
    CHECK(strcmp(sluice_version(), SLUICE_VERSION) == 0);
    char parts[64];
    snprintf(parts, sizeof parts, "%d.%d.%d", SLUICE_VERSION_MAJOR, SLUICE_VERSION_MINOR,
             SLUICE_VERSION_PATCH);
    CHECK(strcmp(parts, SLUICE_VERSION) == 0);
}

static sluice_engine *open_engine(const char *dir, uint64_t segment_bytes) {
    sluice_options *options = NULL;
    sluice_engine *engine = NULL;
    OK(sluice_options_new(dir, &options));
    OK(sluice_options_set_cores(options, 1));
    OK(sluice_options_set_segment_size(options, segment_bytes));
    OK(sluice_engine_open(options, &engine));
    sluice_options_free(options);
    return engine;
}

/* Each setter checks its value when called; a refused value leaves the options as they were. */
static void setters(void) {
    sluice_options *options = NULL;
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_options_new("", &options));
    CHECK(options == NULL);
    OK(sluice_options_new(dir_small, &options));
    const uint64_t refused[] = {
        0, 1, 4095, 4096, 4097, SLUICE_SEGMENT_SIZE_MIN - SLUICE_SEGMENT_SIZE_MULTIPLE,
        SLUICE_SEGMENT_SIZE_MIN - 1, SLUICE_SEGMENT_SIZE_MIN + 1, (4u << 20) + 4097, UINT64_MAX,
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++)
        FAILS(SLUICE_INVALID_ARGUMENT, sluice_options_set_segment_size(options, refused[i]));
    /* No upper bound: a terabyte is accepted (and never opened here). */
    OK(sluice_options_set_segment_size(options, (uint64_t)1 << 40));
    OK(sluice_options_set_segment_size(options, SLUICE_SEGMENT_SIZE_MIN + SLUICE_SEGMENT_SIZE_MULTIPLE));
    OK(sluice_options_set_segment_size(options, SLUICE_SEGMENT_SIZE_MIN));
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_options_set_segment_size(options, 4097));
    /* Every value of the other setters is accepted. */
    OK(sluice_options_set_cores(options, UINT32_MAX));
    OK(sluice_options_set_cores(options, 0));
    OK(sluice_options_set_cores(options, 1));
    OK(sluice_options_set_durable(options, -1));
    OK(sluice_options_set_durable(options, 0));
    OK(sluice_options_set_throughput_limits(options, 7));
    OK(sluice_options_set_throughput_limits(options, 0));
    /* The refused 4097 left 64 KiB segments, which open, and hold less than a 1 MiB record. */
    sluice_engine *engine = NULL;
    OK(sluice_engine_open(options, &engine));
    sluice_options_free(options);
    OK(sluice_create_stream(engine, "small", 1));
    sluice_stream_summary summary;
    OK(sluice_describe_stream_summary(engine, "small", &summary));
    CHECK(summary.max_record_size_bytes > 0 && summary.max_record_size_bytes < SLUICE_SEGMENT_SIZE_MIN);
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_update_max_record_size(engine, "small", SLUICE_RECORD_SIZE_MIN));
    OK(sluice_engine_close(engine));
}

static void record_sizes(sluice_engine *engine) {
    FAILS(SLUICE_VALIDATION, sluice_update_max_record_size(engine, "s", SLUICE_RECORD_SIZE_MIN - 1));
    FAILS(SLUICE_VALIDATION, sluice_update_max_record_size(engine, "s", SLUICE_RECORD_SIZE_MAX + 1));
    FAILS(SLUICE_VALIDATION, sluice_update_max_record_size(engine, "s", 1));
    OK(sluice_update_max_record_size(engine, "s", SLUICE_RECORD_SIZE_MAX));
    OK(sluice_update_max_record_size(engine, "s", SLUICE_RECORD_SIZE_MIN + 1)); /* any byte count */
    sluice_stream_summary summary;
    OK(sluice_describe_stream_summary(engine, "s", &summary));
    CHECK(summary.max_record_size_bytes == SLUICE_RECORD_SIZE_MIN + 1);
    /* A record is data plus partition key, up to the stream's largest record. */
    size_t data_len = SLUICE_RECORD_SIZE_MIN;
    uint8_t *data = calloc(data_len, 1);
    CHECK(data != NULL);
    sluice_record_in record = {"k", data, data_len, NULL};
    sluice_put_result result;
    OK(sluice_put(engine, "s", &record, SLUICE_DURABILITY_VISIBLE, &result));
    record.partition_key = "kk";
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_put(engine, "s", &record, SLUICE_DURABILITY_VISIBLE, &result));
    free(data);
}

static void partition_keys_and_batches(sluice_engine *engine) {
    char key[2 * 257 + 1];
    sluice_put_result result;
    sluice_record_in record = {key, (const uint8_t *)"x", 1, NULL};
    memset(key, 'a', 256);
    key[256] = 0;
    OK(sluice_put(engine, "s", &record, 0, &result));
    key[256] = 'a';
    key[257] = 0;
    FAILS(SLUICE_VALIDATION, sluice_put(engine, "s", &record, 0, &result));
    key[0] = 0;
    FAILS(SLUICE_VALIDATION, sluice_put(engine, "s", &record, 0, &result));
    /* Characters, not bytes: 256 two-byte characters are a valid key. */
    for (int i = 0; i < 256; i++) memcpy(key + 2 * i, "\xc3\xa9", 2);
    key[512] = 0;
    OK(sluice_put(engine, "s", &record, 0, &result));

    static sluice_record_in batch[501];
    static sluice_put_result results[501];
    for (int i = 0; i < 501; i++) batch[i] = (sluice_record_in){"k", (const uint8_t *)"x", 1, NULL};
    OK(sluice_put_batch(engine, "s", batch, 500, 0, results));
    FAILS(SLUICE_VALIDATION, sluice_put_batch(engine, "s", batch, 501, 0, results));
    FAILS(SLUICE_VALIDATION, sluice_put_batch(engine, "s", batch, 0, 0, results));
    /* The count is checked before a record is read: a count far past the array (2^36)
       must not make the library read past it. */
    FAILS(SLUICE_VALIDATION, sluice_put_batch(engine, "s", batch, (size_t)1 << 36, 0, results));
    /* A length near SIZE_MAX is refused before the bytes are touched or added to the key. */
    sluice_record_in huge = {"k", (const uint8_t *)"x", SIZE_MAX, NULL};
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_put(engine, "s", &huge, 0, &result));
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_put_batch(engine, "s", &huge, 1, 0, results));
    /* 10 MiB together at most: eleven records of 1,000,000 bytes are more. */
    uint8_t *data = calloc(1000000, 1);
    CHECK(data != NULL);
    for (int i = 0; i < 11; i++) batch[i] = (sluice_record_in){"k", data, 1000000, NULL};
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_put_batch(engine, "s", batch, 11, 0, results));
    OK(sluice_put_batch(engine, "s", batch, 10, 0, results));
    free(data);
    sluice_record_in big_hash = {"k", (const uint8_t *)"x", 1, "340282366920938463463374607431768211456"};
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_put(engine, "s", &big_hash, 0, &result));
    big_hash.explicit_hash_key = "340282366920938463463374607431768211455";
    OK(sluice_put(engine, "s", &big_hash, 0, &result));
}

static void streams_retention_and_tags(sluice_engine *engine) {
    /* Past the engine's limit (10,000 by default) is checked before the per-stream bound. */
    FAILS(SLUICE_LIMIT_EXCEEDED, sluice_create_stream(engine, "many", 10001));
    FAILS(SLUICE_VALIDATION, sluice_create_stream(engine, "none", 0));
    char name[130];
    memset(name, 'n', 129);
    name[129] = 0;
    FAILS(SLUICE_VALIDATION, sluice_create_stream(engine, name, 1));
    name[128] = 0;
    OK(sluice_create_stream(engine, name, 1));
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_change_retention(engine, "s", 8761, 1));
    OK(sluice_change_retention(engine, "s", 8760, 1));
    OK(sluice_change_retention(engine, "s", 8760, 1)); /* the same value either way */
    OK(sluice_change_retention(engine, "s", 8760, 0));
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_change_retention(engine, "s", 23, 0));
    OK(sluice_change_retention(engine, "s", 24, 0));
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_change_retention(engine, "s", 48, 0)); /* a decrease to more */
    char key[130], value[258];
    memset(key, 'k', 129);
    key[129] = 0;
    memset(value, 'v', 257);
    value[257] = 0;
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_add_tag(engine, "s", key, "v"));
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_add_tag(engine, "s", "k", value));
    key[128] = 0;
    value[256] = 0;
    OK(sluice_add_tag(engine, "s", key, value));
    for (int i = 1; i < 50; i++) {
        char tag[16];
        snprintf(tag, sizeof tag, "tag-%d", i);
        OK(sluice_add_tag(engine, "s", tag, ""));
    }
    FAILS(SLUICE_LIMIT_EXCEEDED, sluice_add_tag(engine, "s", "one-too-many", ""));
}

static void reads(sluice_engine *engine) {
    sluice_batch *batch = NULL;
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_get(engine, "s", "999999", &batch)); /* never issued */
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_get(engine, "s", "007", &batch));
    FAILS(SLUICE_RESOURCE_NOT_FOUND, sluice_get(engine, "nope", "1", &batch));
    CHECK(batch == NULL);
    sluice_iterator *it = NULL;
    OK(sluice_iterator_new(engine, "s", "shardId-000000000000", SLUICE_TRIM_HORIZON, NULL, 0, &it));
    size_t count = 0;
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_iterator_next(it, 10001, &count));
    OK(sluice_iterator_next(it, 10000, &count));
    CHECK(count > 500);
    OK(sluice_iterator_next(it, 0, &count));
    sluice_iterator_free(it);
}

/* sluice_engine_close waits for the close (the directory opens again at once), and refuses
 * while an iterator or subscription keeps the engine open; sluice_engine_free does not wait,
 * and the iterators it leaves keep working. */
static void close_and_free(void) {
    sluice_engine *engine = open_engine(dir_close, 1u << 20);
    OK(sluice_create_stream(engine, "c", 1));
    sluice_iterator *it = NULL;
    sluice_subscription *sub = NULL;
    OK(sluice_iterator_new(engine, "c", "shardId-000000000000", SLUICE_TRIM_HORIZON, NULL, 0, &it));
    OK(sluice_subscribe(engine, "c", "shardId-000000000000", SLUICE_LATEST, NULL, 0, &sub));
    FAILS(SLUICE_RESOURCE_IN_USE, sluice_engine_close(engine));
    sluice_iterator_free(it);
    FAILS(SLUICE_RESOURCE_IN_USE, sluice_engine_close(engine));
    sluice_subscription_free(sub);
    sluice_stream_summary summary; /* the refused close left the handle valid */
    OK(sluice_describe_stream_summary(engine, "c", &summary));
    sluice_options *options = NULL;
    sluice_engine *second = NULL;
    OK(sluice_options_new(dir_close, &options));
    OK(sluice_options_set_segment_size(options, 1u << 20));
    FAILS(SLUICE_INTERNAL_FAILURE, sluice_engine_open(options, &second)); /* still open */
    OK(sluice_engine_close(engine));
    OK(sluice_engine_open(options, &second)); /* closed: the directory is free */
    OK(sluice_engine_close(NULL));

    /* free: the engine stays open while an iterator made from it lives, which still reads. */
    OK(sluice_iterator_new(second, "c", "shardId-000000000000", SLUICE_TRIM_HORIZON, NULL, 0, &it));
    sluice_engine_free(second);
    size_t count = 1;
    OK(sluice_iterator_next(it, 0, &count));
    CHECK(count == 0);
    FAILS(SLUICE_INTERNAL_FAILURE, sluice_engine_open(options, &engine));
    sluice_iterator_free(it); /* the last user: the engine closes here */
    OK(sluice_engine_open(options, &engine));
    sluice_options_free(options);
    OK(sluice_engine_close(engine));
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    snprintf(dir_small, sizeof dir_small, "%s-small", argv[1]);
    snprintf(dir_big, sizeof dir_big, "%s-big", argv[1]);
    snprintf(dir_close, sizeof dir_close, "%s-close", argv[1]);
    version();
    setters();
    /* Segments of 16 MiB hold a 10 MiB record. */
    sluice_engine *engine = open_engine(dir_big, 16u << 20);
    OK(sluice_create_stream(engine, "s", 1));
    record_sizes(engine);
    partition_keys_and_batches(engine);
    streams_retention_and_tags(engine);
    reads(engine);
    OK(sluice_engine_close(engine));
    close_and_free();
    printf("promises: all checks passed\n");
    return 0;
}
