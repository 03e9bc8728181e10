"""Triton kernels (CUDA sm_89+ for FP8, sm_80+ for INT8). Import only where ``triton`` is installed.

``TRITON_INTERPRET=1`` runs them on the CPU (slowly), which is how the CPU test suite checks them.
"""
