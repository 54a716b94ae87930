"""Target `audiofolder`: a local directory of audio files, labelled by class folders or by a labels file.

The layouts, parameters and splits of `imagefolder`, with audio files (``.wav``,
``.flac``, ``.ogg``: what libsndfile reads) in place of images: ``root/<class>/<file>``
or ``root/train|val|test/<class>/<file>`` for classification, a CSV or parquet labels
file with a `file` column for multilabel and regression. The listing, the labels and the
draws are `imagefolder`'s own code (`imagefolder.Media` says which files count).

Examples are the files themselves (`pathlib.Path`), at whatever rate, channel count
and sample format they were recorded: a run's content hash is a hash of their bytes,
and tlbench decodes, mixes down and resamples them to what a source takes only when a
run hands them to it (recording what it did). Before any run, the dry run reads the
headers of the files the seeds' splits draw (soundfile), so an unreadable file is named
before it fails a run.
"""

from __future__ import annotations

import tlbench
from tlbench.params import Param

from .imagefolder import ImageFolder, ImageFolderData, Media

AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg"})
AUDIO = Media("audio file", AUDIO_SUFFIXES)


class AudioFolderData(ImageFolderData):
    modality = "audio"
    media = AUDIO


class AudioFolder(ImageFolder):
    name = "audiofolder"
    version = "1"
    description = "a local directory of audio files (.wav, .flac, .ogg): class folders, or a labels file"
    data = AudioFolderData
    params = {
        **ImageFolder.params,
        "path": Param(str, help="root directory (relative to the suite's folder): root/<class>/<file> or "
                                "root/train|val|test/<class>/<file> (.wav, .flac, .ogg); with labels, the "
                                "directory the file column is relative to", path="local"),
        "labels": Param(str, None, "multilabel and regression: a CSV or parquet file (relative to path, or "
                                   "absolute) with a 'file' column (audio paths relative to path), the label "
                                   "columns (multilabel: 0/1 per class, or 'labels' with ';'-separated names) "
                                   "and optionally 'split'",
                        omit_default=True, path="local", relative_to="path"),
    }


@tlbench.hookimpl
def tlbench_register_targets(register):
    register(AudioFolder())
