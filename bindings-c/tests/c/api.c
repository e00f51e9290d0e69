/* Every function of sluice.h, with its error paths, under AddressSanitizer.
 * Usage: api DATA_DIR */
#include "check.h"
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

static int streams_seen = 0;
static void count_stream(void *ctx, const char *name) {
    (void)ctx;
    CHECK(strlen(name) > 0);
    streams_seen++;
}

static int shards_seen = 0, open_seen = 0;
static void count_shard(void *ctx, const sluice_shard *shard) {
    (void)ctx;
    CHECK(strncmp(shard->shard_id, "shardId-", 8) == 0);
    shards_seen++;
    open_seen += shard->open != 0;
}

static int tags_seen = 0;
static void check_tag(void *ctx, const char *key, const char *value) {
    (void)ctx;
    CHECK(strcmp(key, "env") == 0 && strcmp(value, "prod") == 0);
    tags_seen++;
}

static int delivered = 0;
static int32_t on_delivery(void *ctx, const sluice_record *records, size_t count,
                           const sluice_read_status *status) {
    (void)status;
    int *wanted = ctx;
    for (size_t i = 0; i < count; i++) CHECK(records[i].data_len == 5);
    delivered += (int)count;
    return delivered >= *wanted;
}

/* The real time, through the clock callback: the checks below do not depend on the clock. */
static atomic_int clock_calls = 0;
static uint64_t wall_clock_ms(void *ctx) {
    CHECK(ctx == &clock_calls);
    atomic_fetch_add(&clock_calls, 1);
    struct timespec now;
    CHECK(timespec_get(&now, TIME_UTC) == TIME_UTC);
    return (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
}

static void options_and_open(const char *dir, sluice_engine **engine) {
    sluice_options *options = NULL;
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_options_new(NULL, &options));
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_options_new(dir, NULL));
    CHECK(options == NULL); /* written only on success */
    const char bad_utf8[] = {'d', (char)0xff, 0};
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_options_new(bad_utf8, &options));
    OK(sluice_options_new(dir, &options));
    OK(sluice_options_set_cores(options, 2));
    OK(sluice_options_set_segment_size(options, 4u << 20));
    OK(sluice_options_set_durable(options, 1));
    OK(sluice_options_set_throughput_limits(options, 0));
    OK(sluice_options_set_clock(options, wall_clock_ms, &clock_calls));
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_options_set_clock(options, NULL, NULL));
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_options_set_clock(NULL, wall_clock_ms, NULL));
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_options_set_cores(NULL, 1));
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_engine_open(NULL, engine));
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_engine_open(options, NULL));
    /* Refused when set (promises.c checks every bound), the options unchanged. */
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_options_set_segment_size(options, 1000));
    OK(sluice_engine_open(options, engine));
    sluice_options_free(options);
    sluice_options_free(NULL);
}

static void admin(sluice_engine *engine) {
    OK(sluice_create_stream(engine, "orders", 2));
    OK(sluice_create_stream_on_demand(engine, "auto"));
    FAILS(SLUICE_RESOURCE_IN_USE, sluice_create_stream(engine, "orders", 1));
    FAILS(SLUICE_VALIDATION, sluice_create_stream(engine, "bad/name", 1));
    FAILS(SLUICE_VALIDATION, sluice_create_stream(engine, "zero", 0));
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_create_stream(NULL, "x", 1));
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_create_stream(engine, NULL, 1));
    OK(sluice_change_retention(engine, "orders", 48, 1));
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_change_retention(engine, "orders", 30, 1));
    OK(sluice_change_retention(engine, "orders", 24, 0));
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_change_retention(engine, "orders", 23, 0));
    FAILS(SLUICE_RESOURCE_NOT_FOUND, sluice_change_retention(engine, "nope", 48, 1));
    OK(sluice_update_max_record_size(engine, "orders", 2u << 20));
    FAILS(SLUICE_VALIDATION, sluice_update_max_record_size(engine, "orders", 11u << 20));
    sluice_stream_summary summary;
    memset(&summary, 0xab, sizeof summary);
    FAILS(SLUICE_RESOURCE_NOT_FOUND, sluice_describe_stream_summary(engine, "nope", &summary));
    CHECK(summary.open_shard_count == 0xabababab); /* untouched on failure */
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_describe_stream_summary(engine, "orders", NULL));
    OK(sluice_describe_stream_summary(engine, "orders", &summary));
    CHECK(summary.open_shard_count == 2 && summary.retention_hours == 24);
    CHECK(summary.max_record_size_bytes == (2u << 20) && summary.on_demand == 0);
    OK(sluice_describe_stream_summary(engine, "auto", &summary));
    CHECK(summary.on_demand == 1 && summary.open_shard_count == 4);
    OK(sluice_list_streams(engine, count_stream, NULL));
    CHECK(streams_seen == 2);
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_list_streams(engine, NULL, NULL));
    OK(sluice_list_shards(engine, "orders", count_shard, NULL));
    CHECK(shards_seen == 2 && open_seen == 2);
    FAILS(SLUICE_RESOURCE_NOT_FOUND, sluice_list_shards(engine, "nope", count_shard, NULL));
    OK(sluice_add_tag(engine, "orders", "env", "dev"));
    OK(sluice_add_tag(engine, "orders", "env", "prod")); /* overwrites */
    OK(sluice_add_tag(engine, "orders", "team", "a"));
    OK(sluice_remove_tag(engine, "orders", "team"));
    OK(sluice_remove_tag(engine, "orders", "absent"));
    OK(sluice_list_tags(engine, "orders", check_tag, NULL));
    CHECK(tags_seen == 1);
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_add_tag(engine, "orders", "", "x"));
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_add_tag(engine, "orders", NULL, "x"));
    FAILS(SLUICE_RESOURCE_NOT_FOUND, sluice_list_tags(engine, "nope", check_tag, NULL));
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_list_tags(engine, "orders", NULL, NULL));
    OK(sluice_delete_stream(engine, "auto"));
    FAILS(SLUICE_RESOURCE_NOT_FOUND, sluice_delete_stream(engine, "auto"));
}

/* Puts 10 records "rec-N" with key "key"; returns the first one's sequence number text. */
static void put_records(sluice_engine *engine, char first_seq[40]) {
    sluice_record_in one = {"key", (const uint8_t *)"rec-0", 5, NULL};
    sluice_put_result result;
    OK(sluice_put(engine, "orders", &one, SLUICE_DURABILITY_DURABLE, &result));
    CHECK(result.result == SLUICE_OK && strncmp(result.shard_id, "shardId-", 8) == 0);
    OK(sluice_sequence_number_format(result.sequence_number_high, result.sequence_number_low,
                                     first_seq, 40));
    char tiny[2];
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_sequence_number_format(0, 123, tiny, sizeof tiny));

    sluice_record_in batch[9];
    char data[9][6];
    for (int i = 0; i < 9; i++) {
        snprintf(data[i], sizeof data[i], "rec-%d", i + 1);
        batch[i] = (sluice_record_in){"key", (const uint8_t *)data[i], 5, NULL};
    }
    sluice_put_result results[9];
    OK(sluice_put_batch(engine, "orders", batch, 9, SLUICE_DURABILITY_VISIBLE, results));
    for (int i = 0; i < 9; i++) CHECK(results[i].result == SLUICE_OK);
    CHECK(results[8].sequence_number_low > results[0].sequence_number_low);

    /* Error paths: nothing is written and results are untouched. */
    sluice_put_result untouched = {.result = 12345};
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_put_batch(engine, "orders", NULL, 1, 0, &untouched));
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_put_batch(engine, "orders", batch, 1, 0, NULL));
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_put_batch(engine, "orders", batch, 1, 7, &untouched));
    FAILS(SLUICE_VALIDATION, sluice_put_batch(engine, "orders", batch, 0, 0, &untouched));
    sluice_record_in null_key = {NULL, (const uint8_t *)"x", 1, NULL};
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_put_batch(engine, "orders", &null_key, 1, 0, &untouched));
    sluice_record_in null_data = {"k", NULL, 3, NULL};
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_put(engine, "orders", &null_data, 0, &untouched));
    sluice_record_in empty_data = {"key", NULL, 0, NULL}; /* zero length: NULL is fine */
    sluice_put_result empty_result;
    OK(sluice_put(engine, "orders", &empty_data, 0, &empty_result));
    const char bad_utf8[] = {'k', (char)0xc3, 0};
    sluice_record_in bad_key = {bad_utf8, (const uint8_t *)"x", 1, NULL};
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_put(engine, "orders", &bad_key, 0, &untouched));
    sluice_record_in bad_hash = {"k", (const uint8_t *)"x", 1, "340282366920938463463374607431768211456"};
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_put(engine, "orders", &bad_hash, 0, &untouched));
    FAILS(SLUICE_RESOURCE_NOT_FOUND, sluice_put(engine, "nope", &one, 0, &untouched));
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_put(engine, "orders", NULL, 0, &untouched));
    CHECK(untouched.result == 12345);
}

static void reads(sluice_engine *engine, const char *first_seq) {
    sluice_batch *one = NULL;
    OK(sluice_get(engine, "orders", first_seq, &one));
    sluice_record record;
    OK(sluice_batch_record(one, 0, &record));
    CHECK(record.data_len == 5 && memcmp(record.data, "rec-0", 5) == 0);
    CHECK(record.partition_key_len == 3 && memcmp(record.partition_key, "key", 3) == 0);
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_batch_record(one, 1, &record));
    sluice_batch_free(one);
    sluice_batch_free(NULL);
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_get(engine, "orders", "not a number", &one));
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_get(engine, "orders", "999999", &one));

    /* The key's shard: find it from the first record. */
    char shard[24];
    snprintf(shard, sizeof shard, "shardId-%012u", (unsigned)record.sequence_number_high);
    sluice_iterator *it = NULL;
    OK(sluice_iterator_new(engine, "orders", shard, SLUICE_TRIM_HORIZON, NULL, 0, &it));
    size_t count = 0;
    OK(sluice_iterator_next(it, 4, &count));
    CHECK(count == 4);
    const sluice_record *all = NULL;
    size_t all_count = 0;
    OK(sluice_iterator_records(it, &all, &all_count));
    CHECK(all_count == 4 && memcmp(all[3].data, "rec-3", 5) == 0);
    sluice_read_status status;
    OK(sluice_iterator_status(it, &status));
    CHECK(status.end_of_shard == 0 && status.millis_behind_latest < 3600000);
    char token[SLUICE_ITERATOR_TOKEN_BYTES];
    OK(sluice_iterator_token(it, token, sizeof token));
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_iterator_token(it, token, 4));
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_iterator_child_shard(it, 0, shard, sizeof shard));
    sluice_iterator *resumed = NULL;
    OK(sluice_iterator_from_token(engine, token, &resumed));
    OK(sluice_iterator_next(resumed, 0, &count));
    CHECK(count == 7); /* rec-4..rec-9 and the empty record */
    OK(sluice_iterator_record(resumed, 0, &record));
    CHECK(memcmp(record.data, "rec-4", 5) == 0);
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_iterator_record(resumed, 7, &record));
    sluice_iterator_free(resumed);
    token[10] = token[10] == 'A' ? 'B' : 'A';
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_iterator_from_token(engine, token, &resumed));
    sluice_iterator_free(it);

    /* Every other start type. */
    OK(sluice_iterator_new(engine, "orders", shard, SLUICE_AT_SEQUENCE_NUMBER, first_seq, 0, &it));
    OK(sluice_iterator_next(it, 1, &count));
    CHECK(count == 1);
    sluice_iterator_free(it);
    OK(sluice_iterator_new(engine, "orders", shard, SLUICE_AFTER_SEQUENCE_NUMBER, first_seq, 0, &it));
    OK(sluice_iterator_next(it, 1, &count));
    OK(sluice_iterator_record(it, 0, &record));
    CHECK(memcmp(record.data, "rec-1", 5) == 0);
    sluice_iterator_free(it);
    OK(sluice_iterator_new(engine, "orders", shard, SLUICE_AT_TIMESTAMP, NULL, 0, &it));
    OK(sluice_iterator_next(it, 0, &count));
    CHECK(count == 11);
    sluice_iterator_free(it);
    OK(sluice_iterator_new(engine, "orders", shard, SLUICE_LATEST, NULL, 0, &it));
    OK(sluice_iterator_next(it, 0, &count));
    CHECK(count == 0);
    sluice_iterator_free(it);
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_iterator_new(engine, "orders", shard, SLUICE_AT_SEQUENCE_NUMBER, NULL, 0, &it));
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_iterator_new(engine, "orders", shard, 99, NULL, 0, &it));
    FAILS(SLUICE_RESOURCE_NOT_FOUND, sluice_iterator_new(engine, "orders", "shardId-000000000009", 0, NULL, 0, &it));
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_iterator_next(NULL, 0, &count));
    sluice_iterator_free(NULL);
}

static void subscriptions(sluice_engine *engine) {
    sluice_subscription *sub = NULL;
    OK(sluice_subscribe(engine, "orders", "shardId-000000000000", SLUICE_LATEST, NULL, 0, &sub));
    size_t count = 1;
    OK(sluice_subscription_poll(sub, 10, &count));
    CHECK(count == 0);
    sluice_record_in in = {"k", (const uint8_t *)"hello", 5, "0"};
    sluice_put_result result;
    OK(sluice_put(engine, "orders", &in, 0, &result));
    OK(sluice_subscription_poll(sub, 10000, &count));
    CHECK(count == 1);
    sluice_record record;
    OK(sluice_subscription_record(sub, 0, &record));
    CHECK(memcmp(record.data, "hello", 5) == 0);
    sluice_read_status status;
    OK(sluice_subscription_status(sub, &status));
    CHECK(status.end_of_shard == 0);
    /* A poll that times out forgets the previous delivery. */
    OK(sluice_subscription_poll(sub, 10, &count));
    CHECK(count == 0);
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_subscription_record(sub, 0, &record));
    /* "Wait for ever" is a valid timeout (a record is already there). */
    OK(sluice_put(engine, "orders", &in, 0, &result));
    OK(sluice_subscription_poll(sub, UINT64_MAX, &count));
    CHECK(count == 1);
    for (int i = 0; i < 3; i++) OK(sluice_put(engine, "orders", &in, 0, &result));
    int wanted = 3;
    OK(sluice_subscription_run(sub, on_delivery, &wanted, 10000));
    CHECK(delivered == 3);
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_subscription_run(sub, NULL, NULL, 10));
    sluice_subscription_free(sub);
    sluice_subscription_free(NULL);
    FAILS(SLUICE_RESOURCE_NOT_FOUND, sluice_subscribe(engine, "nope", "shardId-000000000000", 0, NULL, 0, &sub));
}

static void resharding(sluice_engine *engine) {
    OK(sluice_create_stream(engine, "re", 1));
    sluice_subscription *sub = NULL;
    OK(sluice_subscribe(engine, "re", "shardId-000000000000", SLUICE_LATEST, NULL, 0, &sub));
    OK(sluice_split_shard(engine, "re", "shardId-000000000000", "170141183460469231731687303715884105728"));
    size_t count = 0;
    OK(sluice_subscription_poll(sub, 10000, &count));
    sluice_read_status status;
    OK(sluice_subscription_status(sub, &status));
    CHECK(status.end_of_shard == 1 && status.child_shard_count == 2);
    sluice_subscription_free(sub);
    sluice_iterator *it = NULL;
    OK(sluice_iterator_new(engine, "re", "shardId-000000000000", SLUICE_TRIM_HORIZON, NULL, 0, &it));
    OK(sluice_iterator_next(it, 0, &count));
    char child[24];
    OK(sluice_iterator_child_shard(it, 1, child, sizeof child));
    CHECK(strcmp(child, "shardId-000000000002") == 0);
    sluice_iterator_free(it);
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_split_shard(engine, "re", "shardId-000000000000", "5"));
    OK(sluice_merge_shards(engine, "re", "shardId-000000000001", "shardId-000000000002"));
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_merge_shards(engine, "re", "shardId-000000000001", "shardId-000000000002"));
    OK(sluice_update_shard_count(engine, "re", 2));
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_update_shard_count(engine, "re", 5));
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_split_shard(engine, "re", NULL, "5"));
    sluice_stream_summary summary;
    OK(sluice_describe_stream_summary(engine, "re", &summary));
    CHECK(summary.open_shard_count == 2);
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    CHECK(strcmp(sluice_version(), SLUICE_VERSION) == 0);
    CHECK(strcmp(sluice_result_message(SLUICE_OK), "OK") == 0);
    CHECK(strcmp(sluice_result_message(SLUICE_RESOURCE_NOT_FOUND), "ResourceNotFoundException") == 0);
    CHECK(strcmp(sluice_result_message(4242), "Unknown") == 0);
    sluice_engine *engine = NULL;
    options_and_open(argv[1], &engine);
    char first_seq[40];
    admin(engine);
    put_records(engine, first_seq);
    reads(engine, first_seq);
    subscriptions(engine);
    resharding(engine);
    OK(sluice_engine_close(engine));
    sluice_engine_free(NULL);
    CHECK(atomic_load(&clock_calls) > 0); /* the engine's time came from the callback */
    printf("api: all checks passed\n");
    return 0;
}
