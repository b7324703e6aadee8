# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A small SPDX 2.3 JSON writer for artifacts made of files (bags, images, archives).

The caller describes each file; this module knows only SPDX. Files that name a Debian package are
grouped under one SPDX package per package and version; the rest belong to the artifact itself.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from urllib.parse import quote

__all__ = ["spdx_document", "spdx_build_document", "SPDX_VERSION"]

SPDX_VERSION = "SPDX-2.3"
TOOL = "swiftlinux.deploy"
# SPDX ids allow letters, digits, '.' and '-' only.
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9.-]+")


def spdx_document(name, files, created=None):
    """Return an SPDX 2.3 document (a dict ready for json.dump) describing `files`.

    `files` is a list of dicts with `path` (relative to the artifact root), `sha256`, `size`, and
    optionally `package`, `package_version` (the Debian package that owns the file) and `sha1`.
    `created` is an ISO 8601 UTC time such as 2024-01-01T00:00:00Z, the current time by default;
    reproducible artifacts pass one derived from SOURCE_DATE_EPOCH.
    The namespace is derived from the content, so the same files give the same document.
    """
    files = sorted(files, key=lambda f: f["path"])
    created = created or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    content = hashlib.sha256(json.dumps([[f["path"], f["sha256"]] for f in files]).encode()).hexdigest()
    root_id = "SPDXRef-Package-" + _spdx_id(name)
    packages = [{
        "SPDXID": root_id,
        "name": name,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": True,
        "packageVerificationCode": {"packageVerificationCodeValue": _verification_code(files)},
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "primaryPackagePurpose": "APPLICATION",
    }]
    relationships = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                      "relatedSpdxElement": root_id}]
    spdx_files = []
    package_ids = {}
    for index, item in enumerate(files, 1):
        file_id = "SPDXRef-File-%d" % index
        checksums = [{"algorithm": "SHA256", "checksumValue": item["sha256"]}]
        if item.get("sha1"):
            checksums.insert(0, {"algorithm": "SHA1", "checksumValue": item["sha1"]})
        spdx_files.append({
            "SPDXID": file_id,
            "fileName": "./" + item["path"].lstrip("./"),
            "checksums": checksums,
            "licenseConcluded": "NOASSERTION",
            "copyrightText": "NOASSERTION",
        })
        relationships.append({"spdxElementId": root_id, "relationshipType": "CONTAINS",
                              "relatedSpdxElement": file_id})
        if item.get("package"):
            key = (item["package"], item.get("package_version") or "")
            if key not in package_ids:
                package_ids[key] = "SPDXRef-Package-deb-" + _spdx_id("%s-%s" % key)
                packages.append(_debian_package(package_ids[key], *key))
                relationships.append({"spdxElementId": root_id, "relationshipType": "DEPENDS_ON",
                                      "relatedSpdxElement": package_ids[key]})
            relationships.append({"spdxElementId": file_id, "relationshipType": "GENERATED_FROM",
                                  "relatedSpdxElement": package_ids[key]})
    return {
        "spdxVersion": SPDX_VERSION,
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": "https://spdx.swiftlinux.invalid/%s-%s" % (_spdx_id(name), content),
        "creationInfo": {"created": created, "creators": ["Tool: %s" % TOOL]},
        "documentDescribes": [root_id],
        "packages": packages,
        "files": spdx_files,
        "relationships": relationships,
    }


def spdx_build_document(name, files, dependencies, created=None):
    """An SPDX 2.3 document for a Swift build: its files, and one package per resolved dependency.

    `dependencies` are dicts with `identity`, `url` (as the manifest gives it), `version`, `revision` and
    `branch`, as _swift.resolved_dependencies returns them; the built package DEPENDS_ON each of them.
    """
    document = spdx_document(name, files, created)
    root_id = document["documentDescribes"][0]
    for dependency in sorted(dependencies, key=lambda d: d["identity"]):
        spdx_id = "SPDXRef-Package-swift-" + _spdx_id(dependency["identity"])
        document["packages"].append(_swift_package(spdx_id, dependency))
        document["relationships"].append({"spdxElementId": root_id, "relationshipType": "DEPENDS_ON",
                                          "relatedSpdxElement": spdx_id})
    return document


def _swift_package(spdx_id, dependency):
    url, revision = dependency["url"], dependency.get("revision")
    entry = {
        "SPDXID": spdx_id,
        "name": dependency["identity"],
        # SPDX's VCS form: git+https://host/path@revision; other locations are not stated.
        "downloadLocation": ("git+%s%s" % (url, "@" + revision if revision else "")
                             if url.startswith(("https://", "http://", "ssh://")) else "NOASSERTION"),
        "filesAnalyzed": False,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "primaryPackagePurpose": "LIBRARY",
    }
    version = dependency.get("version") or dependency.get("branch") or revision
    if version:
        entry["versionInfo"] = version
    host_path = url.split("://", 1)[-1].rsplit(".git", 1)[0] if "://" in url else ""
    if host_path and dependency.get("version"):
        purl = "pkg:swift/%s@%s" % (quote(host_path, safe="/.-_~"), quote(dependency["version"], safe=".-_~+"))
        entry["externalRefs"] = [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                                  "referenceLocator": purl}]
    return entry


def _debian_package(spdx_id, package, version):
    bare, dummy, arch = package.partition(":")
    entry = {
        "SPDXID": spdx_id,
        "name": bare,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": False,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "supplier": "Organization: Debian",
        "primaryPackagePurpose": "LIBRARY",
    }
    if version:
        entry["versionInfo"] = version
        purl = "pkg:deb/debian/%s@%s" % (bare, quote(version, safe=".~-_"))
        entry["externalRefs"] = [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                                  "referenceLocator": purl + ("?arch=" + arch if arch else "")}]
    return entry


def _verification_code(files):
    # SPDX defines the code over SHA1s; without them the sha256s stand in, which still pins the content.
    digests = sorted(f.get("sha1") or f["sha256"] for f in files)
    return hashlib.sha1("".join(digests).encode()).hexdigest()


def _spdx_id(text):
    return _ID_UNSAFE.sub("-", text).strip("-") or "x"
