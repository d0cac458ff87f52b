"""Benchmark of the seed path on this machine (not a test; prints figures, asserts nothing).

One Mask2Former-shaped archive of --mib MiB served by the local fake Zenodo, then each stage on
its own: download with md5 check, safe extraction, and the whole `Seeder.run` (download,
extract, publish to a moto S3 server on 127.0.0.1, pull into an EFS stand-in), then the
second run that must transfer nothing. moto itself is the slow part of publish/pull here (see
the field notes); the figures say what our own code costs around it.

    .venv/bin/python -m tests.seed.bench_seed            # 256 MiB
    .venv/bin/python -m tests.seed.bench_seed --mib 64
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

MIB = 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=256, help="size of the model file (default 256)")
    args = parser.parse_args()

    import boto3
    from moto.server import ThreadedMotoServer

    from modelsync.seed.catalog import load_catalog
    from modelsync.seed.extract import extract_zip
    from modelsync.seed.run import Seeder, format_report
    from modelsync.seed.zenodo import ZenodoClient
    from tools.fake_zenodo import FakeZenodo, make_zip

    work = Path(tempfile.mkdtemp(prefix="seed-bench-"))
    weights = os.urandom(args.mib * MIB)  # incompressible, like real checkpoints
    data = make_zip({"config.yaml": b"MODEL: {}\n", "model_final.pth": weights}, top="SEG_M2F_Bench")
    zenodo = FakeZenodo()
    zenodo.add("1", "SEG_M2F_Bench.zip", data)

    client = ZenodoClient(zenodo.url)
    started = time.perf_counter()
    client.download(client.file("1", "SEG_M2F_Bench.zip"), work / "a.zip")
    report("download + md5 (local HTTP)", len(data), time.perf_counter() - started)
    started = time.perf_counter()
    extract_zip(work / "a.zip", work / "tree", max_bytes=2 * len(data))
    report("safe extraction", len(weights), time.perf_counter() - started)

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                      AWS_ENDPOINT_URL_S3=f"http://{host}:{port}")
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="bench")
    (work / "catalog.yaml").write_text(
        "families: {m2f: {required_files: [config.yaml, [model.pth, model_final.pth]]}}\nmodels:\n"
        "  - {name: SEG_M2F_Bench, enabled: true, approx_size_mb: %d, family: m2f,\n"
        "     source: {type: zenodo, record: 1, file: SEG_M2F_Bench.zip}}\n" % (args.mib + 1))
    entries = load_catalog(work / "catalog.yaml").select()
    try:
        for label, moved in (("seed run 1 (download, extract, publish, EFS pull)", len(weights)),
                             ("seed run 2 (nothing to do)", 0)):
            seeder = Seeder(s3, "bench", prefix="models/", workdir=work / "scratch", zenodo=ZenodoClient(zenodo.url))
            started = time.perf_counter()
            result = seeder.run(entries, efs_root=str(work / "efs"))
            report(label, moved, time.perf_counter() - started)
            print(format_report(result), end="\n\n")
    finally:
        server.stop()
        zenodo.close()
        shutil.rmtree(work, ignore_errors=True)


def report(what: str, nbytes: int, seconds: float) -> None:
    rate = f"{nbytes / MIB / seconds:8.1f} MiB/s" if nbytes else ""
    print(f"{what:52s} {nbytes / MIB:8.1f} MiB {seconds:7.2f} s {rate}".rstrip(), flush=True)


if __name__ == "__main__":
    main()
