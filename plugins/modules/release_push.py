#!/usr/bin/python
# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_push
short_description: Push a built artifact to an OCI registry once, for every host to pull by digest
version_added: 0.5.0
description:
  - Pushes an artifact directory (a M(swiftlinux.deploy.swift_build) output or a M(swiftlinux.deploy.shared_objects)
    bag, described as M(swiftlinux.deploy.artifact_info) describes it) to a registry as an OCI artifact of type
    C(application/vnd.swiftlinux.release.v1), not a container image. Hosts then pull it by digest with
    M(swiftlinux.deploy.release) O(swiftlinux.deploy.release#module:pull), without Docker, so the controller uploads
    a release once whatever the size of the fleet.
  - The artifact has two layers. C(runtime) holds a bag's C(lib/) and the Swift backtracer; C(program) holds the
    rest. Both are deterministic (file order, times and owners fixed), so a code-only release uploads only the
    program layer, and hosts that keep the runtime layer in their cache fetch only the program layer.
  - The artifact's description (link mode, required glibc, files and their checksums, ...) is the artifact's config
    blob, so the registry copy describes itself.
  - Credentials go only to the registry's own scheme, host and port, never to a host a redirect names.
  - Runs where the artifact is, usually the controller.
author:
  - swiftlinux.deploy maintainers (@swiftlinux)
attributes:
  check_mode:
    support: full
    description: Computes the digest and says whether the registry would change and how many bytes would go; uploads nothing.
  diff_mode:
    support: none
    description: Nothing to show beyond RV(uploaded_bytes) and RV(layers).
  idempotent:
    support: full
    description: An artifact already in the registry under O(tag) at the same digest gives C(changed=false) and uploads nothing.
options:
  path:
    description: The artifact directory.
    type: path
    required: true
  executable:
    description: The program to run, by product name; may be omitted when the artifact holds exactly one.
    type: str
  name:
    description:
      - Where in the registry, as V(host[:port]/repository), for example V(127.0.0.1:5000/team/api).
    type: str
    required: true
  tag:
    description: The tag to push under; by default the artifact's release id.
    type: str
  registry_username:
    description: User name for the registry.
    type: str
  registry_password:
    description:
      - Password or token for the registry. Sent only to the registry's own scheme, host and port, never after a
        redirect to another.
    type: str
  registry_insecure:
    description: Talk plain HTTP to the registry. Loopback registries always use plain HTTP, as Docker does.
    type: bool
    default: false
seealso:
  - module: swiftlinux.deploy.release
  - module: swiftlinux.deploy.artifact_info
"""

EXAMPLES = r"""
- name: Push the build once; every host pulls it by digest
  swiftlinux.deploy.release_push:
    path: "{{ playbook_dir }}/dist/bag-all"
    name: registry.example.com/team/api
    registry_username: ci
    registry_password: "{{ registry_token }}"
  delegate_to: localhost
  run_once: true
  register: pushed

- name: Install it on every host from the registry
  swiftlinux.deploy.release:
    root: /opt/api
    release_id: "{{ pushed.release_id }}"
    files: "{{ pushed.files }}"
    pull:
      reference: "{{ pushed.reference }}"
"""

RETURN = r"""
reference:
  description: The artifact by digest, V(host/repository@sha256:...), which hosts pull.
  returned: success
  type: str
  sample: 127.0.0.1:5000/team/api@sha256:5d41402abc4b2a76b9719d911017c592ae6f7b9e1a1cd5a5c5bd1f0c1b2d3e4f
digest:
  description: The manifest's digest.
  returned: success
  type: str
tag:
  description: The tag pushed.
  returned: success
  type: str
layers:
  description: Each layer's role (V(runtime) or V(program)), digest and compressed size.
  returned: success
  type: list
  elements: dict
  sample: [{"role": "runtime", "digest": "sha256:...", "size": 15728640}, {"role": "program", "digest": "sha256:...", "size": 2097152}]
uploaded_bytes:
  description: Bytes of blobs this run sent (or in check mode would send); the registry already had the others.
  returned: success
  type: int
release_id:
  description: The artifact's release id, as M(swiftlinux.deploy.artifact_info) gives it.
  returned: success
  type: str
files:
  description: The artifact's files with their sha256, for M(swiftlinux.deploy.release) to verify.
  returned: success
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.swiftlinux.deploy.plugins.module_utils import _oci, _release_oci
from ansible_collections.swiftlinux.deploy.plugins.module_utils._artifact import ArtifactError, describe
from ansible_collections.swiftlinux.deploy.plugins.module_utils._manifest import ManifestError


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            executable=dict(type="str"),
            name=dict(type="str", required=True),
            tag=dict(type="str"),
            registry_username=dict(type="str"),
            registry_password=dict(type="str", no_log=True),
            registry_insecure=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        info = describe(p["path"], p["executable"])
        host, repository, tag = _oci.parse_name(p["name"], p["tag"] or info["release_id"])
        if not host:
            raise _oci.OciError("name %r has no registry host; write it as host[:port]/repository, for example "
                                "127.0.0.1:5000/team/api" % p["name"])
        layers = _release_oci.release_layers(p["path"], info["files"], info["links"])
        config, manifest = _release_oci.release_manifest(layers, info)
        registry = _release_oci.ReleaseRegistry(host, p["registry_username"], p["registry_password"],
                                                p["registry_insecure"])
        blobs = [(_oci.digest_of(config), config)] + [(layer.digest, layer.blob) for layer in layers]
        uploaded, changed = _release_oci.push(registry, repository, tag, blobs, manifest, module.check_mode)
    except (ArtifactError, ManifestError, _oci.OciError) as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg="cannot read artifact %s: %s; make it readable or rebuild it" % (p["path"], exc))
    digest = _oci.digest_of(manifest)
    module.exit_json(changed=changed, reference="%s/%s@%s" % (host, repository, digest), digest=digest, tag=tag,
                     layers=[dict(role=layer.role, digest=layer.digest, size=layer.size) for layer in layers],
                     uploaded_bytes=uploaded, release_id=info["release_id"], files=info["files"])


if __name__ == "__main__":
    main()
