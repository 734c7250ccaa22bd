"""Hypothesis strategies and a runner for "no parameter makes a page answer 5xx"."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# Any text a browser can send (lone surrogates cannot be encoded into a request).
TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40)
# Values that look like numbers to str.isdigit() or to people, and numbers out of range.
NUMBERISH = st.one_of(
    st.sampled_from(["²", "٣", "1e3", " 1", "0x1", "-1", "", "00", "99999999999", "2147483648"]),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    TEXT,
)
MONTHISH = st.one_of(
    st.sampled_from(["2026-03", "2026-13", "2026-00", "9999-12", "0001-01", "2026-²", "2026-3"]),
    st.dates().map(lambda d: f"{d:%Y-%m}"),
    NUMBERISH,
)


def params_of(**values) -> st.SearchStrategy[dict]:
    """Dicts holding any subset of the named parameters, each from its strategy."""
    return st.fixed_dictionaries({}, optional=values)


def assert_never_5xx(send, strategy, *, examples: int = 40) -> None:
    """Call ``send(example)`` (it returns a response) for generated examples; none is a 5xx."""

    @given(strategy)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(example):
        response = send(example)
        assert response.status_code < 500, (example, response.status_code)

    check()
