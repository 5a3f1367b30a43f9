"""The entries of a dataset folder, with its two rules for what is not a plain file or folder:

- A symbolic link is followed only while it stays inside the dataset folder (ROOT, resolved); a
  link that leaves it (a file or a class folder elsewhere) is a DataError naming the link and its
  target, unless DIFFBENCH_DATA_FOLLOW_LINKS=1 is set (then any link is followed, each folder
  once, so a link loop ends).
- Entries that are neither files nor folders (FIFOs, sockets, devices) and dangling links are
  skipped and counted by kind; the loader reports the counts (Dataset.skipped, one stderr line).

Names starting with '.' are left out and not counted, as before.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from pathlib import Path

from bench.data.dataset import DataError

FOLLOW_ENV = "DIFFBENCH_DATA_FOLLOW_LINKS"


def follow_links_from_env() -> bool:
    return os.environ.get(FOLLOW_ENV, "").strip().lower() in ("1", "true", "yes")


class Walker:
    def __init__(self, root, follow_links: bool | None = None):
        self.root = Path(os.path.realpath(root))
        self.follow = follow_links_from_env() if follow_links is None else follow_links
        self.skipped: Counter = Counter()
        self.first_skipped: Path | None = None

    def kind(self, path: Path) -> str | None:
        """'dir' or 'file' for what may be read; None (counted) for anything else."""
        try:
            info = os.lstat(path)
        except OSError:
            return self._skip(path, "vanished entry")
        if stat.S_ISLNK(info.st_mode):
            try:
                info = os.stat(path)
            except OSError:  # dangling, a loop, or a target we may not read
                return self._skip(path, "dangling link")
            target = Path(os.path.realpath(path))
            if not self.follow and not target.is_relative_to(self.root):
                raise DataError(f"{path}: a symbolic link to {target}, outside the dataset folder {self.root}; "
                                f"allowed: links that stay inside it, or set {FOLLOW_ENV}=1 to follow links "
                                "out of it")
        if stat.S_ISDIR(info.st_mode):
            return "dir"
        if stat.S_ISREG(info.st_mode):
            return "file"
        kinds = {stat.S_ISFIFO: "FIFO", stat.S_ISSOCK: "socket", stat.S_ISCHR: "device", stat.S_ISBLK: "device"}
        return self._skip(path, next((k for test, k in kinds.items() if test(info.st_mode)), "special file"))

    def _skip(self, path: Path, kind: str) -> None:
        self.skipped[kind] += 1
        self.first_skipped = self.first_skipped or path
        return None

    def listing(self, folder: Path) -> tuple[list[Path], list[Path]]:
        """(folders, files) directly in `folder`, sorted, hidden names left out."""
        self.check_inside(folder)
        try:
            names = sorted(n for n in os.listdir(folder) if not n.startswith("."))
        except OSError as exc:
            raise DataError(f"{folder}: cannot list ({exc.strerror}); allowed: a readable folder") from None
        dirs, files = [], []
        for name in names:
            kind = self.kind(folder / name)
            (dirs if kind == "dir" else files if kind == "file" else []).append(folder / name)
        return dirs, files

    def files_below(self, folder: Path, extensions: tuple[str, ...], seen: set | None = None) -> list[Path]:
        """Files with one of `extensions` anywhere below `folder`, in sorted path order; each real
        folder is read once per call (a link loop ends)."""
        seen = set() if seen is None else seen
        real = os.path.realpath(folder)
        if real in seen:
            return []
        seen.add(real)
        dirs, files = self.listing(folder)
        found = [f for f in files if f.suffix.lower() in extensions]
        for d in dirs:
            found += self.files_below(d, extensions, seen)
        return sorted(found)

    def check_inside(self, folder: Path) -> None:
        target = Path(os.path.realpath(folder))
        if not self.follow and not target.is_relative_to(self.root):
            raise DataError(f"{folder}: resolves to {target}, outside the dataset folder {self.root}; "
                            f"allowed: folders inside it, or set {FOLLOW_ENV}=1 to follow links out of it")

    def summary(self) -> str:
        """'2 FIFO, 1 dangling link (first: PATH)', or '' when nothing was skipped."""
        if not self.skipped:
            return ""
        counts = ", ".join(f"{n} {kind}" for kind, n in sorted(self.skipped.items()))
        return f"{counts} (first: {self.first_skipped})"
