"""Helpers shared by the S3 benchmarks in bench/: a free loopback port, a moto
S3 server started and stopped by its own PID, and the WAL corpus that
bench/archive-bench builds. Stdlib only, so that every script can import it
with `sys.path.insert(0, <bench dir>)`.
"""
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine_cpu():
    """Seconds of CPU the whole machine has spent (user, nice, system, irq, softirq)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    ticks = sum(int(fields[i]) for i in (0, 1, 2, 5, 6))
    return ticks / os.sysconf("SC_CLK_TCK")


def start_moto(port, who):
    """Starts moto_server on 127.0.0.1:port and returns once it answers."""
    proc = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
            return proc
        except OSError:
            time.sleep(0.1)  # polling for readiness
    stop(proc)
    sys.exit(f"{who}: moto_server did not start (run scripts/install-deps as root)")


def create_bucket(endpoint, bucket):
    # moto accepts an unsigned bucket creation.
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{bucket}", method="PUT"))


def stop(proc):
    """Stops a server this script started, by its own PID."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def s3_env(endpoint):
    """The environment for uxwal and Barman against an emulator at endpoint,
    without any UXWAL_* setting of the caller's that would change the run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UXWAL_")}
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1",
               AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=endpoint, AWS_ALLOW_HTTP="true")
    return env


def corpus_segments(corpus, limit, who):
    """Sorted segment names of the corpus (the first `limit` if given), after
    reading each once so that every method starts from a warm page cache."""
    wal_dir = os.path.join(corpus, "pg_wal")
    if not os.path.isdir(wal_dir):
        sys.exit(f"{who}: no corpus at {wal_dir}; run bench/archive-bench first")
    names = sorted(n for n in os.listdir(wal_dir) if len(n) == 24)
    if limit:
        names = names[:limit]
    for n in names:
        with open(os.path.join(wal_dir, n), "rb") as f:
            while f.read(1 << 20):
                pass
    return names
