"""sympy checks that fail loudly, used by every chapter's "symbolic check" cell.

A check builds both sides from the definitions and asks sympy to simplify
their difference to zero; when it cannot, the error shows both sides and the
simplified difference, so a wrong identity is visible at a glance.
"""

from collections.abc import Callable, Iterable, Sequence

import sympy as sp


class IdentityError(AssertionError):
    """A claimed identity did not simplify to zero difference."""


def _difference(lhs: sp.Expr, rhs: sp.Expr, assumptions: sp.Basic, simplify: Callable[[sp.Expr], sp.Expr]) -> sp.Expr:
    diff = simplify(sp.sympify(lhs) - sp.sympify(rhs))
    if assumptions is not sp.true and diff != 0:
        diff = simplify(sp.refine(diff, assumptions))
    return diff


def check(
    lhs: sp.Expr,
    rhs: sp.Expr,
    *,
    name: str = "identity",
    assuming: Iterable[sp.Basic] = (),
    simplify: Callable[[sp.Expr], sp.Expr] = sp.simplify,
) -> None:
    """Assert ``lhs == rhs`` symbolically, under the predicates in ``assuming``.

    Assumptions can also live on the symbols themselves
    (``sp.symbols("sigma", positive=True)``); ``assuming`` takes extra
    ``sp.Q`` predicates for ``sp.refine``. Raises ``IdentityError`` showing
    both sides and the simplified difference when the difference is not 0.
    """
    assumptions = sp.And(*assuming) if assuming else sp.true
    diff = _difference(lhs, rhs, assumptions, simplify)
    if diff != 0:
        raise IdentityError(
            f"{name} does not hold:\n  lhs        = {sp.sstr(lhs)}\n  rhs        = {sp.sstr(rhs)}\n"
            f"  lhs - rhs  = {sp.sstr(diff)}  (simplified; should be 0)"
        )


def check_steps(
    steps: Sequence[tuple[sp.Expr, str]],
    *,
    assuming: Iterable[sp.Basic] = (),
    simplify: Callable[[sp.Expr], sp.Expr] = sp.simplify,
) -> None:
    """Check an aligned derivation: each (expression, justification) equals the one before.

    ``steps[0]`` is the starting expression (its justification is ignored);
    step k is checked against step k-1 and a failure names its justification,
    exactly as the book prints the derivation.
    """
    if len(steps) < 2:
        raise ValueError(f"steps must hold at least two (expression, justification) pairs, got {len(steps)}")
    assuming = tuple(assuming)
    for k in range(1, len(steps)):
        check(steps[k - 1][0], steps[k][0], name=f"step {k} ({steps[k][1]})", assuming=assuming, simplify=simplify)
