#!/usr/bin/python
# Copyright (c) swiftlinux.deploy contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: bar_chart
short_description: Draw a grouped bar chart as a PNG with matplotlib, for a report people look at
version_added: 0.5.0
description:
  - Writes one PNG with a group of bars per category and one bar per series, labelled with its value, for example
    the bytes of each link mode's program, bag and image in the ship report.
  - Writes the file only when the picture changes (the PNG is compared byte for byte), so a second run reports
    C(changed=false).
  - Runs where the report goes, usually the controller, which needs matplotlib.
requirements:
  - matplotlib
author:
  - swiftlinux.deploy maintainers (@swiftlinux)
attributes:
  check_mode:
    support: full
    description: Draws the chart in memory and says whether the file would change; writes nothing.
  diff_mode:
    support: none
    description: A PNG has no useful text diff.
  idempotent:
    support: full
    description: The same data gives the same bytes and C(changed=false).
options:
  dest:
    description: The PNG file to write; its directory must exist.
    type: path
    required: true
  title:
    description: The chart's title.
    type: str
    required: true
  categories:
    description: The groups along the x axis, for example link modes.
    type: list
    elements: str
    required: true
  series:
    description:
      - Series name to one number per category (null for none), for example V(program) to the bytes of each mode.
    type: dict
    required: true
  ylabel:
    description: The y axis label.
    type: str
    default: ""
  scale:
    description: Divide every value by this before drawing, for example V(1048576) to draw MiB.
    type: float
    default: 1
"""

EXAMPLES = r"""
- name: Chart the bytes of each link mode
  swiftlinux.deploy.bar_chart:
    dest: /tmp/report/sizes.png
    title: Bytes shipped per link mode
    categories: [static_executable, static_stdlib, bag-all]
    series:
      program: [7034112, 3043211, 25870]
      shipped: [17341029, 3043211, 20144212]
    ylabel: MiB
    scale: 1048576
  delegate_to: localhost
"""

RETURN = r"""
dest:
  description: The PNG written.
  returned: always
  type: str
size:
  description: Bytes of the PNG.
  returned: always
  type: int
"""

import io
import os
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot
    HAS_MATPLOTLIB, MATPLOTLIB_ERROR = True, None
except ImportError:
    HAS_MATPLOTLIB, MATPLOTLIB_ERROR = False, traceback.format_exc()


def draw(title, categories, series, ylabel, scale):
    """The chart as PNG bytes; the same data gives the same bytes (no timestamps in the metadata)."""
    figure, axes = pyplot.subplots(figsize=(max(6, 1.6 * len(categories) * max(1, len(series)) ** 0.5), 4))
    width = 0.8 / max(1, len(series))
    for index, (name, values) in enumerate(sorted(series.items())):
        xs = [position + index * width for position in range(len(categories))]
        heights = [(value or 0) / scale for value in values]
        bars = axes.bar(xs, heights, width, label=name)
        axes.bar_label(bars, labels=["%.1f" % h if v is not None else "" for h, v in zip(heights, values)],
                       fontsize="x-small")
    axes.set_xticks([position + width * (len(series) - 1) / 2 for position in range(len(categories))])
    axes.set_xticklabels(categories, fontsize="small")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.legend(fontsize="small")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    pyplot.close(figure)
    return buffer.getvalue()


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dest=dict(type="path", required=True),
            title=dict(type="str", required=True),
            categories=dict(type="list", elements="str", required=True),
            series=dict(type="dict", required=True),
            ylabel=dict(type="str", default=""),
            scale=dict(type="float", default=1),
        ),
        supports_check_mode=True,
    )
    if not HAS_MATPLOTLIB:
        module.fail_json(msg=missing_required_lib("matplotlib"), exception=MATPLOTLIB_ERROR)
    p = module.params
    if p["scale"] <= 0:
        module.fail_json(msg="scale must be more than 0, not %s" % p["scale"])
    for name, values in p["series"].items():
        if not isinstance(values, list) or len(values) != len(p["categories"]) or not all(
                value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)) for value in values):
            module.fail_json(msg="series %s must be a list of %d numbers (or nulls), one per category; got %r"
                                 % (name, len(p["categories"]), values))
    if not os.path.isdir(os.path.dirname(os.path.abspath(p["dest"]))):
        module.fail_json(msg="the directory of dest %s does not exist; create it first" % p["dest"])
    png = draw(p["title"], p["categories"], p["series"], p["ylabel"], p["scale"])
    try:
        with open(p["dest"], "rb") as handle:
            changed = handle.read() != png
    except OSError:
        changed = True
    if changed and not module.check_mode:
        module.atomic_move(_write_temp(p["dest"], png), p["dest"])
    module.exit_json(changed=changed, dest=p["dest"], size=len(png))


def _write_temp(dest, data):
    temp = "%s.%d.tmp" % (dest, os.getpid())
    with open(temp, "wb") as handle:
        handle.write(data)
    return temp


if __name__ == "__main__":
    main()
