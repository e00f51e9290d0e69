/* A producer and a consumer through libsluice.
 *
 *   export PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig    (the prefix given to scripts/install-c)
 *   cc producer_consumer.c $(pkg-config --cflags --libs sluice) -o producer_consumer
 *   ./producer_consumer /tmp/sluice-example
 */
#include <sluice.h>
#include <stdio.h>
#include <string.h>

static int fail(const char *what, sluice_result result) {
    fprintf(stderr, "%s: %s (%s)\n", what, sluice_result_message(result), sluice_last_error_detail());
    return 1;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "sluice-example-data";
    sluice_options *options = NULL;
    sluice_engine *engine = NULL;
    sluice_result r = sluice_options_new(dir, &options);
    if (r != SLUICE_OK) return fail("options", r);
    r = sluice_engine_open(options, &engine);
    sluice_options_free(options);
    if (r != SLUICE_OK) return fail("open", r);

    r = sluice_create_stream(engine, "greetings", 1);
    if (r != SLUICE_OK && r != SLUICE_RESOURCE_IN_USE) return fail("create", r);

    /* Producer: one batch of three records, durable. */
    const char *words[3] = {"hello", "from", "C"};
    sluice_record_in records[3];
    for (int i = 0; i < 3; i++)
        records[i] = (sluice_record_in){"greeter", (const uint8_t *)words[i], strlen(words[i]), NULL};
    sluice_put_result results[3];
    r = sluice_put_batch(engine, "greetings", records, 3, SLUICE_DURABILITY_DURABLE, results);
    if (r != SLUICE_OK) return fail("put", r);

    /* Consumer: read the shard from the start; records point into the log (zero-copy). */
    sluice_iterator *it = NULL;
    r = sluice_iterator_new(engine, "greetings", "shardId-000000000000", SLUICE_TRIM_HORIZON, NULL, 0, &it);
    if (r != SLUICE_OK) return fail("iterator", r);
    size_t count = 0, total = 0;
    do {
        r = sluice_iterator_next(it, 0, &count);
        if (r != SLUICE_OK) return fail("read", r);
        for (size_t i = 0; i < count; i++) {
            sluice_record record;
            sluice_iterator_record(it, i, &record);
            char seq[40];
            sluice_sequence_number_format(record.sequence_number_high, record.sequence_number_low, seq, sizeof seq);
            printf("%s %.*s: %.*s\n", seq, (int)record.partition_key_len, record.partition_key,
                   (int)record.data_len, (const char *)record.data);
        }
        total += count;
    } while (count > 0);
    printf("read %zu records\n", total);
    sluice_iterator_free(it);
    /* Close, not just free: it waits for the final sync and says how closing went. */
    r = sluice_engine_close(engine);
    if (r != SLUICE_OK) return fail("close", r);
    return 0;
}
