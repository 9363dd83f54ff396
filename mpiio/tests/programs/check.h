/* What the shared-pointer test programs share: start-up with a usage line, a fresh file opened
 * by every rank, the outcome agreed and printed, reading a file past this client's cache. */
#ifndef BRLOCK_MPIIO_CHECK_H
#define BRLOCK_MPIIO_CHECK_H
#define _GNU_SOURCE
#include <fcntl.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int check_rank, check_size;

/* MPI_Init, rank and size; aborts with `usage` unless there is a FILE argument. */
static inline void check_start(int *argc, char ***argv, const char *usage) {
    MPI_Init(argc, argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &check_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &check_size);
    if (*argc < 2) {
        if (check_rank == 0) fprintf(stderr, "usage: %s\n", usage);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
}

/* Deletes `path` (rank 0) and opens it afresh on every rank for reading and writing. */
static inline MPI_File check_open_fresh(const char *name, const char *path) {
    if (check_rank == 0) MPI_File_delete(path, MPI_INFO_NULL);
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_File fh;
    int rc = MPI_File_open(MPI_COMM_WORLD, path, MPI_MODE_CREATE | MPI_MODE_RDWR, MPI_INFO_NULL,
                           &fh);
    if (rc != MPI_SUCCESS) {
        fprintf(stderr, "%s: rank %d: MPI_File_open failed (%d)\n", name, check_rank, rc);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    return fh;
}

/* Syncs every rank's writes before and after a barrier, then closes the file (collective). */
static inline void check_close(MPI_File *fh) {
    MPI_File_sync(*fh);
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_File_sync(*fh);
    MPI_File_close(fh);
    MPI_Barrier(MPI_COMM_WORLD);
}

/* Reads up to `n` ints of `path` from byte `at` into `into`, as the servers have them (this
 * client's cached pages dropped first). Returns the ints read, or -1. */
static inline long check_read_ints(const char *path, long at, int *into, long n) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    long got = 0;
    while (got < n) {
        ssize_t r = pread(fd, (char *)into + got * sizeof(int), (n - got) * sizeof(int),
                          at + got * (long)sizeof(int));
        if (r <= 0) break;
        got += r / (long)sizeof(int);
    }
    close(fd);
    return got;
}

/* Rank 0's verdict `status` (0 = OK) for every rank; MPI_Finalize; the exit status. */
static inline int check_finish(int status) {
    MPI_Bcast(&status, 1, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Finalize();
    return status;
}
#endif
