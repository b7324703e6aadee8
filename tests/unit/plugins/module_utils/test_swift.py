"""Unit tests for the pure parts of module_utils/_swift.py and _sbom.spdx_build_document.

The SwiftPM outputs below were captured from `swift package resolve` (Swift 6.3.1) for dep-server
without a mirror and with a mirror that is not a git repository. The real runs are in
tests/integration/test_dependencies.py.
"""
from __future__ import annotations

import json

import pytest

from ansible_collections.swiftlinux.deploy.plugins.module_utils import _swift
from ansible_collections.swiftlinux.deploy.plugins.module_utils._sbom import spdx_build_document

URL = "https://git.swiftlinux.invalid/greeting.git"
NO_HOST = """Fetching https://git.swiftlinux.invalid/greeting.git
error: Failed to clone repository https://git.swiftlinux.invalid/greeting.git:
    Cloning into bare repository '/p/.build/swiftlinux/dependencies/repositories/greeting-2a56b9fd'...
    fatal: unable to access 'https://git.swiftlinux.invalid/greeting.git/': Could not resolve host: git.swiftlinux.invalid
"""
NOT_A_REPOSITORY = "error: 'dep-server': cannot clone from local directory /srv/mirrors/greeting\n"
MISSING_MIRROR = """Fetching /nonexistent/greeting
error: Failed to clone repository /nonexistent/greeting:
    fatal: repository '/nonexistent/greeting' does not exist
"""


def _resolve_failing_with(output, mirrors=None, pinned=False):
    def run(cmd):
        assert cmd[-1] == ("--force-resolved-versions" if pinned else "resolve")
        return 1, "", output
    with pytest.raises(_swift.SwiftError) as caught:
        _swift.resolve_dependencies(run, "swift", "/p", ["--scratch-path", "/p/deps"], pinned=pinned, mirrors=mirrors)
    return str(caught.value)


@pytest.mark.parametrize(("output", "mirrors", "reason"), [
    (NO_HOST, None, "Could not resolve host: git.swiftlinux.invalid"),
    (NOT_A_REPOSITORY, {URL: "/srv/mirrors/greeting"}, "cannot clone from local directory /srv/mirrors/greeting"),
    (MISSING_MIRROR, {URL: "/nonexistent/greeting"}, "repository '/nonexistent/greeting' does not exist"),
])
def test_unfetchable_dependency_is_one_line_with_the_manifest_url(output, mirrors, reason):
    assert _resolve_failing_with(output, mirrors) == (
        "dependency %s could not be fetched (%s); add a mirror with the mirrors option or vendor it" % (URL, reason))


def test_pinned_resolution_without_resolved_file():
    output = ("error: a resolved file is required when automatic dependency resolution is disabled and should be "
              "placed at /p/Package.resolved. Running resolver because the following dependencies were added: "
              "'greeting' (https://git.swiftlinux.invalid/greeting.git)\n")
    message = _resolve_failing_with(output, pinned=True)
    assert message.startswith("force_resolved_versions needs a Package.resolved in /p") and "\n" not in message


@pytest.mark.parametrize("document", [
    {"version": 2, "pins": [{"identity": "greeting", "kind": "remoteSourceControl", "location": URL,
                             "state": {"revision": "ab" * 20, "version": "1.0.0"}}]},
    {"version": 1, "object": {"pins": [{"package": "Greeting", "repositoryURL": URL,
                                        "state": {"branch": None, "revision": "ab" * 20, "version": "1.0.0"}}]}},
])
def test_resolved_dependencies_reads_every_package_resolved_version(tmp_path, document):
    (tmp_path / "Package.resolved").write_text(json.dumps(document))
    assert _swift.resolved_dependencies(str(tmp_path)) == [
        {"identity": "greeting", "url": URL, "version": "1.0.0", "revision": "ab" * 20, "branch": None}]


@pytest.mark.parametrize("content", ["", "[]", '{"pins": 3}', '{"pins": [1, {"state": 2}]}'])
def test_resolved_dependencies_of_a_missing_or_odd_file_is_empty(tmp_path, content):
    if content:
        (tmp_path / "Package.resolved").write_text(content)
    assert _swift.resolved_dependencies(str(tmp_path)) == []


def test_share_dependencies_links_the_one_resolution(tmp_path):
    resolved, scratch = tmp_path / "dependencies", tmp_path / "static_executable-release"
    (resolved / "checkouts" / "greeting").mkdir(parents=True)
    (resolved / "workspace-state.json").write_text("{}")
    (scratch / "repositories" / "old-clone").mkdir(parents=True)  # a private clone from an older build
    for run in ("first", "again"):
        _swift.share_dependencies(str(resolved), str(scratch))
        assert (scratch / "checkouts").resolve() == resolved / "checkouts"
        assert (scratch / "repositories").resolve() == resolved / "repositories"
        assert (scratch / "workspace-state.json").read_text() == "{}", run


def test_build_sbom_names_each_dependency():
    document = spdx_build_document("dep-server", [{"path": "dep-server", "sha256": "0" * 64, "size": 1}], [
        {"identity": "greeting", "url": URL, "version": "1.0.0", "revision": "ab" * 20, "branch": None},
        {"identity": "vendored", "url": "/srv/vendored", "version": None, "revision": "cd" * 20, "branch": "main"}])
    packages = {p["name"]: p for p in document["packages"]}
    assert packages["greeting"]["downloadLocation"] == "git+%s@%s" % (URL, "ab" * 20)
    purl = packages["greeting"]["externalRefs"][0]["referenceLocator"]
    assert purl == "pkg:swift/git.swiftlinux.invalid/greeting@1.0.0"
    assert packages["vendored"]["downloadLocation"] == "NOASSERTION" and packages["vendored"]["versionInfo"] == "main"
    depends = [r["relatedSpdxElement"] for r in document["relationships"] if r["relationshipType"] == "DEPENDS_ON"]
    assert depends == [packages["greeting"]["SPDXID"], packages["vendored"]["SPDXID"]]
