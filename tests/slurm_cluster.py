"""A throwaway one-node SLURM cluster on localhost, for tests.

Debian's `munge` and `slurm-wlm` daemons run as root from a temporary directory: munged with
its own key and socket, slurmctld and slurmd with a slurm.conf that keeps every state, spool,
pid and log file in that directory, no accounting database (job status through `squeue`, with
MinJobAge raised so finished jobs stay listed) and a jobcomp/filetxt record of every finished
job. The node declares two stand-in GPUs (a gpu GRES whose "device files" are /dev/null and
/dev/zero), so a `--gpus=1` request is scheduled and recorded as on a GPU cluster while the
jobs themselves run on the CPU.

Nothing outside the directory is touched. One detail needs care: Snakemake's jobstep executor
drops every SLURM_* variable (SLURM_CONF included) before it calls `srun` inside a job, so the
`srun` would look for /etc/slurm/slurm.conf. slurmd therefore runs in a private mount namespace
in which the directory's etc/ is bind-mounted on /etc/slurm: the jobs it starts find this
cluster's config at the default path, and the host's /etc/slurm stays as it was (Debian's
slurm packages create it; it is only created, empty, where it is missing).

Every daemon is started in the foreground by this module and stopped by its pid (with anything
left in slurmd's private namespace, i.e. job steps), whatever happened.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

STAND_IN_GPU_FILES = ("/dev/null", "/dev/zero", "/dev/full")
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "srun", "squeue", "sinfo", "scontrol", "scancel", "unshare", "mount")


def unavailable_reason() -> str | None:
    """Why a local SLURM cluster cannot be started here, or None when it can."""
    missing = [tool for tool in DAEMONS + CLIENTS if shutil.which(tool) is None]
    if missing:
        return (
            f"SLURM/munge binaries not found ({', '.join(missing)}): "
            "apt-get install slurm-wlm munge (.ci/run does)"
        )
    if os.geteuid() != 0:
        return "starting munged, slurmctld and slurmd for a local test cluster needs root"
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"], capture_output=True, text=True, timeout=30
    )
    if probe.returncode != 0:
        return f"cannot create a mount namespace for slurmd: {probe.stderr.strip()}"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "snakemake-executor-plugin-slurm is not installed: pip install -e '.[slurm]'"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SlurmCluster:
    """munged + slurmctld + slurmd on localhost; use as a context manager."""

    node = "localhost"
    partition = "debug"

    def __init__(self, cpus: int = 2, memory_mb: int = 4000, gpus: int = 2):
        self.cpus, self.memory_mb, self.gpus = cpus, memory_mb, gpus
        # Short path (the munge socket path must fit in sun_path) and world-traversable
        # (munged refuses a socket in a directory others cannot enter).
        self.root = Path(tempfile.mkdtemp(prefix="vaebench-slurm-"))
        self.root.chmod(0o755)
        self.etc = self.root / "etc"
        self.conf = self.etc / "slurm.conf"
        self.jobcomp = self.root / "jobcomp.txt"
        self.procs: dict[str, subprocess.Popen] = {}
        self._slurmd_mntns: str | None = None

    # -- environment for clients (sbatch, squeue, snakemake ...) --------------------------
    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_"))}
        env["SLURM_CONF"] = str(self.conf)
        return env

    def run(self, *cmd: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout, check=check)

    # -- start / stop -----------------------------------------------------------------------
    def __enter__(self) -> SlurmCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _write_files(self) -> None:
        root = self.root
        for sub in ("etc", "state", "spool", "log"):
            (root / sub).mkdir()
        key = root / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self.conf.write_text(f"""\
ClusterName=vaebenchtest
SlurmctldHost={self.node}
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge.socket
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
SwitchType=switch/none
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc={self.jobcomp}
MinJobAge=3600
ReturnToService=2
SchedulerType=sched/backfill
GresTypes=gpu
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mb} Gres=gpu:{self.gpus} State=UNKNOWN
PartitionName={self.partition} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
""")
        # Stand-in GPUs: slurm's gpu GRES wants one device file per GPU; harmless character
        # devices serve, and task/none binds nothing. Requests are scheduled and recorded.
        files = ",".join(STAND_IN_GPU_FILES[: self.gpus])
        (self.etc / "gres.conf").write_text(f"NodeName={self.node} Name=gpu File={files}\n")

    def _spawn(self, name: str, cmd: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.out", "wb")
        self.procs[name] = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            cwd=self.root,
            start_new_session=True,
        )
        log.close()

    def start(self, timeout: float = 60) -> None:
        self._write_files()
        root = self.root
        self._spawn(
            "munged",
            [
                "munged",
                "--foreground",
                f"--key-file={root}/munge.key",
                f"--socket={root}/munge.socket",
                f"--pid-file={root}/munged.pid",
                f"--seed-file={root}/munged.seed",
                f"--log-file={root}/log/munged.log",
            ],
        )
        self._wait(lambda: (root / "munge.socket").exists(), "munged's socket", 15)
        self._spawn("slurmctld", ["slurmctld", "-D", "-f", str(self.conf)])
        # unshare (without --fork) and sh both exec, so the pid is slurmd's own.
        self._spawn(
            "slurmd",
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                'mkdir -p /etc/slurm && mount --bind "$1" /etc/slurm && exec slurmd -D -f "$2" -N "$3"',
                "sh",
                str(self.etc),
                str(self.conf),
                self.node,
            ],
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.logs()}")
            probe = self.run("sinfo", "--noheader", "--nodes", self.node, "--format=%T", check=False)
            if probe.returncode == 0 and probe.stdout.strip() == "idle":
                self._slurmd_mntns = os.readlink(f"/proc/{self.procs['slurmd'].pid}/ns/mnt")
                return
            time.sleep(0.5)
        raise TimeoutError(f"the SLURM node did not become idle within {timeout:.0f} s:\n{self.logs()}")

    def _wait(self, ready, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} did not appear within {timeout:.0f} s:\n{self.logs()}")
            time.sleep(0.2)

    def _namespace_pids(self) -> list[int]:
        """Processes in slurmd's private mount namespace: slurmd and the job steps it started."""
        if self._slurmd_mntns is None:
            return []
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.readlink(entry / "ns" / "mnt") == self._slurmd_mntns:
                        pids.append(int(entry.name))
                except OSError:
                    continue
        return pids

    def stop(self) -> None:
        """Cancel what is left, then end every process this cluster started, by pid."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            try:
                self.run("scancel", f"--partition={self.partition}", check=False, timeout=15)
            except subprocess.SubprocessError:
                pass
        if self._slurmd_mntns is not None and self._slurmd_mntns != os.readlink("/proc/self/ns/mnt"):
            for pid in self._namespace_pids():
                _signal(pid, signal.SIGTERM)
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=15)
        if self._slurmd_mntns is not None and self._slurmd_mntns != os.readlink("/proc/self/ns/mnt"):
            for pid in self._namespace_pids():
                _signal(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)

    # -- what the cluster saw ---------------------------------------------------------------
    def logs(self, lines: int = 30) -> str:
        out = []
        for path in sorted((self.root / "log").glob("*")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(out)

    def jobs(self, name: str) -> list[dict[str, str]]:
        """slurmctld's record of every job named `name` (`scontrol -d show job`: finished jobs
        stay for MinJobAge), one dict of its KEY=value fields per job."""
        proc = self.run("scontrol", "--details", "--oneliner", "show", "job")
        jobs = []
        for line in proc.stdout.splitlines():
            fields = dict(re.findall(r"(?:^|\s)([\w/:]+)=(\S*)", line))
            if fields.get("JobName") == name:
                jobs.append(fields)
        return jobs

    def completions(self) -> list[dict[str, str]]:
        """slurmctld's jobcomp/filetxt record: one dict of KEY=value fields per finished job."""
        if not self.jobcomp.exists():
            return []
        records = []
        for line in self.jobcomp.read_text().splitlines():
            fields = {}
            for word in line.split():
                key, _, value = word.partition("=")
                fields[key] = value
            records.append(fields)
        return records


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
