/* Provokes every error code the C API can return from C, and checks that each call returns
 * its code (and a last-error message) instead of aborting. Written against brlock.h alone.
 *
 * Usage: errors_check --dir DIR --full DIR    (at 2 ranks or more)
 *        errors_check --wrong-mpi             (built and run under another MPI than libbrlock's)
 * Each case prints "case NAME expected=E got=G ok|FAIL" on rank 0 (on every rank for
 * rank-specific cases); rank 0 ends with "errors_check cases=N failures=F".
 */
#include <brlock.h>
#include <errno.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int rank, size, cases, failures;

static void expect(const char *name, int expected, int got) {
    cases++;
    int ok = expected == got;
    if (!ok) failures++;
    if (!ok || rank == 0)
        printf("case %s rank=%d expected=%d got=%d %s%s%s\n", name, rank, expected, got,
               ok ? "ok" : "FAIL", got != BRLOCK_OK ? " message=" : "",
               got != BRLOCK_OK ? brlock_last_error() : "");
    if (got != BRLOCK_OK && brlock_last_error()[0] == '\0') {
        failures++;
        printf("case %s rank=%d FAIL: no last-error message\n", name, rank);
    }
}

static void check_true(const char *name, int cond) {
    cases++;
    if (!cond) failures++;
    if (!cond || rank == 0) printf("case %s rank=%d %s\n", name, rank, cond ? "ok" : "FAIL");
}

static void lock_errors(void) {
    brlock_lock_t *lock = NULL;
    int got = 0;
    expect("lock_null_handle", BRLOCK_ERR_NULL, brlock_lock_lock(NULL, 0, 1, BRLOCK_EXCLUSIVE));
    expect("unlock_null_handle", BRLOCK_ERR_NULL, brlock_lock_unlock(NULL));
    expect("trylock_null_handle", BRLOCK_ERR_NULL,
           brlock_lock_trylock(NULL, 0, 1, BRLOCK_SHARED, &got));
    expect("open_null_out", BRLOCK_ERR_NULL, brlock_lock_open(MPI_COMM_WORLD, 0, NULL));
    expect("open_comm_null", BRLOCK_ERR_INVALID_ARGUMENT,
           brlock_lock_open(MPI_COMM_NULL, 0, &lock));
    expect("open_home_outside", BRLOCK_ERR_INVALID_ARGUMENT,
           brlock_lock_open(MPI_COMM_WORLD, size, &lock));
    check_true("failed_open_leaves_no_handle", lock == NULL);
    expect("close_null", BRLOCK_ERR_NULL, brlock_lock_close(NULL));

    expect("open", BRLOCK_OK, brlock_lock_open(MPI_COMM_WORLD, 0, &lock));
    uint64_t base = 1000u * (uint64_t)rank;
    expect("zero_length", BRLOCK_ERR_RANGE, brlock_lock_lock(lock, base, 0, BRLOCK_EXCLUSIVE));
    expect("end_past_max_offset", BRLOCK_ERR_RANGE,
           brlock_lock_lock(lock, INT64_MAX, 1, BRLOCK_EXCLUSIVE));
    expect("offset_plus_length_overflows", BRLOCK_ERR_RANGE,
           brlock_lock_lock(lock, UINT64_MAX, 2, BRLOCK_EXCLUSIVE));
    expect("trylock_zero_length", BRLOCK_ERR_RANGE,
           brlock_lock_trylock(lock, base, 0, BRLOCK_SHARED, &got));
    expect("bad_mode", BRLOCK_ERR_INVALID_ARGUMENT, brlock_lock_lock(lock, base, 10, 7));
    expect("unlock_without_lock", BRLOCK_ERR_NOT_HELD, brlock_lock_unlock(lock));
    expect("trylock_null_acquired", BRLOCK_ERR_NULL,
           brlock_lock_trylock(lock, base, 10, BRLOCK_EXCLUSIVE, NULL));
    expect("timeout_negative", BRLOCK_ERR_INVALID_ARGUMENT,
           brlock_lock_timeout(lock, base, 10, BRLOCK_EXCLUSIVE, -1.0, &got));
    expect("timeout_nan", BRLOCK_ERR_INVALID_ARGUMENT,
           brlock_lock_timeout(lock, base, 10, BRLOCK_EXCLUSIVE, NAN, &got));

    expect("lock", BRLOCK_OK, brlock_lock_lock(lock, base, 10, BRLOCK_EXCLUSIVE));
    expect("double_lock", BRLOCK_ERR_ALREADY_HELD,
           brlock_lock_lock(lock, base + 100, 10, BRLOCK_SHARED));
    expect("double_trylock", BRLOCK_ERR_ALREADY_HELD,
           brlock_lock_trylock(lock, base, 10, BRLOCK_EXCLUSIVE, &got));
    expect("unlock", BRLOCK_OK, brlock_lock_unlock(lock));
    expect("unlock_twice", BRLOCK_ERR_NOT_HELD, brlock_lock_unlock(lock));
    got = -1;
    expect("timeout_free_range", BRLOCK_OK,
           brlock_lock_timeout(lock, base, 10, BRLOCK_EXCLUSIVE, 5.0, &got));
    check_true("timeout_took_it", got == 1);
    expect("unlock_after_timeout", BRLOCK_OK, brlock_lock_unlock(lock));
    got = -1;
    expect("trylock_free_range", BRLOCK_OK,
           brlock_lock_trylock(lock, base, 10, BRLOCK_SHARED, &got));
    check_true("trylock_took_it", got == 1);
    /* Closing while holding releases the range. */
    expect("close_holding", BRLOCK_OK, brlock_lock_close(&lock));
    check_true("close_clears_handle", lock == NULL);
    expect("close_twice", BRLOCK_OK, brlock_lock_close(&lock));
    expect("lock_after_close", BRLOCK_ERR_NULL, brlock_lock_lock(lock, 0, 1, BRLOCK_SHARED));
}

static void append_errors(const char *dir, const char *full) {
    char path[4096];
    brlock_append_t *file = NULL;
    uint64_t at = 0, end = 0;

    expect("append_open_null_path", BRLOCK_ERR_NULL,
           brlock_append_open(MPI_COMM_WORLD, NULL, 0, &file));
    snprintf(path, sizeof path, "%s/x", dir);
    expect("append_open_bad_flags", BRLOCK_ERR_INVALID_ARGUMENT,
           brlock_append_open(MPI_COMM_WORLD, path, 99, &file));
    expect("append_write_null_handle", BRLOCK_ERR_NULL, brlock_append_write(NULL, "x", 1, &at));

    /* A missing directory on every rank: rank 0 cannot create the file. */
    snprintf(path, sizeof path, "%s/missing-dir/file", dir);
    int code = brlock_append_open(MPI_COMM_WORLD, path, BRLOCK_APPEND_TRUNCATE, &file);
    if (rank == 0) expect("append_open_missing_dir", BRLOCK_ERR_IO, code);
    else check_true("append_open_missing_dir_elsewhere",
                    code == BRLOCK_ERR_IO || code == BRLOCK_ERR_COLLECTIVE);
    check_true("append_open_missing_dir_is_collective", brlock_last_error_collective() == 1);
    check_true("append_open_missing_dir_errno", rank != 0 || brlock_last_errno() == ENOENT);

    /* Only rank 1 names a missing file: it gets its own error, the others the collective one. */
    if (rank == 1) snprintf(path, sizeof path, "%s/missing-dir/file", dir);
    else snprintf(path, sizeof path, "%s/shared", dir);
    code = brlock_append_open(MPI_COMM_WORLD, path, BRLOCK_APPEND_TRUNCATE, &file);
    expect(rank == 1 ? "append_open_missing_on_this_rank" : "append_open_missing_on_another_rank",
           rank == 1 ? BRLOCK_ERR_IO : BRLOCK_ERR_COLLECTIVE, code);
    check_true("failed_append_open_leaves_no_handle", file == NULL);

    /* A full disk: the append fails with ENOSPC and the file still closes collectively. */
    snprintf(path, sizeof path, "%s/appends", full);
    code = brlock_append_open(MPI_COMM_WORLD, path, BRLOCK_APPEND_TRUNCATE, &file);
    expect("append_open_on_full_disk", BRLOCK_OK, code);
    if (code == BRLOCK_OK) {
        size_t len = 1 << 20;
        char *data = calloc(len, 1);
        expect("append_write_null_data", BRLOCK_ERR_NULL, brlock_append_write(file, NULL, 5, &at));
        expect("append_full_disk", BRLOCK_ERR_IO, brlock_append_write(file, data, len, &at));
        check_true("append_full_disk_errno", brlock_last_errno() == ENOSPC);
        check_true("append_full_disk_message", strstr(brlock_last_error(), "ENOSPC") != NULL);
        free(data);
        code = brlock_append_close(&file, &end);
        check_true("append_close_after_full_disk_returns", file == NULL);
    }
    expect("append_close_null", BRLOCK_ERR_NULL, brlock_append_close(NULL, &end));
    expect("append_close_twice", BRLOCK_OK, brlock_append_close(&file, &end));
}

static void atomic_errors(const char *dir) {
    char path[4096];
    brlock_atomic_t *file = NULL;
    unsigned char buf[64] = {0};

    snprintf(path, sizeof path, "%s/no-such-file", dir);
    int code = brlock_atomic_open(MPI_COMM_WORLD, path, 0, &file);
    if (rank == 0) expect("atomic_open_missing_file", BRLOCK_ERR_IO, code);
    else check_true("atomic_open_missing_file_elsewhere",
                    code == BRLOCK_ERR_IO || code == BRLOCK_ERR_COLLECTIVE);
    check_true("atomic_open_missing_file_no_handle", file == NULL);
    expect("atomic_open_bad_flags", BRLOCK_ERR_INVALID_ARGUMENT,
           brlock_atomic_open(MPI_COMM_WORLD, path, 64, &file));

    snprintf(path, sizeof path, "%s/atomic", dir);
    expect("atomic_open", BRLOCK_OK,
           brlock_atomic_open(MPI_COMM_WORLD, path, BRLOCK_ATOMIC_CREATE, &file));
    if (!file) return;
    expect("atomic_set_atomicity", BRLOCK_OK, brlock_atomic_set_atomicity(file, 1));
    expect("atomic_get_atomicity_null", BRLOCK_ERR_NULL, brlock_atomic_get_atomicity(file, NULL));
    expect("atomic_read_null_handle", BRLOCK_ERR_NULL, brlock_atomic_read_at(NULL, 0, buf, 1));
    expect("atomic_read_null_buf", BRLOCK_ERR_NULL, brlock_atomic_read_at(file, 0, NULL, 4));
    expect("atomic_write", BRLOCK_OK,
           brlock_atomic_write_at(file, 64u * (uint64_t)rank, buf, sizeof buf));
    expect("atomic_short_read", BRLOCK_ERR_SHORT_READ,
           brlock_atomic_read_at(file, 1u << 30, buf, sizeof buf));
    uint64_t offsets[2] = {0, 8}, lengths[2] = {16, 16};
    expect("atomic_overlapping_pieces", BRLOCK_ERR_INVALID_ARGUMENT,
           brlock_atomic_read_pieces(file, offsets, lengths, 2, buf, 32));
    lengths[0] = 8;
    expect("atomic_pieces_wrong_buffer", BRLOCK_ERR_INVALID_ARGUMENT,
           brlock_atomic_read_pieces(file, offsets, lengths, 2, buf, 20));
    expect("atomic_pieces_null_offsets", BRLOCK_ERR_NULL,
           brlock_atomic_write_pieces(file, NULL, lengths, 2, buf, 24));
    expect("atomic_pieces_overflow", BRLOCK_ERR_INVALID_ARGUMENT,
           brlock_atomic_write_pieces(file, (uint64_t[]){UINT64_MAX - 1}, (uint64_t[]){4}, 1,
                                      buf, 4));
    expect("atomic_write_overflow", BRLOCK_ERR_RANGE,
           brlock_atomic_write_at(file, INT64_MAX, buf, 4));
    expect("atomic_sync", BRLOCK_OK, brlock_atomic_sync(file));
    expect("atomic_close", BRLOCK_OK, brlock_atomic_close(&file));
    expect("atomic_close_twice", BRLOCK_OK, brlock_atomic_close(&file));
    expect("atomic_close_null", BRLOCK_ERR_NULL, brlock_atomic_close(NULL));
}

static void strings(void) {
    for (int code = 0; code < BRLOCK_ERR_COUNT; code++) {
        const char *s = brlock_strerror(code);
        check_true("strerror_known", s != NULL && s[0] != '\0' && !strstr(s, "unknown"));
    }
    check_true("strerror_unknown", strstr(brlock_strerror(-5), "unknown") != NULL);
    check_true("strerror_unknown_high", strstr(brlock_strerror(BRLOCK_ERR_COUNT), "unknown") != NULL);
    brlock_lock_unlock(NULL);
    check_true("last_error_names_function", strstr(brlock_last_error(), "brlock_lock_unlock") != NULL);
    check_true("last_error_code", brlock_last_error_code() == BRLOCK_ERR_NULL);
}

static void wrong_mpi(void) {
    brlock_lock_t *lock = NULL;
    brlock_append_t *file = NULL;
    expect("lock_open_wrong_mpi", BRLOCK_ERR_WRONG_MPI, brlock_lock_open(MPI_COMM_WORLD, 0, &lock));
    check_true("wrong_mpi_message_names_build", strstr(brlock_last_error(), brlock_built_for_mpi()) != NULL);
    expect("append_open_wrong_mpi", BRLOCK_ERR_WRONG_MPI,
           brlock_append_open(MPI_COMM_WORLD, "/tmp/brlock-wrong-mpi", 0, &file));
    check_true("wrong_mpi_no_handles", lock == NULL && file == NULL);
}

int main(int argc, char **argv) {
    const char *dir = NULL, *full = NULL;
    int wrong = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--full") && i + 1 < argc) full = argv[++i];
        else if (!strcmp(argv[i], "--wrong-mpi")) wrong = 1;
        else {
            fprintf(stderr, "errors_check: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    /* Before MPI_Init: the strings need no MPI, and opening is refused, not a crash. */
    brlock_lock_t *early = NULL;
    int before = brlock_lock_open(MPI_COMM_WORLD, 0, &early);
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (wrong) {
        expect("open_before_mpi_init_wrong_mpi", BRLOCK_ERR_WRONG_MPI, before);
        wrong_mpi();
    } else {
        expect("open_before_mpi_init", BRLOCK_ERR_INVALID_ARGUMENT, before);
        if (!dir || !full || size < 2) {
            fprintf(stderr, "errors_check: needs --dir, --full and 2 ranks or more\n");
            MPI_Abort(MPI_COMM_WORLD, 2);
        }
        strings();
        lock_errors();
        append_errors(dir, full);
        atomic_errors(dir);
    }
    int totals[2], local[2] = {cases, failures};
    MPI_Reduce(local, totals, 2, MPI_INT, MPI_SUM, 0, MPI_COMM_WORLD);
    if (rank == 0) printf("errors_check cases=%d failures=%d\n", totals[0], totals[1]);
    fflush(stdout);
    MPI_Finalize();
    return 0;
}
