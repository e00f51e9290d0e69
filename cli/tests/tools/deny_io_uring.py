#!/usr/bin/env python3
"""Runs a command under a seccomp filter that refuses io_uring_setup with EPERM, as Docker's
default seccomp profile does. Usage: deny_io_uring.py COMMAND [ARGS...]

Needs no privileges: PR_SET_NO_NEW_PRIVS lets any process install a filter on itself, and the
filter is inherited across exec.
"""
import ctypes
import os
import struct
import sys

SYS_IO_URING_SETUP = 425  # the same number on every Linux architecture (since 5.1)
PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
EPERM = 1
BPF_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
BPF_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
BPF_RET_K = 0x06  # BPF_RET | BPF_K


def instruction(code, jump_true, jump_false, k):
    return struct.pack("=HBBI", code, jump_true, jump_false, k)


PROGRAM = b"".join(
    [
        instruction(BPF_LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
        instruction(BPF_JEQ_K, 0, 1, SYS_IO_URING_SETUP),
        instruction(BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | EPERM),
        instruction(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
    ]
)


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    libc = ctypes.CDLL(None, use_errno=True)
    filters = ctypes.create_string_buffer(PROGRAM, len(PROGRAM))
    program = SockFprog(len(PROGRAM) // 8, ctypes.cast(filters, ctypes.c_void_p))
    ulong = ctypes.c_ulong
    if libc.prctl(PR_SET_NO_NEW_PRIVS, ulong(1), ulong(0), ulong(0), ulong(0)) != 0:
        sys.exit(f"deny_io_uring: PR_SET_NO_NEW_PRIVS: {os.strerror(ctypes.get_errno())}")
    if libc.prctl(PR_SET_SECCOMP, ulong(SECCOMP_MODE_FILTER), ctypes.byref(program), ulong(0), ulong(0)) != 0:
        sys.exit(f"deny_io_uring: PR_SET_SECCOMP: {os.strerror(ctypes.get_errno())}")
    os.execvp(sys.argv[1], sys.argv[1:])


main()
