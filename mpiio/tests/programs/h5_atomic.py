"""HDF5 atomic mode from Python (h5py's MPI-IO driver, Debian's python3-h5py-mpi): rank 0
flips a dataset of INTS 32-bit ints between all-1 and all-2, ITERS times, while the other
ranks read it ITERS times each; with `f.atomic = True` (MPI_File_set_atomicity) no read may
see a mix of two writes. Prints "h5_atomic: OK ..." or "h5_atomic: FAILED ..." (exit
status 1).
Usage: python3 h5_atomic.py FILE"""
import sys

import h5py
import numpy as np
from mpi4py import MPI

ITERS, INTS = 100, 4096


def main():
    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()
    path = sys.argv[1]
    mixed = 0
    with h5py.File(path, "w", driver="mpio", comm=comm) as f:
        dset = f.create_dataset("flip", (INTS,), dtype="i4", fillvalue=0)
        f.atomic = True
        atomic = f.atomic
        comm.Barrier()
        for i in range(ITERS):
            if rank == 0:
                dset[:] = np.full(INTS, 1 + i % 2, dtype=np.int32)
            elif np.unique(dset[:]).size != 1:
                mixed += 1
        comm.Barrier()
    total = comm.reduce(mixed, op=MPI.SUM, root=0)
    if rank == 0:
        ok = atomic and total == 0
        verdict = "OK" if ok else "FAILED"
        readers = comm.Get_size() - 1
        print(f"h5_atomic: {verdict}: atomic mode {atomic}, {readers * ITERS} reads, {total} mixed",
              flush=True)
        if not ok:
            comm.Abort(1)


main()
