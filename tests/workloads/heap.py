"""A Python runtime with a large heap and threads, for the workload suite.

Builds HEAP_MIB MiB of pseudo-random bytes objects plus a dict of small
objects from a fixed seed, starts THREADS threads that each count up, then
answers every connection on the unix socket /tmp/heap.sock with one JSON line:
the SHA-256 of the heap data as it is in memory now, and the counters. The
heap never changes after "ready", so its digest must survive a migration; the
counters must continue from where they were, not restart.
"""
import hashlib
import json
import os
import random
import socket
import sys
import threading
import time

HEAP_MIB = int(os.environ.get("HEAP_MIB", "200"))
THREADS = int(os.environ.get("THREADS", "3"))
SOCKET = "/tmp/heap.sock"

rng = random.Random(int(os.environ.get("SEED", "13")))
blocks = [rng.randbytes(1 << 20) for _ in range(HEAP_MIB)]
# Many small objects too, so the heap is not only a few big buffers.
table = {f"key-{i}": (i, str(i * 7919)) for i in range(200_000)}

counters = [0] * THREADS
lock = threading.Lock()


def count(n: int) -> None:
    while True:
        with lock:
            counters[n] += 1
        time.sleep(0.01)


def digest() -> str:
    h = hashlib.sha256()
    for b in blocks:
        h.update(b)
    for k in sorted(table):
        h.update(f"{k}={table[k]!r};".encode())
    return h.hexdigest()


for n in range(THREADS):
    threading.Thread(target=count, args=(n,), daemon=True).start()

if os.path.exists(SOCKET):
    os.unlink(SOCKET)
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(SOCKET)
server.listen(4)
print(f"ready pid={os.getpid()} heap_mib={HEAP_MIB} threads={THREADS}", flush=True)
while True:
    conn, _ = server.accept()
    with conn:
        with lock:
            now = list(counters)
        state = {"digest": digest(), "counters": now, "threads": threading.active_count()}
        conn.sendall((json.dumps(state) + "\n").encode())
