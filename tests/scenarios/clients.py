#!/usr/bin/env python3
"""Client programs in the states the timeout detector must classify, against 127.0.0.1:PORT.

  clients.py no-timeout PORT        send a request, recv() with no timeout (then    missing
                                    sleep once answered)
  clients.py select-forever PORT    select() on the socket with no timeout         missing
  clients.py connect-forever PORT   blocking connect to a full backlog, no timeout missing
  clients.py write-forever PORT     sendall() to a peer that never reads           missing
  clients.py lockf-wait PATH        fcntl F_SETLKW on a file another process holds missing
  clients.py large-timeout PORT     settimeout(3600) then recv (poll 3600000 ms)    too_large
  clients.py rcvtimeo-large PORT    SO_RCVTIMEO 3600 s, blocking recv               too_large
  clients.py retry-small PORT       new connection per try, 0.2 s timeout, retry    too_small
  clients.py timeout-ok PORT        settimeout(30) on a silent peer (not expired)   ok
  clients.py retry-ok PORT          new connection per request, answers arrive      ok
  clients.py lockf-hold PATH        hold the lock (helper for lockf-wait)
  clients.py queue-idle             worker threads waiting on a queue.Queue         ok
  clients.py asyncio-no-timeout PORT  asyncio stream read, no timeout              missing
  clients.py asyncio-large PORT     asyncio.wait_for(read, 600)                    too_large
  clients.py asyncio-ok PORT        asyncio.wait_for(read, 30) (a long poll)        ok
  clients.py requests-no-timeout PORT  requests.get with no timeout                missing
  clients.py requests-ok PORT       requests.get(timeout=30) (a long poll)          ok
  clients.py stream PORT            read a stream that sends a line every 0.5 s     ok

Each mode prints "ready" on stdout just before it starts to wait (the test times its stall
from there), then runs until killed (bounded by one hour).
"""
import fcntl
import queue
import select
import socket
import struct
import sys
import threading
import time

DEADLINE = time.monotonic() + 3600


def ready():
    print("ready", flush=True)


def connect(port, timeout=None):
    s = socket.socket()
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    return s


def main():
    mode, arg = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""
    if mode == "no-timeout":
        s = connect(int(arg))
        s.sendall(b"GET\n")
        ready()
        s.recv(100)
        # Answered at last: the wait is over, the process stays (an ended wait, not an exit).
        time.sleep(3600)
    elif mode == "select-forever":
        s = connect(int(arg))
        s.sendall(b"GET\n")
        ready()
        select.select([s], [], [])
    elif mode == "connect-forever":
        port = int(arg)
        # Fill the backlog (these connects complete or sit in the queue), then block.
        fillers = []
        for _ in range(8):
            f = socket.socket()
            f.setblocking(False)
            try:
                f.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            fillers.append(f)
        time.sleep(0.2)
        s = socket.socket()
        ready()
        s.connect(("127.0.0.1", port))
        time.sleep(3600)
    elif mode == "write-forever":
        s = connect(int(arg))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        ready()
        s.sendall(b"x" * (64 << 20))
    elif mode == "lockf-hold":
        f = open(arg, "a")
        fcntl.lockf(f, fcntl.LOCK_EX)
        print("ready", flush=True)
        time.sleep(3600)
    elif mode == "lockf-wait":
        f = open(arg, "a")
        ready()
        fcntl.lockf(f, fcntl.LOCK_EX)
    elif mode == "large-timeout":
        s = connect(int(arg), timeout=3600)
        s.sendall(b"GET\n")
        ready()
        s.recv(100)
    elif mode == "rcvtimeo-large":
        s = connect(int(arg))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 3600, 0))
        s.sendall(b"GET\n")
        ready()
        s.recv(100)
    elif mode in ("retry-small", "retry-ok"):
        port = int(arg)
        timeout = 0.2 if mode == "retry-small" else 1.0
        ready()
        while time.monotonic() < DEADLINE:
            try:
                with connect(port, timeout=timeout) as s:
                    s.sendall(b"GET\n")
                    s.recv(100)
            except (socket.timeout, OSError):
                pass
            if mode == "retry-ok":
                time.sleep(0.05)
    elif mode == "timeout-ok":
        s = connect(int(arg), timeout=30)
        s.sendall(b"GET\n")
        ready()
        try:
            s.recv(100)
        except socket.timeout:
            pass
        time.sleep(3600)
    elif mode == "queue-idle":
        q = queue.Queue()
        workers = [threading.Thread(target=q.get, daemon=True) for _ in range(8)]
        for w in workers:
            w.start()
        ready()
        time.sleep(3600)
    elif mode.startswith("asyncio-"):
        import asyncio

        async def run():
            reader, writer = await asyncio.open_connection("127.0.0.1", int(arg))
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            ready()
            read = reader.read(100)
            if mode == "asyncio-no-timeout":
                await read
            else:
                try:
                    await asyncio.wait_for(read, 600 if mode == "asyncio-large" else 30)
                except asyncio.TimeoutError:
                    pass
                await asyncio.sleep(3600)

        asyncio.run(run())
    elif mode in ("requests-no-timeout", "requests-ok"):
        import requests

        url = f"http://127.0.0.1:{arg}/"
        ready()
        try:
            requests.get(url, timeout=None if mode == "requests-no-timeout" else 30)
        except requests.RequestException:
            pass
        time.sleep(3600)
    elif mode == "stream":
        s = connect(int(arg))
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        ready()
        while s.recv(4096) and time.monotonic() < DEADLINE:
            pass
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
