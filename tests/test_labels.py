"""Label sets shipped as data: sizes, published order, flags, errors, packaging, no network."""

from __future__ import annotations

import ast
import csv
import socket
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from audiozoo import UnknownNameError
from audiozoo.labels import _TABLE, LabelSet, _load, get_label_set, list_label_sets

SIZES = {
    "audioset": 527,
    "speech_commands": 35,
    "openmic": 20,
    "fsd50k": 200,
    "audioset_strong": 447,
}
MULTILABEL = {
    "audioset": True,
    "speech_commands": False,
    "openmic": True,
    "fsd50k": True,
    "audioset_strong": True,
}

# index -> (id, name), each pair read off the upstream file named in the comment (file line shown).
PUBLISHED = {
    # fschmid56/EfficientAT@a425fdce metadata/class_labels_indices.csv
    "audioset": {
        0: ("/m/09x0r", "Speech"),  # line 2: 0,/m/09x0r,"Speech"
        72: ("/m/0jbk", "Animal"),  # line 74: 72,/m/0jbk,"Animal"
        137: ("/m/04rlf", "Music"),  # line 139: 137,/m/04rlf,"Music"
        300: ("/m/07yv9", "Vehicle"),  # line 302: 300,/m/07yv9,"Vehicle"
        500: ("/m/028v0c", "Silence"),  # line 502: 500,/m/028v0c,"Silence"
        526: ("/m/07hvw1", "Field recording"),  # line 528: 526,/m/07hvw1,"Field recording"
    },
    # YuanGongND/ast@31088be8 egs/speechcommands/data/speechcommands_class_labels_indices.csv
    # (= huggingface/label-files speech-commands-v2-id2label.json)
    "speech_commands": {
        0: (None, "backward"),  # line 2: 0,/m/spcmd00,"backward"
        1: (None, "follow"),  # line 3: 1,/m/spcmd01,"follow"
        17: (None, "cat"),  # line 19: 17,/m/spcmd17,"cat"
        28: (None, "yes"),  # line 30: 28,/m/spcmd28,"yes"
        34: (None, "one"),  # line 36: 34,/m/spcmd34,"one"
    },
    # cosmir/openmic-2018@e0c25c61 class-map.json
    "openmic": {
        0: (None, "accordion"),  # "accordion": 0
        8: (None, "guitar"),  # "guitar": 8
        10: (None, "mandolin"),  # "mandolin": 10
        19: (None, "voice"),  # "voice": 19
    },
    # FSD50K vocabulary.csv rows; 53 and 69 as in soundata's test copy of vocabulary.csv
    # ("53,Crushing,/m/07plct2", "69,Electric_guitar,/m/02sgy"), the others from
    # valcorrea/VIT_FSD50K@b66eec24 chunks_meta_dir/lbl_map.json + audioset/ontology MIDs
    "fsd50k": {
        0: ("/m/07q2z82", "Accelerating_and_revving_and_vroom"),
        53: ("/m/07plct2", "Crushing"),
        69: ("/m/02sgy", "Electric_guitar"),
        100: ("/t/dd00012", "Human_group_actions"),
        199: ("/m/01s0vc", "Zipper_(clothing)"),
    },
    # fschmid56/PretrainedSED@1aa47e48 data_util/audioset_classes.py, as_strong_train_classes
    # (element k on line k + 1); MIDs from hf_dataset_gen/metadata/class_labels_indices_strong.csv
    "audioset_strong": {
        0: ("/m/07q2z82", "Accelerating, revving, vroom"),  # line 1; csv: /m/07q2z82,...
        100: ("/t/dd00108", "Clunk"),  # line 101; csv line 432: /t/dd00108,Clunk
        200: ("/m/07rjwbb", "Hiss"),  # line 201; csv line 298: /m/07rjwbb,Hiss
        223: ("/g/11b630rrvh", "Kettle whistle"),  # line 224; csv line 1
        446: ("/m/01s0vc", "Zipper (clothing)"),  # line 447; csv line 54
    },
}


def test_the_shipped_sets():
    assert list_label_sets() == sorted(SIZES)


@pytest.mark.parametrize("name", sorted(SIZES))
def test_size_uniqueness_and_flags(name):
    ls = get_label_set(name)
    assert isinstance(ls, LabelSet)
    assert ls.name == name
    assert len(ls) == len(ls.names) == SIZES[name]
    assert len(set(ls.names)) == len(ls.names), "class names must be unique"
    if ls.ids is not None:
        assert len(ls.ids) == len(ls)
        assert len(set(ls.ids)) == len(ls.ids), "class ids must be unique"
        assert all(cid.startswith(("/m/", "/g/", "/t/")) for cid in ls.ids)
    assert ls.multilabel is MULTILABEL[name]
    assert ls.source and ls.license and ls.attribution
    assert all(n and n == n.strip() for n in ls.names)


def test_which_sets_have_ids():
    assert {n for n in SIZES if get_label_set(n).ids is not None} == {
        "audioset",
        "fsd50k",
        "audioset_strong",
    }


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_order(name):
    ls = get_label_set(name)
    for k, (cid, cname) in PUBLISHED[name].items():
        assert ls.names[k] == cname
        assert ls.index(cname) == k
        if cid is None:
            assert ls.ids is None
        else:
            assert ls.ids is not None and ls.ids[k] == cid
            assert ls.index(cid) == k


def test_audioset_strong_shares_mids_with_audioset():
    # AudioSet-Strong renames a few classes but keeps their MIDs: the same MID means the same class
    weak, strong = get_label_set("audioset"), get_label_set("audioset_strong")
    assert weak.ids is not None and strong.ids is not None
    assert strong.names[strong.index("/m/09x0r")] == "Speech"
    assert len(set(weak.ids) & set(strong.ids)) > 350


def test_cached_and_immutable():
    assert get_label_set("audioset") is get_label_set("audioset")
    ls = get_label_set("openmic")
    with pytest.raises(AttributeError):
        ls.names = ()  # type: ignore[misc]
    assert repr(ls) == "LabelSet('openmic', 20 classes, multi-label)"


def test_unknown_label_set_suggests():
    with pytest.raises(UnknownNameError, match=r"Did you mean: audioset"):
        get_label_set("audiosett")
    with pytest.raises(UnknownNameError, match="speech_commands"):
        get_label_set("speech-commands")
    with pytest.raises(KeyError):  # also a KeyError, like the registries
        get_label_set("nope")


def test_unknown_class_suggests():
    ls = get_label_set("audioset")
    with pytest.raises(UnknownNameError, match=r"Did you mean: 'Music'"):
        ls.index("Musik")
    with pytest.raises(UnknownNameError, match="no class"):
        get_label_set("openmic").index("kazoo")


def test_ids_must_match_names():
    with pytest.raises(ValueError, match="ids"):
        LabelSet("x", ("a", "b"), ("/m/1",), True, "s", "l", "a")


@pytest.mark.parametrize("name", sorted(SIZES))
def test_files_ship_inside_the_package(name):
    entry = _TABLE[name]
    resource = resources.files("audiozoo.labels").joinpath(entry.file)
    assert resource.is_file()
    text = resource.read_text(encoding="utf-8")
    rows = list(csv.reader(text.splitlines()))
    assert rows[0] == ["index", "id", "name"]
    assert len(rows) == SIZES[name] + 1
    # the data file sits next to the module, so a wheel of src/audiozoo carries it
    import audiozoo.labels

    assert Path(audiozoo.labels.__file__).with_name(entry.file).is_file()


def test_module_imports_nothing_that_reaches_the_network():
    import audiozoo.labels

    tree = ast.parse(Path(audiozoo.labels.__file__).read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
    allowed = {"__future__", "csv", "difflib", "functools", "io", "dataclasses"}
    allowed |= {"importlib", "typing", ".._errors"}
    assert imported <= allowed, imported - allowed


def test_reading_needs_no_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("label sets must not open a socket")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    _load.cache_clear()
    try:
        for name in list_label_sets():
            assert len(get_label_set(name)) == SIZES[name]
    finally:
        _load.cache_clear()


def test_no_file_is_read_at_import():
    code = (
        "import audiozoo, audiozoo.labels as L; "
        "assert L._load.cache_info().currsize == 0, L._load.cache_info()"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
