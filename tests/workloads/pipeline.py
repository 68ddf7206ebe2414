"""A multi-process program for the workload suite: a producer and a consumer
process connected by a pipe, sharing an anonymous shared memory block with
their parent.

The producer sends 1, 2, 3, ... down a pipe (os.pipe, through
multiprocessing.Pipe(duplex=False)) and records the last number sent in the
shared block; the consumer checks that each number is the previous plus one,
and records how many it received and how many were out of order. The block
also holds DATA_MIB MiB of seeded data written once. The parent answers each
connection on /tmp/pipeline.sock with one JSON line read from the shared
block: produced, consumed, gaps, the data's SHA-256 and the children's pids.
"""
import hashlib
import json
import mmap
import multiprocessing as mp
import os
import random
import socket
import struct
import time

DATA_MIB = int(os.environ.get("DATA_MIB", "16"))
SOCKET = "/tmp/pipeline.sock"
HEADER = 64  # produced, consumed, gaps: three little-endian u64 at offsets 0, 8, 16

# MAP_SHARED | MAP_ANONYMOUS: the one block the three processes share after fork.
shm = mmap.mmap(-1, HEADER + (DATA_MIB << 20))
shm[HEADER:] = random.Random(17).randbytes(DATA_MIB << 20)


def put(offset: int, value: int) -> None:
    shm[offset:offset + 8] = struct.pack("<Q", value)


def get(offset: int) -> int:
    return struct.unpack("<Q", shm[offset:offset + 8])[0]


def produce(tx) -> None:
    i = 0
    while True:
        i += 1
        tx.send(i)
        put(0, i)
        time.sleep(0.005)


def consume(rx) -> None:
    last = consumed = gaps = 0
    while True:
        n = rx.recv()
        if n != last + 1:
            gaps += 1
        last = n
        consumed += 1
        put(8, consumed)
        put(16, gaps)


if __name__ == "__main__":
    mp.set_start_method("fork")
    rx, tx = mp.Pipe(duplex=False)
    producer = mp.Process(target=produce, args=(tx,), daemon=True)
    consumer = mp.Process(target=consume, args=(rx,), daemon=True)
    producer.start()
    consumer.start()
    if os.path.exists(SOCKET):
        os.unlink(SOCKET)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(SOCKET)
    server.listen(4)
    print(f"ready pids={os.getpid()},{producer.pid},{consumer.pid}", flush=True)
    while True:
        conn, _ = server.accept()
        with conn:
            state = {
                "produced": get(0),
                "consumed": get(8),
                "gaps": get(16),
                "digest": hashlib.sha256(shm[HEADER:]).hexdigest(),
                "pids": [os.getpid(), producer.pid, consumer.pid],
                "alive": [producer.is_alive(), consumer.is_alive()],
            }
            conn.sendall((json.dumps(state) + "\n").encode())
