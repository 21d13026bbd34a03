#!/usr/bin/python3
"""Molecular test data for dynae-mpi, the harder system: alanine tetrapeptide ACE-(ALA)3-NME
in implicit solvent, 42 atoms, 20 heavy (60 aligned features), six backbone dihedrals
(phi_1, psi_1, ..., phi_3, psi_3) as the truth. Each residue visits the beta/PPII, alpha-R and,
rarely, alpha-L basins, so the peptide has many metastable states (helical turns included).

Same code, options, defaults and file layout as tools/gen_ala2.py (see its --help and the
tools README); only the chain length differs.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_ala2  # noqa: E402  (same folder)

if __name__ == "__main__":
    gen_ala2.TOOL = "gen_ala4.py"
    sys.exit(gen_ala2.main(n_ala=3, name="alanine tetrapeptide"))
