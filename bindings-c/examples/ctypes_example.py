"""Sluice from Python through ctypes: put a batch, read it back zero-copy.

    SLUICE_LIB=/path/to/libsluice.so python3 ctypes_example.py DATA_DIR
"""
import ctypes
import os
import sys

lib = ctypes.CDLL(os.environ.get("SLUICE_LIB", "libsluice.so"))


class RecordIn(ctypes.Structure):
    _fields_ = [("partition_key", ctypes.c_char_p), ("data", ctypes.c_char_p),
                ("data_len", ctypes.c_size_t), ("explicit_hash_key", ctypes.c_char_p)]


class PutResult(ctypes.Structure):
    _fields_ = [("result", ctypes.c_uint32), ("shard_id", ctypes.c_char * 24),
                ("sequence_number_high", ctypes.c_uint64), ("sequence_number_low", ctypes.c_uint64)]


class Record(ctypes.Structure):
    _fields_ = [("partition_key", ctypes.POINTER(ctypes.c_char)), ("partition_key_len", ctypes.c_size_t),
                ("data", ctypes.POINTER(ctypes.c_ubyte)), ("data_len", ctypes.c_size_t),
                ("arrival_timestamp_ms", ctypes.c_uint64),
                ("sequence_number_high", ctypes.c_uint64), ("sequence_number_low", ctypes.c_uint64)]


# Argument types, so that every size_t and uint64_t is passed at its full width.
P, S, U32, U64, SIZE = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32, ctypes.c_uint64, ctypes.c_size_t
lib.sluice_result_message.argtypes, lib.sluice_result_message.restype = [U32], S
lib.sluice_last_error_detail.argtypes, lib.sluice_last_error_detail.restype = [], S
lib.sluice_options_new.argtypes = [S, ctypes.POINTER(P)]
lib.sluice_options_free.argtypes = [P]
lib.sluice_engine_open.argtypes = [P, ctypes.POINTER(P)]
lib.sluice_engine_free.argtypes = [P]
lib.sluice_create_stream.argtypes = [P, S, U32]
lib.sluice_put_batch.argtypes = [P, S, ctypes.POINTER(RecordIn), SIZE, U32, ctypes.POINTER(PutResult)]
lib.sluice_iterator_new.argtypes = [P, S, S, U32, S, U64, ctypes.POINTER(P)]
lib.sluice_iterator_next.argtypes = [P, SIZE, ctypes.POINTER(SIZE)]
lib.sluice_iterator_record.argtypes = [P, SIZE, ctypes.POINTER(Record)]
lib.sluice_iterator_free.argtypes = [P]
for function in (lib.sluice_options_new, lib.sluice_engine_open, lib.sluice_create_stream,
                 lib.sluice_put_batch, lib.sluice_iterator_new, lib.sluice_iterator_next,
                 lib.sluice_iterator_record):
    function.restype = U32


def check(result, what):
    if result != 0:
        raise RuntimeError(f"{what}: {lib.sluice_result_message(result).decode()} "
                           f"({lib.sluice_last_error_detail().decode()})")


def main(data_dir):
    options, engine = ctypes.c_void_p(), ctypes.c_void_p()
    check(lib.sluice_options_new(data_dir.encode(), ctypes.byref(options)), "options")
    check(lib.sluice_engine_open(options, ctypes.byref(engine)), "open")
    lib.sluice_options_free(options)
    check(lib.sluice_create_stream(engine, b"py", 1), "create")

    words = [b"hello", b"from", b"python"]
    records = (RecordIn * 3)(*[RecordIn(b"snake", w, len(w), None) for w in words])
    results = (PutResult * 3)()
    check(lib.sluice_put_batch(engine, b"py", records, 3, 2, results), "put")  # 2: durable
    assert all(r.result == 0 for r in results)

    iterator = ctypes.c_void_p()
    check(lib.sluice_iterator_new(engine, b"py", b"shardId-000000000000", 0, None, 0,
                                  ctypes.byref(iterator)), "iterator")
    count = ctypes.c_size_t()
    check(lib.sluice_iterator_next(iterator, 0, ctypes.byref(count)), "read")
    read = []
    for i in range(count.value):
        record = Record()
        check(lib.sluice_iterator_record(iterator, i, ctypes.byref(record)), "record")
        read.append(ctypes.string_at(record.data, record.data_len))
    assert read == words, read
    print("python: read back", b" ".join(read).decode())

    # An error comes back as a code and a detail, never a crash.
    bad = ctypes.c_void_p()
    result = lib.sluice_iterator_new(engine, b"missing", b"shardId-000000000000", 0, None, 0,
                                     ctypes.byref(bad))
    assert lib.sluice_result_message(result) == b"ResourceNotFoundException"
    lib.sluice_iterator_free(iterator)
    lib.sluice_engine_free(engine)


if __name__ == "__main__":
    main(sys.argv[1])
