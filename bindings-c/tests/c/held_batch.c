/* A batch from sluice_get outlives its engine: its records stay valid until
 * sluice_batch_free, even when an engine reopened on the same directory, in the same process,
 * expires their segment and rolls through more segments than there are files.
 * Usage: held_batch DATA_DIR */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include <dirent.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#define HELD 100
#define RECORD_BYTES 1000
/* About one 1 MiB segment of RECORD_BYTES records. */
#define PER_SEGMENT 1000
#define PER_PUT 500
#define HOUR_MS 3600000ull

static _Atomic uint64_t now_ms = 1800000000000ull;

static uint64_t manual_clock(void *ctx) {
    (void)ctx;
    return atomic_load(&now_ms);
}

/* The data of record n. */
static void fill(uint8_t *data, unsigned n) {
    for (unsigned i = 0; i < RECORD_BYTES; i++) data[i] = (uint8_t)(n * 131u + i * 7u + (n >> 8));
}

static sluice_engine *open_engine(const char *dir) {
    sluice_options *options = NULL;
    OK(sluice_options_new(dir, &options));
    OK(sluice_options_set_cores(options, 1));
    OK(sluice_options_set_segment_size(options, 1u << 20));
    OK(sluice_options_set_durable(options, 0));
    OK(sluice_options_set_clock(options, manual_clock, NULL));
    sluice_engine *engine = NULL;
    OK(sluice_engine_open(options, &engine));
    sluice_options_free(options);
    return engine;
}

/* Puts records first..end; returns the sequence number of the first, formatted. */
static void put(sluice_engine *engine, unsigned first, unsigned end, char first_seq[40]) {
    static uint8_t data[PER_PUT][RECORD_BYTES];
    sluice_record_in records[PER_PUT];
    sluice_put_result results[PER_PUT];
    for (unsigned n = first; n < end; n += PER_PUT) {
        unsigned count = end - n < PER_PUT ? end - n : PER_PUT;
        for (unsigned i = 0; i < count; i++) {
            fill(data[i], n + i);
            records[i] = (sluice_record_in){"k", data[i], RECORD_BYTES, NULL};
        }
        OK(sluice_put_batch(engine, "held", records, count, SLUICE_DURABILITY_VISIBLE, results));
        for (unsigned i = 0; i < count; i++) CHECK(results[i].result == SLUICE_OK);
        if (n == first && first_seq != NULL)
            OK(sluice_sequence_number_format(results[0].sequence_number_high,
                                             results[0].sequence_number_low, first_seq, 40));
    }
}

/* The first segment file of the only shard of the only stream. */
static void first_segment(const char *dir, char *path, size_t len) {
    char streams[4096];
    snprintf(streams, sizeof streams, "%s/streams", dir);
    DIR *d = opendir(streams);
    CHECK(d != NULL);
    struct dirent *entry;
    const char *uid = NULL;
    while ((entry = readdir(d)) != NULL)
        if (entry->d_name[0] != '.') uid = entry->d_name;
    CHECK(uid != NULL);
    snprintf(path, len, "%s/%s/shard-0/seg-00000000.log", streams, uid);
    closedir(d);
}

/* Waits until the engine's maintenance retired the segment at `path`: its header's state
 * (bytes 10..12, little-endian) is 2, free. A condition, not a duration: the bound only turns
 * a hang into a failure. */
static void wait_until_retired(const char *path) {
    for (unsigned tries = 0; tries < 24000; tries++) {
        FILE *f = fopen(path, "rb");
        CHECK(f != NULL);
        uint8_t header[64];
        CHECK(fread(header, 1, sizeof header, f) == sizeof header);
        fclose(f);
        if (header[10] == 2 && header[11] == 0) return;
        struct timespec pause = {0, 5000000};
        nanosleep(&pause, NULL);
    }
    fprintf(stderr, "%s was never retired\n", path);
    exit(1);
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    const char *dir = argv[1];
    sluice_engine *engine = open_engine(dir);
    OK(sluice_create_stream(engine, "held", 1));
    char seq[40];
    put(engine, 0, 2 * PER_SEGMENT + PER_SEGMENT / 2, seq);
    /* Hold the first HELD records, one batch each, and copy them. */
    sluice_batch *held[HELD];
    static uint8_t copied[HELD][RECORD_BYTES];
    sluice_record record;
    OK(sluice_get(engine, "held", seq, &held[0]));
    OK(sluice_batch_record(held[0], 0, &record));
    for (unsigned i = 1; i < HELD; i++) {
        OK(sluice_sequence_number_format(record.sequence_number_high,
                                         record.sequence_number_low + i, seq, sizeof seq));
        OK(sluice_get(engine, "held", seq, &held[i]));
    }
    for (unsigned i = 0; i < HELD; i++) {
        OK(sluice_batch_record(held[i], 0, &record));
        uint8_t expected[RECORD_BYTES];
        fill(expected, i);
        CHECK(record.data_len == RECORD_BYTES && memcmp(record.data, expected, RECORD_BYTES) == 0);
        memcpy(copied[i], record.data, RECORD_BYTES);
    }
    sluice_engine_free(engine);

    /* Everything the first engine wrote expires; the reopened engine retires it, and rolling
     * through more segments than there are files would reuse every retired file. */
    atomic_fetch_add(&now_ms, 25 * HOUR_MS);
    engine = open_engine(dir);
    char path[4096];
    first_segment(dir, path, sizeof path);
    wait_until_retired(path);
    unsigned from = 10 * PER_SEGMENT, end = from + 5 * PER_SEGMENT;
    put(engine, from, end, seq);

    unsigned changed = 0;
    for (unsigned i = 0; i < HELD; i++) {
        OK(sluice_batch_record(held[i], 0, &record));
        changed += record.data_len != RECORD_BYTES ||
                   memcmp(record.data, copied[i], RECORD_BYTES) != 0;
    }
    if (changed != 0) {
        fprintf(stderr, "%u of %u held records changed\n", changed, HELD);
        exit(1);
    }
    /* The reopened engine made progress meanwhile: the first record it accepted reads back. */
    sluice_batch *first_new = NULL;
    OK(sluice_get(engine, "held", seq, &first_new));
    OK(sluice_batch_record(first_new, 0, &record));
    uint8_t expected[RECORD_BYTES];
    fill(expected, from);
    CHECK(record.data_len == RECORD_BYTES && memcmp(record.data, expected, RECORD_BYTES) == 0);
    sluice_batch_free(first_new);
    for (unsigned i = 0; i < HELD; i++) sluice_batch_free(held[i]);
    sluice_engine_free(engine);
    printf("held_batch: %u held records unchanged\n", HELD);
    return 0;
}
