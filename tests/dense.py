"""Dense-matrix references for lattice operators, built from explicit link lists (tests only)."""

import numpy as np


def dense_adjacency(shape):
    """Nearest-neighbour adjacency from an explicit list of forward links (a multigraph on size-2 axes)."""
    Lx, Ly = shape
    index = lambda x, y: (x % Lx) * Ly + (y % Ly)  # noqa: E731
    adj = np.zeros((Lx * Ly, Lx * Ly))
    for x in range(Lx):
        for y in range(Ly):
            for nx, ny in ((x + 1, y), (x, y + 1)):
                i, j = index(x, y), index(nx, ny)
                adj[i, j] += 1
                adj[j, i] += 1
    return adj


def dense_free_field(shape, m2):
    """``M = -Laplacian + m2 I`` of the free field, ``E = 1/2 phi^T M phi``."""
    adj = dense_adjacency(shape)
    return (4 + m2) * np.eye(len(adj)) - adj
