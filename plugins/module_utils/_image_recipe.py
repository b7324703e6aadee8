# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What goes into a minimal image, decided from ELF facts: recipe, files per layer, image config.

Both builders use this plan: oci_image turns it into layer tars itself, and the image role copies the
same files into a Docker build context. So the two builders hold the same files by construction.
Private to this collection.
"""

from __future__ import annotations

import hashlib
import json
import os
import re

try:
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile
except ImportError:  # oci_image reports the missing library through _elf.HAS_ELFTOOLS
    ELFError = ELFFile = None
from ansible_collections.swiftlinux.deploy.plugins.module_utils._oci import (
    OciError, dir_entry, file_entry, rfc3339, symlink_entry, tree_entries,
)
from ansible_collections.swiftlinux.deploy.plugins.module_utils._files import contains_bytes, file_digests
from ansible_collections.swiftlinux.deploy.plugins.module_utils._policy import link_mode_of, machine_named, oci_platform
from ansible_collections.swiftlinux.deploy.plugins.module_utils._sbom import spdx_document

RECIPES = ("scratch-static", "scratch-bag", "runtime-base")
APP_DIR = "/app"
SWIFT_RUNTIME_DIR = "/usr/lib/swift/linux"
CA_BUNDLE_PATH = "/etc/ssl/certs/ca-certificates.crt"
ZONEINFO_PATH = "/usr/share/zoneinfo"
BACKTRACER = "swift-backtrace-static"
SBOM_PATH = "/app/sbom.spdx.json"
RUNTIME_SBOM_PATH = "/usr/share/swiftlinux/swift-runtime.spdx.json"
LABEL_PREFIX = "io.swiftlinux."

# Test frameworks ship in the toolchain's runtime directory but never run in a service.
_NOT_RUNTIME = re.compile(r"XCTest|Testing|_InternalSwiftStaticMirror")


def platform_of(machine):
    return oci_platform(machine) or "linux/" + machine


def uses_foundation(facts):
    """Whether the binary uses Foundation: it loads libFoundation*, or embeds FoundationEssentials' metadata.

    Static builds keep every linked module's name in their Swift metadata, which stripping keeps.
    """
    if any(lib.startswith("libFoundation") for lib in facts["needed"]):
        return True
    return contains_bytes(facts["path"], b"FoundationEssentials")


def choose_recipe(facts, have_bag):
    """The recipe for an executable's ELF facts: the smallest image it can run in."""
    if link_mode_of(facts) == "static_executable":
        return "scratch-static"
    if facts["swift_runtime"] == "dynamic" and not have_bag:
        return "runtime-base"
    return "scratch-bag"


# ---- shared libraries, resolved by reading ELF like the loader would ----------------------------

def _default_dirs(machine):
    triple = getattr(machine_named(machine), "multiarch", None) or ""
    dirs = ["/lib/" + triple, "/usr/lib/" + triple] if triple else []
    return dirs + ["/lib64", "/usr/lib64", "/lib", "/usr/lib"]


def _search_dirs(info):
    origin = os.path.dirname(os.path.realpath(info["path"]))
    own = info["runpath"] or info["rpath"]
    return [d.replace("$ORIGIN", origin).replace("${ORIGIN}", origin) for d in own]


def dynamic_info(path):
    """Just what the loader reads to find dependencies: NEEDED, RUNPATH, RPATH.

    Much cheaper than elf_facts for big libraries, whose symbol tables elf_facts scans.
    """
    try:
        with open(path, "rb") as stream:
            elf = ELFFile(stream)
            info = {"path": path, "needed": [], "runpath": [], "rpath": []}
            for segment in elf.iter_segments():
                if segment["p_type"] != "PT_DYNAMIC":
                    continue
                for tag in segment.iter_tags():
                    if tag.entry.d_tag == "DT_NEEDED":
                        info["needed"].append(tag.needed)
                    elif tag.entry.d_tag == "DT_RUNPATH":
                        info["runpath"] += [d for d in tag.runpath.split(":") if d]
                    elif tag.entry.d_tag == "DT_RPATH":
                        info["rpath"] += [d for d in tag.rpath.split(":") if d]
            return info
    except (OSError, ELFError) as exc:
        raise OciError("cannot read the shared library %s (%s); reinstall the package that provides it" % (path, exc))


def resolve_libraries(roots, machine):
    """{soname: host path} for everything the `roots` (elf facts or dynamic_info dicts) need, transitively,
    found as the loader would find it."""
    found, queue = {}, list(roots)
    while queue:
        current = queue.pop(0)
        dirs = _search_dirs(current) + _default_dirs(machine)
        for soname in current["needed"]:
            if soname in found:
                continue
            path = next((os.path.join(d, soname) for d in dirs if os.path.isfile(os.path.join(d, soname))), None)
            if path is None:
                raise OciError("%s needs %s, which is not installed on this build host (searched %s); install the "
                               "package that provides it" % (current["path"], soname, ", ".join(dirs)))
            found[soname] = path
            queue.append(dynamic_info(path))
    return found


def library_entries(facts, libraries, swift_dir=None):
    """Entries placing each library by its soname in the image's library directory (Swift ones apart),
    plus the program interpreter at the path the executable names."""
    system_dir = "/usr/lib/" + (getattr(machine_named(facts["machine"]), "multiarch", None) or "")
    entries, placed = [], {}
    for soname, host in sorted(libraries.items()):
        is_swift = swift_dir and os.path.dirname(os.path.realpath(host)) == os.path.realpath(swift_dir)
        inside = os.path.join(SWIFT_RUNTIME_DIR if is_swift else system_dir, soname)
        placed[soname] = inside
        entries.append(file_entry(inside, source=os.path.realpath(host), mode=0o755))
    interpreter = facts["interpreter"]
    if interpreter:
        name = os.path.basename(interpreter)
        inside = placed.get(name) or os.path.join(system_dir, name)
        if name not in placed:
            entries.append(file_entry(inside, source=os.path.realpath(interpreter), mode=0o755))
        if interpreter != inside:
            entries.append(symlink_entry(interpreter, os.path.relpath(inside, os.path.dirname(interpreter))))
    return entries


def swift_runtime_libraries(runtime_dir):
    """Every shared library of the toolchain's runtime directory except the test frameworks."""
    if not os.path.isfile(os.path.join(runtime_dir, "libswiftCore.so")):
        raise OciError("%s holds no libswiftCore.so, so it is not a Swift runtime directory; set swift_runtime_dir "
                       "to the toolchain's usr/lib/swift/linux" % runtime_dir)
    return {name: os.path.join(runtime_dir, name) for name in sorted(os.listdir(runtime_dir))
            if name.endswith(".so") and not _NOT_RUNTIME.search(name)}


def runtime_dir_of(facts):
    """The directory a dynamic build loads libswiftCore.so from on the build host, or None."""
    for directory in _search_dirs(facts):
        if os.path.isfile(os.path.join(directory, "libswiftCore.so")):
            return directory
    return None


# ---- the files every image holds --------------------------------------------------------------

def base_entries(uid, ca_bundle, zoneinfo):
    """/etc/passwd and /etc/group with the nonroot user, /tmp 1777, the CA bundle and (optionally) tzdata."""
    passwd = "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n" % (uid, uid)
    group = "root:x:0:\nnonroot:x:%d:\n" % uid
    entries = [
        file_entry("etc/passwd", data=passwd.encode(), mode=0o644),
        file_entry("etc/group", data=group.encode(), mode=0o644),
        dir_entry("tmp", mode=0o1777),
        dir_entry("home/nonroot", mode=0o755),
    ]
    if not os.path.isfile(ca_bundle):
        raise OciError("the CA bundle %s does not exist; install ca-certificates on the build host or set ca_bundle"
                       % ca_bundle)
    entries.append(file_entry(CA_BUNDLE_PATH, source=ca_bundle, mode=0o644))
    if zoneinfo:
        if not os.path.isdir(zoneinfo):
            raise OciError("time zone data %s does not exist; install tzdata on the build host, set zoneinfo, or "
                           "set tzdata=false" % zoneinfo)
        entries += tree_entries(zoneinfo, ZONEINFO_PATH)
    return entries


def resource_entries(bundle, dest):
    """A resource bundle's files; symlinks are kept when they stay inside the bundle, refused otherwise."""
    if not os.path.isdir(bundle):
        raise OciError("resource bundle %s does not exist or is not a directory; pass the resources list that "
                       "swiftlinux.deploy.swift_build returned" % bundle)
    root = os.path.realpath(bundle)
    entries = []
    for entry in tree_entries(bundle, dest):
        if entry.kind == "symlink":
            host = os.path.join(bundle, os.path.relpath(entry.path, dest.strip("/")))
            target = entry.target
            resolved = os.path.normpath(target if os.path.isabs(target)
                                        else os.path.join(os.path.dirname(os.path.abspath(host)), target))
            real = os.path.realpath(resolved)
            if not (real == root or real.startswith(root + os.sep)):
                raise OciError("resource bundle %s holds the symlink %s -> %s, which points outside the bundle; "
                               "copy that file into the bundle or make the link point inside it"
                               % (bundle, os.path.relpath(host, bundle), target))
            if os.path.isabs(target):
                # Absolute links would point at the build host's path inside the image; make them relative.
                relative = os.path.relpath(real, os.path.dirname(os.path.join(root, os.path.relpath(host, bundle))))
                entry = symlink_entry(entry.path, relative)
        entries.append(entry)
    return entries


def app_entries(executable, resources, backtracer):
    entries = [file_entry(os.path.join(APP_DIR, os.path.basename(executable)), source=executable, mode=0o755)]
    for bundle in resources:
        entries += resource_entries(bundle, os.path.join(APP_DIR, os.path.basename(bundle.rstrip("/"))))
    if backtracer:
        entries.append(file_entry(os.path.join(APP_DIR, BACKTRACER), source=backtracer, mode=0o755))
    return entries


# ---- image config: validated inputs, then the config object both builders produce ----------------

# Docker's default PATH: the Docker builder gives every FROM-scratch image this one, so the daemonless
# builder sets it too and both builders give the same Env.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MAX_ID = 2147483647
MAX_EPOCH = 4294967295  # the last second a 32-bit unsigned time stamp (gzip, many tar readers) holds: 2106
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}\Z")
HEALTHCHECK_KIND = "command"


def check_config_inputs(params):
    """Refuse, with one sentence, any image setting that could not be written exactly into a Containerfile."""
    for key in params["env"]:
        if not _ENV_KEY.match(str(key)):
            raise OciError("env key %r is not a POSIX variable name; use letters, digits and '_', not starting with "
                           "a digit" % key)
    for key in params["labels"]:
        if not _LABEL_KEY.match(str(key)):
            raise OciError("label key %r is not valid; use letters, digits, '.', '_', '-' and '/', starting with a "
                           "letter or digit, for example com.example.team" % key)
    for value in list(params["env"].values()) + list(params["labels"].values()):
        if not isinstance(value, (str, int, float, bool)) or "\0" in str(value):
            raise OciError("env and label values must be strings without NUL characters, but one is %r; quote it "
                           "as a string" % (value,))
    if not 0 <= params["user"] <= MAX_ID:
        raise OciError("user %s is not a numeric id from 0 to %d; set user to the uid the image runs as, for "
                       "example 65532" % (params["user"], MAX_ID))
    for port in params["ports"]:
        if not 1 <= port <= 65535:
            raise OciError("port %s is not a TCP port from 1 to 65535; fix ports" % port)
    for item in params["command"]:
        if "\0" in item:
            raise OciError("command item %r holds a NUL character, which no program can receive; remove it" % item)
    epoch = params["source_date_epoch"]
    if epoch is not None and not 0 <= epoch <= MAX_EPOCH:
        raise OciError("source_date_epoch %s is out of range; use seconds since 1970 from 0 to %d, for example the "
                       "last commit's time (git log -1 --format=%%ct)" % (epoch, MAX_EPOCH))
    return health_config(params["healthcheck"])


def health_config(health):
    """The HEALTHCHECK from the healthcheck option, or None; only exec-form commands can run in a scratch image."""
    if not health:
        return None
    kind = health.get("kind") or HEALTHCHECK_KIND
    if kind != HEALTHCHECK_KIND:
        raise OciError("healthcheck kind %s cannot run inside this image: it has no shell, curl or other tool to "
                       "probe %s; give a command (exec form) the image holds, or leave healthcheck out and let the "
                       "container role probe from the host" % (kind, kind))
    command = health.get("command") or []
    if not command or any("\0" in item for item in command):
        raise OciError("healthcheck needs command, a non-empty list of arguments without NUL characters that runs "
                       "inside the container (exec form), for example [/app/api, --self-test]")
    for name in ("interval", "timeout", "retries", "start_period"):
        if health[name] < (1 if name in ("interval", "timeout") else 0):
            raise OciError("healthcheck %s is %s; use a positive number" % (name, health[name]))
    return dict(health, command=list(command))


def image_config(uid, entrypoint, command, env, labels, ports, health):
    """The `config` object of the image (the Docker/OCI runtime settings)."""
    config = {
        "User": "%d:%d" % (uid, uid),
        "Env": ["%s=%s" % item for item in sorted(dict({"PATH": DEFAULT_PATH}, **env).items())],
        "Entrypoint": entrypoint,
        "WorkingDir": APP_DIR if entrypoint else "/",
        "Labels": dict(sorted(labels.items())),
    }
    if command:
        config["Cmd"] = command
    if ports:
        config["ExposedPorts"] = {"%d/tcp" % port: {} for port in sorted(ports)}
    if health:
        second = 1000000000
        config["Healthcheck"] = {"Test": ["CMD"] + health["command"], "Interval": health["interval"] * second,
                                 "Timeout": health["timeout"] * second, "Retries": health["retries"]}
        if health["start_period"]:
            config["Healthcheck"]["StartPeriod"] = health["start_period"] * second
    return config


def containerfile_args(config):
    """Build arguments carrying every Env and Labels value to the Docker builder, and the names that use them.

    A Containerfile line cannot hold every string (a newline ends it, and quoting rules differ between
    builders), so the template writes ENV KEY="${ARG}" and the value travels as a build argument, which
    the builder substitutes verbatim. Keys are validated names, so they are written as they are.
    """
    args, env, labels = {}, [], []
    for index, variable in enumerate(config["Env"]):
        key, value = variable.split("=", 1)
        args["SWIFTLINUX_ENV_%d" % index] = value
        env.append([key, "SWIFTLINUX_ENV_%d" % index])
    for index, (key, value) in enumerate(sorted(config["Labels"].items())):
        args["SWIFTLINUX_LABEL_%d" % index] = value
        labels.append([key, "SWIFTLINUX_LABEL_%d" % index])
    return {"build_args": args, "env": env, "labels": labels}


def sbom_entry(name, layers, epoch, path=SBOM_PATH):
    """An SPDX 2.3 document of every regular file in `layers`, as a file entry for the image itself."""
    files = []
    for entry in (e for entries in layers for e in entries if e.kind == "file"):
        if entry.data is not None:
            (sha256,), size = [hashlib.sha256(entry.data).hexdigest()], len(entry.data)
        else:
            (sha256,), size = file_digests(entry.source)
        files.append({"path": entry.path, "sha256": sha256, "size": size})
    document = spdx_document(name, files, created=rfc3339(epoch))
    body = json.dumps(document, indent=1, sort_keys=True).encode() + b"\n"
    return file_entry(path, data=body, mode=0o644)
