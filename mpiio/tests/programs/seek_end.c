/* The end of file in atomic mode, across clients: under a view of ints, in ROUNDS rounds rank
 * 0 appends a block of INTS ints with MPI_File_write_at in atomic mode; after a barrier every
 * rank asks MPI_File_get_size, seeks its individual pointer to the end (MPI_File_seek,
 * MPI_SEEK_END) and the shared one (MPI_File_seek_shared): the size and both pointers must
 * be at the new end of file (in bytes, and in ints). A rank whose client has not seen the
 * append (a cached size) falls short of it. Prints "seek_end: OK ..." or
 * "seek_end: FAILED ..." (exit status 1).
 * Usage: seek_end FILE */
#include "check.h"

#define ROUNDS 40
#define INTS 256

int main(int argc, char **argv) {
    check_start(&argc, &argv, "seek_end FILE");
    MPI_File fh = check_open_fresh("seek_end", argv[1]);
    MPI_File_set_errhandler(fh, MPI_ERRORS_RETURN);
    MPI_File_set_view(fh, 0, MPI_INT, MPI_INT, "native", MPI_INFO_NULL);
    MPI_File_set_atomicity(fh, 1);
    int buf[INTS];
    long short_size = 0, short_individual = 0, short_shared = 0, failed = 0;
    for (int r = 0; r < ROUNDS; r++) {
        MPI_Offset end = (MPI_Offset)(r + 1) * INTS, pos = -1;
        if (check_rank == 0) {
            for (int i = 0; i < INTS; i++) buf[i] = r * INTS + i;
            MPI_Status st;
            failed += MPI_File_write_at(fh, (MPI_Offset)r * INTS, buf, INTS, MPI_INT, &st) !=
                      MPI_SUCCESS;
        }
        MPI_Barrier(MPI_COMM_WORLD);
        MPI_Offset size = -1;
        failed += MPI_File_get_size(fh, &size) != MPI_SUCCESS;
        short_size += size != end * (MPI_Offset)sizeof(int);
        failed += MPI_File_seek(fh, 0, MPI_SEEK_END) != MPI_SUCCESS;
        MPI_File_get_position(fh, &pos);
        short_individual += pos != end;
        failed += MPI_File_seek_shared(fh, 0, MPI_SEEK_END) != MPI_SUCCESS;
        pos = -1;
        MPI_File_get_position_shared(fh, &pos);
        short_shared += pos != end;
        MPI_Barrier(MPI_COMM_WORLD);
    }
    check_close(&fh);
    long mine[4] = {short_size, short_individual, short_shared, failed}, sum[4] = {0};
    MPI_Reduce(mine, sum, 4, MPI_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
    int status = 0;
    if (check_rank == 0) {
        status = sum[0] || sum[1] || sum[2] || sum[3];
        printf("seek_end: %s: %d ranks, %d rounds: the size missed the end %ld times, the "
               "individual pointer %ld times, the shared pointer %ld times; %ld failed calls\n",
               status ? "FAILED" : "OK", check_size, ROUNDS, sum[0], sum[1], sum[2], sum[3]);
    }
    return check_finish(status);
}
