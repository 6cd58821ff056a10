"""density-engine: Monte Carlo return densities of stochastic-volatility models, as a reproducible workflow."""

__version__ = "0.1.0"
