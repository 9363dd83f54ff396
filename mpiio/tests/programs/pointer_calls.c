/* The other shared-pointer calls, with the library: under a view of doubles every rank
 * appends a block of 4 with MPI_File_iwrite_shared; the pointer is then 4 * ranks etypes.
 * After MPI_File_seek_shared to 0 every rank reads one block with MPI_File_read_shared, and
 * again with MPI_File_iread_shared: every block is read exactly once per pass. Then
 * MPI_SEEK_END and MPI_SEEK_CUR, a write whose size is not a whole number of etypes (an
 * error), MPI_MODE_APPEND (the pointer starts at the end), and an open that fails on every
 * rank (an error everywhere, no rank left waiting). Prints
 * "pointer_calls: OK ..." or "pointer_calls: FAILED ..." (exit status 1).
 * Usage: pointer_calls FILE */
#include "check.h"

#define N 4

static int errors;

static void expect(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "pointer_calls: rank %d: %s\n", check_rank, what);
        errors++;
    }
}

/* Which rank's block `b` is (-1 if it is none). */
static int block_of(const double *b) {
    int r = (int)(b[0] / 10);
    for (int i = 0; i < N; i++)
        if (b[i] != r * 10 + i) return -1;
    return r >= 0 && r < check_size ? r : -1;
}

/* Every rank read one block: are they all different ranks' blocks? */
static void expect_each_block_once(const double *b, const char *what) {
    int *count = calloc(check_size, sizeof(int)), *sum = calloc(check_size, sizeof(int));
    int r = block_of(b);
    if (r >= 0) count[r] = 1;
    MPI_Allreduce(count, sum, check_size, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    for (int k = 0; k < check_size; k++) expect(sum[k] == 1, what);
    free(count);
    free(sum);
}

int main(int argc, char **argv) {
    check_start(&argc, &argv, "pointer_calls FILE");
    MPI_File fh = check_open_fresh("pointer_calls", argv[1]);
    MPI_File_set_view(fh, 0, MPI_DOUBLE, MPI_DOUBLE, "native", MPI_INFO_NULL);
    double b[N];
    for (int i = 0; i < N; i++) b[i] = check_rank * 10 + i;
    MPI_Request req;
    MPI_Status st;
    expect(MPI_File_iwrite_shared(fh, b, N, MPI_DOUBLE, &req) == MPI_SUCCESS, "iwrite_shared");
    MPI_Wait(&req, &st);
    MPI_File_sync(fh);
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_File_sync(fh);
    MPI_Offset pos = -1;
    MPI_File_get_position_shared(fh, &pos);
    expect(pos == (MPI_Offset)N * check_size, "the pointer after the appends");

    MPI_File_seek_shared(fh, 0, MPI_SEEK_SET);
    for (int i = 0; i < N; i++) b[i] = -1;
    expect(MPI_File_read_shared(fh, b, N, MPI_DOUBLE, &st) == MPI_SUCCESS, "read_shared");
    expect_each_block_once(b, "read_shared: a block read twice or not at all");

    MPI_File_seek_shared(fh, 0, MPI_SEEK_SET);
    for (int i = 0; i < N; i++) b[i] = -1;
    expect(MPI_File_iread_shared(fh, b, N, MPI_DOUBLE, &req) == MPI_SUCCESS, "iread_shared");
    MPI_Wait(&req, &st);
    expect_each_block_once(b, "iread_shared: a block read twice or not at all");

    MPI_File_seek_shared(fh, -N, MPI_SEEK_END);
    MPI_File_get_position_shared(fh, &pos);
    expect(pos == (MPI_Offset)N * (check_size - 1), "MPI_SEEK_END");
    MPI_File_seek_shared(fh, 2, MPI_SEEK_CUR);
    MPI_File_get_position_shared(fh, &pos);
    expect(pos == (MPI_Offset)N * (check_size - 1) + 2, "MPI_SEEK_CUR");

    /* One int under a view of doubles: not a whole etype. */
    int one = 1;
    expect(MPI_File_write_shared(fh, &one, 1, MPI_INT, &st) != MPI_SUCCESS,
           "a write of half an etype was not refused");
    MPI_File_close(&fh);
    MPI_Barrier(MPI_COMM_WORLD);

    MPI_File_open(MPI_COMM_WORLD, argv[1], MPI_MODE_RDWR | MPI_MODE_APPEND, MPI_INFO_NULL, &fh);
    MPI_File_get_position_shared(fh, &pos);
    expect(pos == (MPI_Offset)(N * sizeof(double)) * check_size, "MPI_MODE_APPEND's pointer");
    MPI_File_close(&fh);

    /* A file that cannot be opened: every rank gets the error, none waits. */
    MPI_File bad;
    expect(MPI_File_open(MPI_COMM_WORLD, "/nonexistent-brlock-dir/f", MPI_MODE_RDONLY,
                         MPI_INFO_NULL, &bad) != MPI_SUCCESS,
           "opening a file in a missing directory succeeded");

    int total = 0;
    MPI_Reduce(&errors, &total, 1, MPI_INT, MPI_SUM, 0, MPI_COMM_WORLD);
    if (check_rank == 0)
        printf("pointer_calls: %s: %d ranks, %d errors\n", total ? "FAILED" : "OK", check_size,
               total);
    return check_finish(total != 0);
}
