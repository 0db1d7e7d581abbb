"""Running one benchmark command: timeout, CPU accounting, load, progress, JSON out of stdout."""
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import threading
import time


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def _cpu_jiffies():
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
    total = sum(v[:8])  # guest time is already counted in user
    return total - idle, total


class CpuSampler:
    """Samples /proc/stat every `period` s while a command runs, so that the machine's busy
    share can be computed over any window of it (e.g. only the training steps)."""

    def __init__(self, period=0.2):
        self.period, self.samples, self._stop = period, [], threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while True:
            self.samples.append((time.time(), *_cpu_jiffies()))
            if self._stop.wait(self.period):
                self.samples.append((time.time(), *_cpu_jiffies()))
                return

    def start(self):
        self._t.start()

    def stop(self):
        self._stop.set()
        self._t.join()

    def busy_between(self, t0, t1):
        """Share of all cores busy between wall times t0 and t1 (nearest samples inside)."""
        inside = [s for s in self.samples if t0 - self.period / 2 <= s[0] <= t1 + self.period / 2]
        if len(inside) < 2:
            return None
        (_, b0, n0), (_, b1, n1) = inside[0], inside[-1]
        return round((b1 - b0) / max(1, n1 - n0), 3)


def stats(values):
    """min / median / max of the values that are not None (n = how many)."""
    vals = [v for v in values if v is not None]
    if not vals:
        return {"n": 0, "min": None, "median": None, "max": None, "values": list(values)}
    return {"n": len(vals), "min": min(vals), "median": statistics.median(vals), "max": max(vals),
            "values": list(values)}


def last_json(text):
    """The last line of text that is a JSON object (the peers' and our result line)."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None


def json_lines(text):
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


class Runner:
    def __init__(self, env, stream=sys.stderr):
        self.env = env
        self.stream = stream
        self.t0 = time.monotonic()
        self.failures = []

    def log(self, msg):
        el = time.monotonic() - self.t0
        print(f"[{int(el // 60):3d}:{int(el % 60):02d}] {msg}", file=self.stream, flush=True)

    def run(self, argv, timeout, cwd=None, what=None):
        """Runs argv to completion (its own process group, killed as a group on timeout).
        Returns wall time, the CPU seconds of it and its descendants, how busy the whole
        machine was meanwhile (every process, not only ours), load average before and after."""
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        b0, t0j = _cpu_jiffies()
        load0 = loadavg()
        sampler = CpuSampler()
        sampler.start()
        t0 = time.monotonic()
        w0 = time.time()
        p = subprocess.Popen(argv, cwd=cwd, env=self.env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
        err = None
        try:
            out, errtext = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)  # the group of the process we started
            out, errtext = p.communicate()
            err = f"timed out after {timeout} s"
        wall = time.monotonic() - t0
        w1 = time.time()
        sampler.stop()
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        b1, t1j = _cpu_jiffies()
        if err is None and p.returncode != 0:
            err = f"exit code {p.returncode}"
        res = {
            "argv": list(argv), "rc": p.returncode, "wall_s": round(wall, 3),
            "cpu_s": round((r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime), 3),
            "machine_busy": round((b1 - b0) / max(1, t1j - t0j), 3),
            "load_before": load0, "load_after": loadavg(),
            "stdout": out, "stderr_tail": "\n".join(errtext.splitlines()[-15:]),
            "t_start": w0, "t_end": w1, "sampler": sampler,
        }
        if err:
            res["error"] = err
            self.failures.append({"what": what or " ".join(argv), "error": err,
                                  "stderr_tail": res["stderr_tail"]})
            self.log(f"  FAILED ({err}): {what or ' '.join(argv)}\n{res['stderr_tail']}")
        return res
