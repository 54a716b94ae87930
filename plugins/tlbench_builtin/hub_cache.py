"""The Hugging Face hub as tlbench uses it: the local cache first, the network only when asked.

Sources and targets look their models and data sets up in the local hub cache (the one
``HF_HOME`` / ``HF_HUB_CACHE`` name, read when called rather than at import). Downloads
happen only in a source's `prepare` (scheduled before any run of that source) and in a
target's `load` while the suite is planned; runs then find everything on disk and never
touch the network. When something is
missing and the hub cannot be had (``HF_HUB_OFFLINE`` is set, or a quick probe of the
endpoint fails), the caller gets one `ResourceUnavailable` line that names the id and
says how to provide it offline.

A snapshot folder can be partial: a download stopped half-way, a cache copied in part.
Whether it is whole is read off the snapshot's own listing, which huggingface_hub keeps
beside the cache for every snapshot download (``trees/<commit>.json``, read with
`get_cached_repo_tree`): each file the caller needs from that listing must be on disk at
its listed size. Files that merely look complete (a config and some weights) are not
taken for a whole snapshot. Caches that hold no listing (written by an older
huggingface_hub, or by single-file downloads) are taken as they are.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tlbench.errors import NeedsNetwork, ResourceUnavailable, first_line

_TRUE = {"1", "true", "yes", "on"}
_PROBE_TIMEOUT_S = 5.0
_reachable: dict[str, bool] = {}


def hf_home() -> Path:
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "huggingface"


def hub_cache_dir() -> Path:
    """Where hub downloads live: ``HF_HUB_CACHE``, else ``$HF_HOME/hub``."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    return hf_home() / "hub"


def datasets_cache_dir() -> Path:
    """Where `datasets` keeps its Arrow files: ``HF_DATASETS_CACHE``, else ``$HF_HOME/datasets``."""
    if os.environ.get("HF_DATASETS_CACHE"):
        return Path(os.environ["HF_DATASETS_CACHE"]).expanduser()
    return hf_home() / "datasets"


def offline_setting() -> str | None:
    """The environment variable that turns the hub off, if one does."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(name, "").strip().lower() in _TRUE:
            return name
    return None


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hub_reachable() -> bool:
    """One quick request to the hub endpoint (remembered per process)."""
    url = endpoint()
    if url not in _reachable:
        from huggingface_hub.utils import get_session

        try:
            get_session().head(url, timeout=_PROBE_TIMEOUT_S)
            _reachable[url] = True
        except Exception:
            _reachable[url] = False
    return _reachable[url]


def hub_online() -> bool:
    return offline_setting() is None and hub_reachable()


def why_offline() -> str:
    setting = offline_setting()
    return f"{setting} is set" if setting else f"the hub ({endpoint()}) cannot be reached"


def looks_like_path(text: str) -> bool:
    """A local path rather than a hub id ('org/name'): absolute, relative with ./ or ~, or a file name."""
    return text.startswith(("/", "./", "../", "~", "\\")) or text.count("/") > 1 or \
        Path(text).suffix.lower() in {".parquet", ".csv", ".tsv", ".json", ".jsonl", ".txt", ".arrow",
                                      ".safetensors", ".pth", ".pt", ".bin"}


@dataclass(frozen=True)
class HubRepo:
    """One repository of the hub at one revision, as found in (or fetched into) the cache."""

    repo_id: str
    repo_type: str = "model"
    revision: str | None = None

    @property
    def ref(self) -> str:
        return self.revision or "main"

    def describe(self) -> str:
        kind = "data set" if self.repo_type == "dataset" else "model"
        at = f" (revision {self.revision})" if self.revision else ""
        return f"{kind} {self.repo_id!r}{at}"

    def download_hint(self) -> str:
        flags = " --repo-type dataset" if self.repo_type == "dataset" else ""
        flags += f" --revision {self.revision}" if self.revision else ""
        return f"`hf download {self.repo_id}{flags}`"

    # ------------------------------------------------------------------ the cache

    def _folder(self) -> Path:
        from huggingface_hub.file_download import repo_folder_name

        return hub_cache_dir() / repo_folder_name(repo_id=self.repo_id, repo_type=self.repo_type)

    def cached_snapshot(self) -> Path | None:
        """The cached snapshot folder of this revision, without any network access."""
        folder = self._folder()
        sha = self.ref if _is_sha(self.ref) else None
        ref_file = folder / "refs" / self.ref
        if sha is None and ref_file.is_file():
            sha = ref_file.read_text(encoding="utf-8").strip()
        if sha and (folder / "snapshots" / sha).is_dir():
            return folder / "snapshots" / sha
        return None

    def cached_file(self, filename: str) -> Path | None:
        """A file of the cached snapshot, if it is there whole (at the size the snapshot's
        listing gives it, when there is a listing)."""
        snapshot = self.cached_snapshot()
        if snapshot is None or self.missing(snapshot, lambda files: [filename] if filename in files else []):
            return None
        return snapshot / filename if (snapshot / filename).is_file() else None

    def listing(self) -> dict[str, int] | None:
        """The snapshot's own file list (repository path -> size in bytes), as
        huggingface_hub keeps it in the cache for every snapshot it downloads; None when it
        keeps none for this revision."""
        try:
            from huggingface_hub import get_cached_repo_tree
        except ImportError:  # a huggingface_hub older than its tree cache
            return None
        try:
            files = get_cached_repo_tree(self.repo_id, repo_type=self.repo_type, revision=self.revision,
                                         cache_dir=hub_cache_dir())
        except Exception:  # none cached for this revision, or unreadable: unknown
            return None
        return {entry.path: entry.size for entry in files}

    def missing(self, snapshot: Path, needed: Callable[[list[str]], list[str]] | None = None) -> list[str]:
        """The files of the snapshot's listing (those `needed` picks from it; all by
        default) that `snapshot` lacks or holds at another size: [] when it is whole for
        them, or when there is no listing to tell."""
        listing = self.listing()
        if listing is None:
            return []
        wanted = needed(sorted(listing)) if needed is not None else sorted(listing)
        return [name for name in wanted if not _whole(snapshot / name, listing.get(name))]

    # ------------------------------------------------------------------ the network

    def unavailable(self, how: str, missing: list[str] | None = None) -> NeedsNetwork:
        """Not in the cache (or, with `missing`, only partly) while the hub cannot be had."""
        declared = offline_setting() is not None
        if missing:
            shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
            return NeedsNetwork(
                f"{self.describe()} is only partly in the Hugging Face cache ({self.cached_snapshot()}): its "
                f"listing has {shown}, which are missing or incomplete, and {why_offline()}; finish the download "
                f"with network into the same HF_HOME ({self.download_hint()}) or {how}", declared)
        return NeedsNetwork(
            f"{self.describe()} is not in the Hugging Face cache ({hub_cache_dir()}) and {why_offline()}; "
            f"download it once with network into the same HF_HOME ({self.download_hint()}) or {how}", declared)

    def require_online(self, how: str) -> None:
        if not hub_online():
            raise self.unavailable(how)

    def remote_files(self, how: str) -> list[str]:
        from huggingface_hub import HfApi

        self.require_online(how)
        return self._call(lambda: HfApi(endpoint=endpoint()).list_repo_files(
            self.repo_id, repo_type=self.repo_type, revision=self.revision), how)

    def remote_sha(self, how: str) -> str:
        from huggingface_hub import HfApi

        self.require_online(how)
        info = self._call(lambda: HfApi(endpoint=endpoint()).repo_info(
            self.repo_id, repo_type=self.repo_type, revision=self.revision), how)
        return info.sha

    def download_snapshot(self, how: str, allow_patterns: list[str] | None = None) -> Path:
        """Fetch this revision (only `allow_patterns` when given) into the cache."""
        from huggingface_hub import snapshot_download

        self.require_online(how)
        return Path(self._call(lambda: snapshot_download(
            self.repo_id, repo_type=self.repo_type, revision=self.revision, cache_dir=hub_cache_dir(),
            allow_patterns=allow_patterns, endpoint=endpoint()), how))

    def _call(self, call, how: str):
        from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, LocalEntryNotFoundError,
                                            RepositoryNotFoundError, RevisionNotFoundError)

        try:
            return call()
        except GatedRepoError:
            raise ResourceUnavailable(f"{self.describe()} is gated on the hub: accept its terms and log in "
                                      f"(`hf auth login`), or {how}") from None
        except RepositoryNotFoundError:
            raise ResourceUnavailable(f"{self.describe()}: no such repository on the hub (or it is private: "
                                      f"log in with `hf auth login`); or {how}") from None
        except RevisionNotFoundError:
            raise ResourceUnavailable(f"{self.describe()}: the hub has no revision {self.ref!r}") from None
        except LocalEntryNotFoundError as exc:  # the network went away: below
            error = exc
        except EntryNotFoundError:  # no such file in the repository: the caller may try another
            raise
        except Exception as exc:
            error = exc
        raise ResourceUnavailable(f"{self.describe()} could not be downloaded ({type(error).__name__}: "
                                  f"{first_line(error, 200)}); download it once with network into the same HF_HOME "
                                  f"({self.download_hint()}) or {how}") from None


def _whole(path: Path, size: int | None) -> bool:
    """A file on disk at the size a listing gives it (any size when it gives none)."""
    try:
        return path.is_file() and (size is None or path.stat().st_size == size)
    except OSError:
        return False


def snapshot_revision(path: Path) -> str | None:
    """The commit sha of a cached snapshot path (…/snapshots/<sha>/…), if it is one."""
    parts = Path(path).parts
    if "snapshots" in parts:
        index = parts.index("snapshots")
        if index + 1 < len(parts) and _is_sha(parts[index + 1]):
            return parts[index + 1]
    return None


def _is_sha(text: str) -> bool:
    return len(text) == 40 and all(c in "0123456789abcdef" for c in text)
