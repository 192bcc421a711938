"""bpffs: the fstab entry and the mount, with the mount table and fstab
faked by files and mount(8) by a stand-in run_command."""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.vos.fastpath.plugins.module_utils import (
    _bpffs,
    _files,
)
from ansible_collections.vos.fastpath.plugins.modules import bpffs

ROOT_FSTAB = "UUID=1234 / ext4 errors=remount-ro 0 1\n"


@pytest.mark.parametrize("fstab", [
    "bpffs /sys/fs/bpf bpf defaults 0 0\n",
    "none /sys/fs/bpf/ bpf rw,mode=700 0 0\n",
    "  tmpfs\t/sys/fs/bpf  tmpfs defaults 0 0",
    ROOT_FSTAB + "bpf /sys/fs/bpf bpf defaults\n",
])
def test_an_entry_for_the_mount_point_is_found(fstab: str) -> None:
    assert _bpffs.has_entry(fstab, "/sys/fs/bpf")


@pytest.mark.parametrize("fstab", [
    "",
    ROOT_FSTAB,
    "# bpffs /sys/fs/bpf bpf defaults 0 0\n",
    "#bpffs /sys/fs/bpf bpf defaults 0 0\n",
    "bpffs /sys/fs/bpf2 bpf defaults 0 0\n",
    "bpffs /sys/fs bpf defaults 0 0\n",
    "/sys/fs/bpf\n",
])
def test_no_entry_for_the_mount_point(fstab: str) -> None:
    assert not _bpffs.has_entry(fstab, "/sys/fs/bpf")


def test_escaped_spaces_are_read_and_written_as_fstab_does() -> None:
    assert _bpffs.has_entry("bpf /run/my\\040bpf bpf defaults 0 0\n",
                            "/run/my bpf")
    assert _bpffs.entry("/run/my bpf/") == \
        "bpffs /run/my\\040bpf bpf defaults 0 0\n"


def test_the_entry_goes_on_a_line_of_its_own() -> None:
    assert _bpffs.with_entry("", "/sys/fs/bpf") == \
        "bpffs /sys/fs/bpf bpf defaults 0 0\n"
    assert _bpffs.with_entry("a / ext4 defaults", "/sys/fs/bpf") == \
        "a / ext4 defaults\nbpffs /sys/fs/bpf bpf defaults 0 0\n"


class FakeHost:
    """A mount table, an fstab and a bpf mount point in a directory; the
    mount command adds a line to the table unless told to fail."""

    def __init__(self, tmp: Path) -> None:
        self.point = tmp / "bpf"
        self.point.mkdir()
        self.mounts = tmp / "mounts"
        self.mounts.write_text("proc /proc proc rw 0 0\n")
        self.fstab = tmp / "fstab"
        self.fstab.write_text(ROOT_FSTAB)
        self.calls: list[list[str]] = []
        self.mount_rc = 0

    def run_command(self, argv: list[str], **kwargs) -> tuple[int, str, str]:
        assert kwargs["environ_update"]["LANG"] == "C"
        self.calls.append(argv)
        if Path(argv[0]).name == "mount" and self.mount_rc == 0:
            with self.mounts.open("a") as f:
                f.write("bpf %s bpf rw,relatime 0 0\n" % argv[-1])
        if self.mount_rc:
            return self.mount_rc, "", "mount: permission denied\n"
        return 0, "", ""

    def args(self, **more) -> dict:
        return dict({"path": str(self.point), "fstab_path": str(self.fstab),
                     "mounts": str(self.mounts)}, **more)


@pytest.fixture
def host(tmp_path: Path) -> FakeHost:
    return FakeHost(tmp_path)


def run(args: dict, host: FakeHost, check: bool = False,
        diff: bool = False) -> dict:
    if check:
        args = dict(args, _ansible_check_mode=True)
    if diff:
        args = dict(args, _ansible_diff=True)
    with patch_module_args(args), mock.patch("sys.stdout") as stdout, \
            pytest.raises(SystemExit), \
            mock.patch.object(bpffs.AnsibleModule, "run_command",
                              side_effect=host.run_command), \
            mock.patch.object(bpffs.AnsibleModule, "get_bin_path",
                              side_effect=lambda name, **kw: "/bin/" + name):
        bpffs.main()
    return json.loads("".join(c.args[0] for c in
                              stdout.write.call_args_list))


def test_mounts_and_persists_once(host: FakeHost) -> None:
    result = run(host.args(), host)
    assert (result["changed"], result["mounted"], result["fstab_changed"]) \
        == (True, True, True)
    assert host.calls == [["/bin/mount", "-t", "bpf", "bpf",
                           str(host.point)]]
    assert host.fstab.read_text() == (
        ROOT_FSTAB + "bpffs %s bpf defaults 0 0\n" % host.point)

    again = run(host.args(), host)
    assert (again["changed"], again["mounted"], again["fstab_changed"]) \
        == (False, False, False)
    assert len(host.calls) == 1


def test_check_mode_changes_nothing(host: FakeHost) -> None:
    result = run(host.args(), host, check=True, diff=True)
    assert (result["changed"], result["mounted"], result["fstab_changed"]) \
        == (True, True, True)
    assert host.calls == []
    assert host.fstab.read_text() == ROOT_FSTAB
    mounts, fstab = result["diff"]
    assert (mounts["before"], mounts["after"]) == (
        "%s: not bpffs\n" % host.point, "%s: bpffs\n" % host.point)
    assert (fstab["before"], fstab["after"]) == (
        ROOT_FSTAB, ROOT_FSTAB + "bpffs %s bpf defaults 0 0\n" % host.point)


def test_fstab_false_leaves_fstab_alone(host: FakeHost) -> None:
    result = run(host.args(fstab=False), host, diff=True)
    assert (result["mounted"], result["fstab_changed"]) == (True, False)
    assert host.fstab.read_text() == ROOT_FSTAB
    assert len(result["diff"]) == 1


def test_an_existing_entry_is_kept_as_it_is(host: FakeHost) -> None:
    text = ROOT_FSTAB + "none %s/ bpf rw,mode=700 0 0\n" % host.point
    host.fstab.write_text(text)
    result = run(host.args(), host)
    assert (result["mounted"], result["fstab_changed"]) == (True, False)
    assert host.fstab.read_text() == text


def test_a_missing_fstab_is_created(host: FakeHost) -> None:
    host.fstab.unlink()
    result = run(host.args(), host)
    assert result["fstab_changed"] is True
    assert host.fstab.read_text() == \
        "bpffs %s bpf defaults 0 0\n" % host.point


def test_a_mounted_bpffs_is_not_mounted_again(host: FakeHost) -> None:
    host.mounts.write_text("bpf %s bpf rw 0 0\n" % host.point)
    result = run(host.args(fstab=False), host)
    assert (result["changed"], result["mounted"]) == (False, False)
    assert host.calls == []


def test_another_file_system_there_is_not_bpffs(host: FakeHost) -> None:
    host.mounts.write_text("tmpfs %s tmpfs rw 0 0\n" % host.point)
    result = run(host.args(fstab=False), host)
    assert result["mounted"] is True
    assert len(host.calls) == 1


def test_a_failed_mount_says_what_to_do_and_writes_nothing(
        host: FakeHost) -> None:
    host.mount_rc = 32
    result = run(host.args(), host)
    assert result["failed"] is True
    assert result["msg"] == (
        "Could not mount bpffs on %s: run as root (CAP_SYS_ADMIN) on a "
        "kernel built with CONFIG_BPF_SYSCALL=y." % host.point)
    assert (result["rc"], result["stderr"]) == (32,
                                                "mount: permission denied\n")
    assert result["cmd"] == "/bin/mount -t bpf bpf %s" % host.point
    assert host.fstab.read_text() == ROOT_FSTAB


def test_a_failed_fstab_write_unmounts_again(host: FakeHost) -> None:
    full = OSError(28, "No space left on device")
    with mock.patch.object(_files, "write_atomically", side_effect=full):
        result = run(host.args(), host)
    assert result["failed"] is True
    assert result["msg"] == (
        "Could not write %s (No space left on device): check that its "
        "directory exists and is writable; nothing was changed."
        % host.fstab)
    assert host.calls[-1] == ["/bin/umount", str(host.point)]


def test_a_mount_point_that_is_not_a_directory_is_refused(
        host: FakeHost) -> None:
    result = run(host.args(path=str(host.point / "missing")), host)
    assert result["failed"] is True
    assert result["msg"] == (
        "The mount point %s is not a directory: create it first, or use "
        "/sys/fs/bpf." % (host.point / "missing"))
    assert host.calls == []
