#!/usr/bin/python
# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: oci_image
short_description: Build a minimal, reproducible container image of a Swift executable without a daemon
version_added: 0.1.0
description:
  - Picks an image recipe from the executable's ELF facts (or takes the one named in O(recipe)) and assembles
    the image in Python, with no Docker engine, as an OCI image layout directory, as one tar that both
    C(docker load) and OCI tools read, or as a Docker build context for the M(community.docker.docker_image)
    builder in the C(swiftlinux.deploy.image) role. It can also push the image to a registry.
  - V(scratch-static) holds the static executable alone; V(scratch-bag) adds the shared libraries a
    C(static_stdlib) build needs, taken from the build host, or the scope-V(all) bag of a C(dynamic) build;
    V(runtime-base) puts a C(dynamic) build on a shared base image holding the whole Swift runtime of its
    toolchain version. Without O(executable), V(runtime-base) builds that base image itself.
  - Every image has C(/etc/passwd) and C(/etc/group) with the nonroot user, C(USER 65532), a CA bundle with
    E(SSL_CERT_FILE), C(/tmp) with mode 1777, the resource bundles, C(swift-backtrace-static) with
    E(SWIFT_BACKTRACE) when present, tzdata (by default when the executable uses Foundation), OCI labels and
    exposed ports. A C(HEALTHCHECK) is added only when O(healthcheck) is given.
  - Every setting is checked before anything is built (POSIX env names, label keys, numeric user, ports,
    references), and the Docker build context carries env and label values as build arguments, so both builders
    give the same config for any value, newlines and quotes included.
  - O(dest) is replaced only when it is absent, empty, or exactly this module's previous output (a layout or
    context directory it marked, or an archive it wrote); anything else is refused and left as it was.
  - Layer tars are sorted, owned by 0:0 and stamped with O(source_date_epoch), and gzip stores no name or time,
    so the same inputs give the same digest. Runtime libraries get their own layer below the application
    layer, so a code-only release changes only the application layer.
author:
  - swiftlinux.deploy maintainers (@swiftlinux)
requirements:
  - pyelftools
attributes:
  check_mode:
    support: full
    description: Computes the digest and reports whether the output or the registry would change; writes nothing.
  diff_mode:
    support: full
    description: Shows the image digest before and after.
  idempotent:
    support: full
    description: The same inputs give the same digest, and an output or registry tag already at that digest is left alone.
options:
  executable:
    description:
      - The executable to package, usually a product path returned by M(swiftlinux.deploy.swift_build).
      - Omit it with O(recipe=runtime-base) to build the shared Swift runtime base image.
    type: path
  name:
    description:
      - Image name, optionally with a registry host, for example V(127.0.0.1:5000/team/api).
    type: str
    required: true
  tag:
    description:
      - Image tag. Defaults to V(latest), or to the Swift version for the runtime base image.
    type: str
  recipe:
    description:
      - V(auto) picks V(scratch-static) for static executables, V(scratch-bag) for C(static_stdlib) builds and
        for C(dynamic) builds given a O(bag), and V(runtime-base) for other C(dynamic) builds.
    type: str
    choices: [auto, scratch-static, scratch-bag, runtime-base]
    default: auto
  bag:
    description:
      - Directory written by M(swiftlinux.deploy.shared_objects) with O(ignore:scope=all) for this executable; needed to put a
        C(dynamic) build in a V(scratch-bag) image.
    type: path
  base:
    description:
      - OCI layout directory or O(format=archive) tar of the runtime base image (built by this module with
        O(recipe=runtime-base) and no O(executable)); needed for V(runtime-base) application images unless
        O(format=context).
    type: path
  base_image:
    description:
      - Docker name of the runtime base image, written into the C(FROM) line when O(format=context).
      - Must be a Docker reference such as V(swiftlinux/swift-runtime:6.0.3).
    type: str
  swift_version:
    description:
      - Version of the compiler that built O(executable). Read from the C(swift_build.json) beside it by default.
      - A V(runtime-base) image is refused when it differs from the base image's Swift version.
    type: str
  swift_runtime_dir:
    description:
      - The toolchain's runtime directory (C(usr/lib/swift/linux)) for the runtime base image.
      - Defaults to the directory the executable's run path names, else C(/opt/swift/usr/lib/swift/linux).
    type: path
  resources:
    description: SwiftPM resource bundle directories, copied beside the executable in C(/app).
    type: list
    elements: path
    default: []
  backtracer:
    description:
      - C(swift-backtrace-static) to include; defaults to the one beside O(executable) when there is one.
    type: path
  tzdata:
    description:
      - Include time zone data. By default it is included when the executable uses Foundation.
    type: bool
  ca_bundle:
    description: The build host's CA bundle, installed as C(/etc/ssl/certs/ca-certificates.crt).
    type: path
    default: /etc/ssl/certs/ca-certificates.crt
  zoneinfo:
    description: The build host's time zone database.
    type: path
    default: /usr/share/zoneinfo
  user:
    description: Numeric id (0 to 2147483647) of the unprivileged user (and group) the image runs as.
    type: int
    default: 65532
  command:
    description: Arguments after the executable (the image's C(CMD)); any text except NUL.
    type: list
    elements: str
    default: []
  env:
    description:
      - Extra environment variables. Keys are POSIX names (letters, digits, C(_), not starting with a digit);
        values are any text, quotes, newlines and unicode included.
    type: dict
    default: {}
  labels:
    description:
      - Extra labels. Keys are letters, digits, C(.), C(_), C(-) and C(/), starting with a letter or digit;
        values are any text.
    type: dict
    default: {}
  source:
    description: Value of the C(org.opencontainers.image.source) label, for example the repository URL.
    type: str
  revision:
    description: Value of the C(org.opencontainers.image.revision) label, for example the commit.
    type: str
  ports:
    description: TCP ports to expose (1 to 65535). Exposing a port adds no health check.
    type: list
    elements: int
    default: []
  healthcheck:
    description:
      - The image's C(HEALTHCHECK), off when omitted. A scratch image has no shell or curl, so the check is a
        command in exec form that the image itself holds, for example the program's own self-test.
      - To probe HTTP or TCP from outside, leave this out and let the C(swiftlinux.deploy.container) role probe
        from the host.
    type: dict
    suboptions:
      kind:
        description:
          - Only V(command) can run inside the image; other kinds (V(http), V(tcp)) are refused with a hint.
        type: str
        default: command
      command:
        description: The command and its arguments, run inside the container without a shell.
        type: list
        elements: str
        required: true
      interval:
        description: Seconds between checks.
        type: int
        default: 30
      timeout:
        description: Seconds one check may take.
        type: int
        default: 5
      retries:
        description: Failed checks in a row before the container is unhealthy.
        type: int
        default: 3
      start_period:
        description: Seconds after start during which failures do not count.
        type: int
        default: 0
  platform:
    description:
      - Platform the image is for, such as V(linux/amd64). Defaults to the executable's architecture; a different
        value is refused, because the executable could not run there.
    type: str
  source_date_epoch:
    description:
      - Time stamp (seconds since 1970) for every file and for the image's creation time.
      - Defaults to E(SOURCE_DATE_EPOCH) of the build host, or 0. From 0 to 4294967295.
    type: int
  format:
    description:
      - V(oci-layout) writes an OCI image layout directory at O(dest).
      - V(archive) writes one tar at O(dest) holding the OCI layout and a C(manifest.json), so
        C(docker load) (M(community.docker.docker_image) with C(source=load)) and C(skopeo) both read it.
      - V(context) writes a Docker build context at O(dest) (C(base/), C(runtime/), C(app/) and C(image.json))
        for the C(swiftlinux.deploy.image) role to render a Containerfile into.
    type: str
    choices: [oci-layout, archive, context]
    default: oci-layout
  dest:
    description:
      - Where the output goes; optional when O(push=true).
      - Only replaced when it is absent, an empty directory, or this module's own previous output.
    type: path
  push:
    description: Push the image to the registry named in O(name) over the distribution API.
    type: bool
    default: false
  registry_username:
    description: User name for the registry.
    type: str
  registry_password:
    description:
      - Password or token for the registry. Sent only to the registry's own scheme, host and port, never after
        a redirect or upload location that points elsewhere, and never shown in results or messages.
    type: str
  registry_insecure:
    description: Talk plain HTTP to the registry. Loopback registries always use plain HTTP, as Docker does.
    type: bool
    default: false
notes:
  - Docker 20.10 cannot load a plain OCI layout, so use O(format=archive) to load an image into Docker.
  - The V(scratch-bag) recipe for C(dynamic) builds needs the C(shared_objects) module's scope-V(all) bag.
"""

EXAMPLES = r"""
- name: Package a static build, picking the recipe from its ELF facts
  swiftlinux.deploy.oci_image:
    executable: "{{ build.products['api'].path }}"
    resources: "{{ build.products['api'].resources }}"
    name: team/api
    tag: "1.4.0"
    ports: [8080]
    command: ["0.0.0.0", "8080"]
    env:
      GREETING: "it's \"quoted\"\nand on two lines"
    healthcheck:
      command: [/app/api, --self-test]
      interval: 10
    source: https://git.example.com/team/api
    revision: "{{ commit }}"
    format: archive
    dest: /srv/images/api.tar
  delegate_to: localhost

- name: Push the same image to a registry
  swiftlinux.deploy.oci_image:
    executable: "{{ build.products['api'].path }}"
    name: registry.example.com/team/api
    tag: "1.4.0"
    ports: [8080]
    push: true
    registry_username: ci
    registry_password: "{{ registry_token }}"
  delegate_to: localhost

- name: Build the shared Swift runtime base image, tagged with the toolchain version
  swiftlinux.deploy.oci_image:
    recipe: runtime-base
    name: swiftlinux/swift-runtime
    dest: /srv/images/swift-runtime
  delegate_to: localhost
"""

RETURN = r"""
digest:
  description: Digest of the image manifest; the same inputs always give the same digest.
  returned: always
  type: str
  sample: sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b
image_id:
  description: Digest of the image config, which Docker shows as the image ID after loading the archive.
  returned: always
  type: str
reference:
  description: The image name and tag.
  returned: always
  type: str
  sample: 127.0.0.1:5000/team/api:1.4.0
recipe:
  description: The recipe used.
  returned: always
  type: str
  sample: scratch-static
link_mode:
  description: The executable's link mode as read from its ELF facts, or null for the runtime base image.
  returned: always
  type: str
  sample: static_executable
swift_version:
  description: The Swift version recorded in the image's labels, or null when unknown.
  returned: always
  type: str
platform:
  description: The image's platform.
  returned: always
  type: str
  sample: linux/amd64
size:
  description: Bytes of the compressed layers and the config, as a registry stores them.
  returned: always
  type: int
layers:
  description: The layers, bottom first.
  returned: always
  type: list
  elements: dict
  contains:
    role:
      description: V(base) (users, CA bundle, tzdata), V(runtime) (shared libraries) or V(app), or V(inherited).
      type: str
    digest:
      description: Digest of the compressed layer.
      type: str
    diff_id:
      description: Digest of the uncompressed layer tar.
      type: str
    size:
      description: Bytes of the compressed layer.
      type: int
files:
  description: Every path in the image's new layers, sorted, without a leading slash.
  returned: always
  type: list
  elements: str
output:
  description: The output written (O(dest)), or null when only pushed.
  returned: always
  type: str
pushed:
  description: Whether the registry tag was changed.
  returned: always
  type: bool
plan:
  description: What the Containerfile templates need (recipe, config, layer directories, base image).
  returned: when O(format=context)
  type: dict
"""

import json
import os
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.swiftlinux.deploy.plugins.module_utils._oci import (
    Image, Layer, LoadedImage, OciError, Registry, check_archive_replaceable, check_reference, existing_digest,
    parse_name, tree_entries, write_archive, write_layout,
)

from ansible_collections.swiftlinux.deploy.plugins.module_utils import _image_recipe as recipes
from ansible_collections.swiftlinux.deploy.plugins.module_utils import _manifest
from ansible_collections.swiftlinux.deploy.plugins.module_utils._files import (
    NotOurs, check_replaceable, replace_directory,
)
from ansible_collections.swiftlinux.deploy.plugins.module_utils._elf import HAS_ELFTOOLS, ElfError, elf_facts
from ansible_collections.swiftlinux.deploy.plugins.module_utils._policy import link_mode_of, machine_named

DEFAULT_RUNTIME_DIR = "/opt/swift/usr/lib/swift/linux"
SWIFT_VERSION_LABEL = recipes.LABEL_PREFIX + "swift-version"


def _epoch(params):
    if params["source_date_epoch"] is not None:
        return params["source_date_epoch"]
    value = os.environ.get("SOURCE_DATE_EPOCH") or "0"
    if not value.isdigit() or int(value) > recipes.MAX_EPOCH:
        raise OciError("SOURCE_DATE_EPOCH=%s is not a number of seconds from 0 to %d; set it to e.g. the last "
                       "commit's time (git log -1 --format=%%ct) or set source_date_epoch"
                       % (value[:40], recipes.MAX_EPOCH))
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


def _toolchain_version(module, runtime_dir):
    swift = os.path.normpath(os.path.join(runtime_dir, "..", "..", "..", "bin", "swift"))
    if not os.access(swift, os.X_OK):
        return None
    rc, out, err = module.run_command([swift, "--version"])
    for word in (out + err).split("Swift version ", 1)[1:]:
        return word.split()[0] if rc == 0 else None
    return None


def _check_platform(params, facts):
    native = recipes.platform_of(facts["machine"])
    wanted = params["platform"] or native
    if wanted != native:
        raise OciError("%s is built for %s (%s) but platform %s was requested; build the executable for that "
                       "platform or set platform to %s" % (facts["path"], facts["machine"], native, wanted, native))
    return native


def _recipe_for(params, facts):
    chosen = params["recipe"]
    if chosen == "auto":
        return recipes.choose_recipe(facts, bool(params["bag"]))
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
    for entry in tree_entries(bag, recipes.APP_DIR):
        inside = os.path.relpath("/" + entry.path, recipes.APP_DIR)
        if inside in launchers or inside == ".":
            continue
        in_lib = inside.startswith("lib/") and not (entry.kind == "symlink" and entry.target.startswith("../"))
        (runtime if in_lib else app).append(entry)
    launch = manifest["launch"][name]
    if not isinstance(launch, list) or not launch or not all(isinstance(arg, str) and arg and "\0" not in arg
                                                             for arg in launch):
        raise OciError("bag %s has no valid launch line for %s (a list of non-empty texts); rebuild the bag with "
                       "swiftlinux.deploy.shared_objects" % (bag, name))
    entrypoint = [arg if arg.startswith("-") else os.path.join(recipes.APP_DIR, arg) for arg in launch]
    return runtime, app, entrypoint


def _labels(params, recipe, link_mode, swift_version):
    labels = {recipes.LABEL_PREFIX + "recipe": recipe}
    if link_mode:
        labels[recipes.LABEL_PREFIX + "link-mode"] = link_mode
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


def plan_image(module):
    """Decide recipe, layer contents and config; returns a dict the builders share."""
    params = module.params
    executable = params["executable"]
    env = {"SSL_CERT_FILE": recipes.CA_BUNDLE_PATH}
    base_image, inherited = None, None
    if executable is None:
        if params["recipe"] != "runtime-base":
            raise OciError("executable is required unless recipe is runtime-base (which then builds the shared "
                           "Swift runtime base image)")
        runtime_dir = params["swift_runtime_dir"] or DEFAULT_RUNTIME_DIR
        libraries = recipes.swift_runtime_libraries(runtime_dir)
        machine = elf_facts(libraries["libswiftCore.so"])["machine"]
        resolved = dict(libraries)
        resolved.update(recipes.resolve_libraries([recipes.dynamic_info(p) for p in libraries.values()], machine))
        ld_so = next((p for name, p in resolved.items() if name.startswith("ld-linux") or name.startswith("ld64")), None)
        anchor = {"machine": machine, "interpreter": _interpreter_path(ld_so, machine)}
        runtime = recipes.library_entries(anchor, resolved, swift_dir=runtime_dir)
        swift_version = params["swift_version"] or _toolchain_version(module, runtime_dir)
        if not swift_version:
            raise OciError("cannot tell the Swift version of %s (no bin/swift beside it); set swift_version"
                           % runtime_dir)
        env["LD_LIBRARY_PATH"] = recipes.SWIFT_RUNTIME_DIR
        platform = params["platform"] or recipes.platform_of(machine)
        if platform != recipes.platform_of(machine):
            raise OciError("the Swift runtime in %s is for %s but platform %s was requested; use a toolchain for "
                           "that platform or set platform to %s" % (runtime_dir, machine, platform,
                                                                    recipes.platform_of(machine)))
        tzdata = params["tzdata"] is not False
        layers = {"base": recipes.base_entries(params["user"], params["ca_bundle"],
                                               params["zoneinfo"] if tzdata else None),
                  "runtime": runtime}
        layers["runtime"].append(recipes.sbom_entry(params["name"], list(layers.values()), _epoch(params),
                                                    path=recipes.RUNTIME_SBOM_PATH))
        config = recipes.image_config(params["user"], None, params["command"], _env(env, params),
                                      _labels(params, "runtime-base", None, swift_version), params["ports"],
                                      recipes.health_config(params["healthcheck"]))
        return dict(recipe="runtime-base", link_mode=None, swift_version=swift_version, platform=platform,
                    layers=layers, config=config, base=None, base_image=None, tag_default=swift_version)

    facts = elf_facts(executable)
    platform = _check_platform(params, facts)
    recipe = _recipe_for(params, facts)
    link_mode = link_mode_of(facts)
    swift_version = params["swift_version"] or _build_manifest_version(executable)
    tzdata = params["tzdata"] if params["tzdata"] is not None else recipes.uses_foundation(facts)
    backtracer = params["backtracer"]
    if backtracer is None and link_mode != "dynamic":
        beside = os.path.join(os.path.dirname(executable), recipes.BACKTRACER)
        backtracer = beside if os.path.isfile(beside) else None
    if backtracer:
        env["SWIFT_BACKTRACE"] = "enable=yes,swift-backtrace=%s" % os.path.join(recipes.APP_DIR, recipes.BACKTRACER)

    layers = {}
    if recipe != "runtime-base":
        layers["base"] = recipes.base_entries(params["user"], params["ca_bundle"],
                                              params["zoneinfo"] if tzdata else None)
    entrypoint = [os.path.join(recipes.APP_DIR, os.path.basename(executable))]
    # The toolchain's swift-backtrace-static links the Swift runtime in but loads glibc and libstdc++: without them
    # in the image it cannot start, and a crash prints "Backtracing ... failed" and nothing else.
    backtracer_facts = elf_facts(backtracer) if backtracer else None
    backtracer_roots = [backtracer_facts] if backtracer_facts and backtracer_facts["needed"] else []
    if recipe == "scratch-static" and backtracer_roots:
        layers["runtime"] = recipes.library_entries(
            backtracer_facts, recipes.resolve_libraries(backtracer_roots, backtracer_facts["machine"]))
    if recipe == "scratch-bag":
        if link_mode == "dynamic":
            layers["runtime"], layers["app"], entrypoint = _bag_layers(params, facts)
        else:
            layers["runtime"] = recipes.library_entries(
                facts, recipes.resolve_libraries([facts] + backtracer_roots, facts["machine"]))
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
        env["LD_LIBRARY_PATH"] = recipes.SWIFT_RUNTIME_DIR
    if "app" not in layers:
        layers["app"] = recipes.app_entries(executable, params["resources"], backtracer)
    layers["app"].append(recipes.sbom_entry(params["name"], list(layers.values()), _epoch(params)))
    config = recipes.image_config(params["user"], entrypoint, params["command"], _env(env, params),
                                  _labels(params, recipe, link_mode, swift_version), params["ports"],
                                  recipes.health_config(params["healthcheck"]))
    return dict(recipe=recipe, link_mode=link_mode, swift_version=swift_version, platform=platform, layers=layers,
                config=config, base=inherited, base_image=base_image, tag_default="latest")


def _interpreter_path(ld_so, machine):
    """The loader path executables of this machine name (PT_INTERP), for the runtime base image."""
    if not ld_so:
        return None
    row = machine_named(machine)
    return row.loader if row and row.loader else "/lib/" + os.path.basename(ld_so)


def write_context(dest, plan, image, reference):
    """A Docker build context: one directory per layer plus image.json; replaces dest only when complete."""
    parent = os.path.dirname(dest.rstrip("/")) or "/"
    os.makedirs(parent, exist_ok=True)
    stage = tempfile.mkdtemp(prefix=".image-context-", dir=parent)
    try:
        for role, entries in plan["layers"].items():
            root = os.path.join(stage, role)
            os.mkdir(root)
            for entry in sorted(entries, key=lambda e: e.path):
                target = os.path.join(root, entry.path)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                if entry.kind == "dir":
                    os.makedirs(target, exist_ok=True)
                elif entry.kind == "symlink":
                    os.symlink(entry.target, target)
                    continue
                elif entry.data is not None:
                    with open(target, "wb") as handle:
                        handle.write(entry.data)
                else:
                    shutil.copyfile(entry.source, target)
                os.chmod(target, entry.mode)
        record = {"digest": image.digest, "reference": reference, "plan": context_plan(plan)}
        with open(os.path.join(stage, "image.json"), "w") as handle:
            json.dump(record, handle, indent=2, sort_keys=True)
        replace_directory(stage, dest, "oci_image")
    finally:
        if os.path.isdir(stage):
            shutil.rmtree(stage)


def context_plan(plan):
    return dict(recipes.containerfile_args(plan["config"]), recipe=plan["recipe"], layers=list(plan["layers"]),
                config=plan["config"], base_image=plan["base_image"])


def _context_digest(dest):
    try:
        with open(os.path.join(dest, "image.json")) as handle:
            return json.load(handle)["digest"]
    except (OSError, ValueError, KeyError):
        return None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            executable=dict(type="path"),
            name=dict(type="str", required=True),
            tag=dict(type="str"),
            recipe=dict(type="str", default="auto", choices=["auto", "scratch-static", "scratch-bag", "runtime-base"]),
            bag=dict(type="path"),
            base=dict(type="path"),
            base_image=dict(type="str"),
            swift_version=dict(type="str"),
            swift_runtime_dir=dict(type="path"),
            resources=dict(type="list", elements="path", default=[]),
            backtracer=dict(type="path"),
            tzdata=dict(type="bool"),
            ca_bundle=dict(type="path", default="/etc/ssl/certs/ca-certificates.crt"),
            zoneinfo=dict(type="path", default="/usr/share/zoneinfo"),
            user=dict(type="int", default=65532),
            command=dict(type="list", elements="str", default=[]),
            env=dict(type="dict", default={}),
            labels=dict(type="dict", default={}),
            source=dict(type="str"),
            revision=dict(type="str"),
            ports=dict(type="list", elements="int", default=[]),
            healthcheck=dict(type="dict", options=dict(
                kind=dict(type="str", default="command"),
                command=dict(type="list", elements="str", required=True),
                interval=dict(type="int", default=30),
                timeout=dict(type="int", default=5),
                retries=dict(type="int", default=3),
                start_period=dict(type="int", default=0),
            )),
            platform=dict(type="str"),
            source_date_epoch=dict(type="int"),
            format=dict(type="str", default="oci-layout", choices=["oci-layout", "archive", "context"]),
            dest=dict(type="path"),
            push=dict(type="bool", default=False),
            registry_username=dict(type="str"),
            registry_password=dict(type="str", no_log=True),
            registry_insecure=dict(type="bool", default=False),
        ),
        mutually_exclusive=[("base", "base_image")],
        required_together=[("registry_username", "registry_password")],
        supports_check_mode=True,
    )
    if not HAS_ELFTOOLS:
        module.fail_json(msg=missing_required_lib("pyelftools", url="https://pypi.org/project/pyelftools/"))
    params = module.params
    if not params["dest"] and not params["push"]:
        module.fail_json(msg="nothing to do: set dest to write the image, push=true to push it, or both")
    if params["format"] == "context" and params["push"]:
        module.fail_json(msg="format=context writes a Docker build context, which cannot be pushed; use format "
                             "oci-layout or archive with push=true")
    try:
        recipes.check_config_inputs(params)
        epoch = _epoch(params)
        plan = plan_image(module)
        tag = params["tag"] or plan["tag_default"]
        registry, repository, tag = parse_name(params["name"], tag)
        if params["push"] and not registry:
            raise OciError("push=true needs a registry host in name, for example 127.0.0.1:5000/%s" % repository)
        reference = "%s:%s" % (params["name"], tag)
        layers = [Layer(entries, epoch, role) for role, entries in plan["layers"].items()]
        image = Image(layers, plan["platform"].split("/")[1], plan["config"], epoch, base=plan["base"])

        dest = params["dest"]
        before = None
        if dest:
            before = _context_digest(dest) if params["format"] == "context" else existing_digest(dest)
        write_needed = bool(dest) and before != image.digest
        if write_needed:
            # Before any write (and in check mode too): dest must be ours to replace.
            if params["format"] == "archive":
                check_archive_replaceable(dest)
            else:
                check_replaceable(dest, "oci_image")
        client = remote = None
        if params["push"]:
            client = Registry(registry, params["registry_username"], params["registry_password"],
                              params["registry_insecure"])
            remote = client.manifest_digest(repository, tag)
        push_needed = params["push"] and remote != image.digest
        if not module.check_mode:
            if write_needed and params["format"] == "oci-layout":
                write_layout(dest, image, tag, [reference])
            elif write_needed and params["format"] == "archive":
                write_archive(dest, image, tag, [reference], epoch)
            elif write_needed:
                write_context(dest, plan, image, reference)
            if push_needed:
                client.push(image, repository, tag)
    except (OciError, ElfError, NotOurs) as exc:
        module.fail_json(msg=str(exc), exception="")
    except OSError as exc:
        module.fail_json(msg="cannot write the image to %s: %s; choose a writable dest"
                             % (params["dest"], exc.strerror or exc), exception="")

    files = sorted(path for layer in layers for path in layer.paths())
    result = dict(
        changed=write_needed or push_needed, digest=image.digest, image_id=image.config_digest, reference=reference,
        recipe=plan["recipe"], link_mode=plan["link_mode"], swift_version=plan["swift_version"],
        platform=plan["platform"], size=image.size(), files=files, output=dest, pushed=bool(push_needed),
        layers=[{"role": "inherited", "digest": d["digest"], "size": d["size"], "diff_id": None}
                for d in (plan["base"].layer_descriptors() if plan["base"] else [])]
        + [{"role": layer.role, "digest": layer.digest, "diff_id": layer.diff_id, "size": layer.size}
           for layer in layers],
        diff=dict(before={"digest": before or remote}, after={"digest": image.digest}),
    )
    if params["format"] == "context":
        result["plan"] = context_plan(plan)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
