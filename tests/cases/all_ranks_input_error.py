"""Every rank sees the same bad input and raises the same InputError."""
import pympc

raise pympc.InputError("grid size must be positive, got -3")
