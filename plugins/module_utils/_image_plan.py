# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The image plan: recipe, files per layer and image config, decided from the executable's ELF facts.

This file owns what goes into an image. Both builders read the same plan: _image_build turns it into layer
tars itself, and the image role copies the same files into a Docker build context, so the two builders hold
the same files by construction. Shared libraries are found with _resolve, the resolver bags use.
Private to this collection.
"""

from __future__ import annotations

import hashlib
import json
import os
import re

from ansible_collections.swiftlinux.deploy.plugins.module_utils import _manifest
from ansible_collections.swiftlinux.deploy.plugins.module_utils._elf import ElfError, elf_facts, link_facts
from ansible_collections.swiftlinux.deploy.plugins.module_utils._files import contains_bytes, file_digests
from ansible_collections.swiftlinux.deploy.plugins.module_utils._oci import (
    LoadedImage, OciError, check_reference, dir_entry, file_entry, rfc3339, symlink_entry, tree_entries,
)
from ansible_collections.swiftlinux.deploy.plugins.module_utils._policy import link_mode_of, machine_named, oci_platform
from ansible_collections.swiftlinux.deploy.plugins.module_utils._resolve import Facts, ResolveError, resolve_elf
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
SWIFT_VERSION_LABEL = LABEL_PREFIX + "swift-version"
DEFAULT_RUNTIME_DIR = "/opt/swift/usr/lib/swift/linux"
SHARED_LAYER_EPOCH = 0

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


# ---- shared libraries, resolved by reading ELF like the loader would (_resolve) ---------------------

def resolve_libraries(paths):
    """{needed name: host path} for everything the ELF objects at `paths` load, transitively, found as the
    loader would find it (ld.so.conf, then the default directories), reading only what the loader reads."""
    facts, found = Facts(link_facts), {}
    for path in paths:
        try:
            closure = resolve_elf(path, facts)
        except (ElfError, ResolveError) as exc:
            raise OciError("cannot resolve the shared libraries of %s (%s); reinstall the package that provides "
                           "the file named" % (path, str(exc).rstrip(".")))
        if closure.missing:
            name, needers = sorted(closure.missing.items())[0]
            raise OciError("%s needs %s, which is not installed on this build host; install the package that "
                           "provides it" % (needers[0], name))
        for name, host in closure.found.items():
            found.setdefault(name, host)
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


# ---- the files every image holds --------------------------------------------------------------

def base_entries(uid, ca_bundle):
    """/etc/passwd and /etc/group with the nonroot user, /tmp 1777 and the CA bundle."""
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
    return entries


def tzdata_entries(zoneinfo):
    """The build host's time zone database, a layer of its own: only images of programs that use it carry it."""
    if not os.path.isdir(zoneinfo):
        raise OciError("time zone data %s does not exist; install tzdata on the build host, set zoneinfo, or "
                       "set tzdata=false" % zoneinfo)
    return tree_entries(zoneinfo, ZONEINFO_PATH)


def backtracer_entries(backtracer):
    """swift-backtrace-static, a layer of its own: the same bytes for every image built with one toolchain, so a
    registry or an engine stores it once, and a release of the program does not ship it again."""
    if not os.path.isfile(backtracer):
        raise OciError("the backtracer %s does not exist; set backtracer to the toolchain's swift-backtrace-static "
                       "(swift_build copies it beside static builds) or set backtrace=false" % backtracer)
    return [file_entry(os.path.join(APP_DIR, BACKTRACER), source=backtracer, mode=0o755)]


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


def app_entries(executable, resources):
    entries = [file_entry(os.path.join(APP_DIR, os.path.basename(executable)), source=executable, mode=0o755)]
    for bundle in resources:
        entries += resource_entries(bundle, os.path.join(APP_DIR, os.path.basename(bundle.rstrip("/"))))
    return entries


def layer_mtime(role, epoch):
    """The time stamp of a layer's files: source_date_epoch for the application layer, and a fixed one (0) for
    the layers images share (base, tzdata, backtracer, runtime), so those are byte-identical in every image
    and every release, whatever commit each was built from."""
    return epoch if role == "app" else SHARED_LAYER_EPOCH


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


# ---- the plan ------------------------------------------------------------------------------------

def epoch_of(params):
    if params["source_date_epoch"] is not None:
        return params["source_date_epoch"]
    value = os.environ.get("SOURCE_DATE_EPOCH") or "0"
    if not value.isdigit() or int(value) > MAX_EPOCH:
        raise OciError("SOURCE_DATE_EPOCH=%s is not a number of seconds from 0 to %d; set it to e.g. the last "
                       "commit's time (git log -1 --format=%%ct) or set source_date_epoch"
                       % (value[:40], MAX_EPOCH))
    return int(value)


def _build_manifest_version(executable):
    """The Swift version swift_build recorded beside the executable; None for an executable built otherwise."""
    directory = os.path.dirname(executable)
    if not os.path.lexists(os.path.join(directory, _manifest.BUILD_MANIFEST)):
        return None
    try:
        return _manifest.read_build(directory).get("swift_version")
    except _manifest.ManifestError as exc:
        raise OciError(str(exc))


def _toolchain_version(run, runtime_dir):
    swift = os.path.normpath(os.path.join(runtime_dir, "..", "..", "..", "bin", "swift"))
    if not os.access(swift, os.X_OK):
        return None
    rc, out, err = run([swift, "--version"])
    for word in (out + err).split("Swift version ", 1)[1:]:
        return word.split()[0] if rc == 0 else None
    return None


def _check_platform(params, facts):
    native = platform_of(facts["machine"])
    wanted = params["platform"] or native
    if wanted != native:
        raise OciError("%s is built for %s (%s) but platform %s was requested; build the executable for that "
                       "platform or set platform to %s" % (facts["path"], facts["machine"], native, wanted, native))
    return native


def _recipe_for(params, facts):
    chosen = params["recipe"]
    if chosen == "auto":
        return choose_recipe(facts, bool(params["bag"]))
    mode = link_mode_of(facts)
    if chosen == "scratch-static" and mode != "static_executable":
        raise OciError("%s is a %s build (it needs %s), so it cannot run alone in a scratch-static image; use "
                       "recipe scratch-bag or auto, or build it with link_mode static_executable"
                       % (facts["path"], mode, ", ".join(facts["needed"])))
    if chosen == "runtime-base" and mode != "dynamic":
        raise OciError("%s is a %s build with the Swift runtime linked in, so a runtime base image adds nothing; "
                       "use recipe auto" % (facts["path"], mode))
    return chosen


def _bag_layers(params, facts):
    """(runtime entries, app entries, entrypoint) from a scope-all bag made by shared_objects.

    The bag goes to /app as it is: lib/ (loader, glibc, Swift runtime) is the runtime layer, the program in
    libexec/ and its resources are the app layer, and the manifest's exec-form launch line is the entrypoint.
    Its sh launcher in bin/ stays out: there is no shell to run it.
    """
    bag, name = params["bag"], os.path.basename(facts["path"])
    if not bag:
        raise OciError("%s is a dynamic build, so a scratch-bag image needs its scope-all bag; run "
                       "swiftlinux.deploy.shared_objects with scope=all and pass its dest as bag, or use recipe "
                       "runtime-base" % facts["path"])
    try:
        manifest = _manifest.read_bag(bag)
    except _manifest.ManifestError as exc:
        raise OciError("%s; pass the dest of swiftlinux.deploy.shared_objects as bag" % str(exc).rstrip("."))
    if manifest.get("scope") != "all":
        raise OciError("bag %s has scope %s, but a scratch image has no libc of its own; build the bag with "
                       "scope=all" % (bag, manifest.get("scope")))
    if name not in manifest.get("launch", {}):
        raise OciError("bag %s holds %s but not %s; bag this executable with swiftlinux.deploy.shared_objects"
                       % (bag, ", ".join(manifest.get("executables", [])) or "nothing", name))
    launchers = {f["path"] for f in manifest.get("files", ()) if f.get("kind") == "launcher"}
    runtime, app = [], []
    for entry in tree_entries(bag, APP_DIR):
        inside = os.path.relpath("/" + entry.path, APP_DIR)
        if inside in launchers or inside == ".":
            continue
        in_lib = inside.startswith("lib/") and not (entry.kind == "symlink" and entry.target.startswith("../"))
        (runtime if in_lib else app).append(entry)
    launch = manifest["launch"][name]
    if not isinstance(launch, list) or not launch or not all(isinstance(arg, str) and arg and "\0" not in arg
                                                             for arg in launch):
        raise OciError("bag %s has no valid launch line for %s (a list of non-empty texts); rebuild the bag with "
                       "swiftlinux.deploy.shared_objects" % (bag, name))
    entrypoint = [arg if arg.startswith("-") else os.path.join(APP_DIR, arg) for arg in launch]
    return runtime, app, entrypoint


def _backtracer(params, link_mode):
    """The swift-backtrace-static to put in its own layer, or None: the backtracer option, else the one
    swift_build copied beside a static build; none with backtrace=false or for a dynamic build."""
    if not params["backtrace"]:
        if params["backtracer"]:
            raise OciError("backtracer is set but backtrace is false; drop backtracer to leave the backtracer out, "
                           "or set backtrace=true to include it")
        return None
    if params["backtracer"]:
        return params["backtracer"]
    if link_mode == "dynamic":
        return None
    beside = os.path.join(os.path.dirname(params["executable"]), BACKTRACER)
    return beside if os.path.isfile(beside) else None


def _labels(params, recipe, link_mode, swift_version):
    labels = {LABEL_PREFIX + "recipe": recipe}
    if link_mode:
        labels[LABEL_PREFIX + "link-mode"] = link_mode
    if swift_version:
        labels[SWIFT_VERSION_LABEL] = swift_version
    for key, param in (("source", "source"), ("revision", "revision")):
        if params[param]:
            labels["org.opencontainers.image." + key] = params[param]
    labels.update({str(k): str(v) for k, v in params["labels"].items()})
    return labels


def _env(base, params):
    env = dict(base)
    env.update({str(k): str(v) for k, v in params["env"].items()})
    return env


def plan_image(params, run):
    """Decide recipe, layer contents and config; returns a dict the builders share.

    `run(argv)` returns (rc, stdout, stderr); it asks the toolchain for its version.
    """
    executable = params["executable"]
    env = {"SSL_CERT_FILE": CA_BUNDLE_PATH}
    base_image, inherited = None, None
    if executable is None:
        if params["recipe"] != "runtime-base":
            raise OciError("executable is required unless recipe is runtime-base (which then builds the shared "
                           "Swift runtime base image)")
        runtime_dir = params["swift_runtime_dir"] or DEFAULT_RUNTIME_DIR
        libraries = swift_runtime_libraries(runtime_dir)
        machine = link_facts(libraries["libswiftCore.so"])["machine"]
        resolved = dict(libraries)
        resolved.update(resolve_libraries(list(libraries.values())))
        ld_so = next((p for name, p in resolved.items() if name.startswith("ld-linux") or name.startswith("ld64")), None)
        anchor = {"machine": machine, "interpreter": _interpreter_path(ld_so, machine)}
        runtime = library_entries(anchor, resolved, swift_dir=runtime_dir)
        swift_version = params["swift_version"] or _toolchain_version(run, runtime_dir)
        if not swift_version:
            raise OciError("cannot tell the Swift version of %s (no bin/swift beside it); set swift_version"
                           % runtime_dir)
        env["LD_LIBRARY_PATH"] = SWIFT_RUNTIME_DIR
        platform = params["platform"] or platform_of(machine)
        if platform != platform_of(machine):
            raise OciError("the Swift runtime in %s is for %s but platform %s was requested; use a toolchain for "
                           "that platform or set platform to %s" % (runtime_dir, machine, platform,
                                                                    platform_of(machine)))
        layers = {"base": base_entries(params["user"], params["ca_bundle"])}
        if params["tzdata"] is not False:
            layers["tzdata"] = tzdata_entries(params["zoneinfo"])
        layers["runtime"] = runtime
        layers["runtime"].append(sbom_entry(params["name"], list(layers.values()), epoch_of(params),
                                            path=RUNTIME_SBOM_PATH))
        config = image_config(params["user"], None, params["command"], _env(env, params),
                              _labels(params, "runtime-base", None, swift_version), params["ports"],
                              health_config(params["healthcheck"]))
        return dict(recipe="runtime-base", link_mode=None, swift_version=swift_version, platform=platform,
                    layers=layers, config=config, base=None, base_image=None, tag_default=swift_version)

    facts = elf_facts(executable)
    platform = _check_platform(params, facts)
    recipe = _recipe_for(params, facts)
    link_mode = link_mode_of(facts)
    swift_version = params["swift_version"] or _build_manifest_version(executable)
    tzdata = params["tzdata"] if params["tzdata"] is not None else uses_foundation(facts)
    backtracer = _backtracer(params, link_mode)
    if backtracer:
        env["SWIFT_BACKTRACE"] = "enable=yes,swift-backtrace=%s" % os.path.join(APP_DIR, BACKTRACER)

    # Bottom to top, the layers images share first: base, tzdata, backtracer, runtime libraries, then the app.
    layers = {}
    if recipe != "runtime-base":
        layers["base"] = base_entries(params["user"], params["ca_bundle"])
        if tzdata:
            layers["tzdata"] = tzdata_entries(params["zoneinfo"])
    if backtracer:
        layers["backtracer"] = backtracer_entries(backtracer)
    entrypoint = [os.path.join(APP_DIR, os.path.basename(executable))]
    # The toolchain's swift-backtrace-static links the Swift runtime in but loads glibc and libstdc++: without them
    # in the image it cannot start, and a crash prints "Backtracing ... failed" and nothing else.
    backtracer_roots = [backtracer] if backtracer and link_facts(backtracer)["needed"] else []
    if recipe == "scratch-static" and backtracer_roots:
        layers["runtime"] = library_entries(link_facts(backtracer), resolve_libraries(backtracer_roots))
    if recipe == "scratch-bag":
        if link_mode == "dynamic":
            layers["runtime"], layers["app"], entrypoint = _bag_layers(params, facts)
        else:
            layers["runtime"] = library_entries(facts, resolve_libraries([executable] + backtracer_roots))
    elif recipe == "runtime-base":
        if params["format"] == "context":
            base_image = params["base_image"]
            if not base_image:
                raise OciError("format=context with recipe runtime-base needs base_image, the Docker name of the "
                               "runtime base image")
            check_reference(base_image)
        else:
            if not params["base"]:
                raise OciError("recipe runtime-base needs base (the image role's image_base), the OCI layout or "
                               "archive of the Swift runtime base image; build it with this module (recipe "
                               "runtime-base, no executable) first")
            inherited = LoadedImage(params["base"])
            base_version = inherited.labels().get(SWIFT_VERSION_LABEL)
            if not swift_version:
                raise OciError("the Swift version that built %s is unknown (no swift_build.json beside it), so it "
                               "cannot be matched with the runtime base image; set swift_version" % executable)
            if base_version != swift_version:
                raise OciError("%s was built by Swift %s but the runtime base image %s holds Swift %s; build the "
                               "runtime base image for Swift %s, or rebuild the executable with Swift %s"
                               % (executable, swift_version, params["base"], base_version, swift_version,
                                  base_version))
            if inherited.config.get("architecture") != platform.split("/")[1]:
                raise OciError("the runtime base image %s is for %s but %s is for %s; build the base image on a "
                               "matching host" % (params["base"], inherited.config.get("architecture"), executable,
                                                  platform))
        env["LD_LIBRARY_PATH"] = SWIFT_RUNTIME_DIR
    if "app" not in layers:
        layers["app"] = app_entries(executable, params["resources"])
    layers["app"].append(sbom_entry(params["name"], list(layers.values()), epoch_of(params)))
    config = image_config(params["user"], entrypoint, params["command"], _env(env, params),
                          _labels(params, recipe, link_mode, swift_version), params["ports"],
                          health_config(params["healthcheck"]))
    return dict(recipe=recipe, link_mode=link_mode, swift_version=swift_version, platform=platform, layers=layers,
                config=config, base=inherited, base_image=base_image, tag_default="latest")


def _interpreter_path(ld_so, machine):
    """The loader path executables of this machine name (PT_INTERP), for the runtime base image."""
    if not ld_so:
        return None
    row = machine_named(machine)
    return row.loader if row and row.loader else "/lib/" + os.path.basename(ld_so)
