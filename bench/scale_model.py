"""Scale-out on paper: time-to-ready and delivery cost when N tasks start at once, in the s3, efs and s3files modes.

A model, not a measurement: every limit below is AWS's published figure (cited), every other input
is an assumption you can change with an option. Prints markdown tables (docs/costs.md uses them).

    .venv/bin/python bench/scale_model.py
    .venv/bin/python bench/scale_model.py --vcpu 8 --efs-limit-gib 60

Limits (see /work/shared/field-notes.md "Scale-out" and docs/costs.md for the sources):
- S3: at least 5,500 GET/s per partitioned prefix; above it, 503 SlowDown while S3 scales
  (AWS Knowledge Center "s3-503-within-request-rate-prefix"). GET $0.0004 per 1,000.
- EFS Elastic throughput: file-system read limit 10 GiB/s in most Regions (60 GiB/s in the largest),
  1,500 MiB/s per client (EFS User Guide, "Amazon EFS performance"); reads $0.03 per GB.
- Fargate ephemeral storage throughput 75 / 120 / 250 / 500 MiB/s at 2 / 4 / 8 / 16 vCPU
  (ECS Developer Guide, "Fargate task ephemeral storage ... performance limits").
- Fargate launch rate: 100 tasks at once, then 20 per second (ECS Developer Guide, "request
  throttling" / service quotas).
- S3 Files (s3files mode): reads of 128 KiB or more of data already in S3 stream directly from S3 (S3 User Guide,
  "Working with Amazon S3 Files"), billed as S3 GET requests; small files and metadata go through the file
  system's own storage, metered per operation ("How S3 Files is metered"; no price checked here, left out: a model
  set of large files makes few of them). The size of S3 Files' direct GETs is not documented: --s3files-read-mib.
- Image pull: the same in every mode, left out (add --image-pull-s).
"""

from __future__ import annotations

import argparse

MIB = 1024 * 1024
GIB = 1024 * MIB
GB = 1e9
S3_GET_PER_S = 5500
S3_GET_PRICE = 0.0004 / 1000
EFS_READ_PRICE = 0.03  # per GB
EFS_PER_CLIENT = 1500 * MIB
EPHEMERAL_MIB_S = {2: 75, 4: 120, 8: 250, 16: 500}
LAUNCH_BURST, LAUNCH_RATE = 100, 20


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vcpu", type=int, default=2, choices=sorted(EPHEMERAL_MIB_S),
                   help="task size (default 2, the prod service_cpu); sets the ephemeral storage throughput")
    p.add_argument("--task-network-mib", type=float, default=300,
                   help="assumed network throughput of one task in MiB/s (Fargate does not document it; default 300)")
    p.add_argument("--efs-limit-gib", type=float, default=10, help="EFS file-system read limit in GiB/s (10, or 60)")
    p.add_argument("--part-mib", type=int, default=32, help="modelsync part size (MODELSYNC_PART_SIZE_MIB, default 32)")
    p.add_argument("--files", type=int, default=100, help="files in the model set (one GET each at least)")
    p.add_argument("--models", type=int, default=10, help="models (two small GETs each: LATEST, manifest)")
    p.add_argument("--cpu-s-per-gib", type=float, default=3.0,
                   help="modelsync CPU seconds per GiB pulled (bench/run.py measures it; default 3)")
    p.add_argument("--image-pull-s", type=float, default=0.0, help="image pull time, the same in every mode")
    p.add_argument("--s3files-read-mib", type=float, default=8,
                   help="assumed size of S3 Files' direct reads from S3 in MiB (not documented; default 8)")
    p.add_argument("--tasks", default="1,10,20,50,100,200")
    p.add_argument("--sizes-gb", default="1,10")
    return p.parse_args(argv)


def launch_delay(n: int) -> float:
    """When the last of n tasks starts: 100 at once, then 20 per second."""
    return max(0, n - LAUNCH_BURST) / LAUNCH_RATE


def s3_mode(n: int, size_gb: float, a) -> dict:
    size = size_gb * GB
    gets_per_task = 2 * a.models + max(a.files, size / (a.part_mib * MIB))
    cpu_rate = a.vcpu * GIB / a.cpu_s_per_gib
    per_task = min(EPHEMERAL_MIB_S[a.vcpu] * MIB, a.task_network_mib * MIB, cpu_rate)
    bound = {EPHEMERAL_MIB_S[a.vcpu] * MIB: "task disk", a.task_network_mib * MIB: "task network",
             cpu_rate: "task CPU"}[per_task]
    # All n download at once: GET/s asked of one prefix = n * per-task rate / part size.
    get_rate = n * per_task / (a.part_mib * MIB)
    if get_rate > S3_GET_PER_S:  # S3 answers SlowDown above the prefix limit: the fleet shares it
        per_task, bound = S3_GET_PER_S * a.part_mib * MIB / n, "S3 GET/s per prefix"
        get_rate = S3_GET_PER_S
    seconds = a.image_pull_s + launch_delay(n) + size / per_task
    return {"seconds": seconds, "cost": n * gets_per_task * S3_GET_PRICE, "bound": bound, "get_rate": get_rate}


def efs_mode(n: int, size_gb: float, a) -> dict:
    size = size_gb * GB
    per_task = min(EFS_PER_CLIENT, a.task_network_mib * MIB)
    bound = "EFS per client" if per_task == EFS_PER_CLIENT else "task network"
    share = a.efs_limit_gib * GIB / n
    if share < per_task:
        per_task, bound = share, "EFS file-system limit"
    seconds = a.image_pull_s + launch_delay(n) + size / per_task
    return {"seconds": seconds, "cost": n * size_gb * EFS_READ_PRICE, "bound": bound}


def s3files_mode(n: int, size_gb: float, a) -> dict:
    """The app reads the set through the mount: large files stream from S3 at the task's network rate, one GET per
    read request, until the fleet's GET rate passes the prefix limit; the init check reads sizes only."""
    size = size_gb * GB
    read = a.s3files_read_mib * MIB
    per_task, bound = a.task_network_mib * MIB, "task network"
    get_rate = n * per_task / read
    if get_rate > S3_GET_PER_S:
        per_task, bound, get_rate = S3_GET_PER_S * read / n, "S3 GET/s per prefix", S3_GET_PER_S
    gets_per_task = 2 * a.models + max(a.files, size / read)
    seconds = a.image_pull_s + launch_delay(n) + size / per_task
    return {"seconds": seconds, "cost": n * gets_per_task * S3_GET_PRICE, "bound": bound, "get_rate": get_rate}


def table(a) -> str:
    lines = [f"Task: {a.vcpu} vCPU (ephemeral storage {EPHEMERAL_MIB_S[a.vcpu]} MiB/s), network {a.task_network_mib:g} "
             f"MiB/s (assumed), EFS limit {a.efs_limit_gib:g} GiB/s, parts {a.part_mib} MiB, image pull "
             f"{a.image_pull_s:g} s.", "",
             "| model set | tasks | s3: ready after | s3: bound by | s3: GET/s on the prefix | s3: requests $ "
             "| efs: ready after | efs: bound by | efs: reads $ |",
             "| ---: | ---: | ---: | --- | ---: | ---: | ---: | --- | ---: |"]
    for size_gb in [float(s) for s in a.sizes_gb.split(",")]:
        for n in [int(t) for t in a.tasks.split(",")]:
            s, e = s3_mode(n, size_gb, a), efs_mode(n, size_gb, a)
            lines.append(f"| {size_gb:g} GB | {n} | {s['seconds']:.0f} s | {s['bound']} | {s['get_rate']:,.0f} | "
                         f"${s['cost']:.3f} | {e['seconds']:.0f} s | {e['bound']} | ${e['cost']:.2f} |")
    lines += ["", f"s3files: direct reads of {a.s3files_read_mib:g} MiB (assumed).", "",
              "| model set | tasks | s3files: ready after | s3files: bound by | s3files: GET/s on the prefix "
              "| s3files: requests $ |", "| ---: | ---: | ---: | --- | ---: | ---: |"]
    for size_gb in [float(s) for s in a.sizes_gb.split(",")]:
        for n in [int(t) for t in a.tasks.split(",")]:
            f = s3files_mode(n, size_gb, a)
            lines.append(f"| {size_gb:g} GB | {n} | {f['seconds']:.0f} s | {f['bound']} | {f['get_rate']:,.0f} | "
                         f"${f['cost']:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    print(table(parse_args(argv)))


if __name__ == "__main__":
    main()
