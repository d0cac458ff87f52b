"""Find the model folder inside an extracted archive and check it has the files its family needs.

Whether an archive has a top-level folder is not known in advance, so every directory of the
tree is a candidate; the shallowest one holding all required files wins.
"""

from __future__ import annotations

import os
from pathlib import Path

from modelsync.errors import ModelsyncError

# One requirement is a tuple of alternatives: any one of them satisfies it.
Requirement = tuple[str, ...]
IGNORED_DIRS = frozenset({"__MACOSX", ".git"})


def describe(requirements: tuple[Requirement, ...]) -> str:
    return ", ".join(" or ".join(alts) for alts in requirements)


def missing(directory: Path, requirements: tuple[Requirement, ...]) -> list[Requirement]:
    """The requirements that `directory` (its direct children, regular non-empty files) fails."""
    present = {p.name for p in directory.iterdir() if p.is_file() and p.stat().st_size > 0}
    return [alts for alts in requirements if not present.intersection(alts)]


def locate_model_dir(root: Path, requirements: tuple[Requirement, ...], *, label: str) -> Path:
    """The shallowest directory under `root` (itself included) that holds every required file."""
    root = Path(root)
    best: tuple[int, Path] | None = None  # fewest missing requirements, for the error message
    found: dict[int, list[Path]] = {}
    for current, dirnames, _ in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in IGNORED_DIRS)
        directory = Path(current)
        gaps = missing(directory, requirements)
        if not gaps:
            found.setdefault(len(directory.relative_to(root).parts), []).append(directory)
        elif best is None or len(gaps) < best[0]:
            best = (len(gaps), directory)
    if found:
        shallowest = found[min(found)]
        if len(shallowest) > 1:
            names = ", ".join(str(d.relative_to(root)) for d in shallowest)
            raise ModelsyncError(
                f"{label}: several folders hold a complete model ({names}); cannot tell which one to "
                f"publish: use a source archive with one model"
            )
        return shallowest[0]
    where = best[1].relative_to(root) if best else Path(".")
    gaps = missing(best[1], requirements) if best else list(requirements)
    raise ModelsyncError(
        f"{label}: no folder in the archive holds the required files ({describe(requirements)}); "
        f"closest is '{where}', missing {describe(tuple(gaps))}: check the entry's family in the catalog"
    )
