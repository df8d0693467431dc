"""redis-py's Sentinel client against a Synap cluster: writes through `master_for` until a stop file
appears, printing each acknowledged key. Usage: redis_py_sentinel.py host:port,host:port,... STOP_FILE"""

import os
import sys
import time

import redis
from redis.sentinel import Sentinel


def main():
    nodes = [(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in sys.argv[1].split(",")]
    stop = sys.argv[2]
    sentinel = Sentinel(nodes, socket_timeout=1.0)
    print("master", *sentinel.discover_master("synap"), flush=True)
    print("replicas", len(sentinel.discover_slaves("synap")), flush=True)
    master = sentinel.master_for("synap", socket_timeout=2.0)
    i = 0
    errors = 0
    while not os.path.exists(stop):
        i += 1
        key = f"py:{i}"
        try:
            master.set(key, i)
            print("ack", key, flush=True)
        except (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError, redis.ResponseError) as e:
            # The write's outcome is unknown: not counted. The pool finds the new primary by itself.
            errors += 1
            time.sleep(0.02)
    print("master", *sentinel.discover_master("synap"), flush=True)
    print("errors", errors, flush=True)
    print("redis-py sentinel: ok", flush=True)


if __name__ == "__main__":
    main()
