/* An exclusion check of the brlock lock service written against brlock.h alone.
 *
 * Every rank repeatedly locks a random range of SLOTS stamp slots (kept in an MPI window on
 * rank 0), writes its own stamp into every slot of the range, waits a little, and reads the
 * range back: a slot that no longer holds its stamp was written by another rank while this
 * one held the range exclusively, which is a violation. In mixed mode every other
 * acquisition is shared: a shared holder reads the range when it gets it and again before it
 * releases, and a change is a violation (a writer got in). With --nolock the lock calls are
 * skipped: the same checker must then see violations (the negative control).
 *
 * Usage: lock_check [--iters N] [--slots S] [--max-len L] [--mode exclusive|mixed]
 *                   [--hold-us U] [--nolock]
 * Rank 0 prints one line: "lock_check ranks=P acquisitions=A violations=V nolock=0|1".
 */
#include <brlock.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void must(int status, const char *what) {
    if (status != BRLOCK_OK) {
        fprintf(stderr, "lock_check: %s: %s (%s)\n", what, brlock_strerror(status),
                brlock_last_error());
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
}

/* Writes `len` copies of `stamp` at slot `off` of rank 0's window (atomic per element). */
static void stamp_range(MPI_Win win, int off, int len, int stamp, int *buf) {
    for (int i = 0; i < len; i++) buf[i] = stamp;
    MPI_Win_lock(MPI_LOCK_SHARED, 0, 0, win);
    MPI_Accumulate(buf, len, MPI_INT, 0, off, len, MPI_INT, MPI_REPLACE, win);
    MPI_Win_unlock(0, win);
}

/* Reads `len` slots at `off` of rank 0's window into `buf` (atomic per element). */
static void read_range(MPI_Win win, int off, int len, int *buf) {
    MPI_Win_lock(MPI_LOCK_SHARED, 0, 0, win);
    MPI_Get_accumulate(NULL, 0, MPI_INT, buf, len, MPI_INT, 0, off, len, MPI_INT, MPI_NO_OP,
                       win);
    MPI_Win_unlock(0, win);
}

int main(int argc, char **argv) {
    int iters = 100, slots = 64, max_len = 16, hold_us = 200, nolock = 0, mixed = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--nolock")) nolock = 1;
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--slots") && i + 1 < argc) slots = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--max-len") && i + 1 < argc) max_len = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--hold-us") && i + 1 < argc) hold_us = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--mode") && i + 1 < argc) mixed = !strcmp(argv[++i], "mixed");
        else {
            fprintf(stderr, "lock_check: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (slots < 1 || max_len < 1 || iters < 0) {
        fprintf(stderr, "lock_check: bad sizes\n");
        return 2;
    }

    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);

    int *table = NULL;
    MPI_Win win;
    MPI_Win_allocate(rank == 0 ? (MPI_Aint)(slots * sizeof(int)) : 0, sizeof(int),
                     MPI_INFO_NULL, MPI_COMM_WORLD, &table, &win);
    if (rank == 0) {
        MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 0, 0, win);
        memset(table, 0, slots * sizeof(int));
        MPI_Win_unlock(0, win);
    }
    MPI_Barrier(MPI_COMM_WORLD);

    brlock_lock_t *lock = NULL;
    must(brlock_lock_open(MPI_COMM_WORLD, 0, &lock), "brlock_lock_open");

    int *mine = malloc(max_len * sizeof(int)), *seen = malloc(max_len * sizeof(int)),
        *again = malloc(max_len * sizeof(int));
    srand(12345u + 7919u * (unsigned)rank);
    long violations = 0, acquisitions = 0;
    for (int it = 0; it < iters; it++) {
        int off = rand() % slots;
        int room = slots - off < max_len ? slots - off : max_len;
        int len = 1 + rand() % room;
        int shared = mixed && (it % 2 == 1);
        if (!nolock)
            must(brlock_lock_lock(lock, (uint64_t)off, (uint64_t)len,
                                  shared ? BRLOCK_SHARED : BRLOCK_EXCLUSIVE),
                 "brlock_lock_lock");
        acquisitions++;
        if (shared) {
            read_range(win, off, len, seen);
            usleep(hold_us);
            read_range(win, off, len, again);
            for (int i = 0; i < len; i++) violations += seen[i] != again[i];
        } else {
            int stamp = (rank + 1) * 1000000 + it;
            stamp_range(win, off, len, stamp, mine);
            usleep(hold_us);
            read_range(win, off, len, seen);
            for (int i = 0; i < len; i++) violations += seen[i] != stamp;
        }
        if (!nolock) must(brlock_lock_unlock(lock), "brlock_lock_unlock");
    }

    long totals[2] = {0, 0}, local[2] = {violations, acquisitions};
    MPI_Reduce(local, totals, 2, MPI_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
    must(brlock_lock_close(&lock), "brlock_lock_close");
    if (rank == 0)
        printf("lock_check ranks=%d acquisitions=%ld violations=%ld nolock=%d mode=%s\n", size,
               totals[1], totals[0], nolock, mixed ? "mixed" : "exclusive");
    free(mine);
    free(seen);
    free(again);
    MPI_Win_free(&win);
    MPI_Finalize();
    return 0;
}
