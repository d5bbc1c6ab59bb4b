"""The device root filesystem, built once per test session by images/build-rootfs.sh (about
2-3 minutes: debootstrap, apt-get, the project's wheel, the tarball) and shared by the slow
image tests: the build checks (test_build_rootfs.py) and the boot in systemd-nspawn
(test_boot.py). Tests that change the tree work on an overlay of it (``scratch_root``), so
each one starts from the image as built.

CAC_IMAGE_WORKDIR=DIR builds under DIR (about 2.5 GB with the tarball). To work on the tests
themselves, CAC_IMAGE_PREBUILT=DIR uses DIR/rootfs, DIR/rootfs.tar.gz and DIR/build.log from
an earlier `build-rootfs.sh --out DIR/rootfs --tarball DIR/rootfs.tar.gz > DIR/build.log`
instead of building (CI never sets it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from image_support import IMAGES, Built

BUILD_TIMEOUT = 40 * 60


def _needs_root_and_debootstrap() -> None:
    if os.geteuid() != 0:
        pytest.skip("building a root filesystem needs root")
    if shutil.which("debootstrap") is None:
        pytest.skip("debootstrap is missing: apt-get install debootstrap")


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    _needs_root_and_debootstrap()
    prebuilt = os.environ.get("CAC_IMAGE_PREBUILT")
    if prebuilt:
        d = Path(prebuilt)
        yield Built(d / "rootfs", d / "rootfs.tar.gz", float("nan"),
                    (d / "build.log").read_text())
        return
    base = os.environ.get("CAC_IMAGE_WORKDIR")
    work = Path(tempfile.mkdtemp(prefix="cac-image-", dir=base)) if base \
        else tmp_path_factory.mktemp("image")
    try:
        t0 = time.monotonic()
        r = subprocess.run(["bash", str(IMAGES / "build-rootfs.sh"), "--out",
                            str(work / "rootfs"), "--tarball", str(work / "rootfs.tar.gz")],
                           capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False)
        seconds = time.monotonic() - t0
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        yield Built(work / "rootfs", work / "rootfs.tar.gz", seconds, r.stdout)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # about 2.5 GB
