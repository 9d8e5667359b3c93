"""Filesystem, process and privilege isolation for the python sandbox, with bubblewrap (`bwrap`).

Where `bwrap` is installed (Debian: `apt-get install -y bubblewrap`) the sandboxed interpreter
sees a new root: the system's `/usr` (and its `/bin`, `/lib` links) and the Python installation
read-only, a private `/tmp` of bounded size (a tmpfs of `disk_mb`) that holds its work folder,
and nothing else: no home folders, no project files, no other process's `/proc` entries. It runs in new PID, IPC, UTS and (unless
the network is allowed) network namespaces, dies with its parent, cannot reach the terminal
(`--new-session`), and, when started as root, drops to a user id of its own that no account
and no other process has (`drop_ids`), so that RLIMIT_NPROC (fork bombs) counts this run's
processes alone and no capability survives. Not `nobody`: the browser runs Chromium as `nobody`,
and Chromium's threads counted against the same RLIMIT_NPROC left the code none (execve failed
with EAGAIN while a browser was open); two runs at once would also share one budget and could
signal each other.

Without bwrap, the sandbox still applies rlimits, a minimal environment and a network namespace,
but untrusted code can read what the user can: results say so (`filesystem_isolation`).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import site
import sys
from pathlib import Path

NOBODY = 65534
# where a run's own user id is drawn from: above every account (a Debian system's top regular
# range ends at 60000, `nobody` is 65534, systemd's dynamic users stay below 65535)
RUN_IDS = range(0x10000000, 0x7FFFFFFF)
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
        # the launcher drops to the run's own user id itself (after rlimits) and, as the code's supervisor,
        # kills what the code left running: these three capabilities and no other
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_KILL"]
    else:
        args.append("--unshare-user")
    return args


def drop_ids() -> dict[str, int] | None:
    """When root, the ids the launcher drops to: a user and group id of the run's own, or
    `nobody`'s where this user namespace maps no such ids (a container mapping 65,536 ids);
    otherwise None: the code keeps the user's."""
    if os.geteuid() != 0:
        return None
    for _ in range(16):
        uid = RUN_IDS.start + secrets.randbelow(len(RUN_IDS))
        if _mapped(uid, "/proc/self/uid_map") and _mapped(uid, "/proc/self/gid_map") and not _has_account(uid):
            return {"uid": uid, "gid": uid}
    return {"uid": NOBODY, "gid": NOBODY}


def _mapped(an_id: int, map_file: str) -> bool:
    """Whether this user namespace maps `an_id` (setuid to an unmapped id fails with EINVAL)."""
    try:
        lines = Path(map_file).read_text().splitlines()
    except OSError:
        return False
    for line in lines:
        inside, _outside, count = (int(x) for x in line.split())
        if inside <= an_id < inside + count:
            return True
    return False


def _has_account(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True
