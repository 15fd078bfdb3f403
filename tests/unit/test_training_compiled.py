"""Compiled trees (lleaves): LightGBM's values within 1e-9, a cache shared by processes, and LightGBM
kept whenever compiling fails or would answer differently."""

from __future__ import annotations

import fcntl
import logging
import pickle
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conveyor.stages.training import _compiled
from conveyor.stages.training._booster import BoosterPredictor
from conveyor.stages.training._compiled import (
    TOLERANCE,
    CompiledPredictor,
    TreeCompiler,
    cache_key,
    compile_booster,
    model_text,
)
from conveyor.stages.training._encoder import FeatureEncoder
from conveyor.stages.training._estimators import make_lightgbm
from conveyor.stages.training._model import Averaged, ConveyorModel
from conveyor.stages.training._target import LogTarget

WAIT_S = 120  # an upper bound on a compile of these tiny models (about a second), never waited out when it works


def _fitted(task: str, classes: int, *, log: bool = False, averaged: bool = False,
            **settings: object) -> tuple[ConveyorModel, np.ndarray]:
    """A tiny LightGBM model over a numeric and a categorical feature, and rows with missing values and
    categories training never saw, as the encoder hands them to the model."""
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"x": rng.normal(size=600), "y": rng.normal(size=600),
                          "c": rng.choice(["a", "b", "c", "d"], 600)})
    encoder = FeatureEncoder(["x", "y"], ["c"]).fit(frame)
    matrix = encoder.transform(frame)
    signal = frame["x"].to_numpy() + 2 * (frame["c"] == "a").to_numpy() + 0.1 * rng.normal(size=600)
    if task == "regression":
        target = np.exp(signal) if log else signal
    else:
        target = np.digitize(signal, np.quantile(signal, np.linspace(0, 1, classes + 1)[1:-1]))

    def one(seed: int) -> object:
        estimator = make_lightgbm(task, {"n_estimators": 15, **settings}, seed=seed, threads=1)
        estimator = LogTarget(estimator) if log else estimator
        return estimator.fit(matrix, target, categorical_feature=encoder.categorical_indices)

    estimator = Averaged([one(3), one(4)]) if averaged else one(3)
    model = ConveyorModel(encoder, estimator, task, None if task == "regression" else list(range(classes)))
    model.set_threads(1)
    rows = np.ascontiguousarray(matrix[:200], dtype=np.float64)
    rows[::5, 0] = np.nan  # missing values take the trees' default branches
    rows[::7, 2] = np.nan
    rows[1::9, 2] = 17.0  # a category code training never saw
    return model, rows


def _close(found: np.ndarray, expected: np.ndarray) -> bool:
    return found.shape == expected.shape and bool(
        np.all(np.abs(found - expected) <= TOLERANCE * np.maximum(1.0, np.abs(expected))))


@pytest.mark.parametrize(("task", "classes"), [("regression", 0), ("classification", 2), ("classification", 3)])
def test_compiled_trees_give_lightgbms_values(tmp_path: Path, task: str, classes: int) -> None:
    model, rows = _fitted(task, classes)
    [booster] = model.boosters()
    predictor, compiled_now = compile_booster(booster, tmp_path)
    assert compiled_now and isinstance(predictor, CompiledPredictor)
    for batch in (rows[:1], rows[3:4], rows[:100], rows):
        batch = np.ascontiguousarray(batch)
        assert predictor.accepts(batch)
        assert _close(predictor(batch), booster.predict(batch, num_threads=1))
    assert [p.suffix for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == [".o"]  # no temporary left


@pytest.mark.parametrize(("task", "classes", "log", "averaged"),
                         [("regression", 0, True, True), ("classification", 3, False, True), ("classification", 2, False, False)])
def test_the_model_swaps_to_compiled_trees_in_the_background(
    tmp_path: Path, task: str, classes: int, log: bool, averaged: bool,
) -> None:
    model, rows = _fitted(task, classes, log=log, averaged=averaged)
    predict = model._predict if task == "regression" else model._predict_proba
    before = predict(rows)  # LightGBM's, through one BoosterPredictor per booster
    assert all(isinstance(p, BoosterPredictor) for p in model.__dict__["_predictor_"].values())
    compiler = TreeCompiler(model, tmp_path, "tiny v1").start()
    assert compiler.wait(WAIT_S)
    assert (compiler.state, compiler.predictor, compiler.reason) == ("compiled", "compiled", None)
    assert compiler.compiled == len(model.boosters()) == (2 if averaged else 1)
    assert all(isinstance(p, CompiledPredictor) for p in model.__dict__["_predictor_"].values())
    assert _close(predict(rows), before)
    assert "_predictor_" not in pickle.loads(pickle.dumps(model)).__dict__  # no native code in the logged pickle


def test_a_second_load_reads_the_cache_without_compiling(tmp_path: Path) -> None:
    model, rows = _fitted("regression", 0)
    first = TreeCompiler(model, tmp_path, "tiny v1").start()
    assert first.wait(WAIT_S) and first.compiled == 1
    [cached] = tmp_path.glob("*.o")
    seen = cached.stat()
    again = pickle.loads(pickle.dumps(model))  # as a restart or another worker loads it
    second = TreeCompiler(again, tmp_path, "tiny v1").start()
    assert second.wait(WAIT_S) and second.state == "compiled"
    assert second.compiled == 0  # loaded, not compiled
    now = cached.stat()
    assert (now.st_ino, now.st_mtime_ns, now.st_size) == (seen.st_ino, seen.st_mtime_ns, seen.st_size)
    assert list(tmp_path.glob("*.o")) == [cached]
    assert _close(again._predict(rows), model._predict(rows))


def test_threads_compiling_one_model_compile_it_once(tmp_path: Path) -> None:
    model, _ = _fitted("classification", 2)
    copies = [pickle.loads(pickle.dumps(model)) for _ in range(3)]
    compilers = [TreeCompiler(copy, tmp_path, "tiny v1") for copy in copies]
    for compiler in compilers:
        compiler.start()
    assert all(compiler.wait(WAIT_S) for compiler in compilers)
    assert [c.state for c in compilers] == ["compiled"] * 3
    assert sum(c.compiled for c in compilers) == 1


def test_a_worker_waits_for_the_one_compiling_and_answers_with_lightgbm_meanwhile(tmp_path: Path) -> None:
    """Another process holds the key's lock (here: this test, on a file description of its own) and
    writes the object code; this worker predicts with LightGBM until then, then loads that file."""
    model, rows = _fitted("regression", 0)
    [booster] = model.boosters()
    key = cache_key(model_text(booster))
    with (tmp_path / f"{key}.lock").open("a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        compiler = TreeCompiler(model, tmp_path, "tiny v1").start()
        assert not compiler.wait(0) and compiler.state == "compiling" and compiler.predictor == "lightgbm"
        expected = booster.predict(rows, num_threads=1)
        assert np.array_equal(model._predict(rows), expected)  # LightGBM's own numbers, bit for bit
        other = tmp_path / "other"
        compile_booster(booster, other)  # the other process's compile, moved into the shared folder
        [made] = other.glob("*.o")
        made.replace(tmp_path / f"{key}.o")
        fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    assert compiler.wait(WAIT_S) and compiler.state == "compiled"
    assert compiler.compiled == 0
    assert _close(model._predict(rows), expected)


def test_processes_sharing_the_cache_compile_once(tmp_path: Path) -> None:
    """Two processes start together on one model: one compiles, the other loads its file."""
    model, _ = _fitted("regression", 0)
    saved = tmp_path / "model.pkl"
    saved.write_bytes(pickle.dumps(model))
    cache = tmp_path / "cache"
    code = ("import pickle, sys; from pathlib import Path\n"
            "from conveyor.stages.training._compiled import TreeCompiler\n"
            "model = pickle.loads(Path(sys.argv[1]).read_bytes())\n"
            "compiler = TreeCompiler(model, Path(sys.argv[2]), 'tiny').start()\n"
            "assert compiler.wait(120)\n"
            "print(compiler.state, compiler.compiled)\n")
    runs = [subprocess.Popen([sys.executable, "-c", code, str(saved), str(cache)], stdout=subprocess.PIPE, text=True)
            for _ in range(2)]
    outputs = sorted(run.communicate(timeout=WAIT_S)[0].split() for run in runs)
    assert all(run.returncode == 0 for run in runs)
    assert outputs == [["compiled", "0"], ["compiled", "1"]]
    assert len(list(cache.glob("*.o"))) == 1


def test_a_failed_compile_keeps_lightgbm_and_says_so_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """The compile (in its child process) fails: LightGBM answers, the log says why, once, and nothing is cached."""
    monkeypatch.setattr(_compiled, "_CHILD", "raise RuntimeError('LLVM ran out of registers')")
    model, rows = _fitted("classification", 3)
    [booster] = model.boosters()
    with caplog.at_level(logging.WARNING, logger="conveyor.serving"):
        compiler = TreeCompiler(model, tmp_path, "tiny v1").start()
        assert compiler.wait(WAIT_S)
    assert (compiler.state, compiler.predictor) == ("lightgbm", "lightgbm")
    assert compiler.reason == ("RuntimeError: lleaves did not compile the trees (exit 1): "
                               "RuntimeError: LLVM ran out of registers")
    [record] = [r for r in caplog.records if "keeps LightGBM" in r.getMessage()]
    assert "tiny v1" in record.getMessage() and "LLVM ran out of registers" in record.getMessage()
    assert np.array_equal(model._predict_proba(rows), booster.predict(rows, num_threads=1))
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []  # no object code, no temporary


def test_a_failed_load_keeps_lightgbm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The object code is there but loading it fails (here: lleaves raises in this process)."""
    import lleaves

    def broken(self: object, *args: object, **kwargs: object) -> None:
        raise OSError("cannot map the object code")

    model, rows = _fitted("regression", 0)
    [booster] = model.boosters()
    monkeypatch.setattr(lleaves.Model, "compile", broken)
    compiler = TreeCompiler(model, tmp_path, "tiny v1").start()
    assert compiler.wait(WAIT_S)
    assert compiler.state == "lightgbm" and compiler.reason == "OSError: cannot map the object code"
    assert np.array_equal(model._predict(rows), booster.predict(rows, num_threads=1))


def test_trees_lleaves_gets_wrong_are_refused(tmp_path: Path) -> None:
    """lleaves ignores a linear tree's leaf models: the check on probe rows finds it, LightGBM stays."""
    model, rows = _fitted("regression", 0, linear_tree=True)
    [booster] = model.boosters()
    compiler = TreeCompiler(model, tmp_path, "linear v1").start()
    assert compiler.wait(WAIT_S)
    assert compiler.state == "lightgbm"
    assert compiler.reason is not None and "differ from LightGBM" in compiler.reason
    assert np.array_equal(model._predict(rows), booster.predict(rows, num_threads=1))


def test_a_model_without_lightgbm_has_nothing_to_compile(tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression

    frame = pd.DataFrame({"x": np.arange(20.0), "y": np.arange(20.0) % 3})
    encoder = FeatureEncoder(["x", "y"], []).fit(frame)
    model = ConveyorModel(encoder, LinearRegression().fit(encoder.transform(frame), np.arange(20.0)), "regression")
    compiler = TreeCompiler(model, tmp_path, "linear v1").start()
    assert compiler.wait(0) and (compiler.state, compiler.predictor) == ("none", "estimator")
    assert not tmp_path.exists() or list(tmp_path.iterdir()) == []


def test_a_request_racing_the_swap_never_undoes_it(tmp_path: Path) -> None:
    """The first request makes the LightGBM predictor with `setdefault`: a compiled one put in first stays."""
    model, rows = _fitted("regression", 0)
    [booster] = model.boosters()
    predictor, _ = compile_booster(booster, tmp_path)
    model.use_predictor(booster, predictor)
    model._predict(rows)
    assert model.__dict__["_predictor_"][id(booster)] is predictor
    with pytest.raises(ValueError, match="another booster"):
        model.use_predictor(object(), predictor)
    barrier = threading.Barrier(2)

    def request() -> None:
        barrier.wait()
        model._predict(rows)

    model.set_threads(1)  # forget the predictors, then race a request against the swap
    racer = threading.Thread(target=request)
    racer.start()
    barrier.wait()
    model.use_predictor(booster, predictor)
    racer.join()
    assert model.__dict__["_predictor_"][id(booster)] is predictor


def test_a_folder_that_cannot_be_made_compiles_in_memory(tmp_path: Path) -> None:
    """The cache folder cannot be created (here: a file stands in the way): no cache, compiled all the same."""
    model, rows = _fitted("regression", 0)
    blocker = tmp_path / "project"
    blocker.write_text("a file, not a folder")
    compiler = TreeCompiler(model, blocker / "compiled", "tiny v1").start()
    assert compiler.wait(WAIT_S) and (compiler.state, compiler.compiled) == ("compiled", 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project"]
    [booster] = model.boosters()
    assert _close(model._predict(rows), booster.predict(rows, num_threads=1))
