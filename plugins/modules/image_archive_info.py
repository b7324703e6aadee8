#!/usr/bin/python
# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: image_archive_info
short_description: Describe a container image archive and check that it is intact
version_added: 0.1.0
description:
  - Reads an image archive written by M(swiftlinux.deploy.oci_image) with O(swiftlinux.deploy.oci_image#module:format=archive)
    or by C(docker save), without a Docker engine, and returns what a deploy needs, namely the image ID Docker will
    show after loading it, its names, platform, user, entry point and health check.
  - Checks the config and every layer against the digests the archive records and fails when one differs, so a
    damaged or altered archive never reaches a host.
  - Runs where the archive is, usually the controller.
author:
  - swiftlinux.deploy maintainers (@swiftlinux)
extends_documentation_fragment:
  - swiftlinux.deploy.read_only
attributes:
  check_mode:
    support: full
    description: Only reads the archive.
options:
  path:
    description: The image archive (a tar file).
    type: path
    required: true
seealso:
  - module: swiftlinux.deploy.oci_image
  - module: community.docker.docker_image_load
"""

EXAMPLES = r"""
- name: Describe the image archive before shipping it
  swiftlinux.deploy.image_archive_info:
    path: "{{ playbook_dir }}/dist/api.tar"
  delegate_to: localhost
  register: api_image

- name: Show the ID Docker will give it
  ansible.builtin.debug:
    msg: "{{ api_image.repo_tags | first }} is {{ api_image.image_id }} ({{ api_image.architecture }})"
"""

RETURN = r"""
image_id:
  description: Digest of the image config, which Docker shows as the image ID once the archive is loaded.
  returned: always
  type: str
  sample: sha256:0d8b5e1f67a1d2d0f5c5c0a2cf8d3d5cde1c0e2a3b4c5d6e7f8091a2b3c4d5e6
repo_tags:
  description: The names the archive gives the image (C(name:tag)).
  returned: always
  type: list
  elements: str
  sample: [swiftlinux/http-service:1.0.0]
os:
  description: The image's operating system.
  returned: always
  type: str
  sample: linux
architecture:
  description: The image's architecture as OCI names it.
  returned: always
  type: str
  sample: amd64
machine:
  description: The same architecture as C(uname -m) and the Docker engine name it.
  returned: always
  type: str
  sample: x86_64
user:
  description: The user the image runs as.
  returned: always
  type: str
  sample: "65532:65532"
entrypoint:
  description: The image's entry point.
  returned: always
  type: list
  elements: str
  sample: [/app/http-service]
command:
  description: The image's default arguments (CMD).
  returned: always
  type: list
  elements: str
exposed_ports:
  description: TCP ports the image exposes.
  returned: always
  type: list
  elements: int
  sample: [8080]
healthcheck:
  description: The image's health check command, without the leading C(CMD).
  returned: always
  type: list
  elements: str
  sample: [/app/http-service, --check, "http://127.0.0.1:8080/health"]
labels:
  description: The image's labels.
  returned: always
  type: dict
layers:
  description: Number of layers.
  returned: always
  type: int
size:
  description: Bytes of the archive file.
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.swiftlinux.deploy.plugins.module_utils._oci import OciError, read_archive


def main():
    module = AnsibleModule(argument_spec=dict(path=dict(type="path", required=True)), supports_check_mode=True)
    try:
        info = read_archive(module.params["path"])
    except OciError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, **info)


if __name__ == "__main__":
    main()
