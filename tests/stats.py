"""Statistical tolerances for tests: z-scores are (estimate - exact) / MCSE with an ESS-aware MCSE."""

from scipy.stats import norm


def family_threshold(n_tests: int, family_error: float = 1e-3) -> float:
    """Two-sided |z| bound so that ``n_tests`` z-scores all pass with probability ``1 - family_error``."""
    return float(norm.isf(family_error / (2 * n_tests)))
