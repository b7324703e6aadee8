"""Fleet speed: a first deploy and an unchanged re-run to 1, 4 and 8 hosts, with the round-trips each host costs;
writes docs/fleet-benchmark.md, docs/fleet-benchmark.json and docs/fleet-benchmark.png.

Four deliveries: the service role over the docker connection, the same with each host pulling the release from a
registry on 127.0.0.1 by digest (release_push once, then the release module's pull; Debian's docker-registry), the
service role over SSH, and the container role, whose "hosts" are containers on this machine's one engine (connection
local; this measures the controller's side of a container fleet, since this machine has one engine).

The hosts are bookworm test hosts booted with systemd as PID 1 (swiftlinux-bench-fleet-<n>) on the host network, so
that each one's sshd can listen on a port of its own on 127.0.0.1 (no bridge, no private address); each runs the
program on a port of its own. Over SSH, ansible's usual ControlMaster/ControlPersist settings apply. The program is
http-service built static_executable, gated by an http probe of /health. Every play runs with -f 8 and pipelining on
(ansible.cfg); wall-clock times include ansible-playbook start-up.

Round-trips are counted without slowing the play down (no -vvv): ansible-playbook runs with a directory first on
PATH whose docker, ssh, sftp and scp only log their arguments and run the real program. Every command the connection
runs on a host is one (a docker exec, a transfer being a docker exec too; an ssh, sftp or scp run), and the count is
divided by the number of hosts.

Hosts are made fresh for every (delivery, fleet size, run), so each "first" deploy is a real first deploy. The
SSH-capable image (swiftlinux-bench-ssh:bookworm) is the bookworm test host plus openssh-server, made once with apt.
Run: .venv/bin/python bench/fleet.py [--runs N] [--sizes 1,4,8] [--deliveries service-docker,service-ssh,container]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import docker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))
from conftest import _start_registry, _stop  # noqa: E402
from support import REPO, SYSTEMD_HOST, built_fixture, run_module, tool_env  # noqa: E402

PREFIX = "swiftlinux-bench-fleet-"
SSH_IMAGE = "swiftlinux-bench-ssh:bookworm"
BASE_PORT = 18600  # host n serves on BASE_PORT + n and, over SSH, listens for ssh on SSH_PORT + n (127.0.0.1)
SSH_PORT = 18700
PLAYBOOK = REPO / "bench" / "fleet.yml"
IMAGE_NAME, IMAGE_TAG = "swiftlinux-bench-fleet/http", "1"  # its own prefix: other benches clean theirs
IMAGE = f"{IMAGE_NAME}:{IMAGE_TAG}"
DELIVERIES = ("service-docker", "service-registry", "service-ssh", "container")
COUNTED = ("docker", "ssh", "sftp", "scp")  # the programs a connection runs to reach a host


def ssh_image(client) -> None:
    """The bookworm test host with openssh-server, made once (cached by tag)."""
    try:
        client.images.get(SSH_IMAGE)
        return
    except docker.errors.ImageNotFound:
        pass
    print(f"making {SSH_IMAGE} (apt-get install openssh-server)", flush=True)
    builder = client.containers.run("swiftlinux-testhost:bookworm", command=["sleep", "infinity"], network_mode="host",
                                    name=PREFIX + "ssh-image", detach=True, labels={"swiftlinux.test": "bench"})
    try:
        result = builder.exec_run(["sh", "-c", "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y "
                                   "-q --no-install-recommends openssh-server && apt-get clean"])
        if result.exit_code != 0:
            raise SystemExit(f"could not install openssh-server in the test host:\n{result.output.decode()[-2000:]}")
        builder.commit(*SSH_IMAGE.split(":"), conf={"Cmd": ["/lib/systemd/systemd"]})
    finally:
        builder.remove(force=True)


def put_file(container, path: str, text: str, mode: int) -> None:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        info = tarfile.TarInfo(os.path.basename(path))
        info.size, info.mode = len(text.encode()), mode
        tar.addfile(info, io.BytesIO(text.encode()))
    container.put_archive(os.path.dirname(path), data.getvalue())


def start_hosts(client, count: int, delivery: str, public_key: str) -> list:
    remove_hosts(client)
    if delivery == "container":
        return []  # the container role makes its own containers on this engine
    transport = "ssh" if delivery == "service-ssh" else "docker"
    hosts = []
    for index in range(count):
        options = {**SYSTEMD_HOST, "network_mode": "host", "labels": {"swiftlinux.test": "bench"}}
        options.pop("detach")
        container = client.containers.create(SSH_IMAGE if transport == "ssh" else "swiftlinux-testhost:bookworm",
                                             name=f"{PREFIX}{index}", tmpfs={"/run": "", "/run/lock": "", "/tmp": ""},
                                             **options)
        if transport == "ssh":
            put_file(container, "/etc/ssh/sshd_config.d/bench.conf",
                     f"ListenAddress 127.0.0.1:{SSH_PORT + index}\nPasswordAuthentication no\n", 0o644)
            put_file(container, "/root/.ssh/authorized_keys", public_key, 0o600)
        container.start()
        hosts.append(container)
    for container in hosts:
        deadline = time.monotonic() + 120
        while True:
            state = container.exec_run("systemctl is-system-running --wait").output.decode().strip()
            if state in ("running", "degraded") or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if state not in ("running", "degraded"):
            raise SystemExit(f"{container.name} did not boot: {state}")
    return hosts


def remove_hosts(client) -> None:
    for container in client.containers.list(all=True, filters={"name": f"^{PREFIX}c?[0-9]+$"}):
        container.remove(force=True)


def inventory(count: int, delivery: str, key: Path, artifact: Path, reference: str = "") -> dict:
    hosts = {}
    for index in range(count):
        port = BASE_PORT + index
        if delivery == "container":
            hosts[f"fleet-{index}"] = {
                "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                "container_name": f"{PREFIX}c{index}", "container_image": IMAGE, "container_pull": "missing",
                "container_command": ["--bind", "127.0.0.1", "--port", str(port)], "container_port": port,
                "container_probe": {"kind": "http", "port": port, "path": "/health"},
                "container_labels": {"swiftlinux.test": "bench"}}
            continue
        if delivery == "service-ssh":
            connection = {"ansible_connection": "ansible.builtin.ssh", "ansible_host": "127.0.0.1",
                          "ansible_port": SSH_PORT + index, "ansible_user": "root",
                          "ansible_ssh_private_key_file": str(key),
                          "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"}
        else:
            connection = {"ansible_connection": "community.docker.docker", "ansible_host": f"{PREFIX}{index}"}
        hosts[f"fleet-{index}"] = {**connection, "ansible_python_interpreter": "/usr/bin/python3",
                                   "service_args": ["--bind", "127.0.0.1", "--port", str(port)],
                                   "service_port": port,
                                   "service_probe": {"kind": "http", "port": port, "path": "/health"}}
    role = "swiftlinux.deploy.container" if delivery == "container" else "swiftlinux.deploy.service"
    return {"all": {"children": {"fleet": {"hosts": hosts, "vars": {
        "fleet_role": role, "service_name": "bench-http", "service_artifact": str(artifact),
        "service_pull_reference": reference if delivery == "service-registry" else ""}}}}}


def container_image(client, artifact: Path, archive: Path) -> None:
    """The scratch-static image of the program (built once into archive), loaded into this engine; the container role
    then finds it."""
    if not archive.is_file():
        built = run_module("oci_image", {"executable": str(artifact / "http-service"), "name": IMAGE_NAME,
                                         "tag": IMAGE_TAG, "format": "archive", "dest": str(archive)})
        if built.get("failed"):
            raise SystemExit(f"oci_image failed: {built['msg']}")
    with archive.open("rb") as stream:
        client.images.load(stream.read())


def machine_cpu() -> tuple[float, float]:
    """(busy, stolen): CPU seconds this machine's cores have been busy since boot (all processes), and the seconds
    the hypervisor kept them from running although they had work (steal), from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, dummy, dummy, irq, softirq, steal = fields[:8]
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


def container_cpu(client) -> float:
    """CPU seconds used by the processes of this bench's containers (the hosts, or the container role's containers),
    from their cgroups (v1 cpuacct or v2 cpu.stat); 0 for a container whose cgroup is not found."""
    total = 0.0
    for container in client.containers.list(filters={"name": f"^{PREFIX}c?[0-9]+$"}):
        for path, scale in ((f"/sys/fs/cgroup/cpuacct/docker/{container.id}/cpuacct.usage", 1e9),
                            (f"/sys/fs/cgroup/system.slice/docker-{container.id}.scope/cpu.stat", 1e6),
                            (f"/sys/fs/cgroup/docker/{container.id}/cpu.stat", 1e6)):
            try:
                text = Path(path).read_text()
            except OSError:
                continue
            value = text.split()[1] if text.startswith("usage_usec") else text.split()[0]
            total += int(value) / scale
            break
    return total


def counting_path(work: Path) -> tuple[str, Path]:
    """A directory of wrappers for the programs in COUNTED, each of which appends its name and arguments to a log
    and runs the real program (found on PATH now); returns (the directory, the log)."""
    wrappers, log = work / "counting-bin", work / "round-trips.log"
    wrappers.mkdir(exist_ok=True)
    for name in COUNTED:
        real = shutil.which(name, path=tool_env()["PATH"])
        if real is None:
            continue
        wrapper = wrappers / name
        wrapper.write_text(f'#!/bin/sh\nprintf \'%s\\n\' "{name} $*" >> {shlex.quote(str(log))}\n'
                           f'exec {shlex.quote(real)} "$@"\n')
        wrapper.chmod(0o755)
    return str(wrappers), log


def round_trips(log: Path) -> int:
    """The commands the connections ran on hosts, from the wrappers' log: every docker exec, every ssh, sftp or scp
    run (docker's other subcommands, such as the version the connection asks for, reach no host)."""
    trips = 0
    for line in log.read_text().splitlines() if log.exists() else []:
        words = line.split()
        trips += words[0] != "docker" or "exec" in words[1:]
    return trips


def deploy(inventory_path: Path, count: int, client) -> dict:
    env = tool_env()
    env.update(ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    wrappers, log = counting_path(inventory_path.parent)
    env["PATH"] = os.pathsep.join([wrappers, env["PATH"]])
    log.unlink(missing_ok=True)
    (busy, stolen), hosts = machine_cpu(), container_cpu(client)
    own = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.run(["ansible-playbook", "-f", "8", "-i", str(inventory_path), str(PLAYBOOK)],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=1800, check=False)
    elapsed = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # The controller: ansible-playbook, its forks and everything they ran here (module runs on the local connection,
    # the docker and ssh clients); the hosts: their own processes; the rest of the machine's busy time is the engine
    # (docker exec, containerd) and anything else that ran meanwhile.
    busy_after, stolen_after = machine_cpu()
    cpu = {"machine": round(busy_after - busy, 1), "stolen": round(stolen_after - stolen, 1),
           "controller": round(after.ru_utime + after.ru_stime - own.ru_utime - own.ru_stime, 1),
           "hosts": round(container_cpu(client) - hosts, 1)}
    if proc.returncode != 0:
        raise SystemExit(f"deploy to {count} host(s) failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    recap = re.findall(r"^fleet-\d+\s+: ok=\d+\s+changed=(\d+)", proc.stdout, re.MULTILINE)
    if len(recap) != count:
        raise SystemExit(f"expected a recap line for each of {count} host(s):\n{proc.stdout[-3000:]}")
    return {"seconds": round(elapsed, 2), "changed": sum(int(c) for c in recap),
            "round_trips_per_host": round_trips(log) / count,
            "cpu": cpu}


def measure(sizes: list[int], deliveries: list[str], runs: int) -> list[dict]:
    """A first deploy and an unchanged re-run for each run, delivery and fleet size, on fresh hosts each time."""
    unknown = set(deliveries) - set(DELIVERIES)
    if unknown:
        raise SystemExit(f"unknown deliveries {sorted(unknown)}; choose from {', '.join(DELIVERIES)}")
    client = docker.from_env()
    if "service-ssh" in deliveries:
        ssh_image(client)
    artifact = Path(built_fixture("http-service", "static_executable")["manifest"]).parent
    results = []
    with tempfile.TemporaryDirectory(prefix="swiftlinux-bench-fleet-") as work:
        registry = reference = None
        if "service-registry" in deliveries:
            registry, host = _start_registry(Path(work) / "registry", None)
            start = time.monotonic()
            pushed = run_module("release_push", {"path": str(artifact), "name": f"{host}/swiftlinux-bench/fleet"})
            if pushed.get("failed"):
                raise SystemExit(f"release_push failed: {pushed['msg']}")
            reference = pushed["reference"]
            print(json.dumps({"push_seconds": round(time.monotonic() - start, 2),
                              "uploaded_bytes": pushed["uploaded_bytes"]}), flush=True)
        key = Path(work) / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        public_key = (key.with_suffix(".pub")).read_text()
        image_archive = Path(work) / "image.tar"
        try:
            for run in range(runs):
                for delivery in deliveries:
                    for count in sizes:
                        if delivery == "container":  # loaded again each time: nothing may remove it meanwhile
                            container_image(client, artifact, image_archive)
                        start_hosts(client, count, delivery, public_key)
                        path = Path(work) / f"inventory-{delivery}-{count}.json"
                        path.write_text(json.dumps(inventory(count, delivery, key, artifact, reference)))
                        first = deploy(path, count, client)
                        again = deploy(path, count, client)
                        if first["changed"] == 0 or again["changed"] != 0:
                            raise SystemExit(f"{delivery}, {count} host(s): first run changed {first['changed']}, "
                                             f"re-run changed {again['changed']} (expected >0 and 0)")
                        row = {"run": run + 1, "delivery": delivery, "hosts": count, "first": first, "again": again}
                        print(json.dumps(row), flush=True)
                        results.append(row)
        finally:
            remove_hosts(client)
            for container in client.containers.list(all=True, filters={"label": "swiftlinux.test=bench"}):
                if container.name.startswith(PREFIX):
                    container.remove(force=True)
            if registry is not None:
                _stop(registry)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--sizes", default="1,4,8")
    parser.add_argument("--deliveries", default=",".join(DELIVERIES))
    parser.add_argument("--out", default=str(REPO / "docs"),
                        help="directory for fleet-benchmark.md, .json and .png (default docs/)")
    parser.add_argument("--keep-others", action="store_true",
                        help="keep the saved rows of the deliveries not measured in this run (the doc says how many runs each had)")
    parser.add_argument("--report-only", action="store_true",
                        help="write the doc and chart again from OUT/fleet-benchmark.json, measuring nothing")
    options = parser.parse_args()
    out = Path(options.out)
    if options.report_only:
        saved = json.loads((out / "fleet-benchmark.json").read_text())
        write_report(saved["runs"], out, saved["machine"])
        return
    deliveries = options.deliveries.split(",")
    results = measure([int(size) for size in options.sizes.split(",")], deliveries, options.runs)
    if options.keep_others:
        saved = json.loads((out / "fleet-benchmark.json").read_text())
        results = [row for row in saved["runs"] if row["delivery"] not in deliveries] + results
    write_report(results, out)


def chart(results: list, sizes: list, deliveries: list, out: Path) -> None:
    """OUT/fleet-benchmark.png: median seconds by fleet size, first deploy and re-run, one line per delivery."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(7, 4))
    for delivery in deliveries:
        for phase, style in (("first", "-o"), ("again", "--s")):
            axes.plot(sizes, [median(results, delivery, count, phase) for count in sizes], style,
                      label=f"{delivery}, {'first deploy' if phase == 'first' else 'unchanged re-run'}")
    axes.set_xlabel("hosts")
    axes.set_ylabel("seconds (median)")
    axes.set_xticks(sizes)
    axes.set_ylim(bottom=0)
    axes.set_title(f"Fleet deploy time ({platform.machine()}, {os.cpu_count()} cores, -f 8)")
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(out / "fleet-benchmark.png", dpi=100)


def median(results: list, delivery: str, count: int, phase: str, field: str = "seconds") -> float:
    return statistics.median(row[phase][field] for row in results if row["delivery"] == delivery
                             and row["hosts"] == count)


def spread(results: list, delivery: str, count: int, phase: str) -> str:
    values = [row[phase]["seconds"] for row in results if row["delivery"] == delivery and row["hosts"] == count]
    return f"{min(values):.1f}–{max(values):.1f}" if len(values) > 1 else "one run"


TABLE_HEAD = ["| delivery | hosts | first deploy | unchanged re-run | re-run / first | round-trips per host, first "
              "| round-trips per host, re-run |", "|---|---|---|---|---|---|---|"]


def table_rows(results: list) -> list[str]:
    """The table's rows (TABLE_HEAD above them): median and min-max per delivery and fleet size; make bench shows them too."""
    rows = []
    for delivery in dict.fromkeys(row["delivery"] for row in results):
        for count in sorted({row["hosts"] for row in results}):
            first, again = median(results, delivery, count, "first"), median(results, delivery, count, "again")
            rows.append(f"| {delivery} | {count} | {first:.1f} s ({spread(results, delivery, count, 'first')}) | "
                        f"{again:.1f} s ({spread(results, delivery, count, 'again')}) | {again / first:.2f} | "
                        f"{median(results, delivery, count, 'first', 'round_trips_per_host'):.0f} | "
                        f"{median(results, delivery, count, 'again', 'round_trips_per_host'):.0f} |")
    return rows


def cpu_rows(results: list) -> list[str]:
    """Where the CPU of a first deploy went (median seconds per delivery and fleet size), for runs that recorded it."""
    rows = []
    cores = os.cpu_count() or 1
    for delivery in dict.fromkeys(row["delivery"] for row in results):
        for count in sorted({row["hosts"] for row in results}):
            runs = [row for row in results if row["delivery"] == delivery and row["hosts"] == count
                    and "cpu" in row["first"]]
            if not runs:
                continue
            cpu = {part: statistics.median(row["first"]["cpu"].get(part, 0) for row in runs)
                   for part in ("machine", "controller", "hosts", "stolen")}
            wall = statistics.median(row["first"]["seconds"] for row in runs)
            rows.append(f"| {delivery} | {count} | {wall:.1f} s | {cpu['machine']:.1f} s | {cpu['controller']:.1f} s | "
                        f"{cpu['hosts']:.1f} s | {max(0.0, cpu['machine'] - cpu['controller'] - cpu['hosts']):.1f} s | "
                        f"{cpu['machine'] / cores / wall:.0%} | {cpu['stolen']:.1f} s |")
    return rows


def write_report(results: list, out: Path, machine: str = "") -> None:
    sizes = sorted({row["hosts"] for row in results})
    deliveries = list(dict.fromkeys(row["delivery"] for row in results))
    machine = machine or f"{platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end"
    rows = table_rows(results)
    scaling = []
    for delivery in deliveries:
        if 1 in sizes and max(sizes) > 1:
            big = max(sizes)
            one = median(results, delivery, 1, 'first')
            line = (f"- {delivery}: a first deploy to {big} hosts takes "
                    f"{median(results, delivery, big, 'first') / one:.2f}x a deploy to 1 host; an unchanged re-run "
                    f"{median(results, delivery, big, 'again') / median(results, delivery, 1, 'again'):.2f}x.")
            measured = [row["first"]["cpu"] for row in results
                        if row["delivery"] == delivery and row["hosts"] == big and "cpu" in row["first"]]
            if measured:
                cores = os.cpu_count() or 1
                floor = statistics.median(cpu["machine"] for cpu in measured) / cores / one
                controller = statistics.median(cpu["controller"] for cpu in measured) / cores / one
                line += (f" Its CPU alone, on these {cores} cores, needs at least {floor:.2f}x; the controller's "
                         f"share alone, as on a fleet whose hosts have CPUs of their own, {controller:.2f}x.")
            scaling.append(line)
    out.mkdir(parents=True, exist_ok=True)
    chart(results, sizes, deliveries, out)
    runs = max(row["run"] for row in results)
    runs_of = {delivery: len({row["run"] for row in results if row["delivery"] == delivery}) for delivery in deliveries}
    over = (f"{runs} run(s)" if set(runs_of.values()) == {runs} else "the runs of its delivery ("
            + ", ".join(f"{delivery} {count}" for delivery, count in runs_of.items())
            + "; measured at different times, with --keep-others)")
    report = f"""# Fleet speed: the service and container roles on 1 to {max(sizes)} hosts

`make bench` (bench/fleet.py, {runs} run(s)) on this machine ({machine}).
Each cell is the median over {over} with the min–max in brackets; hosts are fresh bookworm systemd
hosts for every run, the program is http-service built `static_executable`, and every play uses `-f 8` with
pipelining, and without `-v`. Round-trips are the commands the connection ran on each host (docker exec, or ssh exec,
transfers included), counted by logging wrappers of docker, ssh, sftp and scp put first on PATH; the container role's
hosts are containers on this machine's engine, reached with the local connection, so it has none.

![first deploy and unchanged re-run by fleet size](fleet-benchmark.png)

| delivery | hosts | first deploy | unchanged re-run | re-run / first | round-trips per host, first | round-trips per host, re-run |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

{chr(10).join(scaling)}

Where the CPU of a first deploy went (CPU seconds; the controller is ansible-playbook with its forks and everything
they ran here, the docker and ssh clients included; the hosts are the test hosts' own processes, or the container
role's containers; the rest is the Docker engine and whatever else this machine ran meanwhile; busy is the share of
the {os.cpu_count()} cores' time the machine was busy during the deploy; stolen is the time the hypervisor kept
them from running although they had work, which makes a run slower without any change in it):

| delivery | hosts | first deploy | machine CPU | controller | hosts | rest | busy | stolen |
|---|---|---|---|---|---|---|---|---|
{chr(10).join(cpu_rows(results)) or '| (not recorded in these runs) | | | | | | | | |'}

Read these as {'one noisy run' if runs == 1 else f'the medians of {runs} noisy runs'}: the load average above counts the
other work this machine did meanwhile, and the
stolen column shows how much the hypervisor held the cores back in each deploy. Here the test hosts are containers
on the controller's own cores, so a deploy to 8 hosts runs the hosts' own work (Python module runs, systemd) on the
same 2 cores as the controller's: the table above shows how much of the CPU that is, and the lines under the first
table give the floor it sets. On a fleet whose hosts have CPUs of their own, only the controller's share queues.
The container role's image is already in the engine before its first deploy (`container_pull: missing`), so its
first deploy only creates the container. A re-run skips the gate's two calls when the one try of the probe that
host_info makes passes, and skips docker_container when the running container already has this image, the run
settings the role recorded and the settings `docker update` can change; its other calls (host_info and three
community.docker modules reading the engine, the image and the container) are local Ansible module runs on this
machine, at 1.2 to 1.8 s each.

How the round-trips came down (the issue's levers):

- **Fewer, fatter host calls.** `host_info` reads in one call what the preflight needs (glibc, GLIBCXX from
  libstdc++'s version names on the host, architecture, systemd, the library cache, the port's owner) and also the
  releases the host holds, the service user, the unit's link and state, and the checksums of the current release's
  files, so the tasks that would change those run only when something differs (a release that is current and intact
  is not even checked again by the release module). It also tries the probe once when the unit is active, so a run
  that changes nothing skips the gate. Otherwise `probe` with `unit` is the whole gate in one call (probe, unit
  still active, no restart meanwhile). A new release is one task: the release action plugin packs the artifact into one
  uncompressed tar on the controller and sends it in one transfer, and the module extracts it (refusing anything but
  files, directories and relative links inside the release), adds the configuration and the entry-point link, checks
  every sha256 and switches, where it was a directory, a copy per file and a link per entry. With
  `service_pull_reference` the module fetches the release from a registry instead. A unit that was stopped is
  started once, not started and then restarted by the handler.
- **Fewer controller-side module runs.** These cost as much CPU as a host call and queue for the controller's cores
  with `-f 8`. The artifact is described by artifact_info's action plugin in Ansible's own process (local
  connection), and the probe description is checked by the `probe_problem` filter (the probe module's argument spec
  and rules, in the controller's own process), so a run of the service role starts no module process on the
  controller.
- **Fewer tasks.** Every task costs the controller a worker process per host, skipped or not, and with `-f 8` those
  queue for the same cores. The service role checks all its inputs in one task and refuses a host in one task (the
  first problem is the message); the tasks that change a host (packages, user, release, unit links, start) are one
  include that an unchanged host skips as a whole, and the socket tasks one include that a service without socket
  activation skips. An unchanged re-run runs 10 tasks per host, where it ran 26. The release action plugin sets no
  permissions on its transfer (one round-trip less) unless `become` goes to an unprivileged user.
- **Pipelining** is on (ansible.cfg and the molecule config): each module goes over the connection's stdin instead
  of a temporary file, for the docker and ssh connections alike. It does not apply to the local connection
  (nothing to transfer), and with `become` over SSH it needs sudo without `requiretty` (Debian's default).
- **Fact caching** was not added: the one `host_info` call both gathers the facts and is the check a cache would
  need (a fingerprint of libc, libstdc++ and the boot id is read on the host too), so a cache saves no round-trip.
- Over SSH, ansible's default ControlMaster/ControlPersist keeps one connection per host for the whole play; over the
  docker connection every round-trip is a `docker exec`.

For the service role, an unchanged re-run ships no file: host_info lists the releases the host holds, so the role
sends nothing, and its only host call is host_info, which also reads the current release's checksums and tries the
probe once: when the release is current and intact and the running unit answers, neither the release module nor the
gate is called. A first deploy over the
docker connection adds the service group and user, the release's temporary directory, transfer and clean-up, the unit
link and the unit's start; with a registry the host pulls instead, without the temporary directory and transfer.
Over SSH, `ssh` and `sftp` runs are counted; ssh's ControlMaster keeps one TCP connection under them.
"""
    (out / "fleet-benchmark.md").write_text(report)
    (out / "fleet-benchmark.json").write_text(json.dumps({"machine": machine, "runs": results}, indent=1) + "\n")
    print(report)


if __name__ == "__main__":
    main()
