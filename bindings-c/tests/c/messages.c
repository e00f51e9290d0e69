/* The detail of every error path a C caller can reach, word for word: it names the function
 * called and the argument at fault, states the bound it broke without contradicting itself,
 * and says nothing in Kinesis' or Rust's terms (check.h's FAILS checks the last two for
 * every failure of every C test program).
 * Usage: messages DATA_DIR */
#include "check.h"
#include <stdint.h>

#define INVALID SLUICE_INVALID_ARGUMENT
#define MAX_HASH "340282366920938463463374607431768211455"

static uint64_t fixed_clock(void *ctx) {
    (void)ctx;
    return 1700000000000;
}

static void options_and_open(const char *dir, sluice_engine **engine) {
    sluice_options *o = NULL;
    FAILS_SAYING(INVALID, "sluice_options_new: data_dir is NULL", sluice_options_new(NULL, &o));
    FAILS_SAYING(INVALID, "sluice_options_new: data_dir is empty; name a directory",
                 sluice_options_new("", &o));
    const char bad_utf8[] = {'d', (char)0xff, 0};
    FAILS_SAYING(INVALID, "sluice_options_new: data_dir is not valid UTF-8",
                 sluice_options_new(bad_utf8, &o));
    FAILS_SAYING(INVALID, "sluice_options_new: out_options is NULL", sluice_options_new(dir, NULL));
    OK(sluice_options_new(dir, &o));
    FAILS_SAYING(INVALID,
                 "sluice_options_set_segment_size: bytes is 4097; a segment size is a multiple of 4096 and at least 65536",
                 sluice_options_set_segment_size(o, 4097));
    FAILS_SAYING(INVALID,
                 "sluice_options_set_segment_size: bytes is 61440; a segment size is a multiple of 4096 and at least 65536",
                 sluice_options_set_segment_size(o, 61440));
    FAILS_SAYING(INVALID, "sluice_options_set_cores: options is NULL", sluice_options_set_cores(NULL, 1));
    FAILS_SAYING(INVALID, "sluice_options_set_clock: callback is NULL",
                 sluice_options_set_clock(o, NULL, NULL));
    OK(sluice_options_set_clock(o, fixed_clock, NULL));
    OK(sluice_options_set_cores(o, 1));
    OK(sluice_options_set_segment_size(o, 4u << 20));
    FAILS_SAYING(INVALID, "sluice_engine_open: options is NULL", sluice_engine_open(NULL, engine));
    FAILS_SAYING(INVALID, "sluice_engine_open: out_engine is NULL", sluice_engine_open(o, NULL));
    OK(sluice_engine_open(o, engine));
    sluice_engine *second = NULL;
    FAILS(SLUICE_INTERNAL_FAILURE, sluice_engine_open(o, &second)); /* the directory is held */
    CHECK(strstr(sluice_last_error_detail(), "sluice_engine_open: storage failed: ") ==
          sluice_last_error_detail());
    sluice_options_free(o);
}

static void admin(sluice_engine *e) {
    OK(sluice_create_stream(e, "orders", 1));
    FAILS_SAYING(SLUICE_RESOURCE_IN_USE, "sluice_create_stream: stream \"orders\" already exists",
                 sluice_create_stream(e, "orders", 1));
    FAILS_SAYING(SLUICE_VALIDATION,
                 "sluice_create_stream: name \"bad/name\" is not a stream name: use 1 to 128 of a-z, A-Z, 0-9, '_', '.', '-'",
                 sluice_create_stream(e, "bad/name", 1));
    FAILS_SAYING(SLUICE_VALIDATION, "sluice_create_stream: shard_count is 0; it must be 1 to 10000",
                 sluice_create_stream(e, "zero", 0));
    FAILS_SAYING(INVALID, "sluice_create_stream: engine is NULL", sluice_create_stream(NULL, "x", 1));
    FAILS_SAYING(SLUICE_RESOURCE_NOT_FOUND, "sluice_delete_stream: stream \"nope\" does not exist",
                 sluice_delete_stream(e, "nope"));
    FAILS_SAYING(INVALID, "sluice_change_retention: hours is 23; retention is 24 to 8760 hours",
                 sluice_change_retention(e, "orders", 23, 0));
    OK(sluice_change_retention(e, "orders", 48, 1));
    FAILS_SAYING(INVALID,
                 "sluice_change_retention: stream \"orders\" keeps records 48 hours, more than the 30 asked for: pass increase = 0 to shorten retention",
                 sluice_change_retention(e, "orders", 30, 1));
    FAILS_SAYING(INVALID,
                 "sluice_change_retention: stream \"orders\" keeps records 48 hours, fewer than the 72 asked for: pass a nonzero increase to lengthen retention",
                 sluice_change_retention(e, "orders", 72, 0));
    /* The off-by-one of whole KiB: 10 MiB + 1 byte is refused, in bytes. */
    FAILS_SAYING(SLUICE_VALIDATION,
                 "sluice_update_max_record_size: bytes is 10485761; a stream's largest record is 1048576 (1 MiB) to 10485760 (10 MiB) bytes",
                 sluice_update_max_record_size(e, "orders", 10485761));
    FAILS_SAYING(SLUICE_VALIDATION,
                 "sluice_update_max_record_size: bytes is 1048575; a stream's largest record is 1048576 (1 MiB) to 10485760 (10 MiB) bytes",
                 sluice_update_max_record_size(e, "orders", 1048575));
    FAILS_SAYING(INVALID,
                 "sluice_update_max_record_size: bytes is 10485760, more than this engine's segments hold (4164952 bytes); open the engine with larger segments (sluice_options_set_segment_size)",
                 sluice_update_max_record_size(e, "orders", 10485760));
    FAILS_SAYING(INVALID, "sluice_describe_stream_summary: out_summary is NULL",
                 sluice_describe_stream_summary(e, "orders", NULL));
    FAILS_SAYING(INVALID, "sluice_list_streams: callback is NULL", sluice_list_streams(e, NULL, NULL));
    FAILS_SAYING(INVALID, "sluice_add_tag: tag \"\": a key has 1 to 128 characters and a value at most 256",
                 sluice_add_tag(e, "orders", "", "x"));
    FAILS_SAYING(INVALID, "sluice_add_tag: key is NULL", sluice_add_tag(e, "orders", NULL, "x"));
    for (int i = 0; i < 50; i++) {
        char key[16];
        snprintf(key, sizeof key, "tag-%d", i);
        OK(sluice_add_tag(e, "orders", key, "v"));
    }
    FAILS_SAYING(SLUICE_LIMIT_EXCEEDED, "sluice_add_tag: a stream has at most 50 tags",
                 sluice_add_tag(e, "orders", "one-more", "v"));
}

static void puts_(sluice_engine *e) {
    sluice_record_in ok = {"k", (const uint8_t *)"x", 1, NULL};
    sluice_record_in batch[11];
    sluice_put_result results[11], result;
    for (int i = 0; i < 11; i++) batch[i] = ok;
    FAILS_SAYING(INVALID, "sluice_put_batch: records is NULL",
                 sluice_put_batch(e, "orders", NULL, 1, 0, results));
    FAILS_SAYING(INVALID, "sluice_put_batch: results is NULL",
                 sluice_put_batch(e, "orders", batch, 1, 0, NULL));
    FAILS_SAYING(INVALID,
                 "sluice_put_batch: durability_code is 7; it must be SLUICE_DURABILITY_DEFAULT (0), SLUICE_DURABILITY_VISIBLE (1) or SLUICE_DURABILITY_DURABLE (2)",
                 sluice_put_batch(e, "orders", batch, 1, 7, results));
    FAILS_SAYING(SLUICE_VALIDATION, "sluice_put_batch: count is 0; a batch holds 1 to 500 records",
                 sluice_put_batch(e, "orders", batch, 0, 0, results));
    batch[1].partition_key = NULL;
    FAILS_SAYING(INVALID, "sluice_put_batch: records[1].partition_key is NULL or not UTF-8",
                 sluice_put_batch(e, "orders", batch, 2, 0, results));
    char long_key[258];
    memset(long_key, 'a', 257);
    long_key[257] = 0;
    batch[1].partition_key = "k";
    batch[2].partition_key = long_key;
    FAILS_SAYING(SLUICE_VALIDATION,
                 "sluice_put_batch: records[2].partition_key has 257 characters; a key has 1 to 256",
                 sluice_put_batch(e, "orders", batch, 3, 0, results));
    batch[2].partition_key = "k";
    sluice_record_in bad = {"k", NULL, 3, NULL};
    FAILS_SAYING(INVALID, "sluice_put: record.data is NULL with a nonzero length",
                 sluice_put(e, "orders", &bad, 0, &result));
    bad = (sluice_record_in){"", (const uint8_t *)"x", 1, NULL};
    FAILS_SAYING(SLUICE_VALIDATION, "sluice_put: record.partition_key has 0 characters; a key has 1 to 256",
                 sluice_put(e, "orders", &bad, 0, &result));
    bad = (sluice_record_in){"k", (const uint8_t *)"x", 1, "340282366920938463463374607431768211456"};
    FAILS_SAYING(INVALID,
                 "sluice_put: record.explicit_hash_key 340282366920938463463374607431768211456 is above the largest hash key, " MAX_HASH,
                 sluice_put(e, "orders", &bad, 0, &result));
    bad.explicit_hash_key = "12x";
    FAILS_SAYING(SLUICE_VALIDATION,
                 "sluice_put: record.explicit_hash_key \"12x\" is not a decimal of 1 to 39 digits without leading zeros",
                 sluice_put(e, "orders", &bad, 0, &result));
    uint8_t *data = calloc(1048576, 1);
    CHECK(data != NULL);
    sluice_record_in big = {"k", data, 1048576, NULL};
    FAILS_SAYING(INVALID,
                 "sluice_put: record holds 1048577 bytes (data and partition key), more than the stream's largest record, 1048576 bytes",
                 sluice_put(e, "orders", &big, 0, &result));
    for (int i = 0; i < 11; i++) batch[i] = (sluice_record_in){"k", data, 1000000, NULL};
    FAILS_SAYING(INVALID,
                 "sluice_put_batch: the records hold 11000011 bytes (data and partition keys), more than a batch's 10485760",
                 sluice_put_batch(e, "orders", batch, 11, 0, results));
    free(data);
    FAILS_SAYING(SLUICE_RESOURCE_NOT_FOUND, "sluice_put: stream \"nope\" does not exist",
                 sluice_put(e, "nope", &ok, 0, &result));
    FAILS_SAYING(INVALID, "sluice_put: record is NULL", sluice_put(e, "orders", NULL, 0, &result));
    FAILS_SAYING(INVALID, "sluice_put: out_result is NULL", sluice_put(e, "orders", &ok, 0, NULL));
}

static void reads(sluice_engine *e) {
    sluice_record_in ok = {"k", (const uint8_t *)"x", 1, "0"};
    sluice_put_result put;
    OK(sluice_put(e, "orders", &ok, 0, &put));
    char seq[40];
    OK(sluice_sequence_number_format(put.sequence_number_high, put.sequence_number_low, seq, sizeof seq));
    sluice_batch *batch = NULL;
    FAILS_SAYING(INVALID,
                 "sluice_get: sequence_number \"not a number\" is not a decimal number without leading zeros",
                 sluice_get(e, "orders", "not a number", &batch));
    FAILS_SAYING(INVALID,
                 "sluice_get: stream \"orders\" holds no record with sequence_number 999999: it was never issued, or retention removed it",
                 sluice_get(e, "orders", "999999", &batch));
    FAILS_SAYING(INVALID,
                 "sluice_get: sequence_number 9999999999999999999999999999999999999999 is larger than any sequence number this engine issues",
                 sluice_get(e, "orders", "9999999999999999999999999999999999999999", &batch));
    FAILS_SAYING(SLUICE_RESOURCE_NOT_FOUND, "sluice_get: stream \"nope\" does not exist",
                 sluice_get(e, "nope", seq, &batch));
    OK(sluice_get(e, "orders", seq, &batch));
    sluice_record record;
    FAILS_SAYING(INVALID, "sluice_batch_record: index is 1; the last read holds records 0 to 0",
                 sluice_batch_record(batch, 1, &record));
    sluice_batch_free(batch);
    char tiny[2];
    FAILS_SAYING(INVALID, "sluice_sequence_number_format: buf_len is 2; 4 bytes are needed",
                 sluice_sequence_number_format(0, 123, tiny, sizeof tiny));

    const char *shard = "shardId-000000000000";
    sluice_iterator *it = NULL;
    FAILS_SAYING(SLUICE_RESOURCE_NOT_FOUND, "sluice_iterator_new: stream \"nope\" does not exist",
                 sluice_iterator_new(e, "nope", shard, SLUICE_LATEST, NULL, 0, &it));
    FAILS_SAYING(SLUICE_RESOURCE_NOT_FOUND,
                 "sluice_iterator_new: stream \"orders\" has no shard \"shardId-000000000009\"",
                 sluice_iterator_new(e, "orders", "shardId-000000000009", SLUICE_LATEST, NULL, 0, &it));
    FAILS_SAYING(INVALID,
                 "sluice_iterator_new: sequence_number is NULL; SLUICE_AT_SEQUENCE_NUMBER needs one",
                 sluice_iterator_new(e, "orders", shard, SLUICE_AT_SEQUENCE_NUMBER, NULL, 0, &it));
    FAILS_SAYING(INVALID,
                 "sluice_iterator_new: kind is 99; it must be SLUICE_TRIM_HORIZON (0) to SLUICE_AT_TIMESTAMP (4)",
                 sluice_iterator_new(e, "orders", shard, 99, NULL, 0, &it));
    FAILS_SAYING(INVALID,
                 "sluice_iterator_new: sequence_number \"01\" is not a decimal number without leading zeros",
                 sluice_iterator_new(e, "orders", shard, SLUICE_AFTER_SEQUENCE_NUMBER, "01", 0, &it));
    char expected[256];
    snprintf(expected, sizeof expected,
             "sluice_iterator_new: sequence_number 999 is not a position of shard %s, whose next sequence number is %llu",
             shard, (unsigned long long)put.sequence_number_low + 1);
    FAILS_SAYING(INVALID, expected,
                 sluice_iterator_new(e, "orders", shard, SLUICE_AT_SEQUENCE_NUMBER, "999", 0, &it));

    OK(sluice_iterator_new(e, "orders", shard, SLUICE_TRIM_HORIZON, NULL, 0, &it));
    size_t count = 0;
    FAILS_SAYING(INVALID,
                 "sluice_iterator_next: limit is 10001; a read returns at most 10000 records (0 means 10000)",
                 sluice_iterator_next(it, 10001, &count));
    FAILS_SAYING(INVALID, "sluice_iterator_record: index is 0; the last read holds records: none",
                 sluice_iterator_record(it, 0, &record));
    char child[24];
    FAILS_SAYING(INVALID, "sluice_iterator_child_shard: index is 0; the last read names child shards: none",
                 sluice_iterator_child_shard(it, 0, child, sizeof child));
    char token[SLUICE_ITERATOR_TOKEN_BYTES];
    FAILS(INVALID, sluice_iterator_token(it, token, 4));
    CHECK(strncmp(sluice_last_error_detail(), "sluice_iterator_token: buf_len is 4; ", 37) == 0);
    OK(sluice_iterator_token(it, token, sizeof token));
    token[10] = token[10] == 'A' ? 'B' : 'A';
    sluice_iterator *resumed = NULL;
    FAILS_SAYING(INVALID,
                 "sluice_iterator_from_token: token is not an iterator token of this engine: it was altered, or made by an engine on another data directory",
                 sluice_iterator_from_token(e, token, &resumed));
    FAILS_SAYING(INVALID, "sluice_iterator_next: iterator is NULL", sluice_iterator_next(NULL, 0, &count));
    FAILS_SAYING(SLUICE_RESOURCE_IN_USE,
                 "sluice_engine_close: iterators or subscriptions made from this engine are not freed (1) and keep it open: free them, then close again (the engine handle is still valid)",
                 sluice_engine_close(e));
    sluice_iterator_free(it);

    sluice_subscription *sub = NULL;
    FAILS_SAYING(SLUICE_RESOURCE_NOT_FOUND, "sluice_subscribe: stream \"nope\" does not exist",
                 sluice_subscribe(e, "nope", shard, SLUICE_LATEST, NULL, 0, &sub));
    OK(sluice_subscribe(e, "orders", shard, SLUICE_LATEST, NULL, 0, &sub));
    FAILS_SAYING(INVALID, "sluice_subscription_run: callback is NULL",
                 sluice_subscription_run(sub, NULL, NULL, 10));
    FAILS_SAYING(INVALID, "sluice_subscription_record: index is 0; the last read holds records: none",
                 sluice_subscription_record(sub, 0, &record));
    sluice_subscription_free(sub);
}

static void resharding(sluice_engine *e) {
    OK(sluice_create_stream(e, "re", 1));
    OK(sluice_create_stream_on_demand(e, "auto"));
    const char *shard0 = "shardId-000000000000";
    FAILS_SAYING(INVALID, "sluice_split_shard: shard_id is NULL", sluice_split_shard(e, "re", NULL, "5"));
    FAILS_SAYING(SLUICE_RESOURCE_NOT_FOUND, "sluice_split_shard: stream \"nope\" does not exist",
                 sluice_split_shard(e, "nope", shard0, "5"));
    FAILS_SAYING(SLUICE_VALIDATION,
                 "sluice_split_shard: stream \"auto\" is on-demand: only provisioned streams are resharded by hand",
                 sluice_split_shard(e, "auto", shard0, "5"));
    FAILS_SAYING(SLUICE_VALIDATION,
                 "sluice_split_shard: new_starting_hash_key \"abc\" is not a decimal of 1 to 39 digits without leading zeros",
                 sluice_split_shard(e, "re", shard0, "abc"));
    FAILS_SAYING(INVALID,
                 "sluice_split_shard: new_starting_hash_key 1 is not inside shard shardId-000000000000 of stream \"re\": it must be greater than 1 and less than " MAX_HASH,
                 sluice_split_shard(e, "re", shard0, "1"));
    OK(sluice_split_shard(e, "re", shard0, "170141183460469231731687303715884105728"));
    FAILS_SAYING(INVALID,
                 "sluice_split_shard: shard shardId-000000000000 of stream \"re\" is closed: a split or merge already replaced it",
                 sluice_split_shard(e, "re", shard0, "5"));
    FAILS_SAYING(INVALID,
                 "sluice_merge_shards: shards shardId-000000000002 and shardId-000000000002 of stream \"re\" are not two open shards with adjacent hash key ranges",
                 sluice_merge_shards(e, "re", "shardId-000000000002", "shardId-000000000002"));
    FAILS_SAYING(INVALID,
                 "sluice_update_shard_count: target is 5; stream \"re\" has 2 open shards, so the target must be 1 to 4",
                 sluice_update_shard_count(e, "re", 5));
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    sluice_engine *engine = NULL;
    options_and_open(argv[1], &engine);
    admin(engine);
    puts_(engine);
    reads(engine);
    resharding(engine);
    OK(sluice_engine_close(engine));
    printf("messages: all checks passed\n");
    return 0;
}
