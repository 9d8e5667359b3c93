"""Filesystem, process and privilege isolation for the python sandbox, with bubblewrap (`bwrap`).

Where `bwrap` is installed (Debian: `apt-get install -y bubblewrap`) the sandboxed interpreter
sees a new root: the system's `/usr` (and its `/bin`, `/lib` links) and the Python installation
read-only, a private `/tmp` of bounded size (a tmpfs of `disk_mb`) that holds its work folder,
and nothing else: no home folders, no project files, no other process's `/proc` entries. It runs in new PID, IPC, UTS and (unless
the network is allowed) network namespaces, dies with its parent, cannot reach the terminal
(`--new-session`), and drops to the unprivileged `nobody` user when started as root, so that
RLIMIT_NPROC (fork bombs) applies and no capability survives.

Without bwrap, the sandbox still applies rlimits, a minimal environment and a network namespace,
but untrusted code can read what the user can: results say so (`filesystem_isolation`).
"""

from __future__ import annotations

import os
import shutil
import site
import sys
from pathlib import Path

NOBODY = 65534
ETC_FILES = ("ld.so.cache", "ld.so.conf", "localtime", "nsswitch.conf", "passwd", "group", "alternatives")


def find_bwrap(configured: str | None = None) -> str | None:
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    return shutil.which("bwrap")


def _python_roots(python: str) -> list[Path]:
    """Folders the interpreter needs: its installation and, for our own interpreter, its venv and
    site-packages. Entries under /usr are covered by the /usr bind already."""
    roots: set[Path] = set()
    real = Path(os.path.realpath(python))
    roots.add(real.parent.parent)
    if Path(python).resolve() == Path(sys.executable).resolve() or os.path.realpath(sys.executable) == str(real):
        roots |= {Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix)}
        roots |= {Path(p) for p in site.getsitepackages() if Path(p).is_dir()}
    venv = Path(python).parent.parent
    if (venv / "pyvenv.cfg").is_file():
        roots.add(venv)
    keep = sorted(r for r in roots if r.is_dir() and not str(r).startswith("/usr/") and r != Path("/"))
    # drop roots inside other roots (binding both is harmless but noisy)
    return [r for r in keep if not any(o != r and o in r.parents for o in keep)]


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    for name in ETC_FILES:
        path = Path("/etc") / name
        if path.exists():
            args += ["--ro-bind", str(path), str(path)]
    return args


def _parent_dirs(targets: list[Path]) -> list[str]:
    """bwrap creates missing parents of a bind target with mode 0700, which `nobody` can't
    traverse; create them first, world-readable (they hold nothing but the mount points)."""
    made: list[str] = []
    args: list[str] = []
    for target in targets:
        for parent in reversed(target.parents):
            if str(parent) in ("/", "/usr", "/tmp", "/proc", "/dev") or str(parent) in made:
                continue
            made.append(str(parent))
            args += ["--perms", "0755", "--dir", str(parent)]
    return args


def jail_argv(
    bwrap: str, workdir: Path, python: str, *, isolate_network: bool, disk_bytes: int, script_fd: int, script: str
) -> list[str]:
    """The bwrap command line to put in front of the launcher. `workdir` is a path inside the jail:
    a folder of /tmp, which is a tmpfs of `disk_bytes`, so that the folder and /tmp together hold
    at most that much (the code writes nowhere else: the rest is read-only). The script is copied
    into it from `script_fd`. The tmpfs dies with the jail: the launcher reports what was left."""
    roots = _python_roots(python)
    args = [
        bwrap,
        # /tmp's tmpfs first: parents made before it (a venv under /tmp, say) would be hidden by it
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--perms",
        "1777",
        "--size",
        str(disk_bytes),
        "--tmpfs",
        "/tmp",
        *_parent_dirs([Path("/etc/x"), *roots]),
        *_system_binds(),
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--hostname",
        "sandbox",
    ]
    if isolate_network:
        args.append("--unshare-net")
    for root in roots:
        args += ["--ro-bind", str(root), str(root)]
    args += ["--perms", "0777", "--dir", str(workdir)]
    args += ["--perms", "0644", "--file", str(script_fd), str(workdir / script), "--chdir", str(workdir)]
    # the jail's root and /dev are tmpfs mounts without a size, writable by the code when it keeps
    # the user's id (no root: a user namespace): read-only, so /tmp's quota is all there is to fill
    args += ["--remount-ro", "/dev", "--remount-ro", "/"]
    if os.geteuid() == 0:
        # the launcher drops to `nobody` itself (after rlimits) and, as the code's supervisor,
        # kills what the code left running: these three capabilities and no other
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_KILL"]
    else:
        args.append("--unshare-user")
    return args


def drop_ids() -> dict[str, int] | None:
    """When root, the ids the launcher drops to (`nobody`); otherwise the code keeps the user's."""
    return {"uid": NOBODY, "gid": NOBODY} if os.geteuid() == 0 else None
