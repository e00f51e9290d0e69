/* Several producer threads and a consumer thread through the C ABI: every record is read
 * back exactly once, and in order per shard (each producer's records in the order it put
 * them). Usage: threads DATA_DIR */
#include "check.h"
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#define PRODUCERS 4
#define BATCHES 50
#define PER_BATCH 20
#define SHARDS 3

static sluice_engine *engine;

static void *produce(void *arg) {
    unsigned producer = (unsigned)(uintptr_t)arg;
    char key[32];
    snprintf(key, sizeof key, "producer-%u", producer);
    for (unsigned b = 0; b < BATCHES; b++) {
        uint32_t data[PER_BATCH][2];
        sluice_record_in records[PER_BATCH];
        for (unsigned i = 0; i < PER_BATCH; i++) {
            data[i][0] = producer;
            data[i][1] = b * PER_BATCH + i;
            records[i] = (sluice_record_in){key, (const uint8_t *)data[i], sizeof data[i], NULL};
        }
        sluice_put_result results[PER_BATCH];
        OK(sluice_put_batch(engine, "t", records, PER_BATCH, SLUICE_DURABILITY_VISIBLE, results));
        for (unsigned i = 0; i < PER_BATCH; i++) CHECK(results[i].result == SLUICE_OK);
    }
    return NULL;
}

/* Reads every shard until all records arrived; checks per-producer order and uniqueness. */
static void *consume(void *arg) {
    (void)arg;
    const unsigned total = PRODUCERS * BATCHES * PER_BATCH;
    uint32_t next_expected[PRODUCERS] = {0};
    unsigned seen = 0;
    sluice_iterator *iterators[SHARDS];
    for (unsigned s = 0; s < SHARDS; s++) {
        char shard[24];
        snprintf(shard, sizeof shard, "shardId-%012u", s);
        OK(sluice_iterator_new(engine, "t", shard, SLUICE_TRIM_HORIZON, NULL, 0, &iterators[s]));
    }
    time_t deadline = time(NULL) + 120; /* a lost record fails the test rather than hang it */
    while (seen < total) {
        CHECK(time(NULL) < deadline);
        for (unsigned s = 0; s < SHARDS; s++) {
            size_t count = 0;
            OK(sluice_iterator_next(iterators[s], 0, &count));
            const sluice_record *records = NULL;
            OK(sluice_iterator_records(iterators[s], &records, &count));
            for (size_t i = 0; i < count; i++) {
                CHECK(records[i].data_len == 8);
                uint32_t value[2];
                memcpy(value, records[i].data, sizeof value);
                CHECK(value[0] < PRODUCERS);
                /* A producer's records come back once each, in the order it put them. */
                CHECK(value[1] == next_expected[value[0]]);
                next_expected[value[0]]++;
                seen++;
            }
        }
    }
    for (unsigned p = 0; p < PRODUCERS; p++) CHECK(next_expected[p] == BATCHES * PER_BATCH);
    for (unsigned s = 0; s < SHARDS; s++) sluice_iterator_free(iterators[s]);
    return NULL;
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    sluice_options *options = NULL;
    OK(sluice_options_new(argv[1], &options));
    OK(sluice_options_set_cores(options, 2));
    OK(sluice_options_set_segment_size(options, 4u << 20));
    OK(sluice_engine_open(options, &engine));
    sluice_options_free(options);
    OK(sluice_create_stream(engine, "t", SHARDS));
    pthread_t producers[PRODUCERS], consumer;
    CHECK(pthread_create(&consumer, NULL, consume, NULL) == 0);
    for (unsigned p = 0; p < PRODUCERS; p++)
        CHECK(pthread_create(&producers[p], NULL, produce, (void *)(uintptr_t)p) == 0);
    for (unsigned p = 0; p < PRODUCERS; p++) CHECK(pthread_join(producers[p], NULL) == 0);
    CHECK(pthread_join(consumer, NULL) == 0);
    sluice_engine_free(engine);
    printf("threads: %u records read back exactly once, in order per producer\n",
           PRODUCERS * BATCHES * PER_BATCH);
    return 0;
}
