/* MPI-IO timings for scripts/bench_mpiio.sh: an unmodified MPI program, run with and without
 * libbrlock-mpiio.so.
 *
 *   mpiio_bench shared FILE N BYTES   every rank appends N records of BYTES bytes with
 *                                     MPI_File_write_shared
 *   mpiio_bench atomic FILE N BYTES   atomic mode; every rank writes N blocks of BYTES bytes
 *                                     with MPI_File_write_at at random block-aligned offsets
 *                                     of one region of 16 blocks shared by all ranks
 *   mpiio_bench plain FILE N BYTES    outside atomic mode; every rank writes N blocks of
 *                                     BYTES bytes with MPI_File_write_at into its own region
 *
 * Rank 0 prints one JSON object: the operation, ranks, records per rank, bytes per record,
 * the slowest rank's seconds, microseconds per operation (slowest rank's time / N),
 * aggregate operations per second, and whether the file holds what was written (shared: the
 * size is ranks * N * BYTES; the others: the size the writes imply). Exit status 1 on any
 * MPI error or a wrong size.
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what, int err) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(err, msg, &len);
    fprintf(stderr, "mpiio_bench: %s: %s\n", what, msg);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

#define CHECK(call)                                                                            \
    do {                                                                                       \
        int err_ = (call);                                                                     \
        if (err_ != MPI_SUCCESS) die(#call, err_);                                             \
    } while (0)

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, ranks;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    if (argc != 5) {
        if (rank == 0) fprintf(stderr, "usage: mpiio_bench shared|atomic|plain FILE N BYTES\n");
        MPI_Finalize();
        return 2;
    }
    const char *op = argv[1], *path = argv[2];
    long n = atol(argv[3]), bytes = atol(argv[4]);
    int shared = !strcmp(op, "shared"), atomic = !strcmp(op, "atomic");
    if ((!shared && !atomic && strcmp(op, "plain")) || n <= 0 || bytes <= 0) {
        if (rank == 0) fprintf(stderr, "mpiio_bench: bad arguments\n");
        MPI_Finalize();
        return 2;
    }
    char *buf = malloc(bytes);
    memset(buf, 'a' + rank % 26, bytes);
    if (rank == 0) MPI_File_delete(path, MPI_INFO_NULL);
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_File fh;
    CHECK(MPI_File_open(MPI_COMM_WORLD, path, MPI_MODE_CREATE | MPI_MODE_RDWR, MPI_INFO_NULL, &fh));
    CHECK(MPI_File_set_errhandler(fh, MPI_ERRORS_RETURN));
    if (atomic) CHECK(MPI_File_set_atomicity(fh, 1));
    const long region = 16;
    unsigned seed = 12345u + 7919u * (unsigned)rank;
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    for (long i = 0; i < n; i++) {
        MPI_Status st;
        if (shared) {
            CHECK(MPI_File_write_shared(fh, buf, (int)bytes, MPI_BYTE, &st));
        } else if (atomic) {
            seed = seed * 1103515245u + 12345u;
            MPI_Offset off = (MPI_Offset)((seed >> 8) % region) * bytes;
            CHECK(MPI_File_write_at(fh, off, buf, (int)bytes, MPI_BYTE, &st));
        } else {
            MPI_Offset off = ((MPI_Offset)rank * n + i) * bytes;
            CHECK(MPI_File_write_at(fh, off, buf, (int)bytes, MPI_BYTE, &st));
        }
    }
    double mine = MPI_Wtime() - t0, slowest = 0;
    MPI_Reduce(&mine, &slowest, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    CHECK(MPI_File_sync(fh));
    MPI_Barrier(MPI_COMM_WORLD);
    /* The largest size any rank sees: a rank's client may not yet know what ranks on the
     * other client wrote (its size cache), but the writer's own client does. */
    MPI_Offset mine_size = 0, size = 0;
    CHECK(MPI_File_get_size(fh, &mine_size));
    MPI_Allreduce(&mine_size, &size, 1, MPI_OFFSET, MPI_MAX, MPI_COMM_WORLD);
    CHECK(MPI_File_close(&fh));
    MPI_Offset want = shared ? (MPI_Offset)ranks * n * bytes
                     : atomic ? 0 /* at most region * bytes, at least one block */
                              : (MPI_Offset)ranks * n * bytes;
    int ok = atomic ? (size > 0 && size <= region * bytes) : (size == want);
    if (rank == 0) {
        printf("{\"op\": \"%s\", \"ranks\": %d, \"n\": %ld, \"bytes\": %ld, \"seconds\": %.6f, "
               "\"us_per_op\": %.3f, \"ops_per_s\": %.1f, \"size\": %lld, \"ok\": %s}\n",
               op, ranks, n, bytes, slowest, 1e6 * slowest / (double)n,
               (double)ranks * (double)n / slowest, (long long)size, ok ? "true" : "false");
        fflush(stdout);
    }
    free(buf);
    MPI_Finalize();
    return ok ? 0 : 1;
}
