"""Statistical tolerances for tests: z-scores are (estimate - exact) / MCSE with an ESS-aware MCSE."""

from scipy.stats import norm


def family_threshold(n_tests: int, family_error: float = 1e-3) -> float:
    """Two-sided |z| bound so that ``n_tests`` z-scores all pass with probability ``1 - family_error``."""
    return float(norm.isf(family_error / (2 * n_tests)))


def student_threshold(n_tests: int, dof: int, family_error: float = 1e-3) -> float:
    """As :func:`family_threshold` for t-statistics with ``dof`` degrees of freedom (errors from replicates)."""
    from scipy.stats import t

    return float(t.isf(family_error / (2 * n_tests), dof))
