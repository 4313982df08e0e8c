"""Discover: reaction networks from concentration time series (CRNN with partial-parameter
freezing, catalysis mode, choice of the number of reactions, Arrhenius rates)."""
