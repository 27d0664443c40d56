"""Resumable extraction: an interrupted extraction keeps what it encoded, and the same command continues it
to features bit-identical to an uninterrupted extraction."""
import logging
import os
import random
import re
import shutil
import signal

import pytest
import torch

import features.source
import features.store
from engine import Datum, RunInterrupted, build_transform
from engine.loop import stop_on_signals
from features import FeatureStore, cache_key, list_entries
from features.extraction import encode_batches
from tests.conftest import make_trainer, train_args

VIEWS, BATCH = 3, 6  # two images (six views) per encoder batch


@pytest.fixture()
def trainer(data_root, tiny_clip, tmp_path):
    return make_trainer(train_args(data_root, tiny_clip, str(tmp_path / "t"), shots=8))


def _encoder(trainer, items, calls=None, stop_after=None, workers=0):
    """The real encoder loop; ``stop_after`` batches: then a real SIGINT is sent to this process."""
    tfm = build_transform(trainer.cfg, is_train=True)

    def encode(start, stop, first):
        if calls is not None:
            calls.append((start, stop, first))
        batches = encode_batches(trainer.clip, items, tfm, start, stop, 5, BATCH, workers, first=first)
        for n, batch in enumerate(batches):
            yield batch
            if stop_after is not None and n + 1 == stop_after:
                os.kill(os.getpid(), signal.SIGINT)
    return encode, cache_key(trainer.clip, items, tfm, 5)


def _get(store, encode, key, items):
    return store.get(key, encode, VIEWS, torch.tensor([i.label for i in items]), desc="train images")


@pytest.mark.parametrize("case", [0, 1, 2])
def test_interrupted_extraction_resumes_to_identical_features(trainer, tmp_path, case, caplog):
    caplog.set_level(logging.INFO)
    items = trainer.dm.dataset.train_x
    batches = -(-len(items) // (BATCH // VIEWS))
    encode, key = _encoder(trainer, items)
    whole = _get(FeatureStore(str(tmp_path / "whole")), encode, key, items)["features"]

    store = FeatureStore(str(tmp_path / "cache"))
    stop_after = random.Random(case).randint(1, batches - 1)  # a random point, through the real signal path
    encode, key = _encoder(trainer, items, stop_after=stop_after, workers=2 if case == 1 else 0)
    if case == 2:  # no handler installed (a script, a notebook): Ctrl-C is a KeyboardInterrupt, kept the same
        # Python's own handler, set here: a shell's background job (`pytest ... &`) inherits SIGINT ignored.
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            with pytest.raises(KeyboardInterrupt):
                _get(store, encode, key, items)
        finally:
            signal.signal(signal.SIGINT, previous)
    else:
        with stop_on_signals(), pytest.raises(RunInterrupted) as err:
            _get(store, encode, key, items)
        assert re.search(r"stopped by SIGINT: kept [\d,]+ of [\d,]+ views .* run the same command to continue",
                         str(err.value))
    assert "Feature extraction interrupted: kept" in caplog.text
    (entry,) = list_entries(store.root)
    assert entry["views"] == 0 and entry["parts"] == 1  # nothing finished, but what was encoded is kept

    calls = []
    encode, key = _encoder(trainer, items, calls)
    resumed = _get(store, encode, key, items)
    kept = calls[0][2]
    assert calls == [(0, VIEWS, kept)] and 0 < kept < len(items)  # encodes only the images it lacks
    assert "Resuming the extraction of train images" in caplog.text
    assert torch.equal(resumed["features"], whole)
    (entry,) = list_entries(store.root)
    assert entry["views"] == VIEWS and entry["parts"] == 0  # the chunk replaced its parts
    assert _get(store, encode, key, items)["encoded_views"] == 0


def test_a_bad_image_keeps_the_committed_parts(trainer, tmp_path, monkeypatch):
    """Parts are committed as the extraction goes (here after every batch); a missing image stops it with its
    name, and once the file is back the extraction continues from the last part."""
    monkeypatch.setattr(features.store, "COMMIT_EVERY_S", 0.0)
    monkeypatch.setattr(features.store, "COMMIT_SHARE", float("inf"))
    copies = []
    for i, item in enumerate(trainer.dm.dataset.train_x):
        path = str(tmp_path / "img" / f"{i}.jpg")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        shutil.copy(item.impath, path)
        copies.append(Datum(path, item.label, 0, item.classname))
    encode, key = _encoder(trainer, copies)
    whole = _get(FeatureStore(str(tmp_path / "whole")), encode, key, copies)["features"]
    store = FeatureStore(str(tmp_path / "cache"))
    victim = copies[7].impath
    os.rename(victim, victim + ".away")
    with pytest.raises(FileNotFoundError, match=re.escape(victim)):
        _get(store, encode, key, copies)
    assert list_entries(store.root)[0]["parts"] == 3  # images 0..5, one part per batch
    os.rename(victim + ".away", victim)
    calls = []
    encode, key = _encoder(trainer, copies, calls)
    assert torch.equal(_get(store, encode, key, copies)["features"], whole)
    assert calls == [(0, VIEWS, 6)]


@pytest.mark.slow
def test_train_py_interrupted_in_extraction_continues_with_the_same_command(data_root, tiny_clip, tmp_path,
                                                                            monkeypatch, capsys):
    import train

    def args(out, cache):
        return train_args(data_root, tiny_clip, out, shots=8, extra=["--cache-dir", cache]) + [
            "FEATURE_CACHE.BATCH_SIZE", "4"]

    whole = train.main(args(str(tmp_path / "whole"), str(tmp_path / "c1")))
    out, cache = str(tmp_path / "run"), str(tmp_path / "c2")
    real = features.source.encode_batches

    def interrupted(*a, **kw):  # the real encoder loop, with a real SIGINT after its third batch
        for n, batch in enumerate(real(*a, **kw)):
            yield batch
            if n == 2:
                os.kill(os.getpid(), signal.SIGINT)

    with monkeypatch.context() as m:
        m.setattr(features.source, "encode_batches", interrupted)
        with pytest.raises(SystemExit) as exc:
            train.main(args(out, cache))
    assert exc.value.code == 130
    err = capsys.readouterr().err
    assert re.search(r"interrupted: stopped by SIGINT: kept [\d,]+ of [\d,]+ views .*run the same command", err)
    resumed = train.main(args(out, cache))
    assert resumed["accuracy"] == whole["accuracy"]
    log = open(os.path.join(out, "log.txt")).read()
    assert "Feature extraction interrupted: kept" in log and "Resuming the extraction of" in log
    assert len(list_entries(str(tmp_path / "c1"))) == len(list_entries(cache)) == 2  # train views, test
    for a, b in zip(list_entries(str(tmp_path / "c1")), list_entries(cache)):
        assert os.path.basename(a["path"]) == os.path.basename(b["path"]) and b["parts"] == 0
        chunks = [[torch.load(os.path.join(e["path"], f), weights_only=True)["features"]
                   for f in sorted(os.listdir(e["path"])) if f.startswith("views-")] for e in (a, b)]
        assert all(torch.equal(x, y) for x, y in zip(*chunks)), a["path"]
