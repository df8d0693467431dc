#!/usr/bin/env python3
"""Times what hostile clients used to make quadratic or stop the world, against a running server.

    python3 scripts/bench-hostile.py --port 6379 [--keys 1000000] [--patterns 10000] [--watch-keys N]

- WATCH of N keys in one command, then EXEC (the watch set was a Vec with a linear `contains`).
- PSUBSCRIBE of 10,000 patterns on one connection while another holds 10,000 of its own, then
  PUNSUBSCRIBE of all of them (each removal scanned every pattern under the pub/sub write lock).
- KEYS * over N keys while another client runs MULTI/EXEC and a third times GETs: the slowest GET
  (a waiting EXEC behind a long KEYS used to freeze every worker).

Plain sockets and RESP, no client library; prints one line per measurement.
"""

import argparse
import socket
import threading
import time


def cmd(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.pos = 0

    def send(self, data):
        self.s.sendall(data)

    def _fill(self):
        chunk = self.s.recv(1 << 20)
        if not chunk:
            raise ConnectionError("closed")
        if self.pos > (1 << 20):
            del self.buf[: self.pos]
            self.pos = 0
        self.buf += chunk

    def _line(self):
        while True:
            end = self.buf.find(b"\r\n", self.pos)
            if end >= 0:
                line = bytes(self.buf[self.pos : end])
                self.pos = end + 2
                return line
            self._fill()

    def reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t in (b"+", b"-", b":"):
            return rest
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) - self.pos < n + 2:
                self._fill()
            data = bytes(self.buf[self.pos : self.pos + n])
            self.pos += n + 2
            return data
        if t in (b"*", b">"):
            n = int(rest)
            return [self.reply() for _ in range(max(n, 0))]
        raise ValueError(line)

    def call(self, *args):
        self.send(cmd(*args))
        return self.reply()


def fill(port, n):
    c = Conn(port)
    batch = 10000
    for start in range(0, n, batch):
        c.send(b"".join(cmd("SET", f"k:{i}", "v") for i in range(start, min(n, start + batch))))
        for _ in range(start, min(n, start + batch)):
            c.reply()


def watch(port, n):
    c = Conn(port)
    keys = [f"w:{i}" for i in range(n)]
    t = time.perf_counter()
    assert c.call("WATCH", *keys) == b"OK"
    watched = time.perf_counter() - t
    c.call("MULTI")
    c.call("SET", "w:0", "x")
    t = time.perf_counter()
    c.call("EXEC")
    execd = time.perf_counter() - t
    print(f"WATCH {n} keys: {watched * 1000:.0f} ms; EXEC with them watched: {execd * 1000:.0f} ms")


def unsubscribe(port, n):
    other = Conn(port)
    other.send(cmd("PSUBSCRIBE", *[f"o:{i}:*" for i in range(n)]))
    for _ in range(n):
        other.reply()
    c = Conn(port)
    patterns = [f"p:{i}:*" for i in range(n)]
    t = time.perf_counter()
    c.send(cmd("PSUBSCRIBE", *patterns))
    for _ in range(n):
        c.reply()
    sub = time.perf_counter() - t
    t = time.perf_counter()
    c.send(cmd("PUNSUBSCRIBE", *patterns))
    for _ in range(n):
        c.reply()
    unsub = time.perf_counter() - t
    print(f"PSUBSCRIBE {n} patterns: {sub * 1000:.0f} ms; PUNSUBSCRIBE them ({n} held by another client): {unsub * 1000:.0f} ms")


def keys_stall(port, n):
    stop = threading.Event()
    worst = [0.0]
    count = [0]

    def getter():
        c = Conn(port)
        while not stop.is_set():
            t = time.perf_counter()
            c.call("GET", "k:1")
            worst[0] = max(worst[0], time.perf_counter() - t)
            count[0] += 1

    def exec_loop():
        c = Conn(port)
        while not stop.is_set():
            c.call("MULTI")
            c.call("INCR", "counter")
            c.call("EXEC")

    threads = [threading.Thread(target=getter), threading.Thread(target=exec_loop)]
    for th in threads:
        th.start()
    time.sleep(0.5)
    worst[0] = 0.0
    c = Conn(port)
    t = time.perf_counter()
    c.send(cmd("KEYS", "*"))
    header = c._line()  # `*N`: the server has walked the keyspace and built the reply
    took = time.perf_counter() - t
    stop.set()
    for th in threads:
        th.join()
    n = int(header[1:])
    for _ in range(n):
        c.reply()
    print(f"KEYS * over {n} keys: {took * 1000:.0f} ms to the reply; slowest GET meanwhile (EXECs running): {worst[0] * 1000:.1f} ms over {count[0]} GETs")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=6379)
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--patterns", type=int, default=10_000)
    ap.add_argument("--watch-keys", type=int, default=None, help="keys in the WATCH test (default: --keys)")
    a = ap.parse_args()
    watch(a.port, a.watch_keys if a.watch_keys is not None else a.keys)
    unsubscribe(a.port, a.patterns)
    fill(a.port, a.keys)
    keys_stall(a.port, a.keys)


if __name__ == "__main__":
    main()
