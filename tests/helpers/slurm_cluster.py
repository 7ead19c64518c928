"""A throwaway one-node SLURM cluster on the local machine, for tests and CI.

Everything lives in one temporary directory: a private munge key and socket,
``slurm.conf`` / ``gres.conf``, spool/state/log dirs, and a shim ``srun``.
Nothing under ``/etc`` or ``/run`` is touched, and free TCP ports are picked at
start, so it does not collide with a real SLURM/munge on the same machine.

Daemons are started in the foreground (``-D`` / ``-F``) as our own child
processes and stopped by PID (SIGTERM, then SIGKILL after a grace period).
Every wait has a timeout; failures raise :class:`SlurmUnavailable` with the
tail of the daemon logs, so a caller can report clearly instead of hanging.

Needs root (slurmd must run as root; munged runs as the ``munge`` user) and
the Debian packages ``slurmctld slurmd slurm-client munge``.

Use from Python::

    with OneNodeSlurm() as cluster:          # starts, waits for IDLE
        env = cluster.env()                  # SLURM_CONF + PATH with the srun shim
        subprocess.run([...snakemake...], env=env)

or from a shell (handy for debugging)::

    python tests/helpers/slurm_cluster.py up --dir /tmp/slurm-ci    # prints `export ...` lines
    python tests/helpers/slurm_cluster.py down --dir /tmp/slurm-ci
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REQUIRED_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "srun")
PARTITION = "ci"
FAKE_GPU_DEVICES = ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"]


class SlurmUnavailable(RuntimeError):
    """SLURM could not be brought up (missing binaries, not root, daemon died, timeout)."""


def missing_binaries() -> list[str]:
    """Names of the SLURM/munge binaries that are not on PATH (also looks in /usr/sbin)."""
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin" + os.pathsep + "/sbin"
    return [b for b in REQUIRED_BINARIES if shutil.which(b, path=path) is None]


def _which(name: str) -> str:
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin" + os.pathsep + "/sbin"
    found = shutil.which(name, path=path)
    if not found:
        raise SlurmUnavailable(f"'{name}' not found (apt-get install slurmctld slurmd slurm-client munge)")
    return found


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def _node_hardware() -> dict[str, int]:
    """CPU layout and memory as slurmd itself sees them (so the node is never INVAL/DRAINED
    for 'Low RealMemory' or CPU-count mismatch); falls back to nproc / free."""
    hw: dict[str, int] = {}
    try:
        out = subprocess.run([_which("slurmd"), "-C"], capture_output=True, text=True, timeout=20).stdout
        for key in ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore", "RealMemory"):
            m = re.search(rf"\b{key}=(\d+)", out)
            if m:
                hw[key] = int(m.group(1))
    except (subprocess.SubprocessError, OSError, SlurmUnavailable):
        pass
    if "CPUs" not in hw:
        hw = {"CPUs": os.cpu_count() or 1}
    if "RealMemory" not in hw:
        hw["RealMemory"] = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    # a little below what slurmd reports, so a fluctuating reading never drains the node
    hw["RealMemory"] = max(256, int(hw["RealMemory"] * 0.95))
    return hw


def _tail(path: Path, n: int = 25) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"  ({path}: not written)"
    return "\n".join("  " + ln for ln in lines[-n:]) or f"  ({path}: empty)"


class OneNodeSlurm:
    """One slurmctld + one slurmd (+ a private munged) on this host.

    ``gpus``: how many ``gpu`` GRES the node declares (character-device twins of ``/dev/null`` as stand-ins unless
    ``gpu_files`` names real device files, e.g. ``["/dev/nvidia0"]`` on a GPU box), of
    type ``gpu_type`` when given (then ``--gpus=<type>:1``, i.e. ``gpu_model``, works too).
    ``cpus`` / ``mem_mb``: declare the node at least this big (``SlurmdParameters=
    config_overrides``), so a profile written for real GPU nodes (say 4 CPUs, 16 GB per
    fit) is accepted on a 2-core CI machine; nothing is enforced (no cgroups), it is
    bookkeeping only, and the profile's ``jobs`` limit bounds what really runs at once.
    Left at None, the node is declared as ``slurmd -C`` sees this machine.
    """

    def __init__(self, workdir: str | os.PathLike | None = None, gpus: int = 1,
                 gpu_files: list[str] | None = None, gpu_type: str | None = None, cpus: int | None = None,
                 mem_mb: int | None = None, start_timeout: float = 60.0):
        self._own_dir = workdir is None
        # /tmp rather than $TMPDIR: the munge user must traverse every parent (pytest's and some
        # CI runners' temp dirs are 0700), and the munge socket path must stay under 108 bytes.
        self.dir = Path(workdir) if workdir else Path(
            tempfile.mkdtemp(prefix="cebra-slurm-", dir="/tmp" if os.path.isdir("/tmp") else None))
        self.gpus = gpus
        self.gpu_files = gpu_files
        self.gpu_type = gpu_type
        self.cpus = cpus
        self.mem_mb = mem_mb
        self.start_timeout = start_timeout
        self.host = socket.gethostname().split(".")[0]  # == `hostname -s`
        self.procs: dict[str, subprocess.Popen] = {}
        self.conf = self.dir / "etc" / "slurm.conf"
        self.bindir = self.dir / "bin"
        self.logdir = self.dir / "log"
        self.munge_dir = self.dir / "munge"
        self.munge_socket = self.munge_dir / "munge.socket"

    # ------------------------------------------------------------------ config
    def _write_configs(self) -> None:
        for sub in ("etc", "state", "spool", "log", "bin", "run"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)  # munge must traverse it
        ctld_port, slurmd_port = _free_ports(2)
        hw = _node_hardware()
        overrides = ""
        if self.cpus or self.mem_mb:
            hw = {"CPUs": max(self.cpus or 0, hw["CPUs"]), "RealMemory": max(self.mem_mb or 0, hw["RealMemory"])}
            overrides = "SlurmdParameters=config_overrides\n"
        node_hw = " ".join(f"{k}={v}" for k, v in hw.items())
        typed = f"{self.gpu_type}:" if self.gpu_type else ""
        gres = f" Gres=gpu:{typed}{self.gpus}" if self.gpus else ""
        d = self.dir
        self.conf.write_text(f"""\
# generated by tests/helpers/slurm_cluster.py -- throwaway one-node cluster
ClusterName=cebraci
SlurmctldHost={self.host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
SchedulerType=sched/backfill
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
# keep finished jobs visible to `squeue` (the status command we use without sacct)
MinJobAge=3600
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/run/slurmctld.pid
SlurmdPidFile={d}/run/slurmd.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
GresTypes=gpu
{overrides}NodeName={self.host} NodeAddr=127.0.0.1 {node_hw}{gres} State=UNKNOWN
PartitionName={PARTITION} Nodes={self.host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
""")
        files = self.gpu_files or self._fake_gpu_files()
        (self.conf.parent / "gres.conf").write_text(
            "".join(f"Name=gpu{' Type=' + self.gpu_type if self.gpu_type else ''} File={f}\n" for f in files)
            if self.gpus else "")
        # The slurm-jobstep executor strips every SLURM_* variable (SLURM_CONF included)
        # before calling `srun` inside the job; real clusters have /etc/slurm/slurm.conf,
        # we don't want to write there, so jobs find this shim first on PATH.
        srun = self.bindir / "srun"
        srun.write_text(f'#!/bin/sh\nSLURM_CONF="{self.conf}" exec "{_which("srun")}" "$@"\n')
        srun.chmod(0o755)

    def _fake_gpu_files(self) -> list[str]:
        """Stand-ins for GPU device files. slurmd wants one distinct *character device* per GPU
        (it sets CUDA_VISIBLE_DEVICES=0,1,... from them; a plain file gives an empty value):
        twins of /dev/null in our directory, else /dev/null, /dev/zero, ... themselves."""
        devdir = self.dir / "dev"
        devdir.mkdir(exist_ok=True)
        try:
            files = []
            for i in range(self.gpus):
                path = devdir / f"fakegpu{i}"
                if not path.exists():
                    os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
                files.append(str(path))
            return files
        except OSError:  # no CAP_MKNOD
            if self.gpus > len(FAKE_GPU_DEVICES):
                raise SlurmUnavailable(f"cannot mknod, and at most {len(FAKE_GPU_DEVICES)} fake GPUs "
                                       "without it (or give gpu_files)") from None
            return FAKE_GPU_DEVICES[: self.gpus]

    def env(self, base: dict | None = None) -> dict:
        """Environment for talking to this cluster (SLURM_CONF, PATH with the srun shim)."""
        env = dict(os.environ if base is None else base)
        env["SLURM_CONF"] = str(self.conf)
        env["PATH"] = f"{self.bindir}{os.pathsep}{env.get('PATH', '')}"
        for var in ("SLURM_JOB_ID", "SLURM_JOBID"):  # never look like we are inside a job
            env.pop(var, None)
        return env

    # ------------------------------------------------------------------ daemons
    def _spawn(self, name: str, argv: list[str], **kw) -> None:
        log = open(self.logdir / f"{name}.stdout", "wb")
        try:
            self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, env=self.env(),
                                                start_new_session=True, **kw)
        finally:
            log.close()
        self._write_pids()

    def _write_pids(self) -> None:
        (self.dir / "pids.json").write_text(json.dumps({k: p.pid for k, p in self.procs.items()}))

    def _start_munge(self) -> None:
        try:
            munge = pwd.getpwnam("munge")
        except KeyError:
            raise SlurmUnavailable("no 'munge' user (is the munge package installed?)") from None
        self.munge_dir.mkdir(exist_ok=True)
        os.chmod(self.munge_dir, 0o755)  # munged insists the socket dir is world-executable
        key = self.munge_dir / "munge.key"
        key.write_bytes(os.urandom(1024))
        for p in (self.munge_dir, key):
            os.chown(p, munge.pw_uid, munge.pw_gid)
        os.chmod(key, 0o400)
        m = self.munge_dir
        self._spawn("munged", [_which("munged"), "-F", f"--key-file={key}", f"--socket={self.munge_socket}",
                               f"--pid-file={m}/munged.pid", f"--log-file={m}/munged.log",
                               f"--seed-file={m}/munged.seed", "--num-threads=2"],
                    user=munge.pw_uid, group=munge.pw_gid, extra_groups=[])
        self._wait(lambda: self.munge_socket.exists(), "munged socket", 15, "munged")

    def _check_alive(self, names) -> None:
        for name in names:
            p = self.procs.get(name)
            if p is not None and p.poll() is not None:
                raise SlurmUnavailable(f"{name} exited with code {p.returncode}\n{self.diagnostics()}")

    def _wait(self, pred, what: str, timeout: float, *alive: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive(alive)
            try:
                if pred():
                    return
            except (subprocess.SubprocessError, OSError):
                pass
            time.sleep(0.5)
        raise SlurmUnavailable(f"timed out after {timeout:.0f}s waiting for {what}\n{self.diagnostics()}")

    def _run(self, *argv: str, timeout: float = 15) -> subprocess.CompletedProcess:
        return subprocess.run([_which(argv[0]), *argv[1:]], capture_output=True, text=True,
                              env=self.env(), timeout=timeout)

    def node_state(self) -> str:
        r = self._run("sinfo", "-h", "-N", "-n", self.host, "-o", "%T", timeout=10)
        return r.stdout.strip().lower() if r.returncode == 0 else ""

    def start(self) -> "OneNodeSlurm":
        if hasattr(os, "geteuid") and os.geteuid() != 0:
            raise SlurmUnavailable("the one-node SLURM cluster needs root (slurmd runs jobs as root here)")
        missing = missing_binaries()
        if missing:
            raise SlurmUnavailable(f"missing SLURM/munge binaries: {', '.join(missing)}")
        t0 = time.monotonic()
        try:
            self._write_configs()
            self._start_munge()
            self._spawn("slurmctld", [_which("slurmctld"), "-D", "-i", "-f", str(self.conf)])
            self._wait(lambda: self._run("scontrol", "ping", timeout=10).stdout.count("UP") > 0,
                       "slurmctld to answer `scontrol ping`", self.start_timeout, "munged", "slurmctld")
            self._spawn("slurmd", [_which("slurmd"), "-D", "-N", self.host, "-f", str(self.conf)])
            resumed = [False]

            def idle() -> bool:
                state = self.node_state()
                if ("drain" in state or "down" in state or "inval" in state) and not resumed[0]:
                    # e.g. left DRAINED by an earlier crash, or 'Node unexpectedly rebooted'
                    self._run("scontrol", "update", f"nodename={self.host}", "state=resume")
                    resumed[0] = True
                return state in ("idle", "mixed", "allocated")

            self._wait(idle, f"node {self.host} to become IDLE", self.start_timeout,
                       "munged", "slurmctld", "slurmd")
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def diagnostics(self) -> str:
        parts = [f"SLURM dir: {self.dir}"]
        for name in ("munged", "slurmctld", "slurmd"):
            parts.append(f"--- {name} stdout ---\n" + _tail(self.logdir / f"{name}.stdout", 10))
        parts.append("--- munged.log ---\n" + _tail(self.munge_dir / "munged.log", 10))
        parts.append("--- slurmctld.log ---\n" + _tail(self.logdir / "slurmctld.log"))
        parts.append("--- slurmd.log ---\n" + _tail(self.logdir / "slurmd.log"))
        return "\n".join(parts)

    def stop(self, grace: float = 10.0) -> None:
        """Cancel our jobs, then stop slurmd, slurmctld, munged by PID (TERM, then KILL)."""
        if self.procs.get("slurmctld") and self.procs["slurmctld"].poll() is None:
            try:
                self._run("scancel", "--partition", PARTITION, timeout=10)
                deadline = time.monotonic() + grace
                while time.monotonic() < deadline:
                    r = self._run("squeue", "-h", "-t", "running,completing,pending", "-o", "%i", timeout=10)
                    if r.returncode != 0 or not r.stdout.strip():
                        break
                    time.sleep(0.5)
            except (subprocess.SubprocessError, OSError, SlurmUnavailable):
                pass
        for name in ("slurmd", "slurmctld", "munged"):
            p = self.procs.pop(name, None)
            if p is None or p.poll() is not None:
                continue
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=grace)
        self._write_pids()

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "OneNodeSlurm":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.cleanup()


def _cli() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=["up", "down"])
    ap.add_argument("--dir", required=True, help="state directory (created by `up`, read by `down`)")
    ap.add_argument("--gpus", type=int, default=1)
    ap.add_argument("--gpu-type", default=None, help="GRES type of the GPUs (what gpu_model asks for)")
    ap.add_argument("--cpus", type=int, default=None, help="declare the node with at least this many CPUs")
    ap.add_argument("--mem-mb", type=int, default=None, help="declare the node with at least this much memory")
    ap.add_argument("--timeout", type=float, default=60)
    a = ap.parse_args()
    d = Path(a.dir)
    if a.action == "up":
        d.mkdir(parents=True, exist_ok=True)
        c = OneNodeSlurm(d, gpus=a.gpus, gpu_type=a.gpu_type, cpus=a.cpus, mem_mb=a.mem_mb, start_timeout=a.timeout)
        try:
            c.start()
        except SlurmUnavailable as e:
            print(f"SLURM did not start: {e}", file=sys.stderr)
            return 1
        # the daemons are our children; detach them so they outlive this CLI process
        print(f"export SLURM_CONF={c.conf}\nexport PATH={c.bindir}:$PATH")
        print(f"# up in {c.startup_seconds:.1f}s; stop with: python {sys.argv[0]} down --dir {d}",
              file=sys.stderr)
        os._exit(0)
    pids = json.loads((d / "pids.json").read_text()) if (d / "pids.json").exists() else {}
    conf = d / "etc" / "slurm.conf"
    if conf.exists() and shutil.which("scancel"):
        try:
            subprocess.run(["scancel", "--partition", PARTITION], env={**os.environ, "SLURM_CONF": str(conf)},
                           capture_output=True, timeout=10)
        except subprocess.TimeoutExpired:
            pass
        time.sleep(1)
    for name in ("slurmd", "slurmctld", "munged"):
        pid = pids.get(name)
        if not pid:
            continue
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        for _ in range(40):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.25)
        else:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    (d / "pids.json").write_text("{}")
    return 0


if __name__ == "__main__":
    sys.exit(_cli())
