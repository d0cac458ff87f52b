"""Experiment (issue 9): the least CPU a verifying client can spend here, and what each write strategy costs.

Against s3rver (bench/servers.py), one data shape (`large1`: 2 x 1 GiB by default), in one run, interleaved,
cold into a fresh folder each time, each tool a child process measured as bench/run.py measures (bench/spawn.py:
wall s, user and system CPU s, peak RSS; s3rver's CPU s in the same interval), every result checked on disk:

- `modelsync pull` and `s5cmd sync`, as bench/run.py runs them;
- modelsync's Downloader driven directly (16 range threads, 32 MiB parts, 64 KiB socket reads), with
  the body-handling step swapped:
  - `as-is`: unchanged (write through the page cache, whole-file sha256 hashed forward from the page cache);
  - `parts`: sha256 of each part as it arrives, while the 64 KiB read is still in the CPU cache, written
    through the page cache; no read-back. A manifest would need a sha256 per part for this (modelsync's
    has one per file: the probe computes the part hashes from the source);
  - `direct`: as `parts`, but written with O_DIRECT from a 4 MiB page-aligned buffer per thread (the
    page cache is bypassed: no copy into it, and nothing of the file is left in it);
  - `mmap`: as `parts`, but each part is received straight into a shared mapping of the file
    (posix_fallocate first, MADV_POPULATE_WRITE per 4 MiB window): one copy, the data stays cached;
  - `nowrite`: read and sha256, nothing written: the floor of any client that verifies every byte.

Then the budget: client CPU + server CPU per GiB, and the wall time those CPU seconds need at best on
this machine's cores. `--perf` adds one pull of each tool under `perf record` (crt_probe.perf_pull: the
share of its CPU samples by kernel symbol and by library). Prints markdown tables; asserts nothing about
speed.

    .venv/bin/python bench/floor_probe.py --repeat 3 --perf
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import mmap
import os
import shutil
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crt_probe  # noqa: E402
import run  # noqa: E402
import servers  # noqa: E402

MODES = ("as-is", "parts", "direct", "mmap", "nowrite")
PART = 32 * run.MIB
STEP = 64 * 1024  # modelsync's READ_BUFFER
DIRECT_BUFFER = 4 * run.MIB
WINDOW = 4 * run.MIB
MADV_POPULATE_WRITE = 23  # Linux 5.14; Python 3.11's mmap module has no name for it
ALIGN = 4096


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", default="large1", choices=sorted(crt_probe.SHAPES))
    p.add_argument("--modes", default=",".join(MODES), help=f"comma list of {', '.join(MODES)}")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--perf", action="store_true", help="also one pull of each tool under perf record")
    p.add_argument("--workdir", default=os.path.join(run.ROOT, ".bench", "floor"))
    args = p.parse_args()
    args.durable, args.concurrency, args.part_mib = False, 16, PART // run.MIB
    args.tools_bin = os.path.dirname(sys.executable)
    return args


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        return worker(json.loads(sys.argv[2]))
    args = parse_args()
    args.modelsync_python = run.image_python()  # `modelsync pull` as the image runs it
    base, scale = crt_probe.SHAPES[args.shape]
    source = os.path.join(args.workdir, "source")
    print(f"\n## s3rver, {args.shape}: {run.describe(base, scale)}; load before: {crt_probe.load()}", flush=True)
    expected = run.generate(source, base, scale)
    paths = [os.path.join(d, n) for d, _, names in os.walk(source) for n in names]
    files = [(os.path.relpath(p, source), os.path.getsize(p), crt_probe.sha256(p)) for p in paths]
    parts = {os.path.relpath(p, source): part_hashes(p) for p in paths}
    datadir = os.path.join(args.workdir, "s3rver-data")
    shutil.rmtree(datadir, ignore_errors=True)
    server = servers.start("s3rver", datadir)
    folder = os.path.join(args.workdir, "dest")
    try:
        env = run.tool_env(args, server, args.workdir)
        version = run.publish_shape(args, env, server, source, base).stdout.split()[0]
        commands = run.commands(args, server.endpoint, base, version)
        job = {"endpoint": server.endpoint, "bucket": run.BUCKET, "prefix": f"models/{base}/{version}/files/",
               "files": files, "parts": parts}
        tools = {"modelsync pull": commands["modelsync"], "s5cmd sync": commands["s5cmd"]}
        for mode in args.modes.split(","):
            if mode not in MODES:
                raise SystemExit(f"unknown mode {mode!r}: use {', '.join(MODES)}")
            tools[f"Downloader, {mode}"] = (functools.partial(worker_command, dict(job, mode=mode)), lambda d: d)
        runs = crt_probe.interleaved({name: (tool, env) for name, tool in tools.items()}, server, folder, expected,
                                     args.repeat)
        print(crt_probe.table(runs, expected[1]), flush=True)
        print(budget(runs, expected[1]), flush=True)
        for name, (command, _where) in tools.items() if args.perf else ():
            shutil.rmtree(folder, ignore_errors=True)
            print(crt_probe.perf_pull(name, command(folder), env, args.workdir), flush=True)
    finally:
        server.stop()
        shutil.rmtree(datadir, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)


def budget(runs: dict, size: int) -> str:
    """Median client + server CPU per GiB, and the wall time they need at best on this machine's cores."""
    gib, cores = size / run.GIB, os.cpu_count() or 1
    sha = 1024 / run.hashlib_rates()[0]
    lines = [f"\nCPU budget ({cores} cores shared by client and server; sha256 of cache-hot 64 KiB blocks here: "
             f"{sha:.2f} CPU-s/GiB):\n",
             "| tool | client CPU s/GiB | server CPU s/GiB | together | least wall s for the data | measured wall s |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, results in runs.items():
        client = crt_probe.median([r.cpu for r in results]) / gib
        server = crt_probe.median([r.server_cpu for r in results]) / gib
        lines.append(f"| {name} | {client:.2f} | {server:.2f} | {client + server:.2f} | "
                     f"{(client + server) * gib / cores:.2f} | {crt_probe.median([r.seconds for r in results]):.2f} |")
    return "\n".join(lines)


def part_hashes(path: str) -> list[str]:
    out = []
    with open(path, "rb") as handle:
        while block := handle.read(PART):
            out.append(hashlib.sha256(block).hexdigest())
    return out


def worker_command(job: dict, dest: str) -> list[str]:
    return [sys.executable, __file__, "--worker", json.dumps(dict(job, dest=dest))]


def worker(job: dict) -> None:
    """Downloads job's files with modelsync's Downloader, the body step swapped per job['mode']."""
    import boto3
    from botocore.config import Config

    from modelsync import download
    from modelsync.manifest import FileEntry

    mode, parts = job["mode"], job["parts"]
    whole = {path: sha for path, _, sha in job["files"]}

    class Probe(download.Downloader):
        def _get_ranges(self, key, fd, size, journal):
            if mode == "as-is":
                return super()._get_ranges(key, fd, size, journal)
            if mode == "mmap":
                os.posix_fallocate(fd, 0, size)
            starts = range(0, size, self.part_size)
            got = list(self.ranges.map(
                lambda start: self._get_range(key, fd, start, min(self.part_size, size - start), size, True), starts))
            path = key[len(job["prefix"]):]
            return whole[path] if got == parts[path] else "a part's sha256 differs"

        def _read_body(self, response, fd, start, length, digest):
            ranged = os.fstat(fd).st_size >= start + length  # a big file's part (small files: as-is)
            if mode == "as-is" or not ranged or digest is None:
                return super()._read_body(response, fd, start, length, digest)
            readinto = response["Body"]._raw_stream._fp.readinto
            {"parts": self._buffered, "direct": self._direct, "mmap": self._mapped,
             "nowrite": self._nowrite}[mode](readinto, fd, start, length, digest)
            self.progress.advance(length)
            response["Body"]._raw_stream.release_conn()
            return length

        def _recv(self, readinto, view, digest) -> int:
            """Fill view from the socket in 64 KiB reads, hashing each while it is in the CPU cache."""
            filled = 0
            while filled < len(view):
                block = view[filled:filled + STEP]
                count = readinto(block)
                if not count:
                    raise download._ShortBody(f"got {filled} of {len(view)} bytes")
                digest.update(block[:count])
                filled += count
            return filled

        def _buffered(self, readinto, fd, start, length, digest):
            view, done = self._buffer(), 0
            while done < length:
                count = self._recv(readinto, view[:min(len(view), length - done)], digest)
                download.write_all(fd, view[:count], start + done)
                done += count

        def _nowrite(self, readinto, fd, start, length, digest):
            view, done = self._buffer(), 0
            while done < length:
                done += self._recv(readinto, view[:min(len(view), length - done)], digest)

        def _direct(self, readinto, fd, start, length, digest):
            view = getattr(self._local, "aligned", None)
            if view is None:
                view = self._local.aligned = memoryview(mmap.mmap(-1, DIRECT_BUFFER))  # page-aligned
            direct = os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_DIRECT)
            try:
                done = 0
                while done < length:
                    count = self._recv(readinto, view[:min(len(view), length - done)], digest)
                    aligned = count - count % ALIGN  # O_DIRECT needs whole blocks; the file's tail goes buffered
                    download.write_all(direct, view[:aligned], start + done)
                    download.write_all(fd, view[aligned:count], start + done + aligned)
                    done += count
            finally:
                os.close(direct)

        def _mapped(self, readinto, fd, start, length, digest):
            done = 0
            while done < length:
                offset = start + done
                base = offset - offset % mmap.ALLOCATIONGRANULARITY
                size = min(WINDOW, start + length - base)
                window = mmap.mmap(fd, size, offset=base)
                window.madvise(MADV_POPULATE_WRITE, offset - base, size - (offset - base))
                view = memoryview(window)
                try:
                    done += self._recv(readinto, view[offset - base:], digest)
                finally:
                    view.release()
                    window.close()

    client = boto3.client("s3", endpoint_url=job["endpoint"], region_name="us-east-1",
                          config=Config(max_pool_connections=32))
    downloader = Probe(client, job["bucket"], concurrency=16, part_size=PART, durable=False)
    failures, lock = [], threading.Lock()

    def fetch(item):
        path, size, sha = item
        final = os.path.join(job["dest"], path)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        try:
            downloader.fetch(job["prefix"] + path, FileEntry(path, size, sha), final + ".tmp")
        except download.ChecksumMismatch as exc:
            with lock:
                failures.append(str(exc))
            return
        os.rename(final + ".tmp", final)  # only verified files get their name

    try:
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(fetch, job["files"]))
    finally:
        downloader.close()
    if failures:
        raise SystemExit("; ".join(failures))


if __name__ == "__main__":
    main()
