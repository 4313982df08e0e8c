"""The Gray–Scott class catalogue against the reference (reference/gray-scott-cnn.md, §2)."""

from collections import Counter

import pytest

from rdlab.classify import catalogue
from rdlab.classify.catalogue import SETS, SampleSpec, classes, dataset_table, set_pass
from rdlab.errors import ParameterError

PASS1_SYMBOLS = ["α", "β", "γ", "δ", "ε", "ζ", "η", "θ", "ι", "κ", "λ", "μ", "ν", "L", "H"]
PASS1_KEYS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota",
              "kappa", "lambda", "mu", "nu", "L", "H"]


def _points(name: str, label: str) -> list[tuple[float, float]]:
    """Distinct (k, f) of a class in a set, in first-appearance order."""
    out: list[tuple[float, float]] = []
    for s in dataset_table(name):
        if s.label == label and (s.k, s.f) not in out:
            out.append((s.k, s.f))
    return out


def test_class_orders():
    c1, c2 = classes(1), classes(2)
    assert [c.symbol for c in c1] == PASS1_SYMBOLS
    assert [c.key for c in c1] == PASS1_KEYS
    assert [c.symbol for c in c2] == PASS1_SYMBOLS[:13] + ["π"] + ["L", "H"]
    assert [c.key for c in c2] == PASS1_KEYS[:13] + ["pi"] + ["L", "H"]
    assert classes() == c1
    assert all(c.description and "\n" not in c.description for c in c1 + c2)


def test_set_pass():
    assert SETS == ("train", "val", "test", "train2", "val2")
    assert [set_pass(s) for s in SETS] == [1, 1, 1, 2, 2]


@pytest.mark.parametrize(("name", "n", "first", "last"), [
    ("train", 750, 1501, 2250), ("val", 750, 751, 1500), ("test", 750, 2251, 3000),
    ("train2", 1645, 3291, 4935), ("val2", 1645, 1646, 3290),
])
def test_sizes_and_seeds(name, n, first, last):
    table = dataset_table(name)
    assert len(table) == n
    assert [s.index for s in table] == list(range(n))
    assert [s.seed for s in table] == list(range(first, last + 1))
    keys = {c.key for c in classes(set_pass(name))}
    assert {s.label for s in table} == keys


@pytest.mark.parametrize("name", ["train", "val", "test"])
def test_fifty_per_class(name):
    counts = Counter(s.label for s in dataset_table(name))
    assert counts == {k: 50 for k in PASS1_KEYS}
    # Labels run in class order (the saliency script's class*50 + 25 indexing relies on it).
    assert [s.label for s in dataset_table(name)][25::50] == PASS1_KEYS


def test_train_val_share_points():
    train, val = dataset_table("train"), dataset_table("val")
    assert [(s.label, s.k, s.f) for s in train] == [(s.label, s.k, s.f) for s in val]
    train2, val2 = dataset_table("train2"), dataset_table("val2")
    assert [(s.label, s.k, s.f) for s in train2] == [(s.label, s.k, s.f) for s in val2]


def test_train_points():
    expected = {"alpha": (.05, .015), "beta": (.05, .025), "gamma": (.055, .025),
                "delta": (.055, .03), "epsilon": (.055, .015), "zeta": (.06, .025),
                "eta": (.06, .03), "theta": (.0565, .03), "iota": (.06, .05),
                "kappa": (.063, .046), "lambda": (.065, .04), "mu": (.065, .05),
                "nu": (.0675, .05), "L": (.055, .035), "H": (.05, .005)}
    for key, point in expected.items():
        assert _points("train", key) == [point]


def test_train2_counts():
    counts = Counter(s.label for s in dataset_table("train2"))
    others = [k for k in PASS1_KEYS if k not in ("beta", "L", "H")]
    assert len(others) == 12
    assert counts == {"beta": 145, "pi": 100, "L": 100, "H": 100, **{k: 100 for k in others}}
    # Each of the 12: its pass-1 point ×50 first, then 10 points ×5.
    train = {s.label: (s.k, s.f) for s in dataset_table("train")}
    for key in others:
        samples = [s for s in dataset_table("train2") if s.label == key]
        assert {(s.k, s.f) for s in samples[:50]} == {train[key]}
        extra = Counter((s.k, s.f) for s in samples[50:])
        assert sum(extra.values()) == 50
        if key == "mu":  # one point listed twice: 9 distinct points, one ×10
            assert sorted(extra.values()) == [5] * 8 + [10]
        else:
            assert list(extra.values()) == [5] * 10


def test_train2_quirks():
    beta = [(s.k, s.f) for s in dataset_table("train2") if s.label == "beta"]
    assert Counter(beta)[(.040625, .014)] == 50
    assert Counter(beta)[(.05, .025)] == 50
    mu = [(s.k, s.f) for s in dataset_table("train2") if s.label == "mu"]
    assert Counter(mu)[(.065625, .054)] == 10  # the duplicated point, ×5 twice
    assert len(set(mu)) == 10  # pass-1 point + 9 distinct extra points


def test_pi_rows():
    pi = [(s.k, s.f) for s in dataset_table("train2") if s.label == "pi"]
    assert pi == ([(.060625, .069)] * 25 + [(.060625, .06775)] * 25
                  + [(.060625, .0665)] * 25 + [(.060625, .07025)] * 25)


def test_test_spot_values():
    assert _points("test", "kappa") == [(.063, .046), (.0625, .0625), (.0625, .055),
                                        (.0625, .05), (.0625, .045)]
    kappa = [s for s in dataset_table("test") if s.label == "kappa"]
    assert Counter((s.k, s.f) for s in kappa) == {p: 10 for p in _points("test", "kappa")}
    alpha = Counter((s.k, s.f) for s in dataset_table("test") if s.label == "alpha")
    assert alpha == {(.045, .008): 16, (.05, .02): 17, (.05, .015): 17}
    low = Counter((s.k, s.f) for s in dataset_table("test") if s.label == "L")
    assert low[(.04, .02)] == 6 and low[(.0575, .045)] == 5 and low[(.06, .0525)] == 6
    assert _points("test", "H")[-1] == (.0675, .055)
    assert dataset_table("test")[0] == SampleSpec(index=0, label="alpha", k=.045, f=.008,
                                                  seed=2251)


def test_spot_values_train2():
    t = dataset_table("train2")
    assert t[0] == SampleSpec(0, "alpha", .05, .015, 3291)
    assert t[-1] == SampleSpec(1644, "H", .05, .005, 4935)
    assert _points("train2", "nu")[1] == (.065, .029)
    assert _points("train2", "delta")[-1] == (.059375, .044)


def test_test_val2_overlap():
    val2 = {(s.seed, s.k, s.f): s for s in dataset_table("val2")}
    shared = [s for s in dataset_table("test") if (s.seed, s.k, s.f) in val2]
    assert len(shared) == 15
    assert [s.seed for s in shared] == list(range(2826, 2841))
    assert {(s.label, s.k, s.f) for s in shared} == {("mu", .065, .05)}
    assert {val2[(s.seed, s.k, s.f)].label for s in shared} == {"mu"}


def test_returns_fresh_lists():
    table = dataset_table("train")
    table.clear()
    assert len(dataset_table("train")) == 750
    cl = classes(1)
    cl.pop()
    assert len(classes(1)) == 15


@pytest.mark.parametrize("bad", ["training", "TRAIN", "", "test2"])
def test_bad_set_name(bad):
    for fn in (dataset_table, set_pass):
        with pytest.raises(ParameterError) as exc:
            fn(bad)
        msg = str(exc.value)
        assert repr(bad) in msg
        assert all(s in msg for s in SETS)


@pytest.mark.parametrize("bad", [0, 3, "1", True])
def test_bad_pass(bad):
    with pytest.raises(ParameterError) as exc:
        classes(bad)
    assert repr(bad) in str(exc.value) and "1, 2" in str(exc.value)


def test_package_data_is_loaded():
    data = catalogue._data()
    assert data is catalogue._data()  # cached
    assert set(data["sets"]) == set(SETS)
