"""Data and keywords are read as meant, or refused with a message naming them.

Each test here failed before the fix ("Nothing silent"): a model without time
structure given ``(N, T, F)`` with one target per series trained on the last
step alone; text, object and complex targets gave raw torch errors or a silent
cast; integer label series of mixed widths wrapped around; and keywords of the
public methods (``save(None)``, ``load(3)``, ``resample(-1)``,
``save(overwrite="no")``, ...) gave raw pathlib errors or were accepted.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import deepreservoir as dr
from deepreservoir.data import as_batch, as_targets
from deepreservoir.errors import ArtifactError, DataError, ParameterError
from deepreservoir.training import evaluate, predict

RNG = np.random.default_rng(0)
SEQ = RNG.normal(size=(12, 5, 3)).astype(np.float32)  # 12 series of 5 steps
LABELS = RNG.integers(0, 2, 12)
GRAD = dict(epochs=1, batch_size=4, loss="cross_entropy", verbose=0)
NO_TIME = r"no time\s+structure"


def feedforward():
    return dr.Input() >> dr.Scaffold(32, r=4, seed=1) >> dr.LoRAReadout(2, r=2)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # RankCappedWarning of the tiny adapters
        yield


# ------------------------------------------------ per-sequence targets, no time
def test_normaliser_refuses_per_sequence_targets_without_time_structure():
    batch = as_batch(SEQ)
    with pytest.raises(DataError, match=rf"targets 'y' hold one entry per series \(shape "
                                        rf"\(12,\)\) for 12 series of 5 steps.*{NO_TIME}"):
        as_targets(LABELS, batch, labels=True, name="y", time_structure=False)
    with pytest.raises(DataError, match=rf"\(shape \(12, 2\)\).*{NO_TIME}.*\(12, 5, O\)"):
        as_targets(RNG.normal(size=(12, 2)), batch, name="y", time_structure=False)
    # what stays allowed: per-step targets, one-step series, a model with state
    assert as_targets(RNG.normal(size=(12, 5, 2)), batch, time_structure=False).per_step
    assert as_targets(RNG.integers(0, 2, (12, 5)), batch, labels=True,
                      time_structure=False).per_step
    assert not as_targets(LABELS, as_batch(SEQ[:, :1]), labels=True,
                          time_structure=False).per_step
    ragged = as_batch([SEQ[0, :1], SEQ[1, :1]])
    assert not as_targets(LABELS[:2], ragged, labels=True, time_structure=False).per_step
    assert not as_targets(LABELS, batch, labels=True).per_step


def test_feedforward_model_refuses_per_sequence_targets_on_every_path():
    model = feedforward()
    with pytest.raises(DataError, match=rf"targets 'y'.*{NO_TIME}"):
        model.fit(SEQ, LABELS, **GRAD)
    model.fit(SEQ[:, -1], LABELS, **GRAD)  # one step per sample: fine
    with pytest.raises(DataError, match=rf"targets 'y'.*{NO_TIME}"):
        evaluate(model, SEQ, LABELS)
    with pytest.raises(DataError, match=rf"'validation_data\[1\]'.*{NO_TIME}"):
        feedforward().fit(SEQ[:, -1], LABELS, validation_data=(SEQ, LABELS), **GRAD)
    with pytest.raises(DataError, match=rf"targets 'y'.*{NO_TIME}"):
        feedforward().fit(None, sampler=[(SEQ[:4], LABELS[:4])], **GRAD)
    ragged = [SEQ[0], SEQ[1, :3], SEQ[2, :2]]
    with pytest.raises(DataError, match=rf"3 series of \[5, 3, 2\] steps.*{NO_TIME}"):
        feedforward().fit(ragged, LABELS[:3], **GRAD)
    # closed form: Ridge alone, or after a stateless node
    for closed in (dr.Ridge(1e-6), dr.Input() >> dr.Ridge(1e-6)):
        with pytest.raises(DataError, match=rf"targets 'Y'.*{NO_TIME}"):
            closed.fit(SEQ, RNG.normal(size=(12, 2)))
    # running gives every step's output, as documented: nothing is dropped
    assert predict(model, SEQ).shape == (12, 5, 2)
    assert model.run(SEQ).shape == (12, 5, 2)
    # models with time structure (state, or a delay) keep per-sequence targets
    (dr.Reservoir(20, seed=1) >> dr.Ridge(1e-6)).fit(SEQ, RNG.normal(size=(12, 2)))
    dr.Model.connect(dr.Input(), dr.Dense(2, seed=0), delay=1).fit(SEQ, LABELS, **GRAD)


# ------------------------------------------------------------ target dtypes
@pytest.mark.parametrize("targets, expected", [
    (np.array(["a", "b"] * 6), r"targets 'Y' must be numbers.*dtype <U1 \(text\)"),
    (["a", "b"] * 6, r"targets 'Y' must be numbers.*dtype <U1 \(text\)"),
    ([b"a", b"b"] * 6, r"targets 'Y' must be numbers.*dtype \|S1 \(text\)"),
    ([None, 1.0] * 6, r"targets 'Y' must be numbers.*dtype object"),
    (np.array([1.0, 2.0] * 6, dtype=object), r"targets 'Y' must be numbers.*dtype object"),
    (np.array(["2020-01-01"] * 12, dtype="datetime64[D]"), r"targets 'Y' must be numbers"),
])
def test_text_and_object_targets_are_refused(targets, expected):
    esn = dr.Reservoir(20, seed=1) >> dr.Ridge(1e-6)
    with pytest.raises(DataError, match=expected):
        esn.fit(SEQ, targets)


def test_complex_targets_are_refused_never_cast():
    esn = dr.Reservoir(20, seed=1) >> dr.Ridge(1e-6)
    for targets, dtype in ((np.ones((12, 2), dtype=np.complex64), "complex64"),
                           (torch.ones(12, 2, dtype=torch.complex128), "complex128"),
                           ([1j] * 12, "complex128")):
        with pytest.raises(DataError, match=rf"targets 'Y' must be real.*{dtype}.*imaginary"):
            esn.fit(SEQ, targets)
    series = [SEQ[0], SEQ[1]]  # one complex series among real ones: was cast, with a warning
    targets = [np.ones((5, 1)), np.ones((5, 1), dtype=complex)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's "discards the imaginary part" is not enough
        with pytest.raises(DataError, match=r"targets 'Y\[1\]' must be real.*complex128"):
            as_targets(targets, as_batch(series))
        with pytest.raises(DataError, match=r"targets 'y\[1\]' must be real"):
            (dr.Input() >> dr.Scaffold(8, r=2, seed=1) >> dr.LoRAReadout(1, r=2)).fit(
                series, targets, epochs=1, loss="mse", verbose=0)


def test_big_endian_and_long_double_arrays_are_read_as_their_values():
    x, y = SEQ[0].astype(np.float64), SEQ[0, :, :1].astype(np.float64)
    expected = (dr.Reservoir(20, seed=1) >> dr.Ridge(1e-6)).fit(x, y).run(x, reset=True)
    for kind in (">f8", np.longdouble):
        model = (dr.Reservoir(20, seed=1) >> dr.Ridge(1e-6)).fit(x.astype(kind), y.astype(kind))
        assert np.array_equal(model.run(x.astype(kind), reset=True), expected)
    with pytest.raises(DataError, match=rf"'Y' must be real. Got dtype {np.dtype(np.clongdouble)}"):
        dr.Ridge(1e-6).fit(x, y.astype(np.clongdouble))


def test_label_series_of_mixed_integer_widths_keep_their_values():
    series = [SEQ[0], SEQ[1]]
    labels = [np.zeros(5, dtype=np.int8), np.full(5, 300, dtype=np.int64)]
    targets = as_targets(labels, as_batch(series), labels=True)
    assert targets.values.tolist() == [[0] * 5, [300] * 5]


def test_ragged_target_series_with_different_outputs_are_named():
    esn = dr.Reservoir(20, seed=1) >> dr.Ridge(1e-6)
    with pytest.raises(DataError, match=r"series in 'Y' must have the same number of outputs\. "
                                        r"Got \[1, 2\] \(by series\)"):
        esn.fit([SEQ[0], SEQ[1]], [np.ones((5, 1)), np.ones((5, 2))])


def test_single_series_label_shapes_are_reported_as_given():
    model = dr.Input() >> dr.Scaffold(8, r=2, seed=1) >> dr.LoRAReadout(2, r=2)
    with pytest.raises(DataError, match=r"class labels of shape \(12,\)\. Got shape \(12, 2\)"):
        model.fit(SEQ[:, 0], np.zeros((12, 2), dtype=int), **GRAD)


def test_forward_checks_features_and_finiteness_as_run_does():
    esn = esn_fitted()  # 3 features
    for x in (np.ones((10, 7)), torch.ones(10, 7), torch.ones(2, 10, 7)):
        with pytest.raises(DataError, match=r"'(x|X)' argument.* 3 features.*Got 7"):
            esn(x)
    bad = torch.tensor(SEQ[0])
    bad[2, 1] = float("nan")
    with pytest.raises(DataError, match=r"'x' argument must be finite. Got 1 NaN"):
        esn(bad)
    with pytest.raises(DataError, match=r"'x' argument must be finite.*Inf"):
        dr.Reservoir(8, seed=0)(torch.full((5, 1), float("inf")))


# ---------------------------------------------------------------- keywords
def esn_fitted():
    esn = dr.Reservoir(20, seed=1) >> dr.Ridge(1e-6)
    return esn.fit(SEQ[0], SEQ[0, :, :1])


@pytest.mark.parametrize("call, expected", [
    (lambda m, p: m.run(iters=0), r"'iters' parameter of run must be None or an int >= 1"),
    (lambda m, p: m.save(None), r"'path' parameter of save must be a path.*Got None"),
    (lambda m, p: m.save(3), r"'path' parameter of save must be a path.*Got 3"),
    (lambda m, p: m.save(p / "m.dr", overwrite="no"), r"'overwrite' parameter of save"),
    (lambda m, p: m.save(p / "m.dr", key=7), r"'key' parameter of save must be None or a "
                                              r"non-empty bytes or str key. Got 7"),
    (lambda m, p: m.save(p / "m.dr", key=b""), r"'key' parameter of save"),
    (lambda m, p: dr.save(m, None), r"'path' parameter of save.*Got None"),
    (lambda m, p: dr.save(3, p / "m.dr"), r"'model' parameter of save must be a deepreservoir "
                                          r"Model.*Got 3"),
    (lambda m, p: dr.load(None), r"'path' parameter of load must be a path.*Got None"),
    (lambda m, p: dr.load(3), r"'path' parameter of load.*Got 3"),
    (lambda m, p: dr.load(m.save(p / "m.dr"), strict="no"), r"'strict' parameter of load"),
    (lambda m, p: dr.load(m.save(p / "m.dr"), key=1.5), r"'key' parameter of load"),
    (lambda m, p: m.footprint(3), r"'path' parameter of footprint.*Got 3"),
    (lambda m, p: m.footprint(p / "missing.dr"), r"'path' parameter of footprint.*missing"
                                                   r"\.dr', which does not exist"),
    (lambda m, p: m.reseed("a"), r"'seed' parameter of reseed"),
    (lambda m, p: m.resample(-1), r"'generation' parameter of resample must be None or an "
                                  r"int >= 0. Got -1"),
    (lambda m, p: m.resample("a"), r"'generation' parameter of resample.*Got 'a'"),
])
def test_keywords_of_public_methods_are_checked(tmp_path, call, expected):
    with pytest.raises(ParameterError, match=expected):
        call(esn_fitted(), tmp_path)


def test_partial_fit_names_itself_and_bool_keywords_are_checked_everywhere():
    model = esn_fitted()
    for call, expected in ((lambda: model.run(SEQ[0], reset="yes"), "'reset' parameter of run"),
                           (lambda: model.states(SEQ[0], inputs=1), "'inputs' parameter of "
                                                                    "states"),
                           (lambda: model.generate(2, warmup=SEQ[0, :, :1], reset=0),
                            "'reset' parameter of generate")):
        with pytest.raises(ParameterError, match=rf"{expected} must be a bool"):
            call()
    online = dr.Reservoir(10, seed=1) >> dr.RLS()
    for keyword, expected in ((dict(feedback="bad"), "'feedback' parameter of partial_fit"),
                              (dict(learners="bad"), "'learners' parameter of partial_fit"),
                              (dict(warmup=-1), "'warmup' parameter of partial_fit"),
                              (dict(reset=None), "'reset' parameter of partial_fit")):
        with pytest.raises(ParameterError, match=expected):
            online.partial_fit(SEQ[0], SEQ[0, :, :1], **keyword)
    with pytest.raises(ParameterError, match="'reset' parameter of run"):
        dr.Reservoir(5, seed=1).run(SEQ[0], reset="yes")
    with pytest.raises(DataError, match=r"'x' argument of step must be a 1-D.*Got a str"):
        esn_fitted().step("abc")


def test_artifact_paths_name_the_argument(tmp_path):
    model = esn_fitted()
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    with pytest.raises(ArtifactError, match=r"'path' argument of load must be a deepreservoir "
                                            r"artifact directory. Got .*missing\.dr, which "
                                            r"does not exist"):
        dr.load(tmp_path / "missing.dr")
    with pytest.raises(ArtifactError, match=r"'path' argument of load: .*notes\.txt is not a "
                                            r"deepreservoir artifact.*this is a file"):
        dr.load(a_file)
    with pytest.raises(ArtifactError, match=r"'path' argument of save.*notes\.txt, a file "
                                            r"that is not a deepreservoir artifact"):
        model.save(a_file)
    with pytest.raises(ArtifactError, match=r"Cannot save to .*notes\.txt/m\.dr \(the 'path' "
                                            r"argument of save\)"):
        model.save(a_file / "m.dr")
    assert a_file.read_text() == "x"
