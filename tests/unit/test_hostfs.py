"""Which filesystem holds a host path, read from /proc/self/mountinfo's text."""

from __future__ import annotations

import pytest

from persistaudit.hostfs import fs_type_of, is_network, mount_points

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:40 / /mnt/share rw,relatime shared:20 - nfs4 server:/export rw,vers=4.2
31 30 0:41 / /mnt/share/local rw shared:21 - tmpfs tmpfs rw
32 22 0:42 / /srv/my\\040files rw - cifs //nas/files rw
33 22 0:43 / /mnt/sharepoint rw - ext4 /dev/sdb1 rw
"""


@pytest.mark.parametrize(
    ("path", "fs_type"),
    [
        ("/home/user/app/data", "ext4"),
        ("/mnt/share", "nfs4"),
        ("/mnt/share/app/data", "nfs4"),
        ("/mnt/share/local/x", "tmpfs"),  # the deepest mount point wins
        ("/mnt/sharepoint/x", "ext4"),  # a name that starts like another is not under it
        ("/srv/my files/db", "cifs"),  # \040 in mountinfo is a space
        ("/mnt/share/../other", "ext4"),  # normalised before matching
    ],
)
def test_fs_type_of_a_path(path: str, fs_type: str) -> None:
    assert fs_type_of(path, MOUNTINFO) == fs_type


def test_a_later_mount_on_the_same_point_hides_the_earlier() -> None:
    text = MOUNTINFO + "40 22 0:50 / /mnt/share rw - ext4 /dev/sdc1 rw\n"
    assert fs_type_of("/mnt/share/x", text) == "ext4"


def test_malformed_lines_are_skipped() -> None:
    assert mount_points("garbage\n1 2 3\n" + MOUNTINFO)[0] == ("/", "ext4")
    assert fs_type_of("/x", "") == ""


@pytest.mark.parametrize(
    ("fs_type", "network"),
    [("nfs", True), ("NFS4", True), ("cifs", True), ("smb3", True), ("ext4", False), ("", False)],
)
def test_network_filesystems(fs_type: str, network: bool) -> None:
    assert is_network(fs_type) is network
