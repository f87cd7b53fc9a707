import pytest

from cardiobench.errors import CardiobenchError, UnknownComponentError
from cardiobench.registry import Registry


def factory(**options):
    """Make a thing."""
    return options


def test_add_and_get_uses_docstring_summary():
    reg = Registry("noise")
    comp = reg.add("gaussian", factory, origin="cardiobench", version="1", family="linear-gaussian")
    assert reg.get("gaussian") is comp
    assert comp.summary == "Make a thing."
    assert comp.metadata == {"family": "linear-gaussian"}
    assert comp.create(a=1) == {"a": 1}
    assert "gaussian" in reg and len(reg) == 1


@pytest.mark.parametrize("bad", ["Gaussian", "1abc", "a b", "", "-x", "x-", "+", "a+b", "x+++", "x-+"])
def test_invalid_names_are_rejected(bad):
    with pytest.raises(CardiobenchError, match="invalid name"):
        Registry("noise").add(bad, factory, origin="dist", version="1")


def test_duplicate_names_name_both_distributions():
    reg = Registry("sampler")
    reg.add("ddim", factory, origin="dist-a", version="1")
    with pytest.raises(CardiobenchError, match="by dist-a and by dist-b"):
        reg.add("ddim", factory, origin="dist-b", version="1")


def test_unknown_name_suggests_close_matches():
    reg = Registry("sampler")
    reg.add("ddim", factory, origin="cardiobench", version="1")
    reg.add("ddpm", factory, origin="cardiobench", version="1")
    with pytest.raises(UnknownComponentError) as err:
        reg.get("ddin")
    assert "did you mean 'ddim'" in str(err.value)
    with pytest.raises(UnknownComponentError, match="known: ddim, ddpm"):
        reg.get("zzzzzz")


def test_unknown_kind():
    with pytest.raises(ValueError):
        Registry("nope")
