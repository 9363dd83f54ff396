"""Shared file pointer check from Python (mpi4py): every rank appends BLOCKS blocks of INTS
32-bit ints with File.Write_shared (values unique over the job), then one collective
File.Write_ordered block per rank; rank 0 reads the file back past its client's cache and
checks every value is there once and the ordered blocks are in rank order. Prints
"shared_ptr_py: OK ..." or "shared_ptr_py: FAILED ..." (exit status 1).
Usage: python3 shared_ptr.py FILE"""
import array
import os
import sys

from mpi4py import MPI

BLOCKS, INTS = 32, 16


def main():
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    path = sys.argv[1]
    if rank == 0 and os.path.exists(path):
        os.unlink(path)
    comm.Barrier()
    fh = MPI.File.Open(comm, path, MPI.MODE_CREATE | MPI.MODE_RDWR)
    for b in range(BLOCKS):
        first = (rank * BLOCKS + b) * INTS + 1
        fh.Write_shared([array.array("i", range(first, first + INTS)), MPI.INT])
    appended = size * BLOCKS * INTS
    # One ordered block per rank after the appends: rank r's values follow rank r-1's.
    first = appended + rank * INTS + 1
    fh.Write_ordered([array.array("i", range(first, first + INTS)), MPI.INT])
    fh.Sync()
    comm.Barrier()
    fh.Sync()
    fh.Close()
    comm.Barrier()

    status = 0
    if rank == 0:
        total = appended + size * INTS
        fd = os.open(path, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        data = b""
        while True:
            chunk = os.pread(fd, 1 << 20, len(data))
            if not chunk:
                break
            data += chunk
        os.close(fd)
        ints = array.array("i")
        ints.frombytes(data[: len(data) // 4 * 4])
        present = len(set(v for v in ints[:appended] if 1 <= v <= appended))
        ordered = list(ints[appended:]) == list(range(appended + 1, total + 1))
        ok = present == appended and ordered and len(ints) == total
        status = 0 if ok else 1
        print(
            f"shared_ptr_py: {'OK' if ok else 'FAILED'}: {present} of {appended} appended ints "
            f"present, ordered blocks {'in' if ordered else 'NOT in'} rank order, "
            f"{len(ints)} of {total} ints in the file",
            flush=True,
        )
    status = comm.bcast(status, root=0)
    sys.exit(status)


main()
