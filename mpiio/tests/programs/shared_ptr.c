/* Shared file pointer check: every rank appends BLOCKS blocks of INTS ints with
 * MPI_File_write_shared; the values are unique over the job (rank, block, index). Rank 0
 * then reads the whole file and checks that every value is there exactly once: a lost or
 * overlapping block shows as a missing value. Prints "shared_ptr: OK ..." or
 * "shared_ptr: FAILED ..." (exit status 1).
 * Usage: shared_ptr FILE [BLOCKS] [INTS] */
#include "check.h"

int main(int argc, char **argv) {
    check_start(&argc, &argv, "shared_ptr FILE [BLOCKS] [INTS]");
    int blocks = argc > 2 ? atoi(argv[2]) : 64;
    int ints = argc > 3 ? atoi(argv[3]) : 16;
    MPI_File fh = check_open_fresh("shared_ptr", argv[1]);
    int *buf = malloc(sizeof(int) * ints);
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    for (int b = 0; b < blocks; b++) {
        for (int i = 0; i < ints; i++) buf[i] = (check_rank * blocks + b) * ints + i + 1;
        MPI_Status st;
        int rc = MPI_File_write_shared(fh, buf, ints, MPI_INT, &st);
        if (rc != MPI_SUCCESS) {
            fprintf(stderr, "shared_ptr: rank %d: MPI_File_write_shared failed (%d)\n",
                    check_rank, rc);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
    }
    double mine = MPI_Wtime() - t0, slowest = 0;
    MPI_Reduce(&mine, &slowest, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    MPI_Offset pos = -1;
    MPI_File_get_position_shared(fh, &pos);
    check_close(&fh);

    int status = 0;
    if (check_rank == 0) {
        long total = (long)check_size * blocks * ints;
        int *all = calloc(total + 1, sizeof(int));
        char *seen = calloc(total + 1, 1);
        long got = check_read_ints(argv[1], 0, all, total + 1);
        long present = 0, dup = 0, bad = 0;
        for (long i = 0; i < got; i++) {
            int v = all[i];
            if (v < 1 || v > total) bad++;
            else if (seen[v]) dup++;
            else seen[v] = 1, present++;
        }
        status = present == total && got == total && dup == 0 && bad == 0 ? 0 : 1;
        printf("shared_ptr: %s: %d ranks, %ld of %ld ints present, %ld ints in the file, "
               "%ld duplicated, %ld foreign, shared pointer %lld on rank 0; appends took %.3f s "
               "(%.1f us per append per rank)\n",
               status ? "FAILED" : "OK", check_size, present, total, got, dup, bad,
               (long long)pos, slowest, slowest / blocks * 1e6);
    }
    free(buf);
    return check_finish(status);
}
