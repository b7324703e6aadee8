#!/usr/bin/python
# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lambda_package
short_description: Package a static Swift build as a reproducible AWS Lambda deployment zip (custom runtime)
version_added: 0.3.0
description:
  - Takes one executable of a M(swiftlinux.deploy.swift_build) O(swiftlinux.deploy.swift_build#module:dest) and
    writes C(<function_name>.zip) for Lambda's C(provided.al2023) custom runtime, holding the program as
    C(bootstrap) and its SwiftPM resource bundles beside it. The debug file is kept aside in O(dest), never in the
    zip.
  - Accepts a C(static_executable) build, which needs only the kernel, and a C(static_stdlib) build whose
    C(GLIBC_) and C(GLIBCXX_) needs fit the runtime (glibc 2.34 and GLIBCXX_3.4.29 on Amazon Linux 2023); the
    link mode is read from the ELF file, not from the manifest. A C(dynamic) build is refused.
  - The zip is reproducible, with fixed times (1980-01-01), names in sorted order, fixed modes (0755 for
    C(bootstrap) and directories, 0644 for files), symbolic links stored as links and one deflate level, so the
    same build gives the same sha256.
  - Checks Lambda's quotas before anything is written, namely the unzipped size (O(unzipped_limit)), the zip's
    size for a direct upload (O(zipped_limit)) and, with O(image=true), the uncompressed image (O(image_limit)).
    Each refusal names the size, the limit and what to try.
  - With O(image=true) it also writes C(<function_name>.image.tar), an image archive (OCI layout and C(docker load)
    format, as M(swiftlinux.deploy.oci_image) O(swiftlinux.deploy.oci_image#module:format=archive) writes it) whose
    entry point is the program at C(/var/runtime/bootstrap), for a container-image function.
  - The build is untrusted input, read through its checked manifest. The product must match its recorded
    checksum, and bundle links must be relative and stay inside their bundle.
  - O(dest) is replaced only when it is absent, empty, or exactly this module's previous output; nothing is
    written when any check fails.
  - Runs where the build is, usually the controller.
author:
  - swiftlinux.deploy maintainers (@swiftlinux)
requirements:
  - pyelftools
attributes:
  check_mode:
    support: full
    description: Checks everything and computes the zip's checksum in a temporary directory; writes nothing in O(dest).
  diff_mode:
    support: full
    description: Shows the zip's sha256 (and the image digest) before and after.
  idempotent:
    support: full
    description: The same build and options give the same bytes and C(changed=false).
options:
  build:
    description: The M(swiftlinux.deploy.swift_build) output directory (its O(swiftlinux.deploy.swift_build#module:dest)).
    type: path
    required: true
  product:
    description:
      - The executable product that becomes C(bootstrap).
      - May be omitted when the build holds exactly one.
    type: str
  function_name:
    description:
      - The Lambda function's name, 1 to 64 letters, digits, C(-) and C(_), as Lambda's CreateFunction accepts it.
      - Names the zip and the image archive.
    type: str
    required: true
  dest:
    description:
      - Directory that receives C(<function_name>.zip), the debug file, C(lambda_package.json) and, with
        O(image=true), C(<function_name>.image.tar).
    type: path
    required: true
  strip:
    description:
      - Strip C(bootstrap) when the build was not stripped, keeping the debug info in C(<product>.debug) beside the
        zip (linked through C(.gnu_debuglink)). A build that M(swiftlinux.deploy.swift_build) stripped is used as
        it is.
    type: bool
    default: true
  keep_debug:
    description: Keep the debug file in O(dest), outside the zip, for symbolicating crash reports.
    type: bool
    default: true
  unzipped_limit:
    description:
      - Largest unzipped package in bytes. Lambda allows 262144000 (250 MB) for a function and its layers together,
        so lower it by the size of your layers.
    type: int
    default: 262144000
  zipped_limit:
    description:
      - Largest zip in bytes. Lambda allows 52428800 (50 MB) for a direct upload; through S3 the unzipped limit
        alone applies, so set this to the unzipped limit when you upload through S3.
    type: int
    default: 52428800
  runtime_glibc:
    description: Newest C(GLIBC_) version the runtime provides; C(provided.al2023) has glibc 2.34.
    type: str
    default: "2.34"
  runtime_glibcxx:
    description: Newest C(GLIBCXX_) version the runtime's libstdc++ provides; C(provided.al2023) has GCC 11's 3.4.29.
    type: str
    default: "3.4.29"
  image:
    description:
      - Also write a container image for Lambda as an archive, C(<function_name>.image.tar) in O(dest).
      - The image is built on an empty base, so the program is its own runtime. It holds C(/var/runtime/bootstrap) as
        the C(ENTRYPOINT) with the resource bundles beside it, the empty working directory C(/var/task), C(/tmp) and
        the CA bundle.
    type: bool
    default: false
  image_name:
    description: Name of the image, for example V(123456789012.dkr.ecr.us-east-1.amazonaws.com/orders). Defaults to
      V(lambda/<function_name in lower case>).
    type: str
  image_tag:
    description: Tag of the image.
    type: str
    default: latest
  image_limit:
    description: Largest uncompressed image in bytes; Lambda allows 10737418240 (10 GB).
    type: int
    default: 10737418240
  ca_bundle:
    description: The build host's CA bundle, installed in the image as C(/etc/ssl/certs/ca-certificates.crt).
    type: path
    default: /etc/ssl/certs/ca-certificates.crt
  source_date_epoch:
    description:
      - Time stamp (seconds since 1970) of the image's files and creation time.
      - Defaults to E(SOURCE_DATE_EPOCH) of the build host, or 0. The zip always uses 1980-01-01.
    type: int
notes:
  - Lambda runs a function as an unprivileged user of its own, so every file in the zip and the image is readable by
    all. The image sets no C(USER).
  - Today a C(static_stdlib) program that uses Foundation, built on a glibc 2.35 or newer host (Debian 12, Ubuntu
    22.04), needs C(GLIBC_2.35) from libm and is refused. Build it C(static_executable), or build it on a glibc 2.34
    or older system. See C(docs/lambda.md).
"""

EXAMPLES = r"""
- name: Build the function fully static
  swiftlinux.deploy.swift_build:
    package_path: /src/orders
    link_mode: static_executable
    optimize_size: true
    dest: /srv/builds/orders
  delegate_to: localhost

- name: Package it for the provided.al2023 runtime
  swiftlinux.deploy.lambda_package:
    build: /srv/builds/orders
    function_name: orders-api
    dest: /srv/lambda/orders-api
  delegate_to: localhost
  register: package

- name: Package it as a zip and as a container image, counting a 20 MB layer against the quota
  swiftlinux.deploy.lambda_package:
    build: /srv/builds/orders
    product: orders
    function_name: orders-api
    unzipped_limit: "{{ 262144000 - 20 * 1048576 }}"
    image: true
    image_name: 123456789012.dkr.ecr.us-east-1.amazonaws.com/orders-api
    image_tag: "1.4.0"
    dest: /srv/lambda/orders-api
  delegate_to: localhost
"""

RETURN = r"""
zip:
  description: Path of the deployment zip.
  returned: always
  type: str
  sample: /srv/lambda/orders-api/orders-api.zip
sha256:
  description: sha256 of the zip; two runs on the same build give the same value.
  returned: always
  type: str
link_mode:
  description: The executable's link mode as its ELF file shows it.
  returned: always
  type: str
  sample: static_executable
architecture:
  description: The function's architecture as Lambda names it (V(x86_64) or V(arm64)).
  returned: always
  type: str
  sample: x86_64
runtime:
  description: The Lambda runtime the zip is for.
  returned: always
  type: str
  sample: provided.al2023
handler:
  description: The program Lambda starts in the unzipped package.
  returned: always
  type: str
  sample: bootstrap
glibc_required:
  description: Highest C(GLIBC_) version the program needs, or null for a static executable.
  returned: always
  type: str
  sample: "2.34"
files:
  description: Every entry of the zip, in its order.
  returned: always
  type: list
  elements: str
  sample: [bootstrap, resources_reader.resources/, resources_reader.resources/greeting.txt]
sizes:
  description: Sizes in bytes.
  returned: always
  type: dict
  contains:
    unstripped:
      description: The program before stripping.
      type: int
    stripped:
      description: The program as C(bootstrap) (equal to RV(sizes.unstripped) when not stripped).
      type: int
    debug:
      description: The debug file kept aside, or 0.
      type: int
    unzipped:
      description: The package unzipped, the figure Lambda's 250 MB quota counts.
      type: int
    zipped:
      description: The zip, the figure the 50 MB direct-upload quota counts.
      type: int
debug_file:
  description: The debug file kept in O(dest), or null.
  returned: always
  type: str
image:
  description: The container image archive, or null without O(image=true).
  returned: always
  type: dict
  contains:
    archive:
      description: Path of the image archive.
      type: str
    reference:
      description: Name and tag.
      type: str
    digest:
      description: Digest of the image manifest.
      type: str
    image_id:
      description: Digest of the image config (the ID Docker shows after loading).
      type: str
    size:
      description: Bytes of the uncompressed layer, the figure Lambda's 10 GB quota counts.
      type: int
    entrypoint:
      description: The image's entry point.
      type: list
      elements: str
manifest:
  description: Path of C(lambda_package.json), which records this result.
  returned: always
  type: str
"""

import os
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.swiftlinux.deploy.plugins.module_utils import _lambda, _manifest, _swift
from ansible_collections.swiftlinux.deploy.plugins.module_utils._files import (
    NotOurs, check_replaceable, read_json, replace_directory, sha256_file,
)
from ansible_collections.swiftlinux.deploy.plugins.module_utils._lambda import LambdaError
from ansible_collections.swiftlinux.deploy.plugins.module_utils._oci import (
    Image, Layer, OciError, existing_digest, parse_name, write_archive,
)
from ansible_collections.swiftlinux.deploy.plugins.module_utils._elf import HAS_ELFTOOLS, ElfError, elf_facts
from ansible_collections.swiftlinux.deploy.plugins.module_utils._policy import machine_named

OWNER = "lambda_package"
RECORD = "lambda_package.json"
MAX_EPOCH = 4294967295


def _product(build, manifest, name):
    products = manifest["products"]
    if name is None and len(products) == 1:
        name = next(iter(products))
    if name not in products:
        raise LambdaError("the build %s has no product %s; its products are %s, so set product to one of them"
                          % (build, name if name is not None else "(none given)", ", ".join(sorted(products)) or "none"))
    return name, products[name]


def _executable(build, name, product):
    path = _manifest.contained(build, name, "product")
    _manifest.check_regular(path, "product")
    if sha256_file(path) != product["sha256"]:
        raise LambdaError("%s changed since swift_build wrote it (its sha256 differs from %s); rebuild it instead of "
                          "editing it" % (path, _manifest.BUILD_MANIFEST))
    return path


def _bundles(build, product):
    bundles = {}
    for resource in product["resources"]:
        name = os.path.basename(resource)
        path = _manifest.contained(build, name, "resource bundle")
        if _manifest.file_type(path) != "directory":
            raise LambdaError("resource bundle %s is missing from the build %s or is not a directory; rebuild it with "
                              "swift_build" % (name, build))
        bundles[name] = path
    return bundles


def _objcopy(module):
    found = module.get_bin_path("llvm-objcopy", opt_dirs=list(_swift.toolchain_dirs())) or module.get_bin_path("objcopy")
    if not found:
        raise LambdaError("the build is not stripped and neither the toolchain's llvm-objcopy nor objcopy was found; "
                          "install binutils, or set strip=false")
    return found


def _strip(module, executable, name, stage):
    """A stripped copy of the program in stage and its debug file, linked through .gnu_debuglink."""
    objcopy = _objcopy(module)
    work = os.path.join(stage, ".strip")
    os.mkdir(work)
    shutil.copyfile(executable, os.path.join(work, name))
    for args in (["--only-keep-debug", name, name + ".debug"],
                 ["--strip-all", "--add-gnu-debuglink=%s.debug" % name, name]):
        rc, out, err = module.run_command([objcopy] + args, cwd=work)
        if rc != 0:
            raise LambdaError("%s %s failed: %s; set strip=false or rebuild with swift_build strip=true"
                              % (objcopy, " ".join(args), (err or out).strip()))
    return os.path.join(work, name), os.path.join(work, name + ".debug")


def _epoch(params):
    if params["source_date_epoch"] is not None:
        value = params["source_date_epoch"]
    else:
        text = os.environ.get("SOURCE_DATE_EPOCH") or "0"
        value = int(text) if text.isdigit() else -1
    if not 0 <= value <= MAX_EPOCH:
        raise LambdaError("source_date_epoch (or SOURCE_DATE_EPOCH) is not a number of seconds from 0 to %d; set it "
                          "to e.g. the last commit's time (git log -1 --format=%%ct)" % MAX_EPOCH)
    return value


def _image(params, entries, facts, link_mode, swift_version):
    """(the Lambda container image, its reference, uncompressed size, epoch); see _lambda.image_files."""
    name = params["image_name"] or "lambda/" + params["function_name"].lower()
    try:
        tag = parse_name(name, params["image_tag"])[2]
    except OciError as exc:
        raise LambdaError("%s; set image_name (and image_tag) to a valid image name" % str(exc).rstrip("."))
    epoch = _epoch(params)
    layer = Layer(_lambda.image_files(entries, params["ca_bundle"]), epoch, "app")
    _lambda.check_quota("the container image of %s" % params["function_name"], len(layer.tar),
                        params["image_limit"], ["strip it and rebuild with swift_build optimize_size=true"])
    config = _lambda.image_config(params["function_name"], link_mode, swift_version)
    image = Image([layer], machine_named(facts["machine"]).oci, config, epoch)
    return image, "%s:%s" % (name, tag), len(layer.tar), epoch


def package(module, stage):
    """Check the build, write the package into stage; return the record (lambda_package.json) and the result."""
    params = module.params
    build = params["build"]
    if _manifest.file_type(build) != "directory":
        raise LambdaError("build %s does not exist or is not a directory; point it at a swiftlinux.deploy.swift_build "
                          "dest" % build)
    manifest = _manifest.read_build(build)
    name, product = _product(build, manifest, params["product"])
    executable = _executable(build, name, product)
    facts = elf_facts(executable)
    link_mode = _lambda.check_runtime(facts, params["runtime_glibc"], params["runtime_glibcxx"])
    architecture = _lambda.lambda_architecture(facts)
    bundles = _bundles(build, product)

    debug = None
    if facts["stripped"]:
        unstripped = product.get("unstripped_size")
        unstripped = unstripped if isinstance(unstripped, int) and not isinstance(unstripped, bool) else facts["size"]
        if product.get("debug_file"):
            debug = _manifest.contained(build, os.path.basename(product["debug_file"]), "debug file")
            _manifest.check_regular(debug, "debug file")
        bootstrap = executable
    elif params["strip"]:
        unstripped = facts["size"]
        bootstrap, debug = _strip(module, executable, name, stage)
    else:
        unstripped, bootstrap = facts["size"], executable
    full_foundation = _lambda.uses_full_foundation(bootstrap)
    tips = _lambda.size_advice(facts["stripped"] or params["strip"], full_foundation)

    entries = _lambda.package_entries(bootstrap, bundles)
    unzipped = _lambda.unzipped_size(entries)
    _lambda.check_quota("the package of %s unzipped" % params["function_name"], unzipped, params["unzipped_limit"],
                        tips + ["or ship it as a container image (image=true), which may hold 10 GB"])
    zip_name = params["function_name"] + ".zip"
    sha256, zipped = _lambda.write_zip(os.path.join(stage, zip_name), entries)
    _lambda.check_quota("the zip of %s" % params["function_name"], zipped, params["zipped_limit"],
                        ["upload it through S3, where only the unzipped limit applies (then raise zipped_limit)"]
                        + tips + ["or ship it as a container image (image=true)"])

    image = None
    if params["image"]:
        built, reference, image_size, epoch = _image(params, entries, facts, link_mode, manifest.get("swift_version"))
        archive = params["function_name"] + ".image.tar"
        write_archive(os.path.join(stage, archive), built, reference.rsplit(":", 1)[1], [reference], epoch)
        image = dict(archive=archive, reference=reference, digest=built.digest, image_id=built.config_digest,
                     size=image_size, entrypoint=built.config["config"]["Entrypoint"])
    debug_name = None
    if debug and params["keep_debug"]:
        debug_name = os.path.basename(debug)
        shutil.copyfile(debug, os.path.join(stage, debug_name))
        os.chmod(os.path.join(stage, debug_name), 0o644)
    stripped = os.path.getsize(bootstrap)
    if os.path.isdir(os.path.join(stage, ".strip")):
        shutil.rmtree(os.path.join(stage, ".strip"))

    record = dict(function_name=params["function_name"], product=name, zip=zip_name, sha256=sha256,
                  link_mode=link_mode, architecture=architecture, runtime=_lambda.RUNTIME, handler=_lambda.BOOTSTRAP,
                  glibc_required=facts["glibc_required"], glibcxx_required=facts["glibcxx_required"],
                  files=[entry.name for entry in entries], debug_file=debug_name, image=image,
                  sizes=dict(unstripped=unstripped, stripped=stripped,
                             debug=os.path.getsize(os.path.join(stage, debug_name)) if debug_name else 0,
                             unzipped=unzipped, zipped=zipped))
    _manifest.write(stage, RECORD, record)
    return record


def _unchanged(dest, record):
    """Whether dest already holds exactly this package (same record, same zip and image bytes)."""
    if read_json(os.path.join(dest, RECORD)) != record:
        return False
    try:
        if sha256_file(os.path.join(dest, record["zip"])) != record["sha256"]:
            return False
    except OSError:
        return False
    if record["debug_file"] and not os.path.isfile(os.path.join(dest, record["debug_file"])):
        return False
    image = record["image"]
    return not image or existing_digest(os.path.join(dest, image["archive"])) == image["digest"]


def _stage_dir(dest, check_mode):
    """Where to stage: beside dest (same file system, for an atomic switch) in its nearest existing ancestor, so
    nothing, not even dest's parents, is created before every check passed; the temp dir in check mode."""
    if check_mode:
        return None
    parent = os.path.dirname(dest.rstrip("/")) or "/"
    while not os.path.isdir(parent):
        parent = os.path.dirname(parent)
    return parent


def _result(dest, record, changed, before):
    image = record["image"]
    if image:
        image = dict(image, archive=os.path.join(dest, image["archive"]))
    return dict(
        changed=changed, zip=os.path.join(dest, record["zip"]), sha256=record["sha256"],
        link_mode=record["link_mode"], architecture=record["architecture"], runtime=record["runtime"],
        handler=record["handler"], glibc_required=record["glibc_required"], files=record["files"],
        sizes=record["sizes"], image=image, manifest=os.path.join(dest, RECORD),
        debug_file=os.path.join(dest, record["debug_file"]) if record["debug_file"] else None,
        diff=dict(before=before, after={"sha256": record["sha256"], "image": (image or {}).get("digest")}),
    )


def main():
    module = AnsibleModule(
        argument_spec=dict(
            build=dict(type="path", required=True),
            product=dict(type="str"),
            function_name=dict(type="str", required=True),
            dest=dict(type="path", required=True),
            strip=dict(type="bool", default=True),
            keep_debug=dict(type="bool", default=True),
            unzipped_limit=dict(type="int", default=_lambda.UNZIPPED_LIMIT),
            zipped_limit=dict(type="int", default=_lambda.ZIPPED_LIMIT),
            runtime_glibc=dict(type="str", default=_lambda.RUNTIME_GLIBC),
            runtime_glibcxx=dict(type="str", default=_lambda.RUNTIME_GLIBCXX),
            image=dict(type="bool", default=False),
            image_name=dict(type="str"),
            image_tag=dict(type="str", default="latest"),
            image_limit=dict(type="int", default=_lambda.IMAGE_LIMIT),
            ca_bundle=dict(type="path", default="/etc/ssl/certs/ca-certificates.crt"),
            source_date_epoch=dict(type="int"),
        ),
        supports_check_mode=True,
    )
    if not HAS_ELFTOOLS:
        module.fail_json(msg=missing_required_lib("pyelftools", url="https://pypi.org/project/pyelftools/"))
    params = module.params
    params["build"] = os.path.abspath(params["build"])
    dest = params["dest"] = os.path.abspath(params["dest"])
    stage = None
    try:
        _lambda.check_function_name(params["function_name"])
        for key in ("unzipped_limit", "zipped_limit", "image_limit"):
            if params[key] < 1:
                raise LambdaError("%s is %d; give a positive number of bytes" % (key, params[key]))
        for key in ("runtime_glibc", "runtime_glibcxx"):
            if not all(part.isdigit() for part in params[key].split(".")):
                raise LambdaError("%s %r is not a dotted version such as 2.34; set it to the runtime's version"
                                  % (key, params[key]))
        real_dest, real_build = os.path.realpath(dest), os.path.realpath(params["build"])
        if real_dest == real_build or real_dest.startswith(real_build.rstrip("/") + "/"):
            raise LambdaError("dest %s is or lies inside the build %s, which swift_build owns; choose a directory "
                              "outside it for the package" % (dest, params["build"]))
        check_replaceable(dest, OWNER)
        stage = tempfile.mkdtemp(prefix=".lambda-package-", dir=_stage_dir(dest, module.check_mode))
        record = package(module, stage)
        previous = read_json(os.path.join(dest, RECORD)) or {}
        before = {"sha256": previous.get("sha256"), "image": (previous.get("image") or {}).get("digest")}
        changed = not _unchanged(dest, record)
        if changed and not module.check_mode:
            os.makedirs(os.path.dirname(dest.rstrip("/")) or "/", exist_ok=True)
            replace_directory(stage, dest, OWNER)
    except (LambdaError, _manifest.ManifestError, ElfError, OciError, NotOurs) as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg="cannot write the package to %s: %s; choose a writable dest" % (dest, exc.strerror or exc))
    finally:
        if stage and os.path.isdir(stage):
            shutil.rmtree(stage)
    module.exit_json(**_result(dest, record, changed, before))


if __name__ == "__main__":
    main()
