import pytest
import sympy as sp

from gmlib.symbolic import IdentityError, check, check_steps

x = sp.symbols("x", real=True)
s = sp.symbols("s", positive=True)


def test_a_true_identity_passes():
    check(sp.sin(x) ** 2 + sp.cos(x) ** 2, 1)
    check(sp.sqrt(s**2), s)  # needs the positivity stated on the symbol


def test_a_wrong_identity_raises_and_shows_both_sides():
    with pytest.raises(IdentityError) as error:
        check((x + 1) ** 2, x**2 + 1, name="square of a sum")
    message = str(error.value)
    assert "square of a sum does not hold" in message
    assert "(x + 1)**2" in message and "x**2 + 1" in message and "2*x" in message


def test_assumptions_given_as_predicates_are_used():
    y = sp.symbols("y", real=True)
    with pytest.raises(IdentityError):
        check(sp.Abs(y), y)
    check(sp.Abs(y), y, assuming=[sp.Q.positive(y)])


def test_check_steps_names_the_failing_step():
    a, b = sp.symbols("a b", positive=True)
    good = [(sp.log(a * b), "start"), (sp.log(a) + sp.log(b), "log of a product")]
    check_steps(good, simplify=lambda e: sp.simplify(sp.expand_log(e)))
    bad = good + [(sp.log(a) * sp.log(b), "a wrong step")]
    with pytest.raises(IdentityError, match=r"step 2 \(a wrong step\)"):
        check_steps(bad, simplify=lambda e: sp.simplify(sp.expand_log(e)))
    with pytest.raises(ValueError, match="at least two"):
        check_steps(good[:1])


def test_every_step_of_a_derivation_is_checked_from_the_first():
    with pytest.raises(IdentityError, match=r"step 1 \(expand\)"):
        check_steps([((x + 1) ** 2, ""), (x**2 + 1, "expand"), (x**2 + 1, "nothing")])
