"""Zenodo records API client: list a record's files and download one, verified by size and md5.

Accepts the current field spellings (`key`, `size`, `checksum: "md5:<hex>"`, `links.self`) and the
legacy ones Zenodo briefly returned during its 2023 migration (`filename`, `filesize`, a bare hex
checksum, broken `links.self`), falling back to `{base}/records/{id}/files/{name}` when the API
link does not serve the file.

Which link serves the bytes: Zenodo's own serializer sets `links.self` to `.../files/<key>/content`
(zenodo/zenodo-rdm, legacy/serializers/schemas/zenodojson.py), while InvenioRDM's file links put
the file's metadata in `self` and the bytes in `content` (invenio-rdm-records, services/config.py
`file_links_item`); so `content` wins when present. A link is only followed when it is https on
the configured host (or exactly the configured base URL's scheme and host for a local test
server); anything else is ignored with a warning and the fallback URL is used.
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from modelsync.errors import ModelsyncError
from modelsync.seed.fetch import HttpFetcher, HttpStatusError, is_local_http

log = logging.getLogger(__name__)

DEFAULT_ZENODO_URL = "https://zenodo.org"
_MD5 = re.compile(r"^(?:md5:)?([0-9a-fA-F]{32})$")


@dataclass(frozen=True)
class ZenodoFile:
    record: str
    key: str
    size: int
    md5: str
    urls: tuple[str, ...]  # tried in order


class ZenodoClient:
    def __init__(self, base_url: str = DEFAULT_ZENODO_URL, *, fetcher: HttpFetcher | None = None):
        self.base_url = base_url.rstrip("/")
        self.fetcher = fetcher or HttpFetcher()
        self._records: dict[str, dict[str, ZenodoFile]] = {}
        # A record that could not be listed (after all retries) fails its other entries at once
        # instead of spending the whole retry schedule again for each of them.
        self._failures: dict[str, ModelsyncError] = {}

    def record_files(self, record: str) -> dict[str, ZenodoFile]:
        """The files of `record` by name (one API call per record per client)."""
        record = str(record)
        if record in self._failures:
            raise self._failures[record]
        if record not in self._records:
            try:
                self._records[record] = self._parse_files(record, self._fetch_record(record))
            except ModelsyncError as err:
                self._failures[record] = err
                raise
        return self._records[record]

    def _fetch_record(self, record: str):
        url = f"{self.base_url}/api/records/{record}"
        try:
            return self.fetcher.get_json(url, what=f"Zenodo record {record}")
        except HttpStatusError as err:
            if err.status in (404, 410):
                raise ModelsyncError(
                    f"Zenodo record {record} not found at {self.base_url} (HTTP {err.status}); "
                    f"check the record id in the catalog and ZENODO_URL"
                ) from None
            raise

    def file(self, record: str, name: str) -> ZenodoFile:
        files = self.record_files(record)
        if name not in files:
            known = ", ".join(sorted(files)[:6]) + (", ..." if len(files) > 6 else "")
            raise ModelsyncError(
                f"Zenodo record {record} has no file {name!r} (it has: {known or 'no files'}); "
                f"fix the file name in the catalog"
            )
        return files[name]

    def download(
        self,
        zfile: ZenodoFile,
        dest: Path,
        *,
        max_bytes: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Download into `dest` (verified size and md5), trying the API link, then the fallback."""
        what = f"Zenodo {zfile.record}/{zfile.key}"
        for i, url in enumerate(zfile.urls):
            try:
                return self.fetcher.download(
                    url,
                    dest,
                    what=what,
                    algorithm="md5",
                    expected_digest=zfile.md5,
                    expected_size=zfile.size,
                    max_bytes=max_bytes,
                    progress=progress,
                )
            except HttpStatusError as err:
                if i + 1 < len(zfile.urls) and err.status in (400, 403, 404, 410):
                    log.warning("%s: HTTP %d from %s; trying %s", what, err.status, url, zfile.urls[i + 1])
                    continue
                raise ModelsyncError(
                    f"{what}: HTTP {err.status} from {url}; the file is listed in the record but "
                    f"cannot be downloaded: check the record on {self.base_url} and re-run later"
                ) from None
        raise AssertionError("unreachable: ZenodoFile.urls is never empty")

    # -- parsing --------------------------------------------------------------------------------

    def _parse_files(self, record: str, doc) -> dict[str, ZenodoFile]:
        entries = doc.get("files") if isinstance(doc, dict) else None
        if isinstance(entries, dict):  # InvenioRDM shape: {"entries": [...] or {key: {...}}}
            entries = entries.get("entries")
            if isinstance(entries, dict):
                entries = list(entries.values())
        if not isinstance(entries, list):
            raise ModelsyncError(
                f"Zenodo record {record}: the records API answer has no file list; the record may "
                f"be restricted or ZENODO_URL may not point at a Zenodo/InvenioRDM server"
            )
        files: dict[str, ZenodoFile] = {}
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            name = entry.get("key") or entry.get("filename")
            size = entry.get("size", entry.get("filesize"))
            match = _MD5.match(str(entry.get("checksum", "")).strip())
            if not name or not isinstance(size, int) or not match:
                log.warning(
                    "Zenodo record %s: ignoring a file entry without name, size or md5: %r",
                    record,
                    {k: entry.get(k) for k in ("key", "filename", "size", "checksum")},
                )
                continue
            files[name] = ZenodoFile(
                record=record,
                key=name,
                size=size,
                md5=match.group(1).lower(),
                urls=self._urls(record, name, entry),
            )
        return files

    def _urls(self, record: str, name: str, entry: dict) -> tuple[str, ...]:
        fallback = f"{self.base_url}/records/{record}/files/{urllib.parse.quote(name)}?download=1"
        links = entry.get("links")
        links = links if isinstance(links, dict) else {}
        api = links.get("content") or links.get("self") or links.get("download")
        if not isinstance(api, str) or api == fallback:
            return (fallback,)
        if not self._on_zenodo(api):
            log.warning(
                "Zenodo record %s: ignoring the link %r for %s (not https on %s); using %s",
                record,
                api[:200],
                name,
                urllib.parse.urlsplit(self.base_url).netloc,
                fallback,
            )
            return (fallback,)
        return (api, fallback)

    def _on_zenodo(self, url: str) -> bool:
        """https on the configured host, or exactly the configured scheme and host when that is a
        local test server (http://127.0.0.1:PORT). Netlocs are compared whole (no user part, no
        look-alike host that urlsplit would read as the right one)."""
        link, base = urllib.parse.urlsplit(url), urllib.parse.urlsplit(self.base_url)
        if is_local_http(self.base_url):
            return link.scheme == base.scheme and link.netloc.lower() == base.netloc.lower()
        host = _https_netloc(base.netloc) if base.scheme == "https" else (base.hostname or "")
        return link.scheme == "https" and bool(host) and _https_netloc(link.netloc) == host


def _https_netloc(netloc: str) -> str:
    netloc = netloc.lower()
    return netloc[: -len(":443")] if netloc.endswith(":443") else netloc
