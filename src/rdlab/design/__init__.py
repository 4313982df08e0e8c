"""Design: differentiable inverse design of reaction–diffusion networks (the Dense-RDN paper).

A dense reaction network, its diffusion coefficients, flow drive and a generator of initial
conditions are optimised together against a behaviour written as a loss.
"""
