"""The chain's Faust agents and the worker that runs them (thin layer over shulian.chain)."""
