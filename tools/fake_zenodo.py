"""A local HTTP server speaking the Zenodo records API (current and legacy field spellings) and
serving archives built here, with switches for the failures the seeder must survive.

Used by the seeding tests (tests/seed) and by `make local` (tools/local.py) as the stand-in for
zenodo.org; it only ever listens on 127.0.0.1."""

from __future__ import annotations

import hashlib
import io
import json
import re
import stat
import threading
import urllib.parse
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Small stand-ins for the files each MaskTerial family needs (content is irrelevant to the seeder).
FAMILY_FILES = {
    "m2f": {"config.yaml": b"MODEL:\n  META_ARCHITECTURE: MaskFormer\n", "model_final.pth": b"\x80m2f-weights" * 200},
    "amm": {"loc.npy": b"\x93NUMPYloc", "cov.npy": b"\x93NUMPYcov", "model.pth": b"\x80amm", "meta_data.json": b"{}"},
    "gmm": {"contrast_dict.json": b'{"1": [0.1, 0.2]}'},
    "l2": {"model.joblib": b"joblib-l2"},
}


FIXED_TIME = (2025, 6, 27, 12, 0, 0)


def make_zip(files: dict[str, bytes], *, top: str | None = None, links: dict[str, str] | None = None) -> bytes:
    """A zip of `files` (optionally under the folder `top`), plus symlink entries name -> target."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            # A fixed timestamp: the same files always give the same bytes (and md5).
            info = zipfile.ZipInfo(f"{top}/{name}" if top else name, date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(f"{top}/{name}" if top else name, date_time=FIXED_TIME)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buffer.getvalue()


def model_zip(family: str, name: str) -> bytes:
    """An archive shaped like a MaskTerial one: a top-level folder named after the model."""
    return make_zip(FAMILY_FILES[family], top=name)


@dataclass
class Fault:
    path_pattern: str  # regex searched in the request path
    status: int
    headers: dict = field(default_factory=dict)
    times: int = 1


class FakeZenodo:
    def __init__(self):
        self.records: dict[str, dict[str, bytes]] = {}
        # "current" (zenodo.org today: links.self serves the bytes), "legacy" (2023 migration spellings) or
        # "rdm" (InvenioRDM: files.entries, links.self = the file's metadata JSON, links.content = the bytes)
        self.shape = "current"
        self.link_base: str | None = None  # where the API's file links point (default: this server)
        self.wrong_md5: set[str] = set()  # file names whose listed md5 is wrong
        self.missing_content: set[str] = set()  # listed in the record, 404 on download
        self.truncate_once: set[str] = set()  # first download sends half the body and hangs up
        self.unsized: set[str] = set()  # sent without Content-Length (the body ends when the connection does)
        self.faults: list[Fault] = []
        self.log: list[tuple[str, int]] = []  # (path, status) of every request
        self._lock = threading.RLock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def reset(self):
        with self._lock:
            self.records.clear()
            self.shape = "current"
            self.link_base = None
            self.wrong_md5.clear()
            self.missing_content.clear()
            self.truncate_once.clear()
            self.unsized.clear()
            self.faults.clear()
            self.log.clear()

    def close(self):
        self._server.shutdown()
        self._server.server_close()

    def add(self, record: str, name: str, data: bytes):
        self.records.setdefault(str(record), {})[name] = data

    def fail(self, path_pattern: str, status: int, *, times: int = 1, **headers):
        self.faults.append(Fault(path_pattern, status, {k.replace("_", "-"): v for k, v in headers.items()}, times))

    def downloads(self, name: str | None = None) -> list[str]:
        """Paths of successful archive downloads (optionally of one file); not the rdm metadata reads."""
        return [
            p
            for p, s in self.log
            if s == 200
            and "/files/" in p
            and (name is None or name in p)
            and (p.endswith("/content") or p.startswith("/records/"))
        ]

    # -- the API --------------------------------------------------------------------------------

    def file_json(self, record: str, name: str) -> dict:
        data = self.records[record][name]
        md5 = hashlib.md5(data + (b"tampered" if name in self.wrong_md5 else b"")).hexdigest()
        base = f"{self.link_base or self.url}/api/records/{record}/files/{name}"
        if self.shape == "legacy":
            # Broken API link, bare checksum, old names: clients must use the fallback URL.
            return {
                "filename": name,
                "filesize": len(data),
                "checksum": md5,
                "links": {"self": f"{self.link_base or self.url}/api/files/broken-bucket-id/{name}"},
            }
        # zenodo/zenodo-rdm's legacy serializer: links = {"self": ".../files/<key>/content"};
        # invenio-rdm-records' file_links_item: "self" -> the file's metadata, "content" -> its bytes.
        links = {"self": base, "content": f"{base}/content"} if self.shape == "rdm" else {"self": f"{base}/content"}
        return {"key": name, "size": len(data), "checksum": f"md5:{md5}", "links": links}

    def record_json(self, record: str) -> dict:
        entries = [self.file_json(record, name) for name in self.records[record]]
        files = {"enabled": True, "entries": entries} if self.shape == "rdm" else entries
        return {"id": int(record), "metadata": {"title": "test record"}, "files": files}

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                self._route(urllib.parse.unquote(urllib.parse.urlsplit(self.path).path))

            def _send(self, status, body=b"", headers=None, *, length=None, sized=True):
                # Logged before answering: a client may act on the answer before this thread runs on.
                with fake._lock:
                    fake.log.append((urllib.parse.urlsplit(self.path).path, status))
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                if sized:
                    self.send_header("Content-Length", str(len(body) if length is None else length))
                else:
                    self.close_connection = True
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client stopped reading (a download cap)
                return status

            def _route(self, path):
                with fake._lock:
                    for fault in fake.faults:
                        if fault.times > 0 and re.search(fault.path_pattern, path):
                            fault.times -= 1
                            return self._send(fault.status, b'{"status": %d}' % fault.status, fault.headers)
                m = re.fullmatch(r"/api/records/(\d+)", path)
                if m:
                    if m.group(1) not in fake.records:
                        return self._send(404, b'{"status": 404, "message": "PID does not exist."}')
                    body = json.dumps(fake.record_json(m.group(1))).encode()
                    return self._send(200, body, {"Content-Type": "application/json"})
                m = re.fullmatch(r"/api/records/(\d+)/files/([^/]+)", path)
                if m and fake.shape == "rdm" and m.group(2) in fake.records.get(m.group(1), {}):
                    body = json.dumps(fake.file_json(m.group(1), m.group(2))).encode()
                    return self._send(200, body, {"Content-Type": "application/json"})
                m = re.fullmatch(r"/api/records/(\d+)/files/([^/]+)/content", path)
                if m and fake.shape != "legacy":
                    return self._file(m.group(1), m.group(2))
                m = re.fullmatch(r"/records/(\d+)/files/([^/]+)", path)
                if m:
                    return self._file(m.group(1), m.group(2))
                return self._send(404, b'{"status": 404}')

            def _file(self, record, name):
                data = fake.records.get(record, {}).get(name)
                if data is None or name in fake.missing_content:
                    return self._send(404, b'{"status": 404}')
                if name in fake.truncate_once:
                    fake.truncate_once.discard(name)
                    self._send(200, data[: len(data) // 2], length=len(data))
                    self.close_connection = True
                    return 200
                return self._send(
                    200, data, {"Content-Type": "application/octet-stream"}, sized=name not in fake.unsized
                )

        return Handler
