"""A private CUPS server for tests (FIELD-NOTES: a private cupsd with a cups-pdf queue): its
own config, spool and logs under a 0755 temp dir (CUPS filters run as ``lp``), listening on
a free loopback port, one held cups-pdf queue per station; stopped by its PID."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from helpers import free_port

PPD = Path("/usr/share/ppd/cups-pdf/CUPS-PDF_opt.ppd")


def cups_available() -> bool:
    return bool(shutil.which("cupsd") and shutil.which("lpadmin") and shutil.which("pdfinfo")
                and shutil.which("gs") and PPD.exists())


class PrivateCups:
    def __init__(self, queues: tuple[str, ...]) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="cac-cups-", dir="/tmp"))
        self.dir.chmod(0o755)
        for sub in ("etc", "spool", "tmp", "cache", "state", "log", "out", "pdfspool"):
            (self.dir / sub).mkdir()
        for sub in ("tmp", "out", "pdfspool"):
            (self.dir / sub).chmod(0o1777)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.name = f"cactest{self.port}"
        d = self.dir
        (d / "etc" / "cupsd.conf").write_text(f"""Listen 127.0.0.1:{self.port}
ServerName 127.0.0.1
Browsing No
WebInterface No
DefaultAuthType None
LogLevel warn
<Location />
Order allow,deny
Allow 127.0.0.1
</Location>
<Policy default>
<Limit All>
Order deny,allow
</Limit>
</Policy>
""")
        (d / "etc" / "cups-files.conf").write_text(f"""ServerRoot {d}/etc
RequestRoot {d}/spool
TempDir {d}/tmp
CacheDir {d}/cache
StateDir {d}/state
AccessLog {d}/log/access_log
ErrorLog {d}/log/error_log
PageLog {d}/log/page_log
Printcap {d}/printcap
User lp
Group lp
SystemGroup root
FileDevice No
""")
        # cups-pdf reads /etc/cups/cups-pdf-NAME.conf for the URI cups-pdf:/NAME (built in)
        self.pdf_conf = Path(f"/etc/cups/cups-pdf-{self.name}.conf")
        self.pdf_conf.write_text(f"Out {d}/out\nSpool {d}/pdfspool\nLog {d}/log\n")
        with (d / "cupsd.stderr").open("wb") as err:
            self.proc = subprocess.Popen(  # noqa: S603
                [shutil.which("cupsd") or "cupsd", "-f", "-c", str(d / "etc" / "cupsd.conf"),
                 "-s", str(d / "etc" / "cups-files.conf")],
                stdout=subprocess.DEVNULL, stderr=err)
        try:
            self._configure(queues)
        except BaseException:
            self.stop()  # no cupsd or config file left behind
            raise

    def _configure(self, queues: tuple[str, ...]) -> None:
        d = self.dir
        deadline = time.monotonic() + 20
        while subprocess.run(["lpstat", "-h", self.host, "-r"], capture_output=True,
                             check=False, timeout=10).returncode != 0:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"cupsd did not start: {(d / 'cupsd.stderr').read_text()}")
            time.sleep(0.1)
        for q in queues:
            while True:  # a fresh cupsd sometimes drops the first connections
                try:
                    self.tool("lpadmin", "-p", q, "-E", "-v", f"cups-pdf:/{self.name}", "-P",
                              str(PPD), "-o", "job-hold-until-default=indefinite")
                    break
                except RuntimeError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)

    @property
    def spool(self) -> Path:
        return self.dir / "spool"

    def tool(self, *args: str) -> str:
        done = subprocess.run([args[0], "-h", self.host, *args[1:]], capture_output=True,
                              text=True, timeout=30, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{args}: {done.stderr.strip()}")
        return done.stdout

    def submit(self, queue: str, pdf: Path) -> str:
        """``lp`` as the station's print dialog does: the job id."""
        out = self.tool("lp", "-d", queue, str(pdf))  # "request id is s1-3 (1 file(s))"
        return out.split("request id is ", 1)[1].split()[0].rsplit("-", 1)[1]

    def completed(self) -> set[str]:
        out = self.tool("lpstat", "-W", "completed", "-o")
        return {line.split()[0].rsplit("-", 1)[1] for line in out.splitlines() if line.strip()}

    def outputs(self, job_id: str) -> list[Path]:
        return sorted((self.dir / "out").rglob(f"*job_{job_id}.pdf"))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.pdf_conf.unlink(missing_ok=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def make_pdf(path: Path, pages: int, color: bool = False) -> Path:
    """A PDF of ``pages`` pages (Ghostscript's ps2pdf), red boxes if ``color``."""
    ink = "1 0 0 setrgbcolor 72 72 200 200 rectfill " if color else ""
    body = "".join(f"{ink}/Helvetica findfont 24 scalefont setfont 72 720 moveto "
                   f"(page {i + 1}) show showpage\n" for i in range(pages))
    ps = path.with_suffix(".ps")
    ps.write_text("%!PS\n" + body)
    subprocess.run(["ps2pdf", str(ps), str(path)], check=True, timeout=60)
    return path


class FakePrinter:
    """A socket:// (AppSocket/JetDirect) printer: accepts jobs on a free port of HOST, keeps
    each job's bytes (``jobs``)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen(4)
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.jobs: list[bytes] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(30)
                data = b""
                try:
                    while chunk := conn.recv(65536):
                        data += chunk
                except OSError:
                    pass
            if data:
                self.jobs.append(data)

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self.thread.join(5)
