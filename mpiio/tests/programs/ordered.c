/* Ordered mode check: every rank writes ROUNDS times a block of INTS ints with
 * MPI_File_write_ordered (and, in every other round, with MPI_File_write_ordered_begin/_end),
 * after a view of MPI_INT etypes; block i of round r must come from rank i. Then every rank
 * reads the blocks back with MPI_File_read_ordered and checks its own, and rank 0 checks the
 * whole file and the shared pointer. Prints "ordered: OK ..." or "ordered: FAILED ..." (exit
 * status 1).
 * Usage: ordered FILE [ROUNDS] [INTS] */
#include "check.h"

static int value(int round, int rank, int i, int ints) {
    return ((round * 1000 + rank) * ints + i) + 1;
}

int main(int argc, char **argv) {
    check_start(&argc, &argv, "ordered FILE [ROUNDS] [INTS]");
    int rank = check_rank, size = check_size;
    int rounds = argc > 2 ? atoi(argv[2]) : 16;
    int ints = argc > 3 ? atoi(argv[3]) : 8;
    MPI_File fh = check_open_fresh("ordered", argv[1]);
    /* A view of ints after a 16-byte header: the shared pointer counts ints from there. */
    MPI_File_set_view(fh, 16, MPI_INT, MPI_INT, "native", MPI_INFO_NULL);
    int *buf = malloc(sizeof(int) * ints);
    int errors = 0;
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < ints; i++) buf[i] = value(r, rank, i, ints);
        MPI_Status st;
        int rc;
        if (r % 2 == 0) {
            rc = MPI_File_write_ordered(fh, buf, ints, MPI_INT, &st);
        } else {
            rc = MPI_File_write_ordered_begin(fh, buf, ints, MPI_INT);
            if (rc == MPI_SUCCESS) rc = MPI_File_write_ordered_end(fh, buf, &st);
        }
        if (rc != MPI_SUCCESS) errors++;
    }
    MPI_Offset pos = -1;
    MPI_File_get_position_shared(fh, &pos);
    long expect_pos = (long)rounds * size * ints;
    if (pos != expect_pos) {
        fprintf(stderr, "ordered: rank %d: shared pointer %lld after the writes, expected %ld\n",
                rank, (long long)pos, expect_pos);
        errors++;
    }
    MPI_File_sync(fh);
    MPI_Barrier(MPI_COMM_WORLD);

    /* Back to the start, read in order: each rank gets its own blocks again. */
    MPI_File_seek_shared(fh, 0, MPI_SEEK_SET);
    for (int r = 0; r < rounds; r++) {
        MPI_Status st;
        for (int i = 0; i < ints; i++) buf[i] = -1;
        if (MPI_File_read_ordered(fh, buf, ints, MPI_INT, &st) != MPI_SUCCESS) errors++;
        for (int i = 0; i < ints; i++)
            if (buf[i] != value(r, rank, i, ints)) {
                errors++;
                break;
            }
    }
    check_close(&fh);

    int total_errors = 0;
    MPI_Reduce(&errors, &total_errors, 1, MPI_INT, MPI_SUM, 0, MPI_COMM_WORLD);
    int status = 0;
    if (rank == 0) {
        long total = (long)rounds * size * ints;
        int *all = calloc(total + 1, sizeof(int));
        long got = check_read_ints(argv[1], 16, all, total + 1);
        long wrong = 0;
        for (int r = 0; r < rounds; r++)
            for (int k = 0; k < size; k++)
                for (int i = 0; i < ints; i++) {
                    long at = ((long)r * size + k) * ints + i;
                    if (at >= got || all[at] != value(r, k, i, ints)) wrong++;
                }
        status = wrong == 0 && got == total && total_errors == 0 ? 0 : 1;
        printf("ordered: %s: %d ranks, %d rounds, %ld of %ld ints out of rank order, %ld ints "
               "in the file, %d errors reported by ranks\n",
               status ? "FAILED" : "OK", size, rounds, wrong, total, got, total_errors);
    }
    free(buf);
    return check_finish(status);
}
