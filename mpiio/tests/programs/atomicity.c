/* Atomic mode from an unmodified MPI program: rank 0 writes, the other ranks read, all in
 * MPI_File_set_atomicity(fh, 1), and the readers count what atomic mode forbids.
 *
 *   atomicity contig FILE [ITERS]   rank 0 writes the whole region ITERS (100) times,
 *                                   value i in write i; a read must see one value throughout
 *                                   (else "mixed") and no write older than the last one that
 *                                   had completed when the read began (else "stale")
 *   atomicity noncontig FILE [ITERS] the same through a strided file view (blocks of 4 ints,
 *                                   every other one) on every rank: one noncontiguous access
 *   atomicity grow FILE [ITERS]     rank 0 appends block i (BLOCK ints of value i) at the end,
 *                                   growing the file; a reader reads the newest block whose
 *                                   write had completed and must get all of it with value i;
 *                                   at the end every rank's MPI_File_get_size must count
 *                                   every block
 *
 * Readers read until one of their reads began after the last write had completed.
 * "Had completed" is known without the file system: after each write rank 0 sends its number
 * to every reader, which takes in what has arrived before each read.
 * Rank 0 prints "atomicity MODE: OK ..." or "atomicity MODE: FAILED ..." with the reads, the
 * mixed and stale ones and what MPI_File_get_atomicity said; exit status 1 on any mixed or
 * stale read. The test programs are our own (no MPI test-suite code).
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INTS 16384   /* contig: a 64 KiB region */
#define NC_INTS 1024 /* noncontig: 256 blocks of 4 ints spread over 8 KiB */
#define BLOCK 1024   /* grow: 4 KiB blocks */

static void check(int err, const char *what) {
    if (err != MPI_SUCCESS) {
        char msg[MPI_MAX_ERROR_STRING];
        int len = 0;
        MPI_Error_string(err, msg, &len);
        fprintf(stderr, "atomicity: %s: %s\n", what, msg);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, ranks;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    if (argc < 3 || ranks < 2) {
        if (rank == 0)
            fprintf(stderr, "usage: mpirun -n 2+ atomicity contig|noncontig|grow FILE [ITERS]\n");
        MPI_Finalize();
        return 2;
    }
    const char *mode = argv[1], *path = argv[2];
    int iters = argc > 3 ? atoi(argv[3]) : 100;
    int grow = !strcmp(mode, "grow"), noncontig = !strcmp(mode, "noncontig");

    if (rank == 0) MPI_File_delete(path, MPI_INFO_NULL);
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_File fh;
    check(MPI_File_open(MPI_COMM_WORLD, path, MPI_MODE_CREATE | MPI_MODE_RDWR, MPI_INFO_NULL, &fh),
          "MPI_File_open");
    check(MPI_File_set_errhandler(fh, MPI_ERRORS_RETURN), "MPI_File_set_errhandler");
    int count = grow ? BLOCK : noncontig ? NC_INTS : INTS;
    MPI_Datatype filetype = MPI_DATATYPE_NULL;
    if (noncontig) {
        /* Blocks of 4 ints, every other one: NC_INTS ints of data span twice as many. */
        MPI_Datatype vec;
        MPI_Type_vector(NC_INTS / 4, 4, 8, MPI_INT, &vec);
        MPI_Type_create_resized(vec, 0, (MPI_Aint)(2 * NC_INTS * sizeof(int)), &filetype);
        MPI_Type_free(&vec);
        MPI_Type_commit(&filetype);
        check(MPI_File_set_view(fh, 0, MPI_INT, filetype, "native", MPI_INFO_NULL),
              "MPI_File_set_view");
    }
    check(MPI_File_set_atomicity(fh, 1), "MPI_File_set_atomicity");
    int atomicity = 0;
    check(MPI_File_get_atomicity(fh, &atomicity), "MPI_File_get_atomicity");
    int *buf = malloc(sizeof(int) * count);
    MPI_Barrier(MPI_COMM_WORLD);

    long reads = 0, mixed = 0, stale = 0;
    if (rank == 0) {
        int *done = malloc(sizeof(int) * (size_t)iters);
        MPI_Request *sent = malloc(sizeof(MPI_Request) * (size_t)iters * (size_t)(ranks - 1));
        for (int i = 1; i <= iters; i++) {
            for (int k = 0; k < count; k++) buf[k] = i;
            MPI_Offset off = grow ? (MPI_Offset)(i - 1) * BLOCK * (MPI_Offset)sizeof(int) : 0;
            MPI_Status st;
            check(MPI_File_write_at(fh, off, buf, count, MPI_INT, &st), "MPI_File_write_at");
            done[i - 1] = i;
            for (int r = 1; r < ranks; r++)
                MPI_Isend(&done[i - 1], 1, MPI_INT, r, 1, MPI_COMM_WORLD,
                          &sent[(size_t)(i - 1) * (size_t)(ranks - 1) + (size_t)(r - 1)]);
        }
        /* Real statuses: GCC takes MPICH's MPI_STATUSES_IGNORE for an empty array. */
        MPI_Status *sts = malloc(sizeof(MPI_Status) * (size_t)iters * (size_t)(ranks - 1));
        MPI_Waitall(iters * (ranks - 1), sent, sts);
        free(sts);
        free(sent);
        free(done);
    } else {
        /* Read until a read began after the writer's last write completed. */
        for (int floor = 0; floor < iters;) {
            int flag = 1;
            while (flag) {
                MPI_Iprobe(0, 1, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE);
                if (flag) MPI_Recv(&floor, 1, MPI_INT, 0, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            }
            if (grow && floor == 0) continue;
            for (int k = 0; k < count; k++) buf[k] = -1;
            MPI_Offset off = grow ? (MPI_Offset)(floor - 1) * BLOCK * (MPI_Offset)sizeof(int) : 0;
            MPI_Status st;
            check(MPI_File_read_at(fh, off, buf, count, MPI_INT, &st), "MPI_File_read_at");
            int got = 0;
            MPI_Get_count(&st, MPI_INT, &got);
            reads++;
            int first = got > 0 ? buf[0] : 0;
            int one_value = 1;
            for (int k = 1; k < got; k++)
                if (buf[k] != first) one_value = 0;
            if (!one_value) mixed++;
            else if (grow ? (got != count || first != floor) : (got == count && first < floor))
                stale++;
            else if (!grow && got != 0 && got != count)
                mixed++; /* a partial region: part of one write */
        }
    }
    /* After the last write (a barrier is enough in atomic mode) every rank's idea of the
     * file's size includes every block: one more "stale" per rank that sees less. */
    MPI_Barrier(MPI_COMM_WORLD);
    if (grow) {
        MPI_Offset size = 0;
        check(MPI_File_get_size(fh, &size), "MPI_File_get_size");
        if (size != (MPI_Offset)iters * BLOCK * (MPI_Offset)sizeof(int)) stale++;
    }
    long totals[3] = {0, 0, 0}, mine[3] = {reads, mixed, stale};
    MPI_Reduce(mine, totals, 3, MPI_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
    check(MPI_File_close(&fh), "MPI_File_close");
    if (filetype != MPI_DATATYPE_NULL) MPI_Type_free(&filetype);
    int ok = totals[1] == 0 && totals[2] == 0;
    if (rank == 0) {
        printf("atomicity %s: %s: %d ranks, %ld reads, %ld mixed, %ld stale, atomicity %d\n", mode,
               ok ? "OK" : "FAILED", ranks, totals[0], totals[1], totals[2], atomicity);
        fflush(stdout);
    }
    free(buf);
    MPI_Finalize();
    return ok ? 0 : 1;
}
