#!/usr/bin/env python3
"""scripts/httpproxy.py — a tiny CONNECT-less HTTP forward proxy for soak's proxy tests.
Python 3 standard library only.

Usage: httpproxy.py COUNT_FILE
Prints `PORT=nnnn` once it listens on 127.0.0.1 (a free port). Each request arrives in absolute
form (`GET http://host:port/path HTTP/1.1`, as libcurl sends to an http proxy), is sent to that
origin in origin form with `Connection: close`, and its response is streamed back; the client
connection is closed after each response. Every request's method, target and
x-amz-request-payer header (`-` when absent) is appended to COUNT_FILE, one line each.
CONNECT (https) is refused with 405.
"""
import socket
import socketserver
import sys
import threading
from urllib.parse import urlsplit

LOCK = threading.Lock()


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        line = self.rfile.readline(65537).decode("latin-1")
        parts = line.split()
        if len(parts) != 3:
            return
        method, target, version = parts
        headers = []
        payer = "-"
        while True:
            h = self.rfile.readline(65537).decode("latin-1")
            if h in ("\r\n", "\n", ""):
                break
            name = h.split(":", 1)[0].strip().lower()
            if name == "x-amz-request-payer":
                payer = h.split(":", 1)[1].strip()
            if name not in ("proxy-connection", "connection", "keep-alive"):
                headers.append(h)
        with LOCK, open(sys.argv[1], "a") as f:
            f.write("%s %s payer=%s\n" % (method, target, payer))
        u = urlsplit(target)
        if method == "CONNECT" or u.scheme != "http" or not u.hostname:
            self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        path = (u.path or "/") + ("?" + u.query if u.query else "")
        with socket.create_connection((u.hostname, u.port or 80), timeout=30) as up:
            head = "%s %s %s\r\n%sConnection: close\r\n\r\n" % (method, path, version, "".join(headers))
            up.sendall(head.encode("latin-1"))
            while True:
                chunk = up.recv(65536)
                if not chunk:
                    break
                self.wfile.write(chunk)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: httpproxy.py COUNT_FILE")
    srv = Server(("127.0.0.1", 0), Handler)
    print("PORT=%d" % srv.server_address[1], flush=True)
    srv.serve_forever()
