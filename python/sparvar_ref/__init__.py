"""sparvar_ref: our own plain-PyTorch reference of Infinity (transformer, BSQ-VAE, Flan-T5 encoder).

Written after reading the official FoundationVision/Infinity code; it is the oracle for the C++
engine's parity tests. Runs on CPU with torch 1.13 and on torch 2.x.
"""
