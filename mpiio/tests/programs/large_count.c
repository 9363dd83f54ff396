/* The large-count (MPI 4.0, "_c") forms of the data accesses, mixed with the int forms.
 *
 * 1. Shared pointer: every rank appends BLOCKS blocks of INTS ints, unique over the job,
 *    cycling through MPI_File_write_shared, MPI_File_write_shared_c and
 *    MPI_File_iwrite_shared_c; then one block each with MPI_File_write_ordered_c. Rank 0 reads
 *    the file as the servers have it: every value exactly once, the ordered blocks in rank
 *    order after the appends. A "_c" form that went around the one pointer the int forms use
 *    writes over other blocks.
 * 2. Atomic mode: in ROUNDS rounds rank 0 writes the round's value over a region with
 *    MPI_File_write_at_c; after a barrier every other rank reads it with MPI_File_read_at_c
 *    and must see that value in every int (atomic mode asks no sync for that).
 * 3. In MODE "huge": in atomic mode, a count past INT_MAX is refused with an error (the library
 *    moves at most INT_MAX elements per call; without it this would read past the buffer, so
 *    the tests pass it only with the library).
 * Prints "large_count: OK ..." or "large_count: FAILED ..." (exit status 1). Under an MPI
 * older than 4.0 (no "_c" forms) it prints "large_count: SKIPPED" and exits 0.
 * Usage: large_count MODE FILE, MODE "huge" (all three parts) or "plain" (the first two) */
#include "check.h"

#include <limits.h>
#include <string.h>

#define BLOCKS 24
#define INTS 8
#define REGION 1024
#define ROUNDS 50

#if MPI_VERSION >= 4
static int errors;

static void expect(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "large_count: rank %d: %s\n", check_rank, what);
        errors++;
    }
}

/* Part 1; returns the number of bad values rank 0 found. */
static long shared_pointer(const char *path) {
    MPI_File fh = check_open_fresh("large_count", path);
    int buf[INTS];
    for (int b = 0; b < BLOCKS; b++) {
        for (int i = 0; i < INTS; i++) buf[i] = (check_rank * BLOCKS + b) * INTS + i + 1;
        MPI_Status st;
        MPI_Request req;
        switch (b % 3) {
        case 0:
            expect(MPI_File_write_shared(fh, buf, INTS, MPI_INT, &st) == MPI_SUCCESS,
                   "MPI_File_write_shared");
            break;
        case 1:
            expect(MPI_File_write_shared_c(fh, buf, (MPI_Count)INTS, MPI_INT, &st) ==
                       MPI_SUCCESS,
                   "MPI_File_write_shared_c");
            break;
        default:
            expect(MPI_File_iwrite_shared_c(fh, buf, (MPI_Count)INTS, MPI_INT, &req) ==
                       MPI_SUCCESS,
                   "MPI_File_iwrite_shared_c");
            MPI_Wait(&req, &st);
        }
    }
    MPI_File_sync(fh);
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_File_sync(fh);
    long appended = (long)check_size * BLOCKS * INTS;
    for (int i = 0; i < INTS; i++) buf[i] = (int)appended + check_rank * INTS + i + 1;
    MPI_Status st;
    expect(MPI_File_write_ordered_c(fh, buf, (MPI_Count)INTS, MPI_INT, &st) == MPI_SUCCESS,
           "MPI_File_write_ordered_c");
    check_close(&fh);

    long bad = 0;
    if (check_rank == 0) {
        long total = appended + (long)check_size * INTS;
        int *all = calloc(total + 1, sizeof(int));
        char *seen = calloc(total + 1, 1);
        long got = check_read_ints(path, 0, all, total + 1);
        for (long i = 0; i < got; i++) {
            int v = all[i];
            if (v < 1 || v > total || seen[v]) bad++;
            else seen[v] = 1;
            /* The ordered blocks follow the appends, in rank order. */
            if (i >= appended && v != i + 1) bad++;
        }
        bad += total - got > 0 ? total - got : got - total;
        printf("large_count: shared pointer: %ld of %ld ints in the file, %ld bad\n", got, total,
               bad);
        free(all);
        free(seen);
    }
    return bad;
}

/* Part 2 (and 3 with `huge`); returns this rank's stale or mixed reads. */
static long atomic_mode(const char *path, int huge) {
    MPI_File fh = check_open_fresh("large_count", path);
    expect(MPI_File_set_atomicity(fh, 1) == MPI_SUCCESS, "MPI_File_set_atomicity");
    int *buf = malloc(sizeof(int) * REGION);
    long wrong = 0;
    for (int r = 1; r <= ROUNDS; r++) {
        MPI_Status st;
        if (check_rank == 0) {
            for (int i = 0; i < REGION; i++) buf[i] = r;
            expect(MPI_File_write_at_c(fh, 0, buf, (MPI_Count)REGION, MPI_INT, &st) ==
                       MPI_SUCCESS,
                   "MPI_File_write_at_c");
        }
        MPI_Barrier(MPI_COMM_WORLD);
        if (check_rank != 0) {
            memset(buf, 0, sizeof(int) * REGION);
            expect(MPI_File_read_at_c(fh, 0, buf, (MPI_Count)REGION, MPI_INT, &st) ==
                       MPI_SUCCESS,
                   "MPI_File_read_at_c");
            for (int i = 0; i < REGION; i++)
                if (buf[i] != r) {
                    wrong++;
                    break;
                }
        }
        MPI_Barrier(MPI_COMM_WORLD);
    }
    if (huge) {
        MPI_Status st;
        MPI_File_set_errhandler(fh, MPI_ERRORS_RETURN);
        expect(MPI_File_write_at_c(fh, 0, buf, (MPI_Count)INT_MAX + 1, MPI_BYTE, &st) !=
                   MPI_SUCCESS,
               "a write of INT_MAX + 1 bytes in atomic mode was not refused");
    }
    free(buf);
    check_close(&fh);
    return wrong;
}

int main(int argc, char **argv) {
    check_start(&argc, &argv, "large_count huge|plain FILE");
    if (argc < 3 || (strcmp(argv[1], "huge") && strcmp(argv[1], "plain"))) {
        if (check_rank == 0) fprintf(stderr, "usage: large_count huge|plain FILE\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    int huge = !strcmp(argv[1], "huge");
    long bad = shared_pointer(argv[2]);
    long wrong = atomic_mode(argv[2], huge), stale = 0;
    MPI_Reduce(&wrong, &stale, 1, MPI_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
    int total = 0;
    MPI_Reduce(&errors, &total, 1, MPI_INT, MPI_SUM, 0, MPI_COMM_WORLD);
    int status = 0;
    if (check_rank == 0) {
        status = bad || stale || total;
        printf("large_count: %s: %d ranks, %ld bad values through the shared pointer, %ld stale "
               "or mixed reads in %d rounds of atomic mode, %d failed calls\n",
               status ? "FAILED" : "OK", check_size, bad, stale, ROUNDS, total);
    }
    return check_finish(status);
}
#else
int main(int argc, char **argv) {
    check_start(&argc, &argv, "large_count huge|plain FILE");
    if (check_rank == 0) printf("large_count: SKIPPED: MPI %d.%d has no large-count forms\n",
                                MPI_VERSION, MPI_SUBVERSION);
    MPI_Finalize();
    return 0;
}
#endif
