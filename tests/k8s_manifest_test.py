#!/usr/bin/python3
"""Checks deploy/kubernetes against the job it runs and against the binary.

  tests/k8s_manifest_test.py --repo REPO_ROOT --manifests-only
  tests/k8s_manifest_test.py --repo REPO_ROOT --distopt PATH_TO_BINARY

Renders `kubectl kustomize REPO/deploy/kubernetes` (no cluster needed) and
checks the manifests agree with each other and with the ConfigMap's job.toml:
an Indexed Job of 1 + servers + workers pods, a headless Service that is the
pods' subdomain, DISTOPT_COORDINATOR naming pod 0 through that Service, the
ConfigMap mounted where the command's CONFIG points.

Then (without --manifests-only), for every completion index, it builds the
environment Kubernetes would give that pod, runs
`distopt run --print-placement CONFIG` in exactly that environment (plus
PATH) and checks the role, rank, world size, coordinator and advertised host;
and that a DISTOPT_WORLD_SIZE that disagrees with the job is refused.
Prints each failure, then 'N passed, M failed'; exits 1 on any failure.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

try:
    import tomllib
except ImportError:
    tomllib = None

INDEX_FIELD = "metadata.annotations['batch.kubernetes.io/job-completion-index']"


class Fatal(Exception):
    """A manifest so broken that nothing after it can be checked."""


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL:", what)
        return ok


def fake_pod_ip(index):
    return f"10.244.0.{index + 10}"


def fake_node(index):
    return f"node-{index // 2}"  # two pods to a node


def cluster_table(toml_text):
    if tomllib is not None:
        return tomllib.loads(toml_text).get("cluster", {})
    # Without tomllib: the integer keys of the [cluster] table are enough.
    m = re.search(r"^\[cluster\][ \t]*$(.*?)(?=^\[|\Z)", toml_text, re.M | re.S)
    return {k: int(v) for k, v in re.findall(r"^(\w+)\s*=\s*(\d+)", m[1] if m else "", re.M)}


def one(docs, kind):
    found = [d for d in docs if d.get("kind") == kind]
    if len(found) != 1:
        raise Fatal(f"expected one {kind} in the rendered manifests, found {len(found)}")
    return found[0]


def config_file(container, volumes, config_path):
    """(ConfigMap name, key) of the file the container sees at config_path."""
    for m in container.get("volumeMounts", []):
        if m.get("subPath"):
            if m["mountPath"] != config_path:
                continue
            rel = m["subPath"]
        elif os.path.dirname(config_path) == m["mountPath"].rstrip("/"):
            rel = os.path.basename(config_path)
        else:
            continue
        cm = volumes.get(m["name"], {}).get("configMap")
        if cm is not None:
            # With items, a file's path in the volume may differ from its key.
            key = next((it["key"] for it in cm.get("items", []) if it["path"] == rel), rel)
            return cm["name"], key
    return None


def pod_env(container, index):
    """The container's environment as Kubernetes would set it for `index`."""
    env = {}
    for e in container.get("env", []):
        name = e["name"]
        if "value" in e:
            # $(VAR) refers to a variable defined earlier in the list.
            env[name] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]), str(e["value"]))
            continue
        field = e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        if field == INDEX_FIELD:
            env[name] = str(index)
        elif field == "status.podIP":
            env[name] = fake_pod_ip(index)
        elif field == "spec.nodeName":
            env[name] = fake_node(index)
        else:
            raise Fatal(f"env {name}: unexpected source {e.get('valueFrom')}")
    if container.get("envFrom"):
        raise Fatal("envFrom is not expected")
    return env


def check_manifests(c, docs):
    """Checks the structure; returns what the placement runs need."""
    job, svc = one(docs, "Job"), one(docs, "Service")
    spec = job["spec"]
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    argv = container.get("command", []) + container.get("args", [])
    if len(argv) < 3 or argv[1] != "run":
        raise Fatal(f"the command is not `distopt run ... CONFIG`: {argv}")
    config_path = argv[-1]

    src = config_file(container, volumes, config_path)
    c.check(src is not None, f"no ConfigMap volume is mounted at {config_path}")
    if src is None:
        raise Fatal("cannot read the job's configuration")
    cms = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "ConfigMap"}
    toml_text = cms.get(src[0], {}).get("data", {}).get(src[1])
    if toml_text is None:
        raise Fatal(f"ConfigMap {src[0]} (mounted for {config_path}) has no key {src[1]}")
    cluster = cluster_table(toml_text)
    servers, workers = cluster.get("servers", 1), cluster.get("workers", 1)
    n = 1 + servers + workers

    c.check(spec.get("completionMode") == "Indexed",
            f"completionMode is {spec.get('completionMode')}, not Indexed")
    c.check(spec.get("completions") == n and spec.get("parallelism") == n,
            f"completions {spec.get('completions')} / parallelism {spec.get('parallelism')}"
            f" != 1 + {servers} servers + {workers} workers = {n}")

    service = svc["metadata"]["name"]
    c.check(svc["spec"].get("clusterIP") == "None", "the Service is not headless")
    c.check(svc["spec"].get("publishNotReadyAddresses") is True,
            "the Service does not publish not-ready addresses")
    c.check(pod.get("subdomain") == service,
            f"pod subdomain {pod.get('subdomain')} != Service {service}")
    labels = spec["template"].get("metadata", {}).get("labels", {})
    selector = svc["spec"].get("selector") or {}
    c.check(selector and selector.items() <= labels.items(),
            f"Service selector {selector} does not match the pod labels {labels}")

    env = {e["name"]: e for e in container.get("env", [])}
    index_src = env.get("JOB_COMPLETION_INDEX", {}).get("valueFrom", {}).get("fieldRef", {})
    c.check(index_src.get("fieldPath") == INDEX_FIELD,
            "JOB_COMPLETION_INDEX is not set from the completion-index annotation")
    coordinator = env.get("DISTOPT_COORDINATOR", {}).get("value", "")
    host, _, port = coordinator.rpartition(":")
    want_host = f"{job['metadata']['name']}-0.{service}"
    c.check(host == want_host, f"DISTOPT_COORDINATOR host {host!r} != {want_host!r}")
    ports = [p["port"] for p in svc["spec"].get("ports", [])]
    c.check(port.isdigit() and int(port) in ports,
            f"DISTOPT_COORDINATOR port {port!r} is not a Service port {ports}")
    if "DISTOPT_WORLD_SIZE" in env:
        c.check(env["DISTOPT_WORLD_SIZE"].get("value") == str(n),
                f"DISTOPT_WORLD_SIZE {env['DISTOPT_WORLD_SIZE'].get('value')} != {n}")

    mounts = {m["mountPath"].rstrip("/"): m for m in container.get("volumeMounts", [])}
    run_dir = env.get("DISTOPT_RUN_DIR", {}).get("value", "")
    c.check(run_dir.rstrip("/") in mounts, f"DISTOPT_RUN_DIR {run_dir!r} is not a mounted volume")
    keys = env.get("DISTOPT_KEYS", {}).get("value", "")
    keys_volume = volumes.get(mounts.get(keys.rstrip("/"), {}).get("name"), {})
    c.check("secret" in keys_volume, f"DISTOPT_KEYS {keys!r} is not a mounted Secret")
    return dict(container=container, argv=argv, toml=toml_text, servers=servers, n=n,
                coordinator=coordinator)


def run_placement(binary, job, index, env_overrides=None):
    """Runs `BINARY run --print-placement CONFIG` as pod `index` would."""
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "job.toml")
        with open(config, "w") as f:
            f.write(job["toml"])
        env = pod_env(job["container"], index)
        # Outside a pod: the pod's folders become temporary ones.
        for var in ("DISTOPT_RUN_DIR", "DISTOPT_KEYS"):
            if var in env:
                env[var] = os.path.join(tmp, var.lower())
                os.mkdir(env[var])
        env.update(env_overrides or {})
        env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
        argv = [binary, "run", "--print-placement"] + job["argv"][2:-1] + [config]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


def check_placement(c, binary, job):
    servers, n = job["servers"], job["n"]
    for i in range(n):
        p = run_placement(binary, job, i)
        if not c.check(p.returncode == 0, f"index {i}: exit {p.returncode}: {p.stderr.strip()}"):
            continue
        try:
            got = json.loads(p.stdout)
        except json.JSONDecodeError:
            c.check(False, f"index {i}: stdout is not one JSON object: {p.stdout!r}")
            continue
        if i == 0:
            want = {"role": "coordinator"}
        elif i <= servers:
            want = {"role": "server", "rank": i - 1}
        else:
            want = {"role": "worker", "rank": i - 1 - servers}
        want.update(launcher="kubernetes", global_rank=i, world_size=n,
                    advertise_host=fake_pod_ip(i), coordinator=job["coordinator"],
                    host_label=fake_node(i))
        for key, value in want.items():
            c.check(got.get(key) == value, f"index {i}: {key} is {got.get(key)!r}, want {value!r}")

    # A world size that disagrees with the job's 1 + servers + workers.
    for i in sorted({0, n - 1}):
        p = run_placement(binary, job, i, {"DISTOPT_WORLD_SIZE": str(n + 1)})
        c.check(p.returncode != 0,
                f"index {i}: DISTOPT_WORLD_SIZE={n + 1} (job: {n}) was accepted")
        c.check(re.search(rf"\b{n + 1}\b", p.stderr) and re.search(rf"\b{n}\b", p.stderr),
                f"index {i}: the error does not name {n + 1} and {n}: {p.stderr.strip()!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repo", required=True, help="the repository root")
    ap.add_argument("--distopt", help="the distopt binary")
    ap.add_argument("--manifests-only", action="store_true",
                    help="check the manifests only, without running the binary")
    ap.add_argument("--kubectl", default="kubectl")
    args = ap.parse_args()
    if not args.manifests_only and not args.distopt:
        ap.error("--distopt is required (or --manifests-only)")

    c = Checks()
    try:
        rendered = subprocess.run(
            [args.kubectl, "kustomize", os.path.join(args.repo, "deploy", "kubernetes")],
            capture_output=True, text=True, check=True).stdout
        docs = [d for d in yaml.safe_load_all(rendered) if d]
        job = check_manifests(c, docs)
        if not args.manifests_only:
            check_placement(c, args.distopt, job)
    except subprocess.CalledProcessError as e:
        c.check(False, f"{' '.join(e.cmd)} failed: {e.stderr.strip()}")
    except Fatal as e:
        c.check(False, str(e))
    print(f"{c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
