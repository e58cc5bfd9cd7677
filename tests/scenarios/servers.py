#!/usr/bin/env python3
"""Peers for the timeout scenarios, on 127.0.0.1 only.

  servers.py silent PORT        accept connections and hold them; never read, never answer
  servers.py slow PORT DELAY    answer each request line after DELAY seconds
  servers.py full PORT          listen with a backlog of 1 and never accept: once the backlog
                                is full, new connects stay in SYN_SENT

Prints "ready" on stdout once listening.
"""
import socket
import sys
import threading
import time


def listener(port, backlog=128):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(backlog)
    return s


def silent(port):
    s = listener(port)
    print("ready", flush=True)
    held = []
    while True:
        c, _ = s.accept()
        held.append(c)


def slow(port, delay):
    s = listener(port)
    print("ready", flush=True)

    def serve(c):
        with c:
            try:
                while True:
                    data = c.recv(4096)
                    if not data:
                        return
                    time.sleep(delay)
                    c.sendall(b"ok\n")
            except OSError:
                return

    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def full(port):
    s = listener(port, backlog=1)
    print("ready", flush=True)
    time.sleep(3600)


if __name__ == "__main__":
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "silent":
        silent(port)
    elif mode == "slow":
        slow(port, float(sys.argv[3]))
    elif mode == "full":
        full(port)
    else:
        sys.exit(f"unknown mode {mode}")
