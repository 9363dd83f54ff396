/* An atomic file from C: in atomic mode every rank repeatedly writes a noncontiguous set of
 * blocks (all filled with its own byte) that overlaps every other rank's, and reads the same
 * blocks back with one noncontiguous read. Atomicity means a read sees the whole set written
 * by one rank: never a mix of two writers. Rank 0 prints the count of mixed reads.
 *
 * Usage: mpirun -np P atomic FILE [ROUNDS]
 * Rank 0 prints "atomic ranks=P reads=R mixed=M atomicity=1 ok=0|1".
 * Build: mpicc atomic.c $(pkg-config --cflags --libs brlock) -o atomic
 */
#include <brlock.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCKS 8
#define BLOCK 512
#define STRIDE 1024

#define CHECK(call)                                                                     \
    do {                                                                                \
        int status_ = (call);                                                           \
        if (status_ != BRLOCK_OK) {                                                     \
            fprintf(stderr, "%s: %s\n", brlock_strerror(status_), brlock_last_error()); \
            MPI_Abort(MPI_COMM_WORLD, 1);                                               \
        }                                                                               \
    } while (0)

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const char *path = argc > 1 ? argv[1] : "atomic.dat";
    int rounds = argc > 2 ? atoi(argv[2]) : 50;

    brlock_atomic_t *file;
    CHECK(brlock_atomic_open(MPI_COMM_WORLD, path, BRLOCK_ATOMIC_CREATE, &file));
    CHECK(brlock_atomic_set_atomicity(file, 1)); /* collective */
    int atomic = 0;
    CHECK(brlock_atomic_get_atomicity(file, &atomic));

    uint64_t offsets[BLOCKS], lengths[BLOCKS];
    for (int i = 0; i < BLOCKS; i++) {
        offsets[i] = (uint64_t)i * STRIDE;
        lengths[i] = BLOCK;
    }
    static unsigned char mine[BLOCKS * BLOCK], seen[BLOCKS * BLOCK];
    memset(mine, 'A' + rank % 26, sizeof mine);
    if (rank == 0) CHECK(brlock_atomic_write_pieces(file, offsets, lengths, BLOCKS, mine, sizeof mine));
    CHECK(brlock_atomic_sync(file)); /* collective: rank 0's first write is visible */
    MPI_Barrier(MPI_COMM_WORLD);
    CHECK(brlock_atomic_sync(file));

    long reads = 0, mixed = 0;
    for (int r = 0; r < rounds; r++) {
        CHECK(brlock_atomic_write_pieces(file, offsets, lengths, BLOCKS, mine, sizeof mine));
        CHECK(brlock_atomic_read_pieces(file, offsets, lengths, BLOCKS, seen, sizeof seen));
        reads++;
        for (size_t i = 1; i < sizeof seen; i++)
            if (seen[i] != seen[0]) {
                mixed++;
                break;
            }
    }
    /* A contiguous read of the first block, for the simple calls. */
    unsigned char first[BLOCK];
    CHECK(brlock_atomic_read_at(file, 0, first, sizeof first));
    long totals[2], local[2] = {reads, mixed};
    MPI_Reduce(local, totals, 2, MPI_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
    CHECK(brlock_atomic_close(&file)); /* collective */
    if (rank == 0)
        printf("atomic ranks=%d reads=%ld mixed=%ld atomicity=%d ok=%d\n", size, totals[0],
               totals[1], atomic, totals[1] == 0 && atomic == 1);
    MPI_Finalize();
    return 0;
}
