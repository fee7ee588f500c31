#!/usr/bin/env python3
"""A fake AMT that records credentials: for t_creds_relay.sh.

auth_recorder.py LOG ADDR PLAIN_PORT [TLS_PORT CERT KEY]

Answers every request with 401 and a Digest challenge, as AMT does, so a
client that is willing to log in sends its Authorization header; each such
header is appended to LOG as "<port> <header>".  Prints "ready" once it
listens.  What a relay would need is exactly what lands in LOG.
"""
import http.server
import socketserver
import ssl
import sys
import threading


def handler_for(log, port):
    class H(http.server.BaseHTTPRequestHandler):
        def _any(self):
            auth = self.headers.get("Authorization")
            if auth is not None:
                with open(log, "a") as f:
                    f.write("%d %s\n" % (port, auth))
            n = int(self.headers.get("Content-Length") or 0)
            if n:
                self.rfile.read(n)
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Digest realm="Digest:A1B2C3D4E5F60000", '
                             'nonce="recorder-nonce", stale="false", qop="auth"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_PUT = _any

        def log_message(self, *a):
            pass

    return H


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    log, addr, plain = sys.argv[1], sys.argv[2], int(sys.argv[3])
    servers = [Server((addr, plain), handler_for(log, plain))]
    if len(sys.argv) > 4:
        tls, cert, key = int(sys.argv[4]), sys.argv[5], sys.argv[6]
        s = Server((addr, tls), handler_for(log, tls))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        s.socket = ctx.wrap_socket(s.socket, server_side=True,
                                   do_handshake_on_connect=False)
        servers.append(s)
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
