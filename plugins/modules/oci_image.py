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
    E(SWIFT_BACKTRACE) when present (unless O(backtrace=false)), tzdata (by default when the executable uses
    Foundation), OCI labels and exposed ports. A C(HEALTHCHECK) is added only when O(healthcheck) is given.
  - Every setting is checked before anything is built (POSIX env names, label keys, numeric user, ports,
    references), and the Docker build context carries env and label values as build arguments, so both builders
    give the same config for any value, newlines and quotes included.
  - O(dest) is replaced only when it is absent, empty, or exactly this module's previous output (a layout or
    context directory it marked, or an archive it wrote); anything else is refused and left as it was.
  - Layer tars are sorted and owned by 0:0, the application layer stamped with O(source_date_epoch) and the
    shared layers with a fixed time, and gzip stores no name or time, so the same inputs give the same digest.
    From the bottom, the layers are base (users, CA bundle, /tmp), tzdata, the backtracer, the runtime libraries
    and the application, each only when the image needs it; a code-only release changes only the application
    layer, and images of one toolchain share every layer below it.
author:
  - swiftlinux.deploy maintainers (@swiftlinux)
requirements:
  - pyelftools
  - zstandard (only for O(compression=zstd))
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
      - It goes in a layer of its own below the application, stamped with a fixed time, so every image built with
        the same toolchain shares that layer and a release of the program does not ship it again.
    type: path
  backtrace:
    description:
      - Include C(swift-backtrace-static) and set E(SWIFT_BACKTRACE), so a crash prints a symbolicated backtrace.
      - V(false) leaves it out (about 10 MB less); a crash then prints only the signal. Refused together with
        O(backtracer).
    type: bool
    default: true
  compression:
    description:
      - How layer blobs are compressed. V(auto) uses V(gzip) when pushing or writing an OCI layout, and V(none)
        for an archive, which C(docker load) unpacks anyway, so building it costs no compression.
      - V(gzip) is level 1, about three times faster to make than level 6 for about 10% more bytes.
      - V(zstd) (level 3) is smaller and faster to compress than gzip; registries store it, and
        Docker 23 or newer, containerd and podman pull it. It needs the Python library C(zstandard), and is
        refused for O(format=archive) because Docker 20.10 to 22 cannot load it.
    type: str
    choices: [auto, gzip, zstd, none]
    default: auto
  layer_cache:
    description:
      - Directory of compressed layer blobs, named by the digest of their tar. A layer whose tar is unchanged
        (base, tzdata, backtracer, runtime libraries) is taken from it instead of being compressed again, so a
        code-only rebuild compresses only the application layer. Created when absent; not written in check mode.
      - An empty string turns the cache off.
    type: path
    default: ~/.cache/swiftlinux.deploy/layers
  layer_cache_max_age:
    description:
      - Days a blob in O(layer_cache) may go unused before a build removes it (each use renews it). Only blobs
        this module wrote are removed (files named by their digest in its C(gzip-1/) and C(zstd-3/) folders, and
        in C(gzip/) and C(zstd/), where earlier versions kept level-6 gzip), never anything else in the directory.
      - V(0) keeps every blob.
    type: int
    default: 30
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
  description: Bytes of the layer blobs and the config, as a registry stores them.
  returned: always
  type: int
compression:
  description: The layer compression used (V(auto) resolved).
  returned: always
  type: str
  sample: none
layers:
  description: The layers, bottom first.
  returned: always
  type: list
  elements: dict
  contains:
    role:
      description: >-
        V(base) (users, CA bundle), V(tzdata), V(backtracer), V(runtime) (shared libraries), V(app), or
        V(inherited) (from O(base)).
      type: str
    digest:
      description: Digest of the layer blob.
      type: str
    diff_id:
      description: Digest of the uncompressed layer tar.
      type: str
    size:
      description: Bytes of the layer blob.
      type: int
    media_type:
      description: The blob's media type, which names its compression.
      type: str
    cached:
      description: Whether the blob came from O(layer_cache) instead of being compressed now.
      type: bool
layer_cache_pruned:
  description: Blobs removed from O(layer_cache) because no build used them for O(layer_cache_max_age) days.
  returned: always
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

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.swiftlinux.deploy.plugins.module_utils._elf import HAS_ELFTOOLS, ElfError
from ansible_collections.swiftlinux.deploy.plugins.module_utils._files import NotOurs
from ansible_collections.swiftlinux.deploy.plugins.module_utils._image_build import build_image
from ansible_collections.swiftlinux.deploy.plugins.module_utils._oci import OciError


ARGUMENT_SPEC = dict(
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
    backtrace=dict(type="bool", default=True),
    compression=dict(type="str", default="auto", choices=["auto", "gzip", "zstd", "none"]),
    layer_cache=dict(type="path", default="~/.cache/swiftlinux.deploy/layers"),
    layer_cache_max_age=dict(type="int", default=30),
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
)


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("base", "base_image")],
        required_together=[("registry_username", "registry_password")],
        supports_check_mode=True,
    )
    if not HAS_ELFTOOLS:
        module.fail_json(msg=missing_required_lib("pyelftools", url="https://pypi.org/project/pyelftools/"))
    try:
        result = build_image(module.params, module.run_command, module.check_mode)
    except (OciError, ElfError, NotOurs) as exc:
        module.fail_json(msg=str(exc), exception="")
    except OSError as exc:
        module.fail_json(msg="cannot write the image to %s: %s; choose a writable dest"
                             % (module.params["dest"], exc.strerror or exc), exception="")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
