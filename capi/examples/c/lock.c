/* Byte-range locks from C: every rank takes an exclusive lock on a range that overlaps its
 * neighbours', increments a counter kept in that range of a shared file, and releases.
 * With the locks the final count is exact; rank 0 checks it.
 *
 * Usage: mpirun -np P lock FILE [ROUNDS]
 * Build: mpicc lock.c $(pkg-config --cflags --libs brlock) -o lock
 */
#include <brlock.h>
#include <fcntl.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define CHECK(call)                                                              \
    do {                                                                         \
        int status_ = (call);                                                    \
        if (status_ != BRLOCK_OK) {                                              \
            fprintf(stderr, "%s: %s\n", brlock_strerror(status_), brlock_last_error()); \
            MPI_Abort(MPI_COMM_WORLD, 1);                                        \
        }                                                                        \
    } while (0)

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv); /* the program owns MPI; brlock never initialises it */
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const char *path = argc > 1 ? argv[1] : "counter.dat";
    int rounds = argc > 2 ? atoi(argv[2]) : 100;

    if (rank == 0) { /* one 8-byte counter, zeroed */
        int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
        long zero = 0;
        if (fd < 0 || pwrite(fd, &zero, sizeof zero, 0) != sizeof zero) MPI_Abort(MPI_COMM_WORLD, 1);
        close(fd);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    int fd = open(path, O_RDWR);

    brlock_lock_t *lock;
    CHECK(brlock_lock_open(MPI_COMM_WORLD, 0, &lock)); /* collective; table on rank 0 */
    for (int i = 0; i < rounds; i++) {
        /* Bytes [rank, rank + 8) all overlap the counter at [0, 8). */
        CHECK(brlock_lock_lock(lock, (uint64_t)rank % 8, 8, BRLOCK_EXCLUSIVE));
        long counter;
        if (pread(fd, &counter, sizeof counter, 0) != sizeof counter) MPI_Abort(MPI_COMM_WORLD, 1);
        counter++;
        if (pwrite(fd, &counter, sizeof counter, 0) != sizeof counter) MPI_Abort(MPI_COMM_WORLD, 1);
        CHECK(brlock_lock_unlock(lock));
    }
    CHECK(brlock_lock_close(&lock)); /* collective */
    close(fd);

    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        long counter = 0;
        fd = open(path, O_RDONLY);
        if (fd < 0 || pread(fd, &counter, sizeof counter, 0) != sizeof counter) MPI_Abort(MPI_COMM_WORLD, 1);
        close(fd);
        printf("lock ranks=%d counter=%ld expected=%ld ok=%d\n", size, counter,
               (long)size * rounds, counter == (long)size * rounds);
    }
    MPI_Finalize();
    return 0;
}
