"""The python sandbox's launcher: the first program that runs in the sandbox, as
`python -I -S -c SOURCE CONFIG` (SOURCE is this file: the jail does not see the toolkit package).

Standard library only, and self-contained; it may run under an older interpreter than toolkit's
(the tool's `python` setting), so no syntax newer than Python 3.8.

In order:
1. without the jail, unshare the network (the jail brings its own network namespace);
2. fence the kernel keyrings: join a fresh, empty session keyring (the caller's is no longer this
   process's), then install a seccomp filter that fails `add_key`, `request_key` and `keyctl`
   with EPERM, and every system call made through a foreign ABI (x32, or 32-bit `int 0x80` calls
   from a 64-bit process, the classic way around a filter that checks numbers only). The filter is
   inherited by everything the code starts and can't be removed;
3. jailed, stay as the code's parent (`supervise`): fork the code, hold the wall clock, kill every
   process of the sandbox when the code ends or time is up, then, as the code's user, list the
   files it left and, when asked, stream them as a tar to the host (the work folder is a tmpfs
   that dies with the jail). Without the jail, become the code (`become_code`): rlimits, the
   unprivileged user, exec.

The work folder's tree is the code's to shape (thousands of levels deep, symlinks to host files,
FIFOs), so `iter_tree` neither follows a symlink nor recurses; the host uses the same functions
(`list_files`, `export_tree`, `remove_tree`) on its side.
"""

import ctypes
import errno
import json
import os
import select
import signal
import stat
import sys
import tarfile
import time

CLONE_NEWNET, CLONE_NEWUSER = 0x40000000, 0x10000000
KEYCTL_JOIN_SESSION_KEYRING = 1
# (AUDIT_ARCH_*, (add_key, request_key, keyctl)) of the native ABIs the filter knows
ABIS = {"x86_64": (0xC000003E, (248, 249, 250)), "aarch64": (0xC00000B7, (217, 218, 219))}
X32_SYSCALL_BIT = 0x40000000
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO = 0x7FFF0000, 0x00050000
BPF_LD_W_ABS, BPF_JEQ_K, BPF_JGE_K, BPF_RET_K = 0x20, 0x15, 0x35, 0x06
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_LISTED_PATH = 512  # characters of a listed path (a deep tree's paths run to kilobytes)


class TreeChanged(OSError):
    """A directory's parent is not the one the walk came from: the tree moved under the walk."""


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _oserror(what):
    err = ctypes.get_errno()
    return OSError(err, f"{what}: {os.strerror(err)}")


def unshare_network():
    unshare = getattr(os, "unshare", None)
    if unshare is None:
        libc = _libc()

        def unshare(flags):
            if libc.unshare(flags) != 0:
                raise _oserror("unshare")

    try:
        unshare(CLONE_NEWNET)
        return "network namespace"
    except OSError:
        try:
            unshare(CLONE_NEWUSER | CLONE_NEWNET)
            return "user + network namespace"
        except OSError as exc:
            return "unavailable: unshare failed (" + (exc.strerror or str(exc)) + ")"


def keyring_filter(machine):
    """The seccomp program (a list of (code, jt, jf, k)) for `machine`, or None if unknown."""
    if machine not in ABIS:
        return None
    arch, calls = ABIS[machine]
    prog = [
        (BPF_LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        (BPF_JEQ_K, 1, 0, arch),
        (BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | errno.ENOSYS),  # a foreign ABI: nothing works
        (BPF_LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
    ]
    checks = ([(BPF_JGE_K, X32_SYSCALL_BIT)] if machine == "x86_64" else []) + [(BPF_JEQ_K, nr) for nr in calls]
    for i, (code, k) in enumerate(checks):
        prog.append((code, len(checks) - i, 0, k))  # jump over the rest and the allow, to the deny
    prog.append((BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW))
    prog.append((BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | errno.EPERM))
    return prog


def fence_keyrings():
    """A fresh session keyring, then the seccomp filter. Returns how it went, in words; raises
    OSError if the filter could not be installed on a machine it knows."""
    libc = _libc()
    machine = os.uname().machine
    keyctl = ABIS.get(machine, (0, (0, 0, 0)))[1][2]
    libc.syscall.restype = ctypes.c_long
    if keyctl and libc.syscall(ctypes.c_long(keyctl), KEYCTL_JOIN_SESSION_KEYRING, None) < 0:
        if ctypes.get_errno() != errno.ENOSYS:  # ENOSYS: a kernel without keyrings, nothing to fence
            raise _oserror("joining a fresh session keyring")
    prog = keyring_filter(machine)
    if prog is None:
        return "fresh session keyring only: no seccomp filter for " + machine

    class SockFilter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint32)]

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]

    filters = (SockFilter * len(prog))(*[SockFilter(*ins) for ins in prog])
    fprog = SockFprog(len(prog), filters)
    zero = ctypes.c_ulong(0)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), zero, zero, zero) != 0:
        raise _oserror("prctl(PR_SET_NO_NEW_PRIVS)")
    if libc.prctl(PR_SET_SECCOMP, ctypes.c_ulong(SECCOMP_MODE_FILTER), ctypes.byref(fprog), zero, zero) != 0:
        raise _oserror("installing the seccomp filter")
    return "fresh session keyring; keyctl, add_key and request_key denied (seccomp)"


# ---- the work folder, walked without following links or recursing ---------------------------


def _ident(st):
    return (st.st_dev, st.st_ino)


def _scan(fd):
    with os.scandir(fd) as entries:
        return list(entries)


def iter_tree(root, on_leave=None, max_entries=None):
    """Yield (dir_fd, relative path, DirEntry) for every entry under `root`, depth first, with one
    directory open at a time: down by openat(name, O_NOFOLLOW), up by "..", which must be the
    directory the walk came from. `on_leave(parent_fd, name)` runs as a directory is left (after
    its entries). A directory that can't be opened is skipped (and reported as an entry all the
    same); the walk stops after `max_entries` entries."""
    fd = os.open(root, DIR_FLAGS)
    try:
        idents, names = [_ident(os.fstat(fd))], []
        pending = [None]  # per open level: the subdirectory names still to visit (None: not scanned)
        seen = 0
        while pending:
            if pending[-1] is None:
                pending[-1] = []
                for entry in _scan(fd):
                    seen += 1
                    if max_entries is not None and seen > max_entries:
                        return
                    if entry.is_dir(follow_symlinks=False):
                        pending[-1].append(entry.name)
                    yield fd, "/".join(names + [entry.name]), entry
            if pending[-1]:
                name = pending[-1].pop()
                try:
                    child = os.open(name, DIR_FLAGS, dir_fd=fd)
                except OSError:
                    continue
                os.close(fd)
                fd = child
                names.append(name)
                idents.append(_ident(os.fstat(fd)))
                pending.append(None)
                continue
            pending.pop()
            if not pending:
                return
            parent = os.open("..", DIR_FLAGS, dir_fd=fd)
            if _ident(os.fstat(parent)) != idents[-2]:
                os.close(parent)
                raise TreeChanged(errno.ESTALE, "the folder was moved during the walk")
            os.close(fd)
            fd = parent
            idents.pop()
            name = names.pop()
            if on_leave is not None:
                on_leave(fd, name)
    finally:
        os.close(fd)


def list_files(root, skip=(), limit=50, max_entries=100000):
    """Regular files under `root` (never a link's target), [{path, bytes}] sorted by path."""
    found = []
    for _, path, entry in iter_tree(root, max_entries=max_entries):
        if path in skip or not entry.is_file(follow_symlinks=False):
            continue
        if len(path) > MAX_LISTED_PATH:
            path = path[:200] + "/.../" + path[-200:]
        found.append({"path": path, "bytes": entry.stat(follow_symlinks=False).st_size})
        if len(found) >= limit:
            break
    return sorted(found, key=lambda f: f["path"])


def export_tree(root, fileobj, skip=(), max_entries=100000):
    """Write the regular files and folders under `root` to `fileobj` as a tar stream. Symlinks,
    devices and FIFOs are left out: a link's target is never read."""
    with tarfile.open(fileobj=fileobj, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for dir_fd, path, entry in iter_tree(root, max_entries=max_entries):
            if path in skip:
                continue
            if entry.is_dir(follow_symlinks=False):
                info = tarfile.TarInfo(path)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
                continue
            try:
                fd = os.open(entry.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
            except OSError:
                continue
            with os.fdopen(fd, "rb") as f:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    continue
                info = tarfile.TarInfo(path)
                info.size, info.mode, info.mtime = st.st_size, 0o644, int(st.st_mtime)
                tar.addfile(info, f)


def remove_tree(root):
    """Delete `root` and everything under it, links as links. Returns what could not be removed."""
    left = []

    def rmdir(parent_fd, name):
        try:
            os.rmdir(name, dir_fd=parent_fd)
        except OSError as exc:
            left.append(f"{name}: {exc.strerror}")

    try:
        for dir_fd, _, entry in iter_tree(root, on_leave=rmdir):
            if not entry.is_dir(follow_symlinks=False):
                try:
                    os.unlink(entry.name, dir_fd=dir_fd)
                except OSError as exc:
                    left.append(f"{entry.name}: {exc.strerror}")
        os.rmdir(root)
    except FileNotFoundError:
        pass
    except OSError as exc:
        left.append(f"{root}: {exc.strerror or exc}")
    return left


# ---- the code's process -----------------------------------------------------------------------


def become_code(cfg, status):
    """Limits, the unprivileged user, the status line, then exec: this process is the code now."""
    import resource

    for name, value in cfg["rlimits"].items():
        try:
            resource.setrlimit(getattr(resource, name), (value[0], value[1]))
        except (ValueError, OSError) as exc:
            status.setdefault("rlimit_errors", []).append(name + ": " + str(exc))
    if cfg.get("drop_to"):
        try:
            drop_privileges(cfg["drop_to"])
            status["user"] = "nobody" if cfg["drop_to"]["uid"] == 65534 else "uid " + str(cfg["drop_to"]["uid"])
        except OSError as exc:
            report(cfg, dict(status, error="cannot drop privileges: " + str(exc)))
            os._exit(126)
    report(cfg, status)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # the status pipe, the export pipe, bwrap's leftovers
    os.execv(cfg["argv"][0], cfg["argv"])


def drop_privileges(ids):
    os.setgroups([])
    os.setgid(ids["gid"])
    os.setuid(ids["uid"])


def report(cfg, status):
    os.write(cfg["status_fd"], (json.dumps(status) + "\n").encode())


def wait_with_deadline(pid, timeout_s):
    """The child's wait status, or None if it was still running at the deadline."""
    deadline = time.monotonic() + timeout_s
    pidfd = None
    if hasattr(os, "pidfd_open"):
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            pidfd = None
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if pidfd is not None:
                select.select([pidfd], [], [], left)
            else:
                time.sleep(min(left, 0.02))
    finally:
        if pidfd is not None:
            os.close(pidfd)


def supervise(cfg, status):
    """Jailed (a PID namespace of our own): run the code as a child, then clean up and report."""
    pid = os.fork()
    if pid == 0:
        try:
            become_code(cfg, status)
        except OSError as exc:  # the exec itself failed: say why on the code's stderr (else a bare 127)
            os.write(2, ("sandbox: could not start the code: " + str(exc) + "\n").encode())
        finally:
            os._exit(127)
    wait_status = wait_with_deadline(pid, cfg["timeout_s"])
    timed_out = wait_status is None
    try:
        os.kill(-1, signal.SIGKILL)  # the whole namespace but us: the code and all it started
    except OSError:
        pass
    if timed_out:
        wait_status = os.waitpid(pid, 0)[1]
    final = {"timed_out": timed_out, "exit_code": None, "signal": None}
    if os.WIFSIGNALED(wait_status):
        final["signal"] = os.WTERMSIG(wait_status)
    else:
        final["exit_code"] = os.WEXITSTATUS(wait_status)
    if cfg.get("drop_to"):
        drop_privileges(cfg["drop_to"])  # read what the code left with the code's rights, no more
    workdir, skip = cfg["workdir"], {cfg["script"]}
    try:
        final["files"] = list_files(workdir, skip)
        if cfg.get("export_fd") is not None:
            with os.fdopen(cfg["export_fd"], "wb") as out:
                export_tree(workdir, out, skip)
    except (OSError, tarfile.TarError) as exc:
        final["files_error"] = str(exc)
    report(cfg, final)
    if final["signal"]:
        os._exit(128 + final["signal"])
    os._exit(final["exit_code"] or 0)


def main():
    cfg = json.loads(sys.argv[1])
    status = {"network_isolation": "not requested"}
    if cfg["isolate_network"]:
        status["network_isolation"] = unshare_network()
    try:
        status["keyring_isolation"] = fence_keyrings()
    except OSError as exc:
        report(cfg, dict(status, error="cannot fence the kernel keyrings: " + str(exc)))
        os._exit(126)
    if cfg.get("supervise"):
        supervise(cfg, status)
    else:
        become_code(cfg, status)


if __name__ == "__main__":
    main()
