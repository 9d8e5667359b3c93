"""Issue #23, class 6: the python sandbox must not fill the host, leak host files through links,
or let a large stdin stretch its wall clock.

Real code in the real sandbox (bubblewrap jail, and the fallback without it where the attack is
about the host side). Temporary folders are redirected to the test's own folder, so that what a
run leaves behind is seen exactly.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from toolkit.tools.python.launcher import remove_tree
from toolkit.tools.python.sandbox import SandboxLimits, run_python

MB = 1024 * 1024
SECRET = "host-file-secret-41d7c2"
MODES = ["jailed", "without-bwrap"]


def run(code: str, mode: str = "jailed", *, stdin: str | None = None, keep_dir: Path | None = None, **settings):
    jailed = mode == "jailed"
    if jailed and shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    limits = SandboxLimits.from_settings(
        {
            "timeout_s": 20,
            "cpu_s": 20,
            "filesystem_isolation": jailed,
            "require_filesystem_isolation": jailed,
            **settings,
        }
    )
    return asyncio.run(run_python(code, limits, stdin=stdin, keep_dir=keep_dir))


@pytest.fixture()
def own_tmp(tmp_path, monkeypatch):
    """The sandbox's temporary folders go here: whatever a run leaves is in this folder."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture()
def host_secret(tmp_path):
    secret = tmp_path / "outside" / "credentials"
    secret.parent.mkdir()
    secret.write_text(SECRET)
    secret.chmod(0o600)
    return secret


def written(result) -> int:
    lines = [line for line in result.stdout.splitlines() if line.startswith("wrote ")]
    assert lines, (result.stdout, result.stderr)
    return int(lines[-1].split()[1])


FILL = """
import os
total = 0
for i in range({files}):
    folder = os.path.join('d%d' % (i // 100), 'e%d' % (i % 10))
    os.makedirs(folder, exist_ok=True)
    try:
        with open(os.path.join(folder, 'f%d' % i), 'wb') as f:
            for _ in range({chunks}):
                f.write(b'x' * {chunk})
                f.flush()
                total += {chunk}
    except OSError:
        pass
print('wrote', total)
"""


def test_a_hundred_16_mb_files_stay_within_the_disk_quota(own_tmp):
    """The red team's case: no total, only a per-file cap, so 100 x 16 MB wrote 1.6 GB."""
    result = run(FILL.format(files=100, chunks=16, chunk=MB), file_size_mb=16, disk_mb=64)
    assert written(result) <= 64 * MB
    assert not list(own_tmp.rglob("f*"))  # and none of it on the host


def test_the_quota_setting_holds_for_many_small_files_in_many_folders(own_tmp):
    """A variant: 2,000 files of 32 KB across 200 folders (each well under the per-file cap)."""
    result = run(FILL.format(files=2000, chunks=1, chunk=32 * 1024), disk_mb=16)
    assert written(result) <= 16 * MB
    assert "wrote" in result.stdout


def test_one_big_file_is_stopped_by_the_quota_before_the_file_size_limit(own_tmp):
    """A variant: a file-size limit above the quota; the quota is the ceiling, with its reason."""
    code = "f = open('big', 'wb')\nfor _ in range(64): f.write(b'x' * 1024 * 1024); f.flush()\nprint('wrote 64 MB')"
    result = run(code, file_size_mb=64, disk_mb=8)
    assert "wrote 64 MB" not in result.stdout
    assert result.reason == "disk quota (8 MB for the work folder and /tmp together) exceeded"


DEEP_TREE = """
import os
for level in range(1200):
    os.mkdir('d')
    os.chdir('d')
open('bottom.txt', 'w').write('x' * 100)
print('deep')
"""


@pytest.mark.parametrize("mode", MODES)
def test_a_1200_deep_tree_is_listed_and_removed(own_tmp, mode):
    """The red team's case: the host-side listing and rmtree recursed, hit RecursionError and
    left the whole tree behind."""
    result = run(DEEP_TREE, mode)
    assert result.stdout == "deep\n", result.stderr
    assert [f["bytes"] for f in result.files] == [100]
    assert result.files[0]["path"].endswith("d/bottom.txt")
    assert os.listdir(own_tmp) == []  # nothing left behind


def test_a_deep_tree_is_kept_without_recursion(own_tmp, tmp_path):
    """A variant: the same tree copied out with keep_dir."""
    keep = tmp_path / "kept"
    try:
        result = run(DEEP_TREE, keep_dir=keep)
        assert result.stdout == "deep\n"
        depth, folder = 0, keep  # walked by hand: rglob would recurse
        while (folder / "d").is_dir():
            folder, depth = folder / "d", depth + 1
        assert depth == 1200 and (folder / "bottom.txt").read_text() == "x" * 100
        assert os.listdir(own_tmp) == []
    finally:
        assert remove_tree(keep) == []  # pytest's own clean-up of tmp_path would recurse


LINKS = """
import os
os.symlink('/etc/shadow', 'shadow')
os.symlink('/nonexistent/file', 'missing')
os.symlink({secret!r}, 'credentials')
os.mkdir('sub')
os.symlink('/etc', 'sub/etc')
open('real.txt', 'w').write('abc')
print('linked')
"""


@pytest.mark.parametrize("mode", MODES)
def test_the_files_listing_never_stats_a_links_target(host_secret, mode):
    """The red team's case: the listing stat()ed links as root on the host, telling whether
    /etc/shadow exists and how big it is."""
    result = run(LINKS.format(secret=str(host_secret)), mode)
    assert result.stdout == "linked\n", result.stderr
    assert result.files == [{"path": "real.txt", "bytes": 3}]


@pytest.mark.parametrize("mode", MODES)
def test_keep_dir_never_copies_a_links_target(host_secret, tmp_path, mode):
    """The red team's case: keep_dir copied the contents of the files links pointed to (and of
    linked folders: /etc)."""
    keep = tmp_path / "kept"
    result = run(LINKS.format(secret=str(host_secret)), mode, keep_dir=keep)
    assert result.stdout == "linked\n", result.stderr
    kept = sorted(str(p.relative_to(keep)) for p in keep.rglob("*"))
    assert kept == ["real.txt", "sub"]
    assert not any(p.is_symlink() for p in keep.rglob("*"))


def test_a_large_stdin_is_written_under_the_wall_clock():
    """The red team's case: stdin was written (waiting for the code to read it) before the
    timeout started, so a program that reads late ran well past its limit."""
    code = "import sys, time\ntime.sleep(4)\ndata = sys.stdin.read()\nprint('read', len(data))"
    result = run(code, stdin="x" * (2 * MB), timeout_s=1)
    assert result.timed_out
    assert "read" not in result.stdout


def test_a_program_that_never_reads_its_stdin_is_stopped_at_the_timeout():
    """A variant: a program that never reads a stdin larger than a pipe holds; before, the
    sandbox waited on the write forever."""
    code = "import time\nwhile True: time.sleep(1)"

    async def bounded():
        limits = SandboxLimits(timeout_s=1, cpu_s=5)
        return await asyncio.wait_for(run_python(code, limits, stdin="y" * (4 * MB)), 60)

    result = asyncio.run(bounded())
    assert result.timed_out and result.reason.startswith("timeout")
