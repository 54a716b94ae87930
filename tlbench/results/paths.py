"""Portable paths: records that name no one's file system.

A record (and anything else built of JSON values) can hold paths of the machine that
wrote it: a pretrained source's weights in the tlbench cache, a hub snapshot, a file
in a traceback. Published as they are, they show a user's home and its layout, and
they mean nothing on any other machine. `portable` rewrites every absolute path under
one of the well-known roots below into a form that names the root instead, inside
longer strings too (a traceback, an error message); `absolute_paths` finds what is
left.

The forms, most specific root first (when roots nest, the longest one that holds the
path names it):

=========================  ===================================================================
``<tlbench-cache>/...``    the tlbench cache: ``$TLBENCH_CACHE_DIR`` and ``~/.cache/tlbench``
                           (its default: `tlbench.plan.suite.default_cache_dir`), and any
                           ``cache_dirs`` given (a suite's own ``cache_dir``)
``<hf-hub-cache>/...``     ``$HF_HUB_CACHE`` (or ``$HUGGINGFACE_HUB_CACHE``), when set
``<hf-datasets-cache>/...`` ``$HF_DATASETS_CACHE``, when set
``<hf-home>/...``          ``$HF_HOME``, else ``$XDG_CACHE_HOME/huggingface``, else
                           ``~/.cache/huggingface`` (the hub cache is its ``hub/``)
``<torch-home>/...``       ``$TORCH_HOME``, else ``$XDG_CACHE_HOME/torch``, else ``~/.cache/torch``
                           (torch hub's checkpoints are under its ``hub/``)
``<xdg-cache>/...``        ``$XDG_CACHE_HOME``, else ``~/.cache``
``<site-packages>/...``    the running Python's site-packages (tracebacks)
``<stdlib>/...``           the running Python's standard library (tracebacks)
``<tlbench-src>/...``      the tlbench checkout, when tlbench runs from one (tracebacks)
``~/...``                  the user's home
=========================  ===================================================================

A cache root's form never depends on where the home is: ``<tlbench-cache>/pretrain/
<hash>.safetensors`` reads the same from every machine, whatever its cache directory.
`local_path` turns a portable form back into this machine's path.

What counts as an absolute path (`absolute_paths`): POSIX ``/a/b`` (at least two
components), ``~user/...`` (another user's home; ``~/...`` is the portable form),
Windows ``C:\\...`` and ``\\\\server\\share\\...``, and ``file://`` URLs, anywhere in a
string. Not paths: other URLs (``https://host/x``), hub ids (``timm/resnet18.a1_in1k``),
ratios (``1/5``), metric and group names (``backbone/no_decay``), devices (``cuda:0``),
``train+val``, and the portable forms themselves.
"""

from __future__ import annotations

import functools
import os
import re
import sysconfig
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

_STOP = r"\s\"'`<>|,;()\[\]{}"
"""Characters that end a path inside a longer string."""
_BEFORE = r"(?<![\w.~/\\<>-])"
"""A path starts a string or follows something that cannot be part of a word or a path
(so ``a/b/c`` and the tail of ``https://host/x`` or ``<hf-home>/hub/x`` are not paths)."""
_ABSOLUTE = re.compile(
    rf"(?:{_BEFORE}|(?<=file://))/[^/{_STOP}]+/[^/{_STOP}]+(?:/[^/{_STOP}]*)*"  # POSIX: two components or more
    rf"|{_BEFORE}~[A-Za-z_][\w.-]*(?:/[^{_STOP}]*)?(?![\w.-])"  # another user's home
    rf"|(?<![\w\\])[A-Za-z]:[\\/][^\\/{_STOP}]+[^{_STOP}]*"  # Windows drive
    rf"|(?<![\w\\])\\\\[^\\{_STOP}]+\\[^{_STOP}]+")  # Windows UNC share


def _env_path(*names: str) -> Path | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return Path(value).expanduser()
    return None


def _tlbench_checkout() -> Path | None:
    root = Path(__file__).resolve().parent.parent.parent
    return root if (root / "pyproject.toml").is_file() and (root / "tlbench").is_dir() else None


def _named_roots(cache_dirs: Iterable[str | Path]) -> list[tuple[str, Path | None]]:
    """(portable form, root) in order of preference within a form."""
    home = Path.home()
    xdg = _env_path("XDG_CACHE_HOME") or home / ".cache"
    return [
        *(("<tlbench-cache>", Path(d).expanduser()) for d in cache_dirs),
        ("<tlbench-cache>", _env_path("TLBENCH_CACHE_DIR")),
        ("<tlbench-cache>", home / ".cache" / "tlbench"),  # the default, also when the variable moves it
        ("<hf-hub-cache>", _env_path("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")),
        ("<hf-datasets-cache>", _env_path("HF_DATASETS_CACHE")),
        ("<hf-home>", _env_path("HF_HOME") or xdg / "huggingface"),
        ("<torch-home>", _env_path("TORCH_HOME") or xdg / "torch"),
        ("<xdg-cache>", xdg),
        *(("<site-packages>", Path(p)) for p in {sysconfig.get_paths().get(k) for k in ("purelib", "platlib")} if p),
        *(("<stdlib>", Path(p)) for p in {sysconfig.get_paths().get(k) for k in ("stdlib", "platstdlib")} if p),
        ("<tlbench-src>", _tlbench_checkout()),
        ("~", home),
    ]


def cache_roots(cache_dirs: Iterable[str | Path] = ()) -> list[tuple[str, str]]:
    """(absolute root, its portable form) for this machine and environment, longest root
    first; each root also under its resolved name when a symlink makes that differ."""
    roots: dict[str, str] = {}
    for form, path in _named_roots(cache_dirs):
        if path is None:
            continue
        for variant in (os.path.abspath(path), os.path.realpath(path)):
            variant = variant.rstrip("/\\")
            if len(variant) > 1 and variant not in roots:  # never the file system's root itself
                roots[variant] = form
    return sorted(roots.items(), key=lambda item: -len(item[0]))


_ENVIRONMENT = ("HOME", "USERPROFILE", "XDG_CACHE_HOME", "TLBENCH_CACHE_DIR", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE",
                "HF_DATASETS_CACHE", "HF_HOME", "TORCH_HOME")
"""What the roots depend on besides the cache directories given."""


def _rewriter(cache_dirs: Iterable[str | Path]):
    dirs = tuple(str(d) for d in cache_dirs)
    return _compiled(dirs, tuple(os.environ.get(name) for name in _ENVIRONMENT))


@functools.lru_cache(maxsize=16)
def _compiled(cache_dirs: tuple[str, ...], environment: tuple) -> Callable[[str], str]:
    """The rewrite for these roots (`environment` keys the cache: the roots are read from it)."""
    roots = cache_roots(cache_dirs)
    forms = dict(roots)
    pattern = re.compile(rf"{_BEFORE}(?:{'|'.join(re.escape(root) for root, _ in roots)})(?![\w.~-])")

    def rewrite(text: str) -> str:
        if "/" not in text and "\\" not in text:  # every root has a separator
            return text
        text = pattern.sub(lambda match: forms[match.group(0)], text)
        for other, form in _OTHER_HOMES:
            text = other.sub(form, text)
        return text

    return rewrite


_HOME_LIKE = r"(?:/home/[^/\s\"']+|/Users/[^/\s\"']+|/root|[A-Za-z]:\\Users\\[^\\\s\"']+)"
_OTHER_HOMES = [(re.compile(rf"{_BEFORE}{_HOME_LIKE}{tail}(?![\w.~-])"), form) for tail, form in (
    (r"[/\\]\.cache[/\\]tlbench", "<tlbench-cache>"),
    (r"[/\\]\.cache[/\\]huggingface", "<hf-home>"),
    (r"[/\\]\.cache[/\\]torch", "<torch-home>"),
    (r"[/\\]\.cache", "<xdg-cache>"),
    ("", "~"))]
"""Homes of other users (records written on another machine or account, published here):
their default caches by their root, the rest as ``~``; the writer's name never shows."""


def portable(value: Any, cache_dirs: Iterable[str | Path] = (), keep: Iterable[str] = ()) -> Any:
    """A deep copy of the JSON-like `value` in which every absolute path under a root of
    this machine (see the module's table) names its root instead: ``<tlbench-cache>/...``,
    ``~/...``. `cache_dirs`: more tlbench cache directories (a suite's own); `keep`:
    locations (as `absolute_paths` writes them, e.g. ``spec.identity``) left as they are."""
    rewrite = _rewriter(cache_dirs)
    kept = set(keep)

    def walk(item: Any, location: str | None) -> Any:
        """`location` is None below where nothing is kept (it costs to spell out)."""
        if location is not None and location in kept:
            return item
        if isinstance(item, str):
            return rewrite(item)
        if isinstance(item, dict):  # keys too: a dict keyed by file names is still a list of paths
            return {(rewrite(key) if isinstance(key, str) else key): walk(child, _below(location, str(key)))
                    for key, child in item.items()}
        if isinstance(item, (list, tuple)):
            return type(item)(walk(child, _below(location, f"[{i}]")) for i, child in enumerate(item))
        return item

    def _below(location: str | None, step: str) -> str | None:
        if location is None:
            return None
        below = f"{location}{step}" if step.startswith("[") or not location else f"{location}.{step}"
        return below if any(k == below or k.startswith((below + ".", below + "[")) for k in kept) else None

    return walk(value, "" if kept else None)


def _child(location: str, key: Any) -> str:
    return f"{location}.{key}" if location else str(key)


def _strings(value: Any, location: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield location, value
    elif isinstance(value, dict):
        for key, child in value.items():
            if isinstance(key, str):
                yield f"{_child(location, key)} (key)", key
            yield from _strings(child, _child(location, key))
    elif isinstance(value, (list, tuple)):
        for i, child in enumerate(value):
            yield from _strings(child, f"{location}[{i}]")


def find_absolute(text: str) -> list[str]:
    """Every absolute file-system path inside `text`, in order."""
    if "/" not in text and "\\" not in text and "~" not in text:
        return []
    return [match.group(0) for match in _ABSOLUTE.finditer(text)]


def absolute_paths(value: Any) -> list[tuple[str, str]]:
    """(location, path) for every absolute file-system path left in the JSON-like `value`,
    in document order. A location is the dotted way to it, lists indexed:
    ``details.source.weights``, ``details.strategy.training.history[3].note``; a dict key
    that is a path is reported as ``<location> (key)``; a bare string's location is ''."""
    return [(location, path) for location, text in _strings(value) for path in find_absolute(text)]


def local_path(text: str, cache_dirs: Iterable[str | Path] = ()) -> str:
    """A path written by `portable` as a path of this machine (``<tlbench-cache>`` is the
    first of `cache_dirs` when given); anything else as it is."""
    for form, root in _named_roots(cache_dirs):
        if root is not None and (text == form or text.startswith((form + "/", form + "\\"))):
            return os.path.abspath(root) + text[len(form):]
    return text
