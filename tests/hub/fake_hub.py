#!/usr/bin/env python3
"""A local stand-in for the Hugging Face Hub, for the `pull` tests (no test reaches the internet).

It serves ROOT/<owner>/<name>/<files> in the hub's URL layout, as `huggingface_hub` and uml use it:
  GET /api/models/<owner>/<name>/revision/<rev>?blobs=true   the repo's files with their hashes
  GET /<owner>/<name>/resolve/<rev>/<path>                    a file; LFS files redirect to /cdn/
  GET /cdn/<owner>/<name>/<path>                              an LFS file (ranges honoured)
Files may be symlinks (to the test models). LFS files (weights, large files) are listed with
their sha256, the others with their git blob id, as the hub lists them.

Options, for the failure cases:
  --token T         every /api and /resolve request needs `Authorization: Bearer T` (else 401)
  --drop-after N    the first download of each file sends N bytes, then drops the connection
  --lie PATH        list a wrong sha256 for the repo file PATH
  --log FILE        append one line per request: `GET <path> range=<Range header or ->`

Prints `http://127.0.0.1:<port>` on its first line once it listens (`--port 0` picks a port).
"""

import argparse
import hashlib
import json
import os
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LFS_EXTENSIONS = (".gguf", ".safetensors", ".bin", ".model")
LFS_MIN_BYTES = 10 << 20


class Hub:
    def __init__(self, root, token, drop_after, lie, log):
        self.root = os.path.realpath(root)
        self.token = token
        self.drop_after = drop_after
        self.lie = set(lie)
        self.log = log
        self.dropped = set()
        self.hashes = {}
        self.lock = threading.Lock()

    def repo_dir(self, owner, name):
        path = os.path.join(self.root, owner, name)
        return path if os.path.isdir(path) and ".." not in (owner, name) else None

    def files(self, repo_dir):
        out = []
        for folder, dirs, names in os.walk(repo_dir, followlinks=True):
            dirs.sort()
            for n in sorted(names):
                full = os.path.join(folder, n)
                out.append(os.path.relpath(full, repo_dir).replace(os.sep, "/"))
        return out

    def digest(self, path, kind):
        stat = os.stat(path)
        key = (path, kind, stat.st_size, stat.st_mtime_ns)
        with self.lock:
            if key in self.hashes:
                return self.hashes[key]
        if kind == "sha256":
            h = hashlib.sha256()
        else:
            h = hashlib.sha1()
            h.update(b"blob %d\0" % stat.st_size)
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        with self.lock:
            self.hashes[key] = h.hexdigest()
        return h.hexdigest()

    def is_lfs(self, rel, full):
        return rel.endswith(LFS_EXTENSIONS) or os.path.getsize(full) >= LFS_MIN_BYTES

    def commit(self, repo_dir):
        listing = "\n".join(f"{f} {os.path.getsize(os.path.join(repo_dir, f))}" for f in self.files(repo_dir))
        return hashlib.sha1(listing.encode()).hexdigest()

    def info(self, owner, name, repo_dir):
        siblings = []
        for rel in self.files(repo_dir):
            full = os.path.join(repo_dir, rel)
            size = os.path.getsize(full)
            entry = {"rfilename": rel, "size": size, "blobId": self.digest(full, "sha1")}
            if self.is_lfs(rel, full):
                sha = self.digest(full, "sha256")
                if rel in self.lie:
                    sha = hashlib.sha256(b"not this file").hexdigest()
                entry["lfs"] = {"sha256": sha, "size": size, "pointerSize": 134}
            siblings.append(entry)
        return {"id": f"{owner}/{name}", "modelId": f"{owner}/{name}", "sha": self.commit(repo_dir), "siblings": siblings}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub = None

    def log_message(self, *args):
        pass

    def send_json(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, message):
        self.send_json(status, {"error": message}, [("X-Error-Message", message)])

    def authorized(self):
        if self.hub.token is None:
            return True
        return self.headers.get("Authorization") == f"Bearer {self.hub.token}"

    def do_GET(self):
        hub = self.hub
        url = urllib.parse.urlsplit(self.path)
        if hub.log:
            with hub.lock, open(hub.log, "a") as log:
                log.write(f"GET {url.path} range={self.headers.get('Range', '-')}\n")
        parts = [urllib.parse.unquote(p) for p in url.path.split("/")[1:]]
        if parts[:2] == ["api", "models"] and len(parts) == 6 and parts[4] == "revision":
            return self.api_info(parts[2], parts[3], parts[5])
        if len(parts) >= 5 and parts[2] == "resolve":
            return self.resolve(parts[0], parts[1], parts[3], "/".join(parts[4:]))
        if len(parts) >= 4 and parts[0] == "cdn":
            return self.serve_file(parts[1], parts[2], "/".join(parts[3:]))
        self.error(404, "Not Found")

    def repo(self, owner, name, revision):
        if not self.authorized():
            self.error(401, "Invalid credentials in Authorization header")
            return None
        repo_dir = self.hub.repo_dir(owner, name)
        if repo_dir is None:
            self.error(404, "Repository not found")
            return None
        if revision not in ("main", self.hub.commit(repo_dir)):
            self.error(404, "Revision Not Found")
            return None
        return repo_dir

    def api_info(self, owner, name, revision):
        repo_dir = self.repo(owner, name, revision)
        if repo_dir is not None:
            self.send_json(200, self.hub.info(owner, name, repo_dir))

    def resolve(self, owner, name, revision, rel):
        repo_dir = self.repo(owner, name, revision)
        if repo_dir is None:
            return
        full = os.path.join(repo_dir, rel)
        if ".." in rel.split("/") or not os.path.isfile(full):
            return self.error(404, "Entry not found")
        if self.hub.is_lfs(rel, full):
            self.send_response(302)
            self.send_header("Location", "/cdn/" + urllib.parse.quote(f"{owner}/{name}/{rel}"))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.serve_file(owner, name, rel)

    def serve_file(self, owner, name, rel):
        repo_dir = self.hub.repo_dir(owner, name)
        full = os.path.join(repo_dir or "", rel)
        if repo_dir is None or ".." in rel.split("/") or not os.path.isfile(full):
            return self.error(404, "Entry not found")
        size = os.path.getsize(full)
        start = 0
        wanted = self.headers.get("Range")
        if wanted and wanted.startswith("bytes=") and wanted.endswith("-"):
            start = int(wanted[len("bytes="):-1])
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(size - start))
        self.end_headers()
        limit = None
        with self.hub.lock:
            if self.hub.drop_after is not None and full not in self.hub.dropped:
                self.hub.dropped.add(full)
                limit = self.hub.drop_after
        with open(full, "rb") as f:
            f.seek(start)
            sent = 0
            while True:
                chunk = f.read(1 << 20)
                if not chunk:
                    break
                if limit is not None and sent + len(chunk) > limit:
                    self.wfile.write(chunk[: limit - sent])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(chunk)
                sent += len(chunk)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # Clients closing kept-alive connections (and the drops this server makes) are normal.
        if not isinstance(sys.exc_info()[1], (ConnectionError, BrokenPipeError)):
            super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token")
    ap.add_argument("--drop-after", type=int)
    ap.add_argument("--lie", action="append", default=[])
    ap.add_argument("--log")
    args = ap.parse_args()
    Handler.hub = Hub(args.root, args.token, args.drop_after, args.lie, args.log)
    server = Server(("127.0.0.1", args.port), Handler)
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
