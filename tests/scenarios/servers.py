#!/usr/bin/env python3
"""Peers for the timeout scenarios, on 127.0.0.1 only.

  servers.py silent PORT        accept connections and hold them; never read, never answer
  servers.py slow PORT DELAY    answer each request line after DELAY seconds
  servers.py full PORT          listen with a backlog of 1 and never accept: once the backlog
                                is full, new connects stay in SYN_SENT
  servers.py http PORT          HTTP/1.1 keep-alive server answering every request at once
  servers.py stream PORT        read a request, then send a line every 0.5 s (a subscription)
  servers.py hold PORT          read a request and hold it unanswered, waiting on the
                                connection (a long-poll endpoint with no news)

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


def http(port):
    import http.server
    import socketserver

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "3")
            self.end_headers()
            self.wfile.write(b"ok\n")

        def log_message(self, *args):
            pass

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True

    srv = Server(("127.0.0.1", port), Handler)
    print("ready", flush=True)
    srv.serve_forever()


def per_connection(port, serve):
    s = listener(port)
    print("ready", flush=True)
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def stream(c):
    with c:
        try:
            c.recv(4096)
            c.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n")
            while True:
                c.sendall(b"data: tick\n\n")
                time.sleep(0.5)
        except OSError:
            return


def hold(c):
    with c:
        c.recv(4096)
        # Waits on the connection itself, like a broker holding a long poll.
        c.recv(4096)


if __name__ == "__main__":
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "silent":
        silent(port)
    elif mode == "slow":
        slow(port, float(sys.argv[3]))
    elif mode == "full":
        full(port)
    elif mode == "http":
        http(port)
    elif mode == "stream":
        per_connection(port, stream)
    elif mode == "hold":
        per_connection(port, hold)
    else:
        sys.exit(f"unknown mode {mode}")
