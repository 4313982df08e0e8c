"""The chemical reaction neural network of §3, for a population of candidates at once.

Each of ``P`` independent candidates has ``n_r`` proposed reactions. In **V form** a candidate
is a stoichiometric matrix ``V (n_r, n_s)`` and log rates ``lf, lr (n_r,)``:

    N(u)_k = Σ_i V_ik (exp(lf_i + a_i·ln u) − exp(lr_i + b_i·ln u)),
    a_i = max(0, −v_i),  b_i = max(0, v_i)

In **catalytic form** (Ji & Deng's CRNN) the reactant orders ``a_i ≥ 0`` are parameters of
their own and every reaction is irreversible, so X + Y → 2Y (a = (1, 1), v = (−1, 1)) can be
written. With temperatures, ``lf_i − e_i·T_ref/T`` replaces ``lf_i`` (Arrhenius, ``e_i`` =
Ea/(R·T_ref)).

Candidates are trained together as one batched tensor computation: on a small problem the
cost of a step is dominated by per-operation overhead, so ``P`` restarts cost little more
than one. The loss of each candidate is the paper's eq. (3.2): MSE of the derivatives plus
``λ·(L1 + L2)`` of its parameters.
"""

from __future__ import annotations

import torch

__all__ = ["PopulationCRNN"]


class PopulationCRNN(torch.nn.Module):
    """``P`` candidate networks of ``n_r`` reactions over ``n_s`` species.

    Parameters are drawn U(−0.5, 0.5) as in the paper (orders of the catalytic form
    U(0, 1)).

    Parameters
    ----------
    population : int
        ``P``, the number of candidates.
    n_reactions : int
        ``n_r``, reactions per candidate.
    n_species : int
        ``n_s``, the number of species.
    catalytic : bool, default False
        Catalysis mode: orders learned separately from the stoichiometry (no reverse rates).
    arrhenius : bool, default False
        Learn activation energies as well as rate constants.
    generator : torch.Generator or None, optional
        Makes the draw reproducible.
    dtype : torch.dtype, default torch.float64
        Of the parameters.
    """

    def __init__(self, population: int, n_reactions: int, n_species: int, *,
                 catalytic: bool = False, arrhenius: bool = False,
                 generator: torch.Generator | None = None, dtype=torch.float64):
        super().__init__()
        self.population, self.n_reactions, self.n_species = population, n_reactions, n_species
        self.catalytic, self.arrhenius = catalytic, arrhenius
        self._gen = generator
        P, R, S = population, n_reactions, n_species

        def draw(*shape, low=-0.5, high=0.5):
            return low + (high - low) * torch.rand(*shape, generator=generator, dtype=dtype)

        self.V = torch.nn.Parameter(draw(P, R, S))
        self.lf = torch.nn.Parameter(draw(P, R))
        self.lr = torch.nn.Parameter(draw(P, R)) if not catalytic else None
        self.orders = torch.nn.Parameter(draw(P, R, S, low=0.0, high=1.0)) if catalytic else None
        self.ef = torch.nn.Parameter(draw(P, R)) if arrhenius else None
        self.er = torch.nn.Parameter(draw(P, R)) if arrhenius and not catalytic else None

    # ------------------------------------------------------------------ model
    def reactant_orders(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return the forward and reverse reactant orders, each ``(P, n_r, n_s)``.

        Returns
        -------
        forward : torch.Tensor
            ``(P, n_r, n_s)``.
        reverse : torch.Tensor or None
            ``(P, n_r, n_s)``, or ``None`` in catalysis mode.
        """
        if self.catalytic:
            return torch.relu(self.orders), None
        return torch.relu(-self.V), torch.relu(self.V)

    def forward(self, log_u: torch.Tensor, x_temp: torch.Tensor | None = None) -> torch.Tensor:
        """Return each candidate's derivatives at the given log concentrations.

        Parameters
        ----------
        log_u : torch.Tensor
            Log concentrations ``(N, n_s)``.
        x_temp : torch.Tensor or None, optional
            ``(N,)`` = T_ref/T, for Arrhenius models.

        Returns
        -------
        torch.Tensor
            Derivatives ``(P, N, n_s)``.
        """
        a, b = self.reactant_orders()
        log_rf = self.lf[:, :, None] + a @ log_u.T  # (P, R, N)
        if self.arrhenius:
            log_rf = log_rf - self.ef[:, :, None] * x_temp[None, None, :]
        net = torch.exp(log_rf)
        if b is not None:
            log_rr = self.lr[:, :, None] + b @ log_u.T
            if self.arrhenius:
                log_rr = log_rr - self.er[:, :, None] * x_temp[None, None, :]
            net = net - torch.exp(log_rr)
        return net.transpose(1, 2) @ self.V  # (P, N, S)

    def regularisation(self) -> torch.Tensor:
        """Return ``Σ |θ| + Σ θ²`` over each candidate's parameters.

        Returns
        -------
        torch.Tensor
            ``(P,)``.
        """
        total = 0.0
        for p in self.parameters():
            flat = p.reshape(p.shape[0], -1)
            total = total + flat.abs().sum(1) + (flat * flat).sum(1)
        return total

    def losses(self, log_u: torch.Tensor, du: torch.Tensor, x_temp: torch.Tensor | None,
               lam: float, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Return the loss of eq. (3.2) for each candidate.

        Parameters
        ----------
        log_u : torch.Tensor
            Log concentrations ``(N, n_s)``.
        du : torch.Tensor
            Measured derivatives ``(N, n_s)`` (already weighted when ``weights`` is given).
        x_temp : torch.Tensor or None
            ``(N,)`` = T_ref/T, for Arrhenius models.
        lam : float
            Weight of the regularisation.
        weights : torch.Tensor or None, optional
            ``(n_s,)``, multiply the predicted derivatives of each species.

        Returns
        -------
        torch.Tensor
            ``(P,)``.
        """
        pred = self.forward(log_u, x_temp)
        if weights is not None:
            pred = pred * weights
        err = pred - du[None]
        return (err * err).mean(dim=(1, 2)) + lam * self.regularisation()

    # ------------------------------------------------------------------ edits
    @torch.no_grad()
    def redraw_rows(self, member: int, rows: list[int], low: float = -2.0,
                    high: float = 2.0) -> None:
        """Re-randomise rows of V (and orders) of one candidate, U(low, high) as in Algorithm 1.

        Parameters
        ----------
        member : int
            The candidate.
        rows : list of int
            The rows (reactions) to redraw.
        low, high : float, default -2.0, 2.0
            Bounds of the uniform draw.
        """
        if not rows:
            return
        idx = torch.as_tensor(rows)
        shape = (len(rows), self.n_species)
        self.V[member, idx] = low + (high - low) * torch.rand(
            *shape, generator=self._gen, dtype=self.V.dtype)
        if self.catalytic:
            self.orders[member, idx] = 2.0 * torch.rand(*shape, generator=self._gen,
                                                        dtype=self.V.dtype)

    @torch.no_grad()
    def redraw_member(self, member: int) -> None:
        """Start a candidate again from the paper's initialisation.

        Parameters
        ----------
        member : int
            The candidate.
        """
        for p in self.parameters():
            lo, hi = (0.0, 1.0) if p is self.orders else (-0.5, 0.5)
            p[member] = lo + (hi - lo) * torch.rand(*p.shape[1:], generator=self._gen,
                                                    dtype=p.dtype)
