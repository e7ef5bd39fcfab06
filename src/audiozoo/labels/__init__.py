"""Label sets shipped as data: class names in checkpoint index order, with source and license.

Each set is a CSV file next to this module (``<name>.csv``, UTF-8, header ``index,id,name``; ``id``
is empty where the set has no ids), read on first use and cached. Nothing here touches the
network, so ``model.labels`` works offline. Class names are facts taken from the published lists
named in ``_TABLE``; the files are produced from those lists by a conversion script, not typed::

    >>> from audiozoo.labels import get_label_set
    >>> audioset = get_label_set("audioset")
    >>> len(audioset), audioset.names[0], audioset.ids[0], audioset.index("Music")
    (527, 'Speech', '/m/09x0r', 137)
"""

from __future__ import annotations

import csv
import difflib
import functools
import io
from dataclasses import dataclass
from importlib import resources
from typing import NamedTuple

from .._errors import UnknownNameError

__all__ = ["LabelSet", "get_label_set", "list_label_sets"]


@dataclass(frozen=True, repr=False)
class LabelSet:
    """The classes of a trained classifier, in the order of its output units.

    Attributes:
        name: the set's name in :func:`list_label_sets` ("audioset", ...).
        names: class names; ``names[k]`` is the class of output unit ``k``.
        ids: stable class ids in the same order (AudioSet MIDs such as "/m/09x0r"), or None for
            sets whose classes have no ids.
        multilabel: whether several classes can be present at once (sigmoid outputs) rather than
            exactly one (softmax outputs).
        source: where the list was taken from (repository, path, commit).
        license: the license of the list.
        attribution: whom to credit (the dataset's authors and paper).
    """

    name: str
    names: tuple[str, ...]
    ids: tuple[str, ...] | None
    multilabel: bool
    source: str
    license: str
    attribution: str

    def __post_init__(self) -> None:
        if self.ids is not None and len(self.ids) != len(self.names):
            raise ValueError(
                f"label set {self.name!r}: {len(self.ids)} ids for {len(self.names)} names"
            )

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        kind = "multi-label" if self.multilabel else "single-label"
        return f"LabelSet({self.name!r}, {len(self)} classes, {kind})"

    @functools.cached_property
    def _positions(self) -> dict[str, int]:
        positions = {name: k for k, name in enumerate(self.names)}
        if self.ids is not None:
            positions.update((cid, k) for k, cid in enumerate(self.ids))
        return positions

    def index(self, name: str) -> int:
        """Output unit of class ``name`` (a class name, or an id such as "/m/04rlf" where the set
        has ids). Raises :class:`~audiozoo.UnknownNameError` with the closest names otherwise."""
        try:
            return self._positions[name]
        except KeyError:
            close = difflib.get_close_matches(name, self.names, n=5, cutoff=0.6)
            hint = f" Did you mean: {', '.join(map(repr, close))}?" if close else ""
            raise UnknownNameError(
                f"no class {name!r} in label set {self.name!r} ({len(self)} classes).{hint}"
            ) from None


class _Entry(NamedTuple):
    file: str
    multilabel: bool
    source: str
    license: str
    attribution: str


_GH = "https://github.com/"

# The one table of label sets: name -> data file, multi-label or not, source, license, credit.
_TABLE: dict[str, _Entry] = {
    # AudioSet's class_labels_indices.csv (527 display names with MIDs), the order of every
    # AudioSet checkpoint here (EfficientAT, PaSST, AST). Byte-identical copies ship in
    # YuanGongND/ast and fschmid56/PretrainedSED.
    "audioset": _Entry(
        file="audioset.csv",
        multilabel=True,
        source=_GH + "fschmid56/EfficientAT/blob/a425fdce92572e602a1d5634799bd9f1f2efa806/"
        "metadata/class_labels_indices.csv (identical to YuanGongND/ast@31088be8 "
        "egs/audioset/data/class_labels_indices.csv, the list behind the id2label of "
        "MIT/ast-finetuned-audioset-10-10-0.4593)",
        license="CC BY 4.0",
        attribution="Gemmeke et al., 'Audio Set: An ontology and human-labeled dataset for "
        "audio events', ICASSP 2017 (Google)",
    ),
    # AST's Speech Commands V2 label file, the order of the id2label in
    # MIT/ast-finetuned-speech-commands-v2's config.json (huggingface/label-files
    # speech-commands-v2-id2label.json). AST's placeholder ids "/m/spcmdNN" are dropped.
    "speech_commands": _Entry(
        file="speech_commands.csv",
        multilabel=False,
        source=_GH + "YuanGongND/ast/blob/31088be8a3f6ef96416145c4b8d43c81f99eba7a/"
        "egs/speechcommands/data/speechcommands_class_labels_indices.csv (same order as "
        "huggingface/label-files speech-commands-v2-id2label.json)",
        license="CC BY 4.0",
        attribution="Warden, 'Speech Commands: A Dataset for Limited-Vocabulary Speech "
        "Recognition', arXiv:1804.03209, 2018 (Google)",
    ),
    # OpenMIC-2018's class-map.json (instrument -> column of Y_true), in index order; PaSST's
    # OpenMIC checkpoint reads its targets from those columns.
    "openmic": _Entry(
        file="openmic.csv",
        multilabel=True,
        source=_GH + "cosmir/openmic-2018/blob/e0c25c616558f6acc3938a383ffcdb047e9be2af/"
        "class-map.json",
        license="CC BY 4.0",
        attribution="Humphrey, Durand, McFee, 'OpenMIC-2018: An Open Dataset for Multiple "
        "Instrument Recognition', ISMIR 2018 (Spotify, NYU MARL)",
    ),
    # FSD50K's FSD50K.ground_truth/vocabulary.csv (index, name, MID), names as the dataset spells
    # them. PaSST's create_h5pymp3_dataset.py builds its 200-dim targets in this row order.
    "fsd50k": _Entry(
        file="fsd50k.csv",
        multilabel=True,
        source="FSD50K.ground_truth/vocabulary.csv (https://zenodo.org/record/4060432), as "
        "transcribed in "
        + _GH
        + "valcorrea/VIT_FSD50K/blob/b66eec24e7bffc43c10572aff1e82fa05be15789/"
        "chunks_meta_dir/lbl_map.json; MIDs from "
        + _GH
        + "audioset/ontology/blob/d417d32bf59c711abb5910fd2f76a0eb44697991/ontology.json",
        license="CC BY 4.0",
        attribution="Fonseca, Favory, Pons, Font, Serra, 'FSD50K: An Open Dataset of "
        "Human-Labeled Sound Events', IEEE/ACM TASLP 2022 (MTG, Universitat Pompeu Fabra)",
    ),
    # The 447 AudioSet-Strong training classes in the order of PretrainedSED's heads
    # (`as_strong_train_classes`, the ManyHotEncoder order), MIDs from its strong label map.
    "audioset_strong": _Entry(
        file="audioset_strong.csv",
        multilabel=True,
        source=_GH + "fschmid56/PretrainedSED/blob/1aa47e482f7e89904cba2338999345025d8b4e36/"
        "data_util/audioset_classes.py (as_strong_train_classes); MIDs from "
        "hf_dataset_gen/metadata/class_labels_indices_strong.csv at the same commit",
        license="CC BY 4.0",
        attribution="Hershey et al., 'The Benefit of Temporally-Strong Labels in Audio Event "
        "Classification', ICASSP 2021 (Google)",
    ),
}


def list_label_sets() -> list[str]:
    """Names of the label sets shipped with audiozoo, sorted."""
    return sorted(_TABLE)


def get_label_set(name: str) -> LabelSet:
    """The label set ``name`` (see :func:`list_label_sets`), read from the package on first use.

    Raises :class:`~audiozoo.UnknownNameError`, with the closest names, for an unknown name.
    """
    if name not in _TABLE:
        close = difflib.get_close_matches(str(name), list(_TABLE), n=5, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownNameError(
            f"unknown label set {name!r}.{hint} "
            f"See audiozoo.list_label_sets() for all {len(_TABLE)} names."
        )
    return _load(name)


@functools.cache
def _load(name: str) -> LabelSet:
    entry = _TABLE[name]
    text = resources.files(__name__).joinpath(entry.file).read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or rows[0] != ["index", "id", "name"]:
        raise ValueError(f"{entry.file}: the header must be 'index,id,name'")
    body = rows[1:]
    if any(len(row) != 3 for row in body):
        raise ValueError(f"{entry.file}: every row must have 3 fields (index,id,name)")
    if [row[0] for row in body] != [str(k) for k in range(len(body))]:
        raise ValueError(f"{entry.file}: indices must run 0..{len(body) - 1} in order")
    ids = tuple(row[1] for row in body)
    if any(ids) and not all(ids):
        raise ValueError(f"{entry.file}: some classes have an id and some do not")
    return LabelSet(
        name=name,
        names=tuple(row[2] for row in body),
        ids=ids if all(ids) and ids else None,
        multilabel=entry.multilabel,
        source=entry.source,
        license=entry.license,
        attribution=entry.attribution,
    )
