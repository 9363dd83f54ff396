/* Atomic mode on a file the program may only read: FILE holds N ints 0..N-1 (the test writes
 * them) and lies on a read-only mount. Every rank opens it MPI_MODE_RDONLY, turns atomic mode
 * on, reads the whole file with MPI_File_read_at_all and must see every int; MPI_File_get_size
 * must give N ints; a write in atomic mode must be refused with an error (the file was opened
 * read-only); atomic mode goes off again. Prints "read_only: OK ..." or "read_only: FAILED ..."
 * (exit status 1).
 * Usage: read_only FILE N */
#include "check.h"

int main(int argc, char **argv) {
    check_start(&argc, &argv, "read_only FILE N");
    int n = argc > 2 ? atoi(argv[2]) : 0;
    long errors = 0;
    MPI_File fh;
    int rc = MPI_File_open(MPI_COMM_WORLD, argv[1], MPI_MODE_RDONLY, MPI_INFO_NULL, &fh);
    if (rc != MPI_SUCCESS) {
        fprintf(stderr, "read_only: rank %d: MPI_File_open failed (%d)\n", check_rank, rc);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    MPI_File_set_errhandler(fh, MPI_ERRORS_RETURN);
    if (MPI_File_set_atomicity(fh, 1) != MPI_SUCCESS) {
        fprintf(stderr, "read_only: rank %d: MPI_File_set_atomicity(1) failed\n", check_rank);
        errors++;
    }
    int *buf = calloc(n, sizeof(int));
    MPI_Status st;
    if (MPI_File_read_at_all(fh, 0, buf, n, MPI_INT, &st) != MPI_SUCCESS) errors++;
    long wrong = 0;
    for (int i = 0; i < n; i++) wrong += buf[i] != i;
    if (wrong) fprintf(stderr, "read_only: rank %d: %ld ints wrong\n", check_rank, wrong);
    errors += wrong != 0;
    MPI_Offset size = -1;
    MPI_File_get_size(fh, &size);
    if (size != (MPI_Offset)n * (MPI_Offset)sizeof(int)) {
        fprintf(stderr, "read_only: rank %d: size %lld\n", check_rank, (long long)size);
        errors++;
    }
    if (MPI_File_write_at(fh, 0, buf, 1, MPI_INT, &st) == MPI_SUCCESS) {
        fprintf(stderr, "read_only: rank %d: a write to a read-only file succeeded\n", check_rank);
        errors++;
    }
    if (MPI_File_set_atomicity(fh, 0) != MPI_SUCCESS) errors++;
    MPI_File_close(&fh);
    free(buf);
    long total = 0;
    MPI_Reduce(&errors, &total, 1, MPI_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
    if (check_rank == 0)
        printf("read_only: %s: %d ranks, %d ints, %ld errors\n", total ? "FAILED" : "OK",
               check_size, n, total);
    return check_finish(total != 0);
}
