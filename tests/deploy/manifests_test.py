#!/usr/bin/env python3
"""Checks what the deployment files rely on (deploy/, docs/deploy.md).

    python3 tests/deploy/manifests_test.py REPO_ROOT [LIPSYNC]

Prints one line per check and exits 1 naming the checks that failed. The Kubernetes manifests,
compose file and Dockerfiles cannot be run here (no cluster, no Docker daemon), so this checks
the links between them that a typo would break without an error until production: the headless
service the gateway looks pods up in, the grace period above the drain timeout, the probes, the
config keys. With LIPSYNC (the built binary) it also checks every config against it, and runs two
servers behind the `gateway.sh --dns` config in Debian's nginx, on loopback, with a small DNS
server of its own standing in for the cluster's.
"""

import http.client
import json
import os
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import wave

import yaml

ROOT = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else None
LIPSYNC = sys.argv[2] if len(sys.argv) > 2 else None
K8S = os.path.join(ROOT or ".", "deploy", "k8s")
GATEWAY_SH = os.path.join(ROOT or ".", "deploy", "nginx", "gateway.sh")
DEFAULT_DRAIN_TIMEOUT_S = 600  # server.drain_timeout_s when LIPSYNC is not given


class Failure(Exception):
    pass


class Skip(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise Failure(message)


def rel(path):
    return os.path.relpath(path, ROOT)


def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def load_one(path):
    docs = load_all(path)
    expect(len(docs) == 1, f"{rel(path)}: expected one YAML document, found {len(docs)}")
    return docs[0]


def kustomization(folder):
    return load_one(os.path.join(folder, "kustomization.yaml"))


def generator_files(kust, name):
    """The files of configMapGenerator `name`, as {key: path}."""
    for gen in kust.get("configMapGenerator", []):
        if gen.get("name") == name:
            out = {}
            for entry in gen.get("files", []):
                key, _, path = entry.rpartition("=")
                out[key or os.path.basename(path)] = path
            return out
    raise Failure(f"no configMapGenerator named {name}")


def base_objects():
    """Every object of the base's resources, by (kind, name)."""
    base = os.path.join(K8S, "base")
    objects = {}
    for res in kustomization(base).get("resources", []):
        for doc in load_all(os.path.join(base, res)):
            objects[(doc["kind"], doc["metadata"]["name"])] = doc
    return objects


def the_statefulset(objects):
    sets = [o for (kind, _), o in objects.items() if kind == "StatefulSet"]
    expect(len(sets) == 1, f"expected one StatefulSet in the base, found {len(sets)}")
    return sets[0]


def server_container(sts):
    containers = sts["spec"]["template"]["spec"]["containers"]
    expect(len(containers) == 1, "expected one container in the StatefulSet")
    return containers[0]


def server_configs():
    """The lipsync configs of the base and the overlays, as {path: parsed}."""
    out = {}
    base = os.path.join(K8S, "base")
    path = os.path.join(base, generator_files(kustomization(base), "lipsync-config")["config.yaml"])
    out[path] = load_one(path)
    overlays = os.path.join(K8S, "overlays")
    for name in sorted(os.listdir(overlays)):
        kust = kustomization(os.path.join(overlays, name))
        try:
            files = generator_files(kust, "lipsync-config")
        except Failure:
            continue
        path = os.path.join(overlays, name, files["config.yaml"])
        out[path] = load_one(path)
    return out


def compose():
    return load_one(os.path.join(ROOT, "deploy", "compose.yaml"))


def interpolate(text):
    """Compose's ${VAR...} with a sample value: this test's stand-in for the operator's."""
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?:[:?-][^}]*)?\}", "203.0.113.7", text)


def compose_servers(doc):
    """The compose services built from deploy/Dockerfile's server stage:
    {name: (instance id, config text)}; the instance id is server.instance_id, or else the
    container's host name."""
    out = {}
    for name, svc in doc["services"].items():
        build = svc.get("build", {})
        if build.get("dockerfile") != "deploy/Dockerfile" or build.get("target"):
            continue
        sources = [c["source"] for c in svc.get("configs", [])
                   if isinstance(c, dict) and c.get("target") == "/etc/lipsync/config.yaml"]
        expect(len(sources) == 1, f"compose service {name}: no config at /etc/lipsync/config.yaml")
        config = doc.get("configs", {}).get(sources[0], {})
        if "content" in config:
            text = interpolate(config["content"])
        else:
            expect("file" in config, f"compose config {sources[0]}: no content or file")
            with open(os.path.join(ROOT, "deploy", config["file"])) as f:
                text = f.read()
        iid = (yaml.safe_load(text).get("server") or {}).get("instance_id") or svc.get("hostname")
        expect(iid, f"compose service {name}: neither server.instance_id nor hostname: its id "
                    f"would be the container's")
        out[name] = (iid, text)
    return out


def flat_keys(config, prefix=""):
    """A config's keys as `lipsync config` names them (`avatars` is serve's model list)."""
    keys = []
    for key, value in config.items():
        name = prefix + key
        if isinstance(value, dict) and name != "avatars":
            keys += flat_keys(value, name + ".")
        else:
            keys.append(name)
    return keys


_lipsync_keys = None


def lipsync_keys():
    """{key: default} from `LIPSYNC config --format json`."""
    global _lipsync_keys
    if _lipsync_keys is None:
        out = subprocess.run([LIPSYNC, "config", "--format", "json"], check=True,
                             capture_output=True, text=True, timeout=30).stdout
        _lipsync_keys = {e["key"]: e["default"] for e in json.loads(out)}
    return _lipsync_keys


def drain_timeout_s(config):
    value = config.get("server", {}).get("drain_timeout_s")
    if value is not None:
        return int(value)
    return int(lipsync_keys()["server.drain_timeout_s"]) if LIPSYNC else DEFAULT_DRAIN_TIMEOUT_S


def gateway_args(conf_path):
    """The gateway.sh arguments a config's first line says it was written with."""
    with open(conf_path) as f:
        first = f.readline()
    m = re.match(r"# The lipsync gateway, written by deploy/nginx/gateway\.sh (--.*)$", first)
    expect(m, f"{rel(conf_path)}: its first line does not name gateway.sh's arguments")
    return shlex.split(m.group(1))


def arg(args, name):
    expect(name in args, f"gateway.sh arguments have no {name}")
    return args[args.index(name) + 1]


def run_gateway_sh(args):
    r = subprocess.run([GATEWAY_SH] + args, capture_output=True, text=True, timeout=30)
    expect(r.returncode == 0, f"gateway.sh {' '.join(args)}: exit {r.returncode}: {r.stderr}")
    return r.stdout


def nginx_test(conf_text):
    if not shutil.which("nginx"):
        raise Failure("nginx is not installed (scripts/bootstrap installs it)")
    with tempfile.TemporaryDirectory() as tmp:
        conf = os.path.join(tmp, "gateway.conf")
        with open(conf, "w") as f:
            f.write(conf_text)
        os.mkdir(os.path.join(tmp, "prefix"))
        r = subprocess.run(["nginx", "-t", "-p", os.path.join(tmp, "prefix"), "-c", conf],
                           capture_output=True, text=True, timeout=30)
        expect(r.returncode == 0, f"nginx -t: {r.stderr.strip()}")


def dockerfile_stages(path):
    """[(stage name, [(instruction, text)])] with continuation lines joined."""
    with open(path) as f:
        text = re.sub(r"\\\n", " ", f.read())
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            m = re.search(r"\bAS\s+(\S+)", rest, re.I)
            stages.append((m.group(1) if m else "", []))
        elif stages:
            stages[-1][1].append((word, rest.strip()))
    return stages


def non_root_user(instructions, what):
    users = [rest for word, rest in instructions if word == "USER"]
    expect(users, f"{what}: no USER")
    user = users[-1].split(":")[0]
    expect(user not in ("root", "0"), f"{what}: USER {users[-1]} is root")


# The checks --------------------------------------------------------------------------------------

def check_yaml_parses():
    paths = [os.path.join(ROOT, "deploy", "compose.yaml")]
    for folder, _, files in os.walk(K8S):
        paths += [os.path.join(folder, f) for f in files if f.endswith((".yaml", ".yml"))]
    for path in paths:
        try:
            load_all(path)
        except yaml.YAMLError as e:
            raise Failure(f"{rel(path)}: {e}")
    return f"{len(paths)} files"


def check_kustomizations_files_exist():
    count = 0
    for folder, _, files in os.walk(K8S):
        if "kustomization.yaml" not in files:
            continue
        kust = kustomization(folder)
        refs = list(kust.get("resources", []))
        refs += [p["path"] for p in kust.get("patches", []) if "path" in p]
        refs += kust.get("patchesStrategicMerge", [])
        for gen in kust.get("configMapGenerator", []):
            refs += [e.rpartition("=")[2] for e in gen.get("files", [])]
        for ref in refs:
            path = os.path.normpath(os.path.join(folder, ref))
            expect(os.path.isfile(path) or os.path.isfile(os.path.join(path, "kustomization.yaml")),
                   f"{rel(folder)}/kustomization.yaml names {ref}, which does not exist")
            count += 1
    return f"{count} files"


def check_headless_service():
    objects = base_objects()
    sts = the_statefulset(objects)
    name = sts["spec"].get("serviceName")
    expect(("Service", name) in objects, f"serviceName {name}: no such Service in the base")
    svc = objects[("Service", name)]["spec"]
    expect(svc.get("clusterIP") == "None", f"Service {name}: clusterIP {svc.get('clusterIP')}, expected None")
    expect(svc.get("publishNotReadyAddresses") is True,
           f"Service {name}: publishNotReadyAddresses is not true (a draining pod would vanish)")
    labels = sts["spec"]["template"]["metadata"]["labels"]
    expect(all(labels.get(k) == v for k, v in svc["selector"].items()),
           f"Service {name}'s selector {svc['selector']} does not select the pods {labels}")
    expect(all(labels.get(k) == v for k, v in sts["spec"]["selector"]["matchLabels"].items()),
           "the StatefulSet's selector does not select its own pods")
    return f"{name}: headless, publishNotReadyAddresses"


def check_grace_period():
    sts = the_statefulset(base_objects())
    grace = sts["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
    for path, config in server_configs().items():
        drain = drain_timeout_s(config)
        expect(grace > drain, f"terminationGracePeriodSeconds {grace} is not above "
                              f"server.drain_timeout_s {drain} of {rel(path)}")
    return f"{grace} s"


def check_probes():
    c = server_container(the_statefulset(base_objects()))
    ports = {p["name"] for p in c.get("ports", [])}
    want = {"readinessProbe": "/readyz", "livenessProbe": "/healthz", "startupProbe": "/healthz"}
    for probe, path in want.items():
        got = c.get(probe, {}).get("httpGet", {})
        expect(got.get("path") == path, f"{probe}: path {got.get('path')}, expected {path}")
        expect(got.get("port") in ports, f"{probe}: port {got.get('port')} is not a container port")
    return "readyz, healthz, startup"


def check_instance_id_is_the_pod_name():
    sts = the_statefulset(base_objects())
    spec = sts["spec"]["template"]["spec"]
    expect(not spec.get("hostNetwork"), "hostNetwork: the host name would be the node's")
    expect("hostname" not in spec, "hostname set: pods would share one instance id")
    name = sts["metadata"]["name"]
    expect(re.fullmatch(r"[a-z0-9-]{1,60}", name), f"pod names {name}-N are not instance ids")
    for path, config in server_configs().items():
        expect(not config.get("server", {}).get("instance_id"),
               f"{rel(path)} sets server.instance_id: every pod would have the same")
    c = server_container(sts)
    args = c.get("args", [])
    expect("--config" in args, "the server is not given --config")
    config_path = args[args.index("--config") + 1]
    mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounted = [n for n, v in volumes.items()
               if v.get("configMap", {}).get("name") == "lipsync-config" and n in mounts]
    expect(mounted and os.path.join(mounts[mounted[0]], "config.yaml") == config_path,
           f"--config {config_path} is not where ConfigMap lipsync-config is mounted")
    return f"{name}-0, {name}-1, ... (host name)"


def check_pdb():
    objects = base_objects()
    pdbs = [o for (kind, _), o in objects.items() if kind == "PodDisruptionBudget"]
    expect(len(pdbs) == 1, f"expected one PodDisruptionBudget, found {len(pdbs)}")
    labels = the_statefulset(objects)["spec"]["template"]["metadata"]["labels"]
    sel = pdbs[0]["spec"]["selector"]["matchLabels"]
    expect(all(labels.get(k) == v for k, v in sel.items()),
           f"its selector {sel} does not select the StatefulSet's pods {labels}")
    expect(pdbs[0]["spec"].get("maxUnavailable") == 1, "maxUnavailable is not 1")
    return "maxUnavailable 1"


def check_turn_secret_is_a_reference():
    objects = base_objects()
    expect(not any(kind == "Secret" for kind, _ in objects), "a Secret (its value) is in the manifests")
    sts = the_statefulset(objects)
    spec = sts["spec"]["template"]["spec"]
    c = server_container(sts)
    mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
    for path, config in server_configs().items():
        secret_file = config.get("webrtc", {}).get("turn_secret_file")
        expect(secret_file, f"{rel(path)}: no webrtc.turn_secret_file")
        found = [v for v in spec["volumes"] if "secret" in v and v["name"] in mounts and
                 any(os.path.join(mounts[v["name"]], i["path"]) == secret_file
                     for i in v["secret"].get("items", []))]
        expect(found, f"{rel(path)}: webrtc.turn_secret_file {secret_file} is not a mounted Secret key")
    return "Secret lipsync-turn, mounted"


def check_gpu_overlay():
    folder = os.path.join(K8S, "overlays", "gpu")
    kust = kustomization(folder)
    limits = {}
    for patch in kust.get("patches", []):
        for doc in load_all(os.path.join(folder, patch["path"])):
            if doc.get("kind") == "StatefulSet":
                for c in doc["spec"]["template"]["spec"].get("containers", []):
                    limits.update(c.get("resources", {}).get("limits", {}))
    expect(str(limits.get("nvidia.com/gpu")) == "1", f"no nvidia.com/gpu: 1 limit (limits {limits})")
    gens = [g for g in kust.get("configMapGenerator", []) if g.get("name") == "lipsync-config"]
    expect(gens and gens[0].get("behavior") == "replace", "lipsync-config is not replaced")
    config = load_one(os.path.join(folder, generator_files(kust, "lipsync-config")["config.yaml"]))
    providers = config.get("infer", {}).get("execution_providers", [])
    expect(providers[:1] == ["cuda"], f"infer.execution_providers {providers}: cuda is not first")
    return "nvidia.com/gpu 1, providers " + ", ".join(providers)


def all_server_configs():
    """Every lipsync config, as [(what, text)]."""
    out = []
    for path in server_configs():
        with open(path) as f:
            out.append((rel(path), f.read()))
    for name, (_, text) in compose_servers(compose()).items():
        out.append((f"deploy/compose.yaml ({name})", text))
    return out


def check_config_keys():
    if not LIPSYNC:
        raise Skip("no LIPSYNC binary given")
    known = lipsync_keys()
    configs = all_server_configs()
    for what, text in configs:
        unknown = [k for k in flat_keys(yaml.safe_load(text)) if k not in known and k != "avatars"]
        expect(not unknown, f"{what}: not keys of `lipsync config`: {', '.join(unknown)}")
    return f"{len(configs)} configs"


def check_configs_load():
    if not LIPSYNC:
        raise Skip("no LIPSYNC binary given")
    with tempfile.TemporaryDirectory() as tmp:
        audio = os.path.join(tmp, "silence.wav")
        with wave.open(audio, "wb") as w:  # 0.5 s: the command only has to read the config
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes(b"\0\0" * 8000)
        config = os.path.join(tmp, "config.yaml")
        for what, text in all_server_configs():
            with open(config, "w") as f:
                f.write(text)
            # `mel` reads and validates the whole config (keys and values) and listens nowhere.
            r = subprocess.run([LIPSYNC, "mel", audio, "-o", os.path.join(tmp, "mel.f32"),
                                "--config", config], capture_output=True, text=True, timeout=60)
            expect(r.returncode == 0, f"{what}: {r.stderr.strip()}")
    return "keys and values"


def check_gateway_configmap_is_the_scripts_output():
    base = os.path.join(K8S, "base")
    kust = kustomization(base)
    conf = os.path.join(base, generator_files(kust, "lipsync-gateway")["gateway.conf"])
    args = gateway_args(conf)
    with open(conf) as f:
        expect(f.read() == run_gateway_sh(args),
               f"{rel(conf)} differs from `deploy/nginx/gateway.sh {' '.join(args)}`: regenerate it")
    # ... and the script was given this cluster's names and ports.
    objects = base_objects()
    sts = the_statefulset(objects)
    expect(arg(args, "--dns") == sts["spec"]["serviceName"],
           f"--dns {arg(args, '--dns')} is not the StatefulSet's service {sts['spec']['serviceName']}")
    expect(arg(args, "--namespace") == kust.get("namespace", "default"),
           f"--namespace {arg(args, '--namespace')} is not the kustomization's {kust.get('namespace')}")
    ports = {p["name"]: p["containerPort"] for p in server_container(sts)["ports"]}
    expect(int(arg(args, "--http-port")) == ports["http"], "--http-port is not the pods' http port")
    expect(int(arg(args, "--grpc-port")) == ports["grpc"], "--grpc-port is not the pods' grpc port")
    gw = [o for (kind, _), o in objects.items()
          if kind == "Deployment" and any(v.get("configMap", {}).get("name") == "lipsync-gateway"
                                          for v in o["spec"]["template"]["spec"].get("volumes", []))]
    expect(len(gw) == 1, "no Deployment mounts ConfigMap lipsync-gateway")
    gw_ports = {p["containerPort"] for c in gw[0]["spec"]["template"]["spec"]["containers"]
                for p in c.get("ports", [])}
    for name in ("--listen-http", "--listen-grpc"):
        port = int(arg(args, name).rpartition(":")[2])
        expect(port in gw_ports, f"{name} port {port} is not a port of the gateway's container")
    return " ".join(args)


def check_nginx_accepts_dns_config():
    args = gateway_args(os.path.join(K8S, "base", "gateway.conf"))
    # The cluster's DNS name cannot be looked up here, and nginx -t resolves it: a local address.
    args[args.index("--resolver") + 1] = "127.0.0.1:53"
    nginx_test(run_gateway_sh(args))
    return "--dns, --resolver 127.0.0.1:53"


def check_nginx_accepts_instance_config():
    nginx_test(run_gateway_sh(["--listen-http", "127.0.0.1:8080", "--listen-grpc", "127.0.0.1:50051",
                               "--instance", "a=127.0.0.1:18080,127.0.0.1:15051",
                               "--instance", "b-2=127.0.0.2:18080,127.0.0.2:15051"]))
    return "--instance x2"


def check_gateway_sh_refuses_bad_names():
    base = ["--listen-http", "127.0.0.1:1", "--listen-grpc", "127.0.0.1:2"]
    for bad in (["--dns", "Lipsync"], ["--dns", "a.b"], ["--dns", "x", "--namespace", "n s"],
                ["--dns", "x", "--resolver", "1.2.3.4; evil"], ["--dns", "x", "--http-port", "0"],
                ["--dns", "x", "--instance", "a=b:1,b:2"]):
        r = subprocess.run([GATEWAY_SH] + base + bad, capture_output=True, text=True, timeout=30)
        expect(r.returncode == 2, f"gateway.sh {' '.join(bad)}: exit {r.returncode}, expected 2")
    return "6 bad argument sets, exit 2"


def check_compose():
    doc = compose()
    services = doc["services"]
    servers = compose_servers(doc)
    expect(len(servers) == 2, f"expected 2 lipsync servers, found {sorted(servers)}")
    ids = {name: iid for name, (iid, _) in servers.items()}
    expect(len(set(ids.values())) == 2, f"instance ids are not distinct: {ids}")
    for name, (_, text) in servers.items():
        config = yaml.safe_load(text)
        expect(config.get("webrtc", {}).get("turn_secret_file") == "/run/secrets/turn_secret",
               f"{name}: webrtc.turn_secret_file is not the compose secret turn_secret")
        expect("turn_secret" in services[name].get("secrets", []), f"{name}: no secret turn_secret")
        grace = services[name].get("stop_grace_period", "10s")
        m = re.fullmatch(r"(\d+)s", str(grace))
        expect(m and int(m.group(1)) > drain_timeout_s(config),
               f"{name}: stop_grace_period {grace} is not above server.drain_timeout_s")
    gateways = [n for n, s in services.items()
                if s.get("build", {}).get("dockerfile") == "deploy/nginx/Dockerfile"]
    expect(len(gateways) == 1, "no gateway service (built from deploy/nginx/Dockerfile)")
    command = services[gateways[0]].get("command", [])
    routed = {}
    for i, word in enumerate(command):
        if word == "--instance":
            iid, _, addrs = command[i + 1].partition("=")
            routed[iid] = {a.rpartition(":")[0] for a in addrs.split(",")}
    expect(set(routed) == set(ids.values()), f"the gateway's --instance ids {sorted(routed)} are not "
                                             f"the servers' {sorted(ids.values())}")
    for name, iid in ids.items():
        expect(routed[iid] == {name}, f"--instance {iid} does not point at service {name}")
    turn = [n for n, s in services.items() if s.get("build", {}).get("target") == "coturn"]
    expect(len(turn) == 1, "no coturn service (deploy/Dockerfile, target coturn)")
    expect("turn_secret" in services[turn[0]].get("secrets", []), "coturn: no secret turn_secret")
    expect("turn_secret" in doc.get("secrets", {}), "no top-level secret turn_secret")
    return f"servers {', '.join(f'{n} ({i})' for n, i in sorted(ids.items()))}, {gateways[0]}, {turn[0]}"


def check_dockerfiles():
    path = os.path.join(ROOT, "deploy", "Dockerfile")
    stages = dockerfile_stages(path)
    names = [n for n, _ in stages]
    expect("coturn" in names and "build" in names, f"stages {names}: expected coturn, build, ...")
    last_name, last = stages[-1]
    non_root_user(last, f"deploy/Dockerfile's last stage ({last_name})")
    checks = [r for w, r in last if w == "HEALTHCHECK"]
    expect(checks and "/healthz" in checks[-1], "deploy/Dockerfile: no HEALTHCHECK on /healthz")
    expect(any(w == "ENTRYPOINT" and "lipsync" in r for w, r in last), "no ENTRYPOINT lipsync")
    runs = " ".join(r for w, r in dict(stages)["build"] if w == "RUN")
    expect("scripts/bootstrap" in runs, "the build stage does not run scripts/bootstrap")
    expect("cmake --preset release" in runs and "cmake --build --preset release" in runs,
           "the build stage does not use the release preset")
    with open(os.path.join(ROOT, "CMakePresets.json")) as f:
        presets = json.load(f)
    expect(any(p["name"] == "release" for p in presets["configurePresets"]),
           "CMakePresets.json has no release preset")
    non_root_user(dict(stages)["coturn"], "deploy/Dockerfile's coturn stage")
    gw = dockerfile_stages(os.path.join(ROOT, "deploy", "nginx", "Dockerfile"))
    non_root_user(gw[-1][1], "deploy/nginx/Dockerfile")
    return "USER 10001, HEALTHCHECK /healthz, release preset"


def check_dockerfile_sources_exist():
    with open(os.path.join(ROOT, ".dockerignore")) as f:
        ignored = [l.strip().rstrip("/") for l in f if l.strip() and not l.startswith("#")]
    for required in (".git", "build", "third_party/onnxruntime", "tests/browser/node_modules"):
        expect(required in ignored, f".dockerignore does not exclude {required}")
    count = 0
    for dockerfile in ("deploy/Dockerfile", "deploy/nginx/Dockerfile"):
        for _, instructions in dockerfile_stages(os.path.join(ROOT, dockerfile)):
            for word, rest in instructions:
                if word != "COPY" or "--from=" in rest:
                    continue
                for src in rest.split()[:-1]:
                    if src == ".":
                        continue
                    expect(os.path.exists(os.path.join(ROOT, src)), f"{dockerfile}: COPY {src}: no such file")
                    expect(not any(src == i or src.startswith(i + "/") for i in ignored),
                           f"{dockerfile}: COPY {src} is excluded by .dockerignore")
                    count += 1
    return f"{count} sources"


def check_kustomize_builds():
    kubectl = shutil.which("kubectl")
    if not kubectl:
        raise Skip("kubectl is not installed")
    for overlay in ("base", "overlays/gpu"):
        r = subprocess.run([kubectl, "kustomize", os.path.join(K8S, overlay)],
                           capture_output=True, text=True, timeout=60)
        expect(r.returncode == 0, f"kubectl kustomize {overlay}: {r.stderr.strip()}")
        docs = [d for d in yaml.safe_load_all(r.stdout) if d]
        sts = [d for d in docs if d["kind"] == "StatefulSet"][0]
        c = sts["spec"]["template"]["spec"]["containers"][0]
        if overlay != "base":
            expect(str(c["resources"]["limits"].get("nvidia.com/gpu")) == "1",
                   "the built gpu overlay has no GPU limit")
            expect(c["resources"]["limits"].get("cpu"), "the gpu patch dropped the CPU limit")
        cms = {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"}
        used = {v["configMap"]["name"] for d in docs if d["kind"] in ("StatefulSet", "Deployment")
                for v in d["spec"]["template"]["spec"].get("volumes", []) if "configMap" in v}
        expect(used <= cms, f"{overlay}: volumes name ConfigMaps {sorted(used - cms)} that it lacks")
    return "base, overlays/gpu"


# The --dns gateway, live ---------------------------------------------------------------------------

class Dns:
    """A UDP DNS server on 127.0.0.1 answering A queries from `records`; NXDOMAIN otherwise."""

    def __init__(self, records):
        self.records = records
        self.asked = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while self.running:
            try:
                query, peer = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            try:
                self.sock.sendto(self.answer(query), peer)
            except (IndexError, struct.error):
                pass

    def answer(self, query):
        qid, = struct.unpack("!H", query[:2])
        labels, i = [], 12
        while query[i]:
            labels.append(query[i + 1:i + 1 + query[i]].decode("ascii", "replace"))
            i += 1 + query[i]
        qtype, = struct.unpack("!H", query[i + 1:i + 3])
        question = query[12:i + 5]
        name = ".".join(labels).lower()
        self.asked.append(name)
        addrs = self.records.get(name)
        if addrs is None:
            return struct.pack("!HHHHHH", qid, 0x8183, 1, 0, 0, 0) + question  # NXDOMAIN
        answers = [] if qtype != 1 else addrs  # AAAA and others: no data
        out = struct.pack("!HHHHHH", qid, 0x8180, 1, len(answers), 0, 0) + question
        for a in answers:
            out += struct.pack("!HHHIH", 0xC00C, 1, 1, 5, 4) + socket.inet_aton(a)
        return out

    def close(self):
        self.running = False
        self.thread.join()
        self.sock.close()


def port_free_on(addresses):
    """A TCP port free on every address (bound and let go)."""
    for _ in range(50):
        socks = []
        try:
            for a in addresses:
                s = socket.socket()
                s.bind((a, socks[0].getsockname()[1] if socks else 0))
                socks.append(s)
            return socks[0].getsockname()[1]
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise Failure(f"no port free on all of {addresses}")


def request(host, port, method, path, body=None):
    conn = http.client.HTTPConnection(host, port, timeout=15)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


def raw_head(port, text):
    """The head of the response to `text` on 127.0.0.1:port (for streams that do not end)."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(text.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.split(b"\r\n\r\n")[0].decode(errors="replace")


def wait_for(predicate, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise Failure(f"timed out waiting for {what}")


def check_dns_gateway_live():
    if not LIPSYNC:
        raise Skip("no LIPSYNC binary given")
    if not shutil.which("nginx"):
        raise Failure("nginx is not installed (scripts/bootstrap installs it)")
    service = "lipsync.test.svc.cluster.local"
    pods = {"alpha": "127.0.0.2", "beta": "127.0.0.3"}
    # The service lists a third pod that is not listening (one starting, or gone).
    records = {f"{p}.{service}": [a] for p, a in pods.items()}
    records[service] = list(pods.values()) + ["127.0.0.4"]
    dns = Dns(records)
    tmp = tempfile.mkdtemp(prefix="lipsync-manifests-")
    procs = {}
    try:
        http_port = port_free_on(list(pods.values()))
        grpc_port = port_free_on(list(pods.values()))
        env = dict(os.environ, LIPSYNC_CACHE_DIR=os.path.join(tmp, "cache"))
        for pod, addr in pods.items():
            config = os.path.join(tmp, pod + ".yaml")
            with open(config, "w") as f:
                f.write(f'server:\n  instance_id: {pod}\n  drain_timeout_s: 5\n'
                        f'  http: "{addr}:{http_port}"\n  grpc: "{addr}:{grpc_port}"\n')
            log = open(os.path.join(tmp, pod + ".log"), "w")
            procs[pod] = subprocess.Popen([LIPSYNC, "serve", "--config", config], env=env,
                                          stdout=log, stderr=log)
            # One at a time: the first makes the demo model in the shared cache.
            wait_for(lambda: request(addr, http_port, "GET", "/readyz")[0] == 200, 60, f"{pod} ready")
        gw_http = port_free_on(["127.0.0.1"])
        gw_grpc = port_free_on(["127.0.0.1"])
        conf = os.path.join(tmp, "gateway.conf")
        with open(conf, "w") as f:
            f.write(run_gateway_sh(["--listen-http", f"127.0.0.1:{gw_http}", "--listen-grpc",
                                    f"127.0.0.1:{gw_grpc}", "--dns", "lipsync", "--namespace", "test",
                                    "--http-port", str(http_port), "--grpc-port", str(grpc_port),
                                    "--resolver", f"127.0.0.1:{dns.port}"]))
        os.mkdir(os.path.join(tmp, "prefix"))
        nginx_log = open(os.path.join(tmp, "nginx.log"), "w")
        procs["nginx"] = subprocess.Popen(["nginx", "-p", os.path.join(tmp, "prefix"), "-c", conf,
                                           "-g", "daemon off;"], stdout=nginx_log, stderr=nginx_log)
        wait_for(lambda: socket.create_connection(("127.0.0.1", gw_http), 0.5).close() is None, 10,
                 "the gateway")

        def new_session():
            status, body = request("127.0.0.1", gw_http, "POST", "/v1/sessions", "{}")
            expect(status == 201, f"POST /v1/sessions through the gateway: {status} {body}")
            return json.loads(body)["id"]

        # New sessions land on both pods (nginx starts at a random address of the service's) and
        # never fail on the one that is not listening.
        held = {}
        for _ in range(40):
            sid = new_session()
            pod = sid.split(".")[0]
            if pod in held:
                status, body = request("127.0.0.1", gw_http, "DELETE", f"/v1/sessions/{sid}")
                expect(status == 204, f"DELETE {sid} through the gateway: {status} {body}")
            held[pod] = held.get(pod, sid)
            if len(held) == 2:
                break
        expect(set(held) == set(pods), f"40 new sessions all landed on {sorted(held)}")
        # A session's requests reach its pod, looked up by name.
        for pod, sid in held.items():
            status, body = request("127.0.0.1", gw_http, "GET", f"/v1/sessions/{sid}")
            expect(status == 200 and json.loads(body)["id"] == sid, f"GET {sid}: {status} {body}")
            status, body = request("127.0.0.1", gw_http, "POST", f"/v1/sessions/{sid}/keepalive")
            expect(status == 200, f"keepalive {sid}: {status} {body}")
            # Its event stream and its WebSocket pass through (only the response heads here).
            head = raw_head(gw_http, f"GET /v1/sessions/{sid}/events HTTP/1.1\r\nHost: x\r\n\r\n")
            expect(head.startswith("HTTP/1.1 200") and "text/event-stream" in head,
                   f"events of {sid}: {head!r}")
            head = raw_head(gw_http, f"GET /v1/sessions/{sid}/ws HTTP/1.1\r\nHost: x\r\n"
                                     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                     "Sec-WebSocket-Version: 13\r\n\r\n")
            expect(head.startswith("HTTP/1.1 101"), f"WebSocket of {sid}: {head!r}")
        # A gRPC Live call attaches through the gateway (lipsync-instance metadata, looked up).
        script = os.path.join(tmp, "end.json")
        with open(script, "w") as f:
            f.write('[{"at_ms": 300, "end": true}]')
        for pod, sid in held.items():
            r = subprocess.run([LIPSYNC, "live-client", "--target", f"127.0.0.1:{gw_grpc}", "--session",
                                sid, "--format", "raw", "--script", script, "-o",
                                os.path.join(tmp, "live-" + pod)], capture_output=True, text=True,
                               timeout=60, env=env)
            expect(r.returncode == 0 and '"status":"OK"' in r.stdout,
                   f"live-client --session {sid} through the gateway: exit {r.returncode}: {r.stdout} {r.stderr}")
        # A valid name of no pod: NXDOMAIN, a JSON 404. A name the pattern refuses is never
        # looked up.
        status, body = request("127.0.0.1", gw_http, "GET", "/v1/sessions/gamma.123/events")
        expect(status == 404 and "instance gamma cannot be reached" in body, f"gamma.123: {status} {body}")
        for bad in ("Evil.123", "a_b.123", "x" * 64 + ".1"):
            status, body = request("127.0.0.1", gw_http, "GET", f"/v1/sessions/{bad}")
            expect(status == 404 and "no instance of this gateway holds it" in body, f"{bad}: {status} {body}")
        strays = [n for n in dns.asked if n != service and not n.endswith("." + service)]
        expect(not strays, f"the gateway looked up names outside the service: {strays}")
        expect(f"gamma.{service}" in dns.asked, "gamma was not looked up")
        # A draining pod stays listed (publishNotReadyAddresses) and answers 503: new sessions go
        # to the other. Once its last session ends it stops, and that session is a JSON 404.
        status, _ = request(pods["alpha"], http_port, "POST", "/v1/admin/drain")
        expect(status == 202, f"drain alpha: {status}")
        for _ in range(6):
            sid = new_session()
            expect(sid.startswith("beta."), f"a new session on draining alpha: {sid}")
        status, body = request("127.0.0.1", gw_http, "DELETE", f"/v1/sessions/{held['alpha']}")
        expect(status == 204, f"DELETE {held['alpha']}: {status} {body}")
        expect(procs["alpha"].wait(timeout=30) == 0, "alpha did not stop after its drain")
        status, body = request("127.0.0.1", gw_http, "GET", f"/v1/sessions/{held['alpha']}")
        expect(status == 404 and "instance alpha cannot be reached" in body,
               f"the session of stopped alpha: {status} {body}")
        new_session()
        return (f"2 pods + 1 not listening, {len(dns.asked)} lookups; routing, events, WebSocket, "
                f"gRPC attach, drain, gone pod, bad names")
    except Failure as e:
        logs = ""
        for name in ("alpha", "beta", "nginx"):
            path = os.path.join(tmp, name + ".log")
            if os.path.exists(path):
                with open(path) as f:
                    logs += f"\n--- {name}.log (end)\n" + f.read()[-1500:]
        raise Failure(str(e) + logs)
    finally:
        for name, p in procs.items():
            if p.poll() is None:
                p.send_signal(signal.SIGQUIT if name == "nginx" else signal.SIGINT)
        for p in procs.values():
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        dns.close()
        shutil.rmtree(tmp, ignore_errors=True)


CHECKS = [
    ("yaml: every file parses", check_yaml_parses),
    ("kustomize: every file a kustomization names exists", check_kustomizations_files_exist),
    ("kustomize: base and overlays/gpu build (kubectl kustomize)", check_kustomize_builds),
    ("statefulset: its serviceName is a headless service that publishes not-ready pods", check_headless_service),
    ("statefulset: terminationGracePeriodSeconds is above server.drain_timeout_s", check_grace_period),
    ("statefulset: readiness /readyz, liveness and startup /healthz", check_probes),
    ("statefulset: the instance id is the pod's name", check_instance_id_is_the_pod_name),
    ("statefulset: the TURN secret is a Secret reference, mounted where the config says", check_turn_secret_is_a_reference),
    ("pdb: selects the StatefulSet's pods, maxUnavailable 1", check_pdb),
    ("gpu overlay: nvidia.com/gpu and the cuda provider first", check_gpu_overlay),
    ("config: every key is one of `lipsync config`", check_config_keys),
    ("config: lipsync loads every config", check_configs_load),
    ("gateway: the ConfigMap's gateway.conf is gateway.sh --dns's output", check_gateway_configmap_is_the_scripts_output),
    ("gateway: nginx -t accepts the --dns config", check_nginx_accepts_dns_config),
    ("gateway: nginx -t accepts an --instance config", check_nginx_accepts_instance_config),
    ("gateway: gateway.sh refuses bad names", check_gateway_sh_refuses_bad_names),
    ("gateway: --dns live, two servers behind nginx with a stand-in DNS", check_dns_gateway_live),
    ("compose: two servers with distinct instance ids, the gateway, coturn", check_compose),
    ("dockerfile: non-root, HEALTHCHECK /healthz, bootstrap and the release preset", check_dockerfiles),
    ("dockerfile: every COPY source exists and is in the build context", check_dockerfile_sources_exist),
]


def main():
    if ROOT is None:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    failed = []
    for name, check in CHECKS:
        try:
            note = check()
            print(f"ok    {name}" + (f" ({note})" if note else ""))
        except Skip as e:
            print(f"skip  {name}: {e}")
        except Failure as e:
            print(f"FAIL  {name}: {e}")
            failed.append(name)
        except Exception as e:  # a file missing or shaped otherwise: that check fails, not the run
            print(f"FAIL  {name}: {type(e).__name__}: {e}")
            failed.append(name)
        sys.stdout.flush()
    if failed:
        print(f"{len(failed)} failed: " + "; ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
