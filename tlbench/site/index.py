"""The site's shared files: the index of suites, each suite's ``latest`` page, and
``plugins.json``.

Unlike releases these change with every publish, so each is rebuilt from the release
manifests alone (`releases.site_suites`) and written atomically: a reader sees the old
index or the new one, and an index lost or hand-edited is rebuilt whole by the next
publish.

``plugins.json`` is the contract `tlbench validate --against SITE` reads: every plugin
the site's records name in their specs, with every version they name, as
``{"<plugin>": ["<version>", ...]}``.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..report.export import publish as publish_file
from .page import esc, link, page, redirect_page
from .releases import change_summary, site_suites

INDEX = "index.html"
PLUGINS = "plugins.json"
LATEST = "latest"


def all_plugins(suites: dict[str, list[dict]]) -> dict[str, list[str]]:
    versions: dict[str, set[str]] = {}
    for releases in suites.values():
        for manifest in releases:
            for name, found in manifest["plugins"].items():
                versions.setdefault(str(name), set()).update(str(v) for v in found)
    return {name: sorted(found) for name, found in sorted(versions.items())}


def _release_item(slug: str, manifest: dict) -> str:
    change = manifest["changes"]
    drift = "".join(f"<li>plugin {esc(name)}: {esc(', '.join(c['before']) or 'none')} → "
                    f"{esc(', '.join(c['after']) or 'none')}</li>" for name, c in change["plugins_changed"].items())
    apart = len(manifest.get("kept_apart") or [])
    href = f"{slug}/{manifest['release']}/{INDEX}"
    return (f"<li>{link(href, manifest['release'])} "
            f"<span class=\"muted\">published {esc(manifest.get('published_at', '?'))} · "
            f"{esc(len(manifest['records']))} records · {esc(len(manifest['cells']))} cells"
            + (f" · {apart} kept apart" if apart else "") + f"</span><br>{esc(change_summary(change))}"
            + (f"<ul>{drift}</ul>" if drift else "") + "</li>")


def index_page(suites: dict[str, list[dict]]) -> bytes:
    ordered = sorted(suites.items(), key=lambda item: (item[1][-1]["suite"].casefold(), item[0]))
    parts = ["<h1>tlbench leaderboards</h1>",
             f"<p>{len(ordered)} suite{'s' if len(ordered) != 1 else ''}. Each release is immutable; "
             "a new publish with other records adds a release and keeps the old ones. "
             f"{link(PLUGINS, 'plugins.json')} lists every plugin version the records name.</p>"]
    if not ordered:
        parts.append("<p>No releases yet.</p>")
    for slug, releases in ordered:
        latest = releases[-1]
        parts.append(f'<section class="suite"><h2>{esc(latest["suite"])}</h2>'
                     f"<p>{link(f'{slug}/{LATEST}/{INDEX}', 'latest release')} "
                     f"({esc(latest['release'])}) · {len(releases)} release{'s' if len(releases) != 1 else ''}</p>"
                     "<ol reversed>" + "".join(_release_item(slug, m) for m in reversed(releases))
                     + "</ol></section>")
    return page("tlbench leaderboards", "".join(parts))


def write_shared(site: Path) -> dict[str, list[dict]]:
    """Rebuild the index, every suite's latest page and plugins.json from the manifests."""
    suites = site_suites(site)
    for slug, releases in suites.items():
        release = releases[-1]["release"]
        publish_file(site / slug / LATEST / INDEX,
                     redirect_page(f"../{release}/{INDEX}", f"{releases[-1]['suite']} {release}"))
    text = json.dumps(all_plugins(suites), indent=1, sort_keys=True) + "\n"
    publish_file(site / PLUGINS, text.encode("utf-8"))
    publish_file(site / INDEX, index_page(suites))
    return suites
