"""Experiment (issue 9): would the awscrt S3 client plus a sha256 check make cold pulls as fast as s5cmd?

Against s3rver (bench/servers.py), for one data shape (`large1`: 2 x 1 GiB; `mix` as in bench/run.py), in
one run, side by side, cold into a fresh folder each time:

- modelsync: `modelsync pull` as it is today (MODELSYNC_CONCURRENCY from --threads, one row per value);
- s5cmd: `s5cmd sync`, as bench/run.py runs it;
- crt-file: awscrt's S3Client writes each object to a temp file itself (`recv_filepath`); as each object
  finishes, a thread hashes the temp file (modelsync.hashing.sha256_file) while the others download,
  and only a matching file is renamed into place;
- crt-body: S3Client with an on_body callback that pwrites each chunk at its offset and feeds sha256
  directly when the chunk is the next in order (chunks that arrive out of order are counted and the
  file is hashed again afterwards, so the check never depends on the order).

Each tool is a child process measured as bench/run.py measures (bench/spawn.py: wall s, user and system
CPU s, peak RSS; s3rver's CPU s in the same interval), and every result is checked on disk. Optionally
`--strace` runs one cold modelsync pull under `strace -c -f` (system time per syscall: futex against
reads and writes). Prints markdown tables; asserts nothing about speed.

    .venv/bin/pip install -r bench/requirements.txt && (cd bench && npm ci)
    .venv/bin/python bench/crt_probe.py --repeat 3 --threads 16,4,2 --strace
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from urllib.parse import quote, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402
import servers  # noqa: E402

# name: (shape in bench/run.py, scale)
SHAPES = {"large1": ("large", 0.5), "mix": ("mix", 1.0), "tiny": ("mix", 0.02)}  # tiny: a smoke test


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", default="large1", help="comma list of large1 (2 x 1 GiB), mix, tiny")
    p.add_argument("--tools", default="modelsync,s5cmd,crt-file,crt-body")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=16, help="parallel requests for s5cmd (default 16)")
    p.add_argument("--threads", default="16", help="comma list of MODELSYNC_CONCURRENCY values (default 16)")
    p.add_argument("--part-mib", type=int, default=32, help="part size for every tool (default 32)")
    p.add_argument("--crt", default="32:10",
                   help="comma list of PART_MIB:GBPS for awscrt (part size, throughput_target_gbps); default 32:10")
    p.add_argument("--strace", action="store_true", help="also one modelsync pull under strace -c -f")
    p.add_argument("--perf", action="store_true",
                   help="also one pull of the first modelsync, s5cmd and awscrt entry each under perf record")
    p.add_argument("--workdir", default=os.path.join(run.ROOT, ".bench", "crt"))
    p.add_argument("--tools-bin", default=os.path.dirname(sys.executable))
    args = p.parse_args()
    args.durable = False  # as bench/run.py's default: the task-local volume
    return args


def main() -> None:
    if sys.argv[1:2] == ["--crt-worker"]:
        return crt_worker(json.loads(sys.argv[2]))
    args = parse_args()
    args.modelsync_python = run.image_python()  # `modelsync pull` as the image runs it
    os.makedirs(args.workdir, exist_ok=True)
    for shape in args.shapes.split(","):
        probe_shape(args, shape)


def probe_shape(args, shape: str) -> None:
    base, scale = SHAPES[shape]
    source = os.path.join(args.workdir, "source")
    print(f"\n## s3rver, {shape}: {run.describe(base, scale)}; load before: {load()}", flush=True)
    expected = run.generate(source, base, scale)
    paths = [os.path.join(d, n) for d, _, names in os.walk(source) for n in names]
    files = [(os.path.relpath(p, source), os.path.getsize(p), sha256(p)) for p in paths]
    datadir = os.path.join(args.workdir, "s3rver-data")
    shutil.rmtree(datadir, ignore_errors=True)
    server = servers.start("s3rver", datadir)
    try:
        env = run.tool_env(args, server, args.workdir)
        version = run.publish_shape(args, env, server, source, base).stdout.split()[0]
        commands = run.commands(args, server.endpoint, base, version)
        prefix = f"models/{base}/{version}/files/"
        worker = {"endpoint": server.endpoint, "bucket": run.BUCKET, "prefix": prefix, "files": files}
        tools = {}
        for tool in args.tools.split(","):
            if tool == "modelsync":
                for threads in args.threads.split(","):
                    tools[f"modelsync, {threads} threads"] = (commands["modelsync"],
                                                              dict(env, MODELSYNC_CONCURRENCY=threads))
            elif tool == "s5cmd":
                tools["s5cmd sync"] = (commands["s5cmd"], env)
            elif tool in ("crt-file", "crt-body"):
                for setting in args.crt.split(","):
                    part, gbps = setting.split(":")
                    job = dict(worker, mode=tool[4:], part=int(part) * run.MIB, gbps=float(gbps))
                    cmd = functools.partial(crt_command, job)
                    tools[f"awscrt {tool[4:]} + sha256, {part} MiB, {gbps} Gbps"] = ((cmd, lambda d: d), env)
            else:
                raise SystemExit(f"unknown tool {tool!r}")
        folder = os.path.join(args.workdir, "dest")
        runs = interleaved(tools, server, folder, expected, args.repeat)
        print(table(runs, expected[1]), flush=True)
        if args.strace:
            shutil.rmtree(folder, ignore_errors=True)
            print(strace_pull(commands["modelsync"][0](folder), env, args.workdir), flush=True)
        if args.perf:
            for kind in ("modelsync", "s5cmd", "awscrt"):
                name = next((n for n in tools if n.startswith(kind)), None)
                if name:
                    (command, _), tool_env = tools[name]
                    shutil.rmtree(folder, ignore_errors=True)
                    print(perf_pull(name, command(folder), tool_env, args.workdir), flush=True)
    finally:
        server.stop()
        shutil.rmtree(datadir, ignore_errors=True)
        shutil.rmtree(os.path.join(args.workdir, "dest"), ignore_errors=True)


def interleaved(tools: dict, server, folder: str, expected: tuple[int, int], repeat: int) -> dict:
    """name -> the Runs of each tool (name -> ((command for a folder, folder holding the files), env)):
    `repeat` rounds, interleaved so that a burst of other load hits every tool alike, each cold into an
    emptied folder, each result checked on disk (files and bytes), not only its exit code."""
    runs: dict = {name: [] for name in tools}
    for _ in range(repeat):
        for name, ((command, where), tool_env) in tools.items():
            shutil.rmtree(folder, ignore_errors=True)
            result = run.measure(command(folder), tool_env, server)
            # the note: awscrt body's chunk counts (modelsync's summary and s5cmd's log are not kept)
            note = result.stdout.strip() if "chunks" in result.stdout else ""
            result.stdout = "; ".join(filter(None, [f"load {load()}", note]))
            got = run.tree_size(where(folder))
            if got != expected:
                raise SystemExit(f"{name} produced {got[0]} files / {got[1]} bytes instead of {expected}")
            runs[name].append(result)
    return runs


CRT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".crt")


def crt_lib() -> str:
    """awscrt in its own folder (bench/requirements-crt.txt), seen by the awscrt worker only."""
    if not os.path.isdir(os.path.join(CRT_DIR, "awscrt")):
        requirements = os.path.join(os.path.dirname(os.path.abspath(__file__)), "requirements-crt.txt")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", CRT_DIR, "-r", requirements],
                       check=True)
    return CRT_DIR


def crt_command(job: dict, dest: str) -> list[str]:
    return [sys.executable, __file__, "--crt-worker", json.dumps(dict(job, dest=dest, lib=crt_lib()))]


def table(runs: dict, size: int) -> str:
    gib = size / run.GIB
    lines = ["| tool | run | wall s | MiB/s | user s | sys s | CPU s/GiB | peak RSS MiB | s3rver CPU s | note |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for name, results in runs.items():
        for i, r in enumerate(results, 1):
            lines.append(f"| {name} | {i} | {r.seconds:.2f} | {size / run.MIB / r.seconds:,.0f} | {r.user:.2f} | "
                         f"{r.system:.2f} | {r.cpu / gib:.2f} | {r.rss_mib:.0f} | {r.server_cpu:.2f} | {r.stdout} |")
    lines.append("\nmedian per tool:\n")
    lines.append("| tool | wall s | CPU s/GiB | user s/GiB | sys s/GiB | s3rver CPU s/GiB |")
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, results in runs.items():
        def med(f, results=results):
            return median([f(r) for r in results])
        lines.append(f"| {name} | {med(lambda r: r.seconds):.2f} | {med(lambda r: r.cpu) / gib:.2f} | "
                     f"{med(lambda r: r.user) / gib:.2f} | {med(lambda r: r.system) / gib:.2f} | "
                     f"{med(lambda r: r.server_cpu) / gib:.2f} |")
    return "\n".join(lines)


def median(values: list[float]) -> float:
    """The middle value (the higher of the two middle ones for an even count)."""
    return sorted(values)[len(values) // 2]


def strace_pull(cmd: list[str], env: dict, work: str) -> str:
    """One cold pull under `strace -c -f`: system time per syscall (strace's default), top rows."""
    if not shutil.which("strace"):
        return "(strace not installed: apt-get install -y strace)"
    out = os.path.join(work, "strace.txt")
    subprocess.run(["strace", "-c", "-f", "-o", out, *cmd], env=env, check=True, stdout=subprocess.DEVNULL)
    with open(out) as handle:
        top = "".join(handle.readlines()[:16])
    return ("strace -c -f of one cold modelsync pull (time inside each syscall; a futex's includes its wait):\n"
            f"```\n{top}```")


# kernel symbols, by what they do (perf's self samples)
KINDS = {"futex/scheduler": ("futex", "schedule", "finish_task_switch", "try_to_wake_up", "ttwu", "pick_next",
                             "dequeue", "enqueue", "update_curr", "switch_mm", "__switch_to"),
         "copies": ("copy_", "memcpy", "memmove", "_copy_to_iter", "copyout", "copyin"),
         "page faults, zeroing": ("clear_page", "page_fault", "handle_mm_fault", "do_anonymous", "alloc_pages",
                                  "get_page_from_freelist", "rmqueue", "__folio", "filemap_add", "lru")}


def perf_pull(name: str, cmd: list[str], env: dict, work: str) -> str:
    """One cold pull under `perf record` (cpu-clock, all threads): the share of its CPU samples by kind."""
    if not shutil.which("perf"):
        return "(perf not installed)"
    data = os.path.join(work, "perf.data")
    subprocess.run(["perf", "record", "-q", "-F", "499", "-e", "cpu-clock", "-o", data, "--", *cmd], env=env,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    report = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "sym", "--stdio", "-q"],
                            capture_output=True, text=True, check=True).stdout
    rows = []
    for line in report.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[0].endswith("%"):
            rows.append((float(parts[0][:-1]), parts[1], parts[2].strip()))
    kernel = sum(p for p, where, _ in rows if where == "[k]")
    shares = {kind: sum(p for p, _, sym in rows if any(k in sym for k in keys)) for kind, keys in KINDS.items()}
    top = ", ".join(f"{sym} {p:.1f}%" for p, _, sym in rows[:8])
    # libcrypto has no symbols here: its share (sha256, for Python's hashlib) comes from the by-library report
    dsos = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "dso", "--stdio", "-q"],
                          capture_output=True, text=True, check=True).stdout
    libs = ", ".join(" ".join(line.split()[:2]) for line in dsos.splitlines()[:5] if line.strip())
    return (f"perf, {name}: kernel {kernel:.0f}% of samples; " + "; ".join(f"{k} {v:.1f}%" for k, v in shares.items())
            + f"\n  top: {top}\n  by library: {libs}")


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def sha256(path: str) -> str:
    from modelsync.hashing import sha256_file

    return sha256_file(path)


def crt_worker(job: dict) -> None:
    """Downloads job's files with awscrt into job['dest'], verifying sha256 before each rename."""
    from concurrent.futures import ThreadPoolExecutor

    sys.path.insert(0, job["lib"])
    from awscrt.auth import AwsCredentialsProvider
    from awscrt.http import HttpHeaders, HttpRequest
    from awscrt.io import ClientBootstrap, DefaultHostResolver, EventLoopGroup
    from awscrt.s3 import S3Client, S3RequestTlsMode, S3RequestType, create_default_s3_signing_config

    loop = EventLoopGroup()
    bootstrap = ClientBootstrap(loop, DefaultHostResolver(loop))
    signing = create_default_s3_signing_config(
        region="us-east-1", credential_provider=AwsCredentialsProvider.new_static("S3RVER", "S3RVER"))
    client = S3Client(bootstrap=bootstrap, region="us-east-1", tls_mode=S3RequestTlsMode.DISABLED,
                      signing_config=signing, part_size=job["part"], throughput_target_gbps=job["gbps"])
    host = urlsplit(job["endpoint"]).netloc
    hashers = ThreadPoolExecutor(max_workers=os.cpu_count() or 2)
    stats = {"out_of_order_chunks": 0, "chunks": 0, "rehashed": 0}
    checks, requests = [], []

    def check(tmp: str, final: str, size: int, digest: str, actual: str | None) -> None:
        if actual is None:  # crt-file, or crt-body with chunks out of order: hash what is on disk
            actual = sha256(tmp)
        if os.path.getsize(tmp) != size or actual != digest:
            raise SystemExit(f"{final}: sha256 {actual} does not match {digest}")
        os.rename(tmp, final)

    for rel, size, digest in job["files"]:
        final = os.path.join(job["dest"], rel)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        tmp = final + ".part"
        headers = HttpHeaders([("Host", host)])
        request = HttpRequest("GET", f"/{job['bucket']}/{quote(job['prefix'] + rel)}", headers)
        kwargs = {"recv_filepath": tmp} if job["mode"] == "file" else {}
        state = None
        if job["mode"] == "body":
            state = {"fd": os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), "next": 0,
                     "sha": hashlib.sha256(), "in_order": True}

            def on_body(chunk, offset, state=state, **_):
                view, at = memoryview(chunk), offset
                while view:  # complete short writes
                    written = os.pwrite(state["fd"], view, at)
                    view, at = view[written:], at + written
                stats["chunks"] += 1
                if state["in_order"] and offset == state["next"]:
                    state["sha"].update(chunk)
                    state["next"] += len(chunk)
                else:
                    stats["out_of_order_chunks"] += 1
                    state["in_order"] = False

            kwargs["on_body"] = on_body

        def on_done(error=None, state=state, tmp=tmp, final=final, size=size, digest=digest, **_):
            if error:
                checks.append(error)
                return
            actual = None
            if state is not None:
                os.close(state["fd"])
                if state["in_order"] and state["next"] == size:
                    actual = state["sha"].hexdigest()
                else:
                    stats["rehashed"] += 1
            checks.append(hashers.submit(check, tmp, final, size, digest, actual))

        requests.append(client.make_request(type=S3RequestType.GET_OBJECT, request=request, on_done=on_done, **kwargs))
    for meta in requests:
        meta.finished_future.result()
    while len(checks) < len(requests):  # on_done runs on a CRT thread; don't rely on it preceding the future
        time.sleep(0.001)
    for item in checks:
        if isinstance(item, BaseException):
            raise SystemExit(f"awscrt: {item}")
        item.result()
    hashers.shutdown()
    print(" ".join(f"{k} {v}" for k, v in stats.items()) if job["mode"] == "body" else "", end="")


if __name__ == "__main__":
    main()
