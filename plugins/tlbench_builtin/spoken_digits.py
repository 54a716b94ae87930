"""Target `spoken-digits`: the words "zero" to "nine" spoken by espeak-ng, offline.

Keyword spotting that needs no download: every utterance is synthesised on this
machine by espeak-ng (the Debian package ``espeak-ng``; ``apt-get install espeak-ng``),
in one of eight voices (`VOICES`: British, American, Scottish and Caribbean English,
male and female variants), at a speed and pitch drawn for it. The voices are a natural
domain shift: a suite can pretrain on some voices and transfer to others (`voices`).

Generation. For each voice and word, `per_voice` distinct (speed, pitch) pairs are
drawn from a generator seeded by `speech_seed`, the word and the voice's name (so a
voice speaks the same utterances whichever other voices are chosen): speeds of
130-210 words per minute, pitches of 25-75 (espeak-ng's 0-99 scale). All ten words
are generated, whatever `classes` keeps, as 16-bit mono WAV files at espeak-ng's own
22,050 Hz (or at `rate`, resampled with soxr when the files are written). They are
written once under ``<tlbench cache>/spoken-digits/<recipe hash>/`` (a folder filled
under a temporary name and renamed into place, so a half-written folder is never
read), where the recipe is the voices, `per_voice`, `speech_seed`, `rate`, the
generator's version and espeak-ng's version; ``manifest.json`` lists every file with
its speed, pitch and sha256. The same parameters give byte-identical files on a
machine with the same espeak-ng. The defaults' 400 utterances take about 2 s to speak
(two espeak-ng processes at a time, on two cores).

Examples are the WAV files (`pathlib.Path`), hashed by their bytes; tlbench conditions
them to what an audio source takes when a run hands them over. The revision names
espeak-ng's version and a digest of the generated files.

Splits. A class subset (`classes`, digits 0-9) is relabelled 0..k-1 in the order given
(class names are the words). Each seed draws, per class, `shots` training and
`val_shots` validation utterances; the rest (or `test_shots` of it) is the test split.

Without espeak-ng, `check` says in one line how to install it, and a suite using the
target stops with exit code 2.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import tlbench
from tlbench.api import Env, Split, Splits, Target, TargetData
from tlbench.errors import ParamError, ResourceUnavailable, first_line
from tlbench.hashing import config_hash, file_sha256
from tlbench.params import Param

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

GENERATOR_VERSION = "1"
"""Bump when the same parameters would give other files (part of the recipe and revision)."""

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
VOICES = ("en+m1", "en+m3", "en+f2", "en+f4", "en-us+m2", "en-us+f3", "en-gb-scotland+m4", "en-029+f5")
"""espeak-ng voices (language + variant). A fixed list: espeak-ng speaks an unknown
variant in its default voice without a word of warning."""
SPEEDS = (130, 210)
"""Words per minute, both ends included (espeak-ng's default is 175)."""
PITCHES = (25, 75)
"""Pitch on espeak-ng's 0-99 scale, both ends included (its default is 50)."""
NATIVE_RATE = 22050
"""The rate espeak-ng writes."""
INSTALL = "apt-get install espeak-ng"
MANIFEST = "manifest.json"


def espeak_ng() -> str | None:
    """The espeak-ng executable on PATH, or None."""
    return shutil.which("espeak-ng")


def require_espeak_ng() -> str:
    binary = espeak_ng()
    if binary is None:
        raise ResourceUnavailable(f"espeak-ng is not installed; spoken-digits speaks its words with it: {INSTALL}")
    return binary


@functools.lru_cache(maxsize=4)
def espeak_version(binary: str) -> str:
    """espeak-ng's version ('1.51'), from ``espeak-ng --version``."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise ResourceUnavailable(f"espeak-ng at {binary!r} does not run ({type(exc).__name__}: "
                                  f"{first_line(exc)}); reinstall it: {INSTALL}") from None
    found = re.search(r"text-to-speech:\s*(\S+)", out)
    return found.group(1) if found else first_line(out, 80)


@dataclass(frozen=True)
class Utterance:
    word: int
    voice: str
    take: int
    speed: int
    pitch: int

    @property
    def file(self) -> str:
        """Its path relative to the recipe's folder."""
        return f"{self.voice}/{WORDS[self.word]}-{self.take:02d}.wav"


def chosen_voices(params: dict) -> list[str]:
    return list(VOICES) if params["voices"] == ["all"] else list(params["voices"])


def utterances(voices: list[str], per_voice: int, speech_seed: int) -> list[Utterance]:
    """Every utterance of the recipe: per voice and word, `per_voice` distinct (speed, pitch) pairs."""
    import numpy as np

    speeds = SPEEDS[1] - SPEEDS[0] + 1
    pitches = PITCHES[1] - PITCHES[0] + 1
    out = []
    for voice in voices:
        voice_key = int.from_bytes(hashlib.sha256(voice.encode()).digest()[:4], "big")
        for word in range(len(WORDS)):
            rng = np.random.default_rng(np.random.SeedSequence([speech_seed, word, voice_key]))
            for take, pick in enumerate(rng.choice(speeds * pitches, size=per_voice, replace=False)):
                out.append(Utterance(word, voice, take, SPEEDS[0] + int(pick) // pitches,
                                     PITCHES[0] + int(pick) % pitches))
    return out


def recipe(params: dict, version: str) -> dict:
    """What decides the generated files' bytes."""
    return {"generator": GENERATOR_VERSION, "espeak_ng": version, "voices": chosen_voices(params),
            "per_voice": params["per_voice"], "speech_seed": params["speech_seed"], "rate": params["rate"]}


def _speak(binary: str, utterance: Utterance, path: Path, rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    command = [binary, "-v", utterance.voice, "-s", str(utterance.speed), "-p", str(utterance.pitch),
               "-w", str(path), WORDS[utterance.word]]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if done.returncode != 0 or not path.is_file():
        raise ResourceUnavailable(f"espeak-ng failed on {' '.join(command[1:-3])} {WORDS[utterance.word]!r}: "
                                  f"{first_line(done.stderr or done.stdout or f'exit code {done.returncode}')}")
    if rate != NATIVE_RATE:
        import soundfile
        import soxr

        samples, native = soundfile.read(str(path), dtype="float32")
        resampled = soxr.resample(samples, native, rate, quality="HQ")
        soundfile.write(str(path), resampled, rate, subtype="PCM_16", format="WAV")


def generate(folder: Path, plan: dict, binary: str) -> dict:
    """Speak every utterance of `plan` (a recipe) into `folder`, atomically: a temporary
    folder renamed into place. Returns the manifest."""
    from concurrent.futures import ThreadPoolExecutor

    spoken = utterances(plan["voices"], plan["per_voice"], plan["speech_seed"])
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = folder.parent / f".{folder.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    scratch.mkdir()
    try:
        with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
            list(pool.map(lambda u: _speak(binary, u, scratch / u.file, plan["rate"]), spoken))
        manifest = {**plan, "files": [{"file": u.file, "word": WORDS[u.word], "voice": u.voice, "speed": u.speed,
                                       "pitch": u.pitch, "sha256": file_sha256(scratch / u.file)} for u in spoken]}
        (scratch / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        try:
            os.rename(scratch, folder)
        except OSError:  # another process generated the same recipe first
            if not (folder / MANIFEST).is_file():
                raise
            shutil.rmtree(scratch, ignore_errors=True)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))


def generated(params: dict, env: Env) -> tuple[Path, dict]:
    """(folder, manifest) of the recipe of `params`, generated on first use."""
    binary = require_espeak_ng()
    plan = recipe(params, espeak_version(binary))
    folder = Path(env.cache_dir) / "spoken-digits" / config_hash(plan)
    if not (folder / MANIFEST).is_file():
        log = getattr(env, "log", None)
        if log is not None:
            count = len(plan["voices"]) * len(WORDS) * plan["per_voice"]
            log(f"spoken-digits: speaking {count} utterances with espeak-ng {plan['espeak_ng']} into {folder}")
        return folder, generate(folder, plan, binary)
    return folder, json.loads((folder / MANIFEST).read_text(encoding="utf-8"))


class SpokenDigitsData(TargetData):
    modality = "audio"

    def __init__(self, params: dict, env: Env):
        import numpy as np

        folder, manifest = generated(params, env)
        classes = list(params["classes"])
        relabel = {WORDS[c]: i for i, c in enumerate(classes)}
        kept = sorted((entry for entry in manifest["files"] if entry["word"] in relabel),
                      key=lambda entry: (relabel[entry["word"]], entry["file"]))
        self.files = [folder / entry["file"] for entry in kept]
        self.labels = np.array([relabel[entry["word"]] for entry in kept], dtype=np.int64)
        self.num_classes = len(classes)
        self.class_names = [WORDS[c] for c in classes]
        self.shots, self.val_shots, self.test_shots = params["shots"], params["val_shots"], params["test_shots"]
        digest = hashlib.sha256("".join(f"{e['file']}\0{e['sha256']}\n" for e in manifest["files"]).encode())
        self.revision = (f"espeak-ng-{manifest['espeak_ng']};spoken-digits-{GENERATOR_VERSION};"
                         f"sha256:{digest.hexdigest()[:16]}")

    def split_indices(self, seed: int) -> dict[str, np.ndarray]:
        """Positions (into `files`) of each split for `seed`, sorted."""
        import numpy as np

        rng = np.random.default_rng([seed, 1])
        parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
        for label in range(self.num_classes):
            members = rng.permutation(np.flatnonzero(self.labels == label))
            if self.shots + self.val_shots >= len(members):
                raise ParamError(f"shots: class {self.class_names[label]!r} has {len(members)} utterances, too few "
                                 f"for {self.shots} shots + {self.val_shots} validation utterances + a test split")
            rest = members[self.shots + self.val_shots:]
            parts["train"] += members[:self.shots].tolist()
            parts["val"] += members[self.shots:self.shots + self.val_shots].tolist()
            parts["test"] += (rest if self.test_shots is None else rest[:self.test_shots]).tolist()
        return {name: np.sort(np.asarray(ix, dtype=np.int64)) for name, ix in parts.items()}

    def splits(self, seed: int) -> Splits:
        return Splits(**{name: Split(examples=[self.files[i] for i in ix], labels=self.labels[ix])
                         for name, ix in self.split_indices(seed).items()})


class SpokenDigits(Target):
    name = "spoken-digits"
    version = "1"
    description = "the words zero to nine spoken by espeak-ng in eight voices (offline; needs espeak-ng)"
    params = {
        "classes": Param(list, list(range(10)), "digit words to keep (0 = 'zero' ... 9 = 'nine'), relabelled "
                                                "0..k-1 in this order", items=int),
        "voices": Param(list, ["all"], f"espeak-ng voices speaking them: some of {', '.join(VOICES)}, or "
                                       f"[\"all\"]", items=str),
        "per_voice": Param(int, 5, "utterances of each word by each voice (distinct speeds and pitches)",
                           min=1, max=200),
        "shots": Param(int, 10, "training utterances per class (seeded draw)", min=1),
        "val_shots": Param(int, 5, "validation utterances per class", min=0),
        "test_shots": Param(int, None, "test utterances per class, drawn from the rest (default: all the rest)",
                            min=1),
        "rate": Param(int, NATIVE_RATE, "sample rate of the WAV files; espeak-ng speaks at 22,050 Hz, another "
                                        "rate is resampled (soxr) when the files are written", min=4000, max=96000),
        "speech_seed": Param(int, 0, "seed of the speeds and pitches (not the run's seed)", min=0),
    }

    def modality(self, params: dict) -> str:
        return "audio"

    def check(self, params: dict, env: Env) -> None:
        classes = params["classes"]
        if len(classes) < 2 or len(set(classes)) != len(classes) or not all(0 <= c <= 9 for c in classes):
            raise ParamError(f"classes: expected at least two distinct digits 0-9, got {classes!r}")
        voices = params["voices"]
        if voices != ["all"]:
            unknown = [v for v in voices if v not in VOICES]
            if not voices or unknown or len(set(voices)) != len(voices):
                what = f"unknown voice {unknown[0]!r}" if unknown else f"got {voices!r}"
                raise ParamError(f"voices: {what}; expected distinct voices of {', '.join(VOICES)}, or [\"all\"]")
        per_class = params["per_voice"] * len(chosen_voices(params))
        if params["shots"] + params["val_shots"] >= per_class:
            raise ParamError(f"shots: {params['shots']} + val_shots {params['val_shots']} leave no test utterances "
                             f"of the {per_class} per class (per_voice x voices)")
        require_espeak_ng()

    def load(self, params: dict, env: Env) -> SpokenDigitsData:
        self.check(params, env)
        return SpokenDigitsData(params, env)


@tlbench.hookimpl
def tlbench_register_targets(register):
    register(SpokenDigits())
