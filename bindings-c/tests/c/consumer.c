/* Consumer checkpoints from C: read, commit durably, free everything (the engine closes),
 * reopen, and resume strictly after the committed record; with the error paths.
 * Usage: consumer DATA_DIR */
#include "check.h"
#include <stdint.h>

static const char *SHARD = "shardId-000000000000";

static sluice_engine *open_engine(const char *dir) {
    sluice_options *options = NULL;
    sluice_engine *engine = NULL;
    OK(sluice_options_new(dir, &options));
    OK(sluice_options_set_cores(options, 1));
    OK(sluice_options_set_segment_size(options, 4u << 20));
    OK(sluice_engine_open(options, &engine));
    sluice_options_free(options);
    return engine;
}

static void put_jobs(sluice_engine *engine) {
    OK(sluice_create_stream(engine, "jobs", 1));
    for (int i = 0; i < 10; i++) {
        char data[16];
        int len = snprintf(data, sizeof data, "job-%d", i);
        sluice_record_in record = {"k", (const uint8_t *)data, (size_t)len, NULL};
        sluice_put_result result;
        OK(sluice_put(engine, "jobs", &record, SLUICE_DURABILITY_DURABLE, &result));
    }
}

/* Reads the first four records and commits the fourth (job-3); returns its number. */
static void read_and_commit(sluice_engine *engine, uint64_t *high, uint64_t *low) {
    sluice_iterator *iterator = NULL;
    size_t count = 0;
    OK(sluice_iterator_new(engine, "jobs", SHARD, SLUICE_TRIM_HORIZON, NULL, 0, &iterator));
    OK(sluice_iterator_next(iterator, 4, &count));
    CHECK(count == 4);
    sluice_record last;
    OK(sluice_iterator_record(iterator, 3, &last));
    CHECK(last.data_len == 5 && memcmp(last.data, "job-3", 5) == 0);
    *high = last.sequence_number_high;
    *low = last.sequence_number_low;

    sluice_consumer *consumer = NULL;
    OK(sluice_consumer_open(engine, "jobs", "worker", &consumer));
    int32_t committed = 7;
    uint64_t h = 0, l = 0;
    OK(sluice_consumer_position(consumer, SHARD, &committed, &h, &l));
    CHECK(committed == 0 && h == 0 && l == 0); /* new: no position, halves untouched */
    OK(sluice_consumer_commit(consumer, SHARD, *high, *low, SLUICE_DURABILITY_DURABLE));
    OK(sluice_consumer_position(consumer, SHARD, &committed, &h, &l));
    CHECK(committed == 1 && h == *high && l == *low);

    /* Errors change nothing and leave out-parameters alone. */
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_consumer_commit(consumer, SHARD, *high, 100, 0));
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_consumer_commit(consumer, SHARD, *high, *low, 9));
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_consumer_commit(consumer, SHARD, 5, 1, 0));
    FAILS(SLUICE_RESOURCE_NOT_FOUND,
          sluice_consumer_commit(consumer, "shardId-000000000009", *high, *low, 0));
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_consumer_commit(NULL, SHARD, *high, *low, 0));
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_consumer_commit(consumer, NULL, *high, *low, 0));
    committed = 7;
    FAILS(SLUICE_RESOURCE_NOT_FOUND,
          sluice_consumer_position(consumer, "shardId-000000000009", &committed, &h, &l));
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_consumer_position(consumer, SHARD, NULL, &h, &l));
    CHECK(committed == 7);
    OK(sluice_consumer_position(consumer, SHARD, &committed, &h, &l));
    CHECK(committed == 1 && h == *high && l == *low);

    sluice_consumer *other = NULL;
    FAILS(SLUICE_VALIDATION, sluice_consumer_open(engine, "jobs", "a/b", &other));
    FAILS(SLUICE_RESOURCE_NOT_FOUND, sluice_consumer_open(engine, "nope", "worker", &other));
    FAILS(SLUICE_INVALID_ARGUMENT, sluice_consumer_open(engine, "jobs", "worker", NULL));
    CHECK(other == NULL);
    sluice_consumer_free(consumer);
    sluice_consumer_free(NULL);
    sluice_iterator_free(iterator);
}

/* After the reopen: the position is there, and reading after it gives job-4..job-9. */
static void resume(sluice_engine *engine, uint64_t high, uint64_t low) {
    sluice_consumer *consumer = NULL;
    OK(sluice_consumer_open(engine, "jobs", "worker", &consumer));
    int32_t committed = 0;
    uint64_t h = 0, l = 0;
    OK(sluice_consumer_position(consumer, SHARD, &committed, &h, &l));
    CHECK(committed == 1 && h == high && l == low);
    char position[64];
    OK(sluice_sequence_number_format(h, l, position, sizeof position));
    sluice_iterator *iterator = NULL;
    size_t count = 0;
    OK(sluice_iterator_new(engine, "jobs", SHARD, SLUICE_AFTER_SEQUENCE_NUMBER, position, 0,
                           &iterator));
    OK(sluice_iterator_next(iterator, 100, &count));
    CHECK(count == 6);
    for (size_t i = 0; i < count; i++) {
        sluice_record record;
        char expected[16];
        snprintf(expected, sizeof expected, "job-%d", (int)i + 4);
        OK(sluice_iterator_record(iterator, i, &record));
        CHECK(record.data_len == strlen(expected));
        CHECK(memcmp(record.data, expected, record.data_len) == 0);
    }
    /* Processed to the end: a visible commit, which the engine's close makes durable. */
    sluice_record last;
    OK(sluice_iterator_record(iterator, count - 1, &last));
    OK(sluice_consumer_commit(consumer, SHARD, last.sequence_number_high,
                              last.sequence_number_low, SLUICE_DURABILITY_VISIBLE));
    sluice_iterator_free(iterator);
    sluice_consumer_free(consumer);
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    uint64_t high = 0, low = 0;
    sluice_engine *engine = open_engine(argv[1]);
    put_jobs(engine);
    read_and_commit(engine, &high, &low);
    sluice_engine_free(engine);

    engine = open_engine(argv[1]);
    resume(engine, high, low);
    sluice_engine_free(engine);

    engine = open_engine(argv[1]);
    sluice_consumer *consumer = NULL;
    int32_t committed = 0;
    uint64_t h = 0, l = 0;
    OK(sluice_consumer_open(engine, "jobs", "worker", &consumer));
    OK(sluice_consumer_position(consumer, SHARD, &committed, &h, &l));
    CHECK(committed == 1 && h == high && l == low + 6);
    sluice_consumer_free(consumer);
    sluice_engine_free(engine);
    printf("consumer: resumed after job-3 with job-4..job-9 across two reopens\n");
    return 0;
}
